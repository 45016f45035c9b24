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

/// Asserts that the arena of the file at `path` holds `before`'s bytes (a refused recovery
/// wrote nothing there).
fn assert_arena_as(path: &Path, before: &[u8]) {
    let after = std::fs::read(path).unwrap();
    let arena = HEADER_SIZE as usize;
    assert!(
        before[arena..] == after[arena..],
        "the refused recovery wrote the arena"
    );
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

/// A heap whose log holds 256 bytes (so that a test can fill it by hand).
fn heap_with_a_small_log(path: &Path) -> Heap {
    let opts = crate::heap::CreateOptions {
        log_capacity: Some(256),
        ..crate::heap::CreateOptions::new(96 << 10)
    };
    Heap::create_with(path, &opts).unwrap()
}

/// Frees the block whose payload is `p`, through a handle of its own.
fn free_in_file(path: &Path, p: u64) {
    let heap = Heap::open(path).unwrap();
    heap.lock()
        .unwrap()
        .free(crate::offset::Offset::<u8>::from_raw(p))
        .unwrap();
}

/// Writes an uncommitted log of one before-image: 8 bytes of 0x5a for `target`.
fn log_one_word_image(path: &Path, log: u64, target: u64) {
    poke(path, log, word0(EntryKind::Image, 8));
    poke(path, log + 8, target);
    poke(path, log + 16, 0x5a5a_5a5a_5a5a_5a5a);
    poke(path, st!(log.len), 24);
}

/// Asserts that opening the file refuses its log with `fault` at `pos`, and leaves the
/// arena as it was (D1).
fn assert_open_refuses(path: &Path, pos: u64, fault: LogFault, what: &str) {
    let before = std::fs::read(path).unwrap();
    match Heap::open(path) {
        Err(Error::Txn(TxnError::BadLog { pos: p, fault: f })) if (p, f) == (pos, fault) => {
            assert_arena_as(path, &before)
        }
        other => panic!(
            "{what}: {:?}, not {fault:?} at {pos}",
            other.map(|_| "opened")
        ),
    }
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
                assert_arena_as(&path, &before);
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

/// An uncommitted log whose before-image lies inside a block that will not be allocated
/// after the repair is refused as `ImageOutsideBlocks`, with the arena as it was: a block
/// that is free, and the block of an allocation left in flight (its intent record names
/// it, and the repair frees it). Undoing either image would write over a free block.
#[test]
fn recovery_refuses_a_before_image_in_a_block_that_is_not_kept() {
    use crate::format::{BLOCK_HEADER, INTENT_ALLOC};
    let _watchdog = crate::watchdog!(30);
    for in_flight in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.heap");
        let (p, log) = heap_with_a_block(&path);
        if in_flight {
            poke(&path, st!(intent.block), p - BLOCK_HEADER);
            poke(&path, st!(intent.op), INTENT_ALLOC);
        } else {
            free_in_file(&path, p);
        }
        log_one_word_image(&path, log, p + 8);
        assert_open_refuses(
            &path,
            0,
            LogFault::ImageOutsideBlocks,
            &format!("an image into a block not kept (in flight: {in_flight})"),
        );
    }
}

fn peek(path: &Path, at: u64) -> u64 {
    let f = std::fs::File::open(path).unwrap();
    let mut w = [0u8; 8];
    f.read_exact_at(&mut w, at).unwrap();
    u64::from_le_bytes(w)
}

/// A guard whose commit fails after its commit store (its deferred free meets a header
/// corrupted since the free was checked) sets NEEDS_REPAIR before it unlocks, and keeps
/// the rest of the flags word; once the header is mended, the next lock recovers: the
/// committed free is finished and the heap is clean.
#[test]
fn a_commit_that_fails_half_way_sets_needs_repair() {
    use crate::format::FLAG_NEEDS_REPAIR;
    let _watchdog = crate::watchdog!(30);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    let (p, _log) = heap_with_a_block(&path);
    // The block after p's (the second one heap_with_a_block made): its header.
    let next = p + 64;
    let heap = Heap::open(&path).unwrap();
    let good = peek(&path, next);
    {
        let mut g = heap.lock().unwrap();
        g.free(crate::offset::Offset::<u8>::from_raw(p)).unwrap();
        // SAFETY: test-only: an aligned header word inside the mapping, written under the
        // lock with no reference into the heap alive (what a stray write would do).
        unsafe { ((g.base_address() + next as usize) as *mut u64).write(good ^ (1 << 60)) };
        // Dropped: the commit store is made, then the free finds the header wrong.
    }
    let flags = peek(&path, st!(flags));
    assert_eq!(
        flags & FLAG_NEEDS_REPAIR,
        FLAG_NEEDS_REPAIR,
        "a failed commit left no repair request (flags {flags:#x})"
    );
    assert_eq!(flags & !FLAG_NEEDS_REPAIR, 0, "other flag bits were set");
    poke(&path, next, good);
    let g = heap.lock().unwrap();
    let r = g.recovered().expect("the next lock recovers");
    assert!(r.undone.as_ref().is_some_and(|u| u.committed), "{r:?}");
    assert!(g.check().is_clean());
    assert_eq!(
        g.stats().used_blocks,
        2,
        "the free was finished: the log and one block"
    );
}

/// A recoverer accepts a dead extension only as the last one listed: a log whose first
/// extension is a free block and whose second is a live one is refused as `BadExtension`,
/// with the file as it was; the same log without the second opens and rolls back.
#[test]
fn recovery_refuses_an_extension_listed_after_a_dead_one() {
    let _watchdog = crate::watchdog!(30);
    for second in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.heap");
        let (p, log) = heap_with_a_block(&path);
        let live = p + 72;
        let dead = {
            let heap = Heap::open(&path).unwrap();
            let mut g = heap.lock().unwrap();
            let q = g.alloc_bytes(64, 8).unwrap();
            g.free(q).unwrap();
            q.raw()
        };
        // One before-image of p's first word, then the extensions.
        log_one_word_image(&path, log, p);
        poke(&path, st!(log.ext), dead);
        poke(&path, st!(log.ext) + 8, if second { live } else { 0 });
        let before = std::fs::read(&path).unwrap();
        match Heap::open(&path) {
            Err(Error::Txn(TxnError::BadLog { pos: 0, fault })) if second => {
                assert_eq!(fault, LogFault::BadExtension);
                assert_arena_as(&path, &before);
            }
            Ok(h) if !second => assert!(h.lock().unwrap().check().is_clean()),
            other => panic!(
                "a dead extension {}: {:?}",
                if second { "then a live one" } else { "alone" },
                other.map(|_| "opened")
            ),
        }
    }
}

