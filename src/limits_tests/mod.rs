//! Every documented limit of the format and the protocol, tested at the limit, one step
//! below it and one step past it (or across its wrap): docs/limits.md lists each limit, the
//! constant that sets it and the tests here that check it.
//!
//! Invariant F5: each limit holds exactly where docs/limits.md says, and nowhere else: the
//! value at the limit is accepted, the one past it refused with the error the page names,
//! and a counter that wraps goes on working across its wrap. A counter that would take
//! millions of operations to wrap (a slot's incarnation, the generation) is set near its
//! wrap in the file instead.

mod alloc;
mod capacity;
mod growth;
mod identity;
mod lock;
mod log;
mod roots;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::alloc::tlsf::{class_min, mapping_insert};
use crate::error::Error;
use crate::heap::{Heap, HeapGuard, OpenOptions};

/// A heap file of `size` bytes in a fresh directory, with no handle attached.
fn heap_file(size: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limits.heap");
    drop(Heap::create(&path, size).unwrap());
    (dir, path)
}

/// Writes `bytes` at `offset` of the file (no handle may be attached).
fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// Reads `N` bytes at `offset` of the file.
fn peek<const N: usize>(path: &Path, offset: u64) -> [u8; N] {
    let mut b = [0u8; N];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut b, offset)
        .unwrap();
    b
}

/// Options for a handle that takes a dead owner's lock over at once.
fn quick() -> OpenOptions {
    OpenOptions {
        probe_interval: Duration::from_millis(1),
        ..OpenOptions::default()
    }
}

/// The message of the format error `open` gives for `path`, altered as `what` says
/// (panics if it opens, or fails otherwise).
fn format_refusal(path: &Path, what: &str) -> String {
    match Heap::open(path) {
        Ok(_) => panic!("{what}: the file opened"),
        Err(Error::Format { source, .. }) => source.to_string(),
        Err(e) => panic!("{what}: not a format error: {e}"),
    }
}

/// Allocates every free byte of the heap: each free block whole, by a request TLSF's
/// search is certain to find it for (the least size of the block's own class; the rest,
/// if a whole block, the same way). Commits.
fn fill(g: &mut HeapGuard<'_>) {
    loop {
        let largest = g.stats().largest_free;
        if largest == 0 {
            break;
        }
        let (fl, sl) = mapping_insert(largest);
        g.alloc_bytes(class_min(fl, sl) - 8, 8).unwrap();
    }
    g.checkpoint().unwrap();
    assert_eq!(g.stats().free_bytes, 0);
}
