//! Recovery's refusals of a log that no transaction could have written, each checked to
//! leave the file as it found it (D1: refusal before damage).

use std::os::unix::fs::FileExt;
use std::path::Path;

use super::entry::{word0, EntryKind};
use super::{LogFault, TxnError};
use crate::alloc::st;
use crate::error::Error;
use crate::format::HEADER_SIZE;
use crate::heap::Heap;

fn poke(path: &Path, at: u64, w: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&w.to_le_bytes(), at).unwrap();
}

/// A heap with one used block of 64 usable bytes after the log; its payload, and the log's.
fn heap_with_a_block(path: &Path) -> (u64, u64) {
    let heap = Heap::create(path, 96 << 10).unwrap();
    let mut g = heap.lock().unwrap();
    let p = g.alloc_bytes(64, 8).unwrap().raw();
    g.alloc_bytes(64, 8).unwrap();
    let usable = g
        .usable_size(crate::offset::Offset::<u8>::from_raw(p))
        .unwrap();
    assert_eq!(usable, 64);
    (p, g.stats().log_block)
}

/// An uncommitted log whose one before-image starts inside a used block and runs 8 bytes
/// past its end (over the next block's header) is refused as `ImageOutsideBlocks`; so is
/// one that starts past every block; one that ends exactly at the block's end is undone.
#[test]
fn recovery_refuses_a_before_image_that_runs_past_its_block() {
    let _watchdog = crate::watchdog!(30);
    for (start, len, refused) in [(56, 16, true), (48, 16, false), (64, 8, true)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.heap");
        let (p, log) = heap_with_a_block(&path);
        let target = p + start;
        poke(&path, log, word0(EntryKind::Image, len));
        poke(&path, log + 8, target);
        for k in 0..len / 8 {
            poke(&path, log + 16 + 8 * k, 0x5a5a_5a5a_5a5a_5a5a);
        }
        poke(&path, st!(log.len), 16 + len);
        let before = std::fs::read(&path).unwrap();
        match Heap::open(&path) {
            Err(Error::Txn(TxnError::BadLog { pos: 0, fault })) if refused => {
                assert_eq!(fault, LogFault::ImageOutsideBlocks);
                let after = std::fs::read(&path).unwrap();
                let arena = HEADER_SIZE as usize;
                assert!(
                    before[arena..] == after[arena..],
                    "the refused recovery wrote the arena"
                );
            }
            Ok(h) if !refused => {
                assert!(h.lock().unwrap().check().is_clean());
                drop(h);
                let after = std::fs::read(&path).unwrap();
                let t = target as usize;
                assert!(after[t..t + len as usize].iter().all(|&b| b == 0x5a));
            }
            other => panic!(
                "image {start}+{len} of a 64-byte payload: {:?}",
                other.map(|_| "opened")
            ),
        }
    }
}