/// A transaction without frees or extensions commits with one store, the one that clears
/// its log (T2), and that store keeps what it wrote. (Marking the log committed first, the
/// way a commit with frees goes, would end the same with two.)
#[test]
fn a_commit_without_frees_is_one_store() {
    let _watchdog = crate::watchdog!(30);
    let dir = tempfile::tempdir().unwrap();
    let heap = Heap::create(dir.path().join("h.heap"), 96 << 10).unwrap();
    let cell = heap.lock().unwrap().alloc(0u64).unwrap();
    let mut g = heap.lock().unwrap();
    *g.get_mut(cell).unwrap() = 7;
    assert_ne!(g.log_usage().0, 0, "the write was not logged");
    crate::fault::count_stores();
    g.commit().unwrap();
    assert_eq!(crate::fault::stores(), 1, "stores made by the commit");
    let g = heap.lock().unwrap();
    assert_eq!((g.read(cell).unwrap(), g.log_usage().0), (7, 0));
}

/// Each log fault has words of its own, and the error of a refused log says them (they are
/// what an operator reads first; `mapheap check` prints the same).
#[test]
fn each_log_fault_has_words_of_its_own_and_its_error_says_them() {
    let words: std::collections::HashSet<&str> = LogFault::ALL.iter().map(|f| f.what()).collect();
    assert_eq!(
        words.len(),
        LogFault::ALL.len(),
        "two faults share their words"
    );
    for &fault in LogFault::ALL {
        let msg = TxnError::BadLog { pos: 24, fault }.to_string();
        assert!(
            msg.contains("byte 24") && msg.ends_with(fault.what()) && fault.what().len() > 20,
            "{fault:?}: {msg}"
        );
    }
}

