//! The entry points a possibly corrupt heap image is put through, shared by the
//! corrupt-image property (`proptests/corrupt_image.rs`, which runs it in a child process
//! per case) and the fuzz target (`fuzz/fuzz_targets/open_image.rs`).
//!
//! Whatever the file holds, these calls must return (an error or a report), never panic,
//! abort, hang or fault. Beyond not crashing, [`exercise`] asserts what any file must
//! satisfy once `open` accepted it, and that a clean `check` is honest:
//!
//! * the capacity the heap works with never exceeds the file's length (otherwise a page
//!   past the end of the file is one access away from SIGBUS);
//! * a heap `check` reports corrupt may answer nonsense (an allocation on a corrupt free
//!   list may hand out a block it then damages), but only ever through the bounds-checked
//!   accessors: never a crash;
//! * every block `blocks()` lists lies inside the arena;
//! * if `check()` reports nothing: the counters in `stats()` agree with the blocks, every
//!   root's block can be read whole, small allocations succeed or fail with `OutOfSpace`
//!   only, freeing them succeeds, growth succeeds, `check()` stays clean, and the file
//!   reopens clean.
//!
//! Only `mapheap`, `std` and `libc` are used here, so the fuzz crate can include this file.

use std::path::Path;
use std::time::Duration;

use mapheap::alloc::AllocError;
use mapheap::{Error, Heap, Offset, OpenOptions};

const HEADER_SIZE: u64 = 16384;

/// What [`exercise`] saw (for the child's log).
#[derive(Debug, Default)]
pub struct Exercised {
    /// `open` accepted the file.
    pub opened: bool,
    /// `check()` found nothing wrong (`None` if the heap could not be locked).
    pub clean: Option<bool>,
    /// Errors the entry points returned, in order (all legitimate for a corrupt file).
    pub errors: Vec<String>,
}

/// Options for corrupt images: a lock word naming a dead owner costs one probe interval.
pub fn options() -> OpenOptions {
    OpenOptions {
        probe_interval: Duration::from_millis(1),
        ..OpenOptions::default()
    }
}