/// A committed free whose target's "stale header" would be the last word of a free block
/// (its footer, which the repair rewrites) is refused as `BadTarget`, the arena as it was:
/// a stale header is one the repair's stores do not touch.
#[test]
fn recovery_refuses_a_committed_free_whose_stale_header_is_a_footer() {
    use crate::format::block::{encode, FREE};
    use crate::format::LOG_COMMITTED;
    let _watchdog = crate::watchdog!(30);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    let (p, log) = heap_with_a_block(&path);
    free_in_file(&path, p);
    // p's block is free now, 72 bytes from p - 8: its footer is the word at p + 56. Made
    // to read as a free header there, it would pass the free's own test of its target.
    let footer = p + 56;
    poke(&path, footer, encode(footer, 32, FREE));
    poke(&path, log, word0(EntryKind::Free, 0));
    poke(&path, log + 8, footer + 8);
    poke(&path, st!(log.len), 16 | LOG_COMMITTED);
    assert_open_refuses(
        &path,
        0,
        LogFault::BadTarget,
        "a committed free of a footer",
    );
}

/// An uncommitted log is checked whatever `log.done` says: `done` means something only
/// after the commit, so a `done` of "all finished" on an uncommitted log (no transaction
/// writes one) is refused as `BadDone` at the log's end, the arena as it was, and lets
/// nothing of the log through unchecked.
#[test]
fn recovery_checks_an_uncommitted_log_whatever_done_says() {
    use crate::format::LOG_DONE_ALL;
    let _watchdog = crate::watchdog!(30);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    let (p, log) = heap_with_a_block(&path);
    free_in_file(&path, p);
    log_one_word_image(&path, log, p + 8);
    poke(&path, st!(log.done), LOG_DONE_ALL);
    assert_open_refuses(
        &path,
        24,
        LogFault::BadDone,
        "an uncommitted log with done = all",
    );
}

/// An entry that fills a segment's last 16 bytes exactly (an allocation's record, which
/// the writer puts wherever 16 bytes are left) is read, not skipped as too small: the
/// rollback of a dead owner's transaction frees the block it records, and puts its image
/// back.
#[test]
fn an_entry_in_a_segments_last_16_bytes_is_recovered() {
    let _watchdog = crate::watchdog!(30);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    let (old, fresh, log, cap, used) = {
        let heap = heap_with_a_small_log(&path);
        let mut g = heap.lock().unwrap();
        let old = g.alloc_bytes(224, 8).unwrap().raw();
        let fresh = g.alloc_bytes(40, 8).unwrap().raw();
        drop(g);
        let g = heap.lock().unwrap();
        let s = g.stats();
        (old, fresh, s.log_block, s.log_capacity, s.used_blocks)
    };
    assert_eq!(cap, 256);
    // [Image of old's 224 bytes: 240 bytes][Alloc of fresh: the last 16], uncommitted.
    poke(&path, log, word0(EntryKind::Image, 224));
    poke(&path, log + 8, old);
    for k in 0..28 {
        poke(&path, log + 16 + 8 * k, 0x1111 * (k + 1));
    }
    poke(&path, log + 240, word0(EntryKind::Alloc, 0));
    poke(&path, log + 248, fresh);
    poke(&path, st!(log.len), 256);
    let heap = Heap::open(&path).unwrap();
    let g = heap.lock().unwrap();
    assert_eq!(
        g.stats().used_blocks,
        used - 1,
        "the recorded block was not freed"
    );
    assert_eq!(peek(&path, old + 8), 0x2222, "the image was not put back");
    assert!(g.check().is_clean());
}

/// A pad entry is refused as `BadKind` unless it names no target and fills its segment's
/// rest exactly: each condition broken alone, the arena as it was.
#[test]
fn recovery_refuses_a_pad_with_a_target_or_of_the_wrong_size() {
    let _watchdog = crate::watchdog!(30);
    for (target, len) in [(8u64, 256 - 16), (0, 256 - 32)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.heap");
        let log = heap_with_a_small_log(&path)
            .lock()
            .unwrap()
            .stats()
            .log_block;
        poke(&path, log, word0(EntryKind::Pad, len));
        poke(&path, log + 8, target);
        poke(&path, st!(log.len), 16 + len);
        assert_open_refuses(
            &path,
            0,
            LogFault::BadKind,
            &format!("a pad with target {target} and {len} bytes"),
        );
    }
}