/// Puts the image at `path` through open, lock, check, stats, blocks, every root (read in
/// full), allocation, free, growth and a reopen. `Err` is a broken guarantee (see the
/// module doc); errors returned by the heap are collected in [`Exercised::errors`].
pub fn exercise(path: &Path) -> Result<Exercised, String> {
    let mut out = Exercised::default();
    let file_len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    let heap = match Heap::open_with(path, &options()) {
        Ok(h) => h,
        Err(e) => {
            out.errors.push(format!("open: {e}"));
            return Ok(out);
        }
    };
    out.opened = true;
    let mut g = match heap.lock() {
        Ok(g) => g,
        Err(e) => {
            out.errors.push(format!("lock: {e}"));
            return Ok(out);
        }
    };
    let report = g.check();
    let clean = report.is_clean();
    out.clean = Some(clean);
    let stats = g.stats();
    let blocks = g.blocks();

    // Walk the roots: resolve each, read its whole block.
    let mut sum = 0u64;
    for r in g.roots() {
        let at = Offset::<u8>::from_raw(r.offset);
        match g.usable_size(at) {
            Ok(n) => match g.bytes(at, n) {
                Ok(b) => sum = b.iter().fold(sum, |s, &x| s.wrapping_add(u64::from(x))),
                Err(e) => {
                    if clean {
                        return Err(format!("clean heap, root {:?} unreadable: {e}", r.name));
                    }
                    out.errors.push(format!("root bytes: {e}"));
                }
            },
            Err(e) => {
                if clean {
                    return Err(format!(
                        "clean heap, root {:?} does not resolve: {e}",
                        r.name
                    ));
                }
                out.errors.push(format!("root: {e}"));
            }
        }
        if let Err(e) = g.root::<u64>(&r.name) {
            out.errors.push(format!("typed root: {e}"));
        }
    }
    std::hint::black_box(sum);

    let cap = stats.capacity;
    if cap > file_len {
        return Err(format!(
            "open accepted a capacity of {cap} bytes for a file of {file_len} bytes"
        ));
    }
    for b in &blocks {
        if b.offset < HEADER_SIZE || b.offset.saturating_add(b.size) > cap.saturating_sub(8) {
            return Err(format!(
                "block {:#x}+{} lies outside the arena [{HEADER_SIZE:#x}, {:#x})",
                b.offset,
                b.size,
                cap.saturating_sub(8)
            ));
        }
    }
    if clean {
        let used: u64 = blocks.iter().filter(|b| !b.free).map(|b| b.size).sum();
        let free: u64 = blocks.iter().filter(|b| b.free).map(|b| b.size).sum();
        let (nused, nfree) = (
            blocks.iter().filter(|b| !b.free).count() as u64,
            blocks.iter().filter(|b| b.free).count() as u64,
        );
        if (
            stats.used_bytes,
            stats.free_bytes,
            stats.used_blocks,
            stats.free_blocks,
        ) != (used, free, nused, nfree)
        {
            return Err(format!(
                "clean report but stats {stats:?} disagree with the blocks \
                 (used {used} in {nused}, free {free} in {nfree})"
            ));
        }
        if used + free != cap - HEADER_SIZE - 8 {
            return Err(format!(
                "clean report but blocks cover {} bytes of a {}-byte arena",
                used + free,
                cap - HEADER_SIZE - 8
            ));
        }
    }

    // Allocate, write, free.
    let mut got = Vec::new();
    for (size, align) in [(8u64, 8u64), (100, 64), (3000, 8), (24, 4096), (40_000, 8)] {
        match g.alloc_bytes(size, align) {
            Ok(o) => {
                match g.bytes_mut(o, size) {
                    Ok(b) => b.fill(0xab),
                    // On a heap `check` found corrupt, the allocator may follow a bad link
                    // and hand out a block it then damages: wrong, but memory-safe, and
                    // already reported.
                    Err(e) if !clean => out.errors.push(format!("fresh block: {e}")),
                    Err(e) => {
                        return Err(format!(
                            "clean heap, a block just allocated at {o:?} for {size} bytes \
                             is unusable: {e}"
                        ))
                    }
                }
                got.push(o);
            }
            Err(Error::Alloc(AllocError::OutOfSpace { .. })) => {}
            Err(e) => {
                if clean {
                    return Err(format!("clean heap, alloc_bytes({size}, {align}): {e}"));
                }
                out.errors.push(format!("alloc: {e}"));
            }
        }
    }
    for o in got.into_iter().rev() {
        if let Err(e) = g.free(o) {
            if clean {
                return Err(format!("clean heap, free of a fresh block {o:?}: {e}"));
            }
            out.errors.push(format!("free: {e}"));
        }
    }
    if let Err(e) = g.grow_by(4096) {
        if clean {
            return Err(format!("clean heap, grow_by(4096): {e}"));
        }
        out.errors.push(format!("grow: {e}"));
    }
    let after = g.check();
    if clean && !after.is_clean() {
        return Err(format!(
            "clean heap became corrupt after alloc/free/grow: {:?}",
            after.violations
        ));
    }
    let _ = g.stats();
    let _ = g.blocks();
    drop(g);
    drop(heap);

    // Reopen what the calls above left.
    match Heap::open_with(path, &options()) {
        Ok(h) => match h.lock() {
            Ok(g) => {
                let r = g.check();
                if clean && !r.is_clean() {
                    return Err(format!("clean heap reopened corrupt: {:?}", r.violations));
                }
            }
            Err(e) => {
                if clean {
                    return Err(format!("clean heap, lock after reopen: {e}"));
                }
                out.errors.push(format!("relock: {e}"));
            }
        },
        Err(e) => {
            if clean {
                return Err(format!("clean heap, reopen: {e}"));
            }
            out.errors.push(format!("reopen: {e}"));
        }
    }
    Ok(out)
}

/// Reserves a large `PROT_NONE` range before the heap is mapped, so the mappings made after
/// it land just below it (the kernel places mappings top-down) and a read that overruns a
/// mapping faults instead of silently reading a neighbouring one. Kept for the process's
/// life: children exit right after.
pub fn guard_reservation() {
    // SAFETY: an anonymous PROT_NONE mapping at an address of the kernel's choosing touches
    // no existing memory; it is never unmapped (the process exits soon after).
    unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            1 << 30,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
    }
}
