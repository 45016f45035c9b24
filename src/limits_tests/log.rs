//! The undo log's limits: its capacity (`txn::MIN_LOG` at least, rounded up to 8; by
//! default an eighth of the arena clamped to `MIN_LOG..=DEFAULT_MAX_LOG`; at most what the
//! arena's free block holds) and `LOG_EXTENSIONS` (8) extension segments per transaction.

use crate::alloc::tlsf::{class_min, mapping_insert};
use crate::error::Error;
use crate::format::{page_size, BLOCK_HEADER, HEADER_SIZE, LOG_EXTENSIONS};
use crate::heap::{CreateOptions, Heap};
use crate::txn::{default_log_capacity, TxnError, DEFAULT_MAX_LOG, ENTRY_HEADER, MIN_LOG};

/// The log capacity of a heap of `size` bytes created with `log_capacity`, or the reason
/// `create` refused it.
fn log_of(size: u64, log_capacity: Option<u64>) -> Result<u64, &'static str> {
    let dir = tempfile::tempdir().unwrap();
    let opts = CreateOptions {
        log_capacity,
        ..CreateOptions::new(size)
    };
    match Heap::create_with(dir.path().join("l.heap"), &opts) {
        Ok(h) => Ok(h.lock().unwrap().stats().log_capacity),
        Err(Error::BadSize { why, .. }) => Err(why),
        Err(e) => panic!("{log_capacity:?}: {e}"),
    }
}

#[test]
fn log_capacity_at_its_limits() {
    let small = HEADER_SIZE + u64::from(page_size());
    assert_eq!(log_of(small, Some(MIN_LOG)), Ok(MIN_LOG));
    assert_eq!(
        log_of(small, Some(MIN_LOG - 7)),
        Ok(MIN_LOG),
        "rounded up to 8"
    );
    assert_eq!(log_of(small, Some(MIN_LOG + 1)), Ok(MIN_LOG + 8));
    for below in [MIN_LOG - 8, 0] {
        let why = log_of(small, Some(below)).unwrap_err();
        assert!(why.contains("smaller than 256"), "{below}: {why}");
    }
    // The largest log is the payload of the largest block a search is certain to find in
    // the arena's one free block (the arena less the sentinel): its class's least size.
    let (fl, sl) = mapping_insert(small - HEADER_SIZE - BLOCK_HEADER);
    let most = class_min(fl, sl) - BLOCK_HEADER;
    assert_eq!(log_of(small, Some(most)), Ok(most));
    for past in [most + 1, u64::MAX] {
        let why = log_of(small, Some(past)).unwrap_err();
        assert!(why.contains("undo log"), "{past}: {why}");
    }
    assert_eq!(
        log_of(small, None),
        Ok((small - HEADER_SIZE) / 8),
        "an eighth of the arena"
    );
}

#[test]
fn the_default_log_capacity_is_an_eighth_of_the_arena_clamped() {
    let at = |arena: u64| default_log_capacity(HEADER_SIZE + arena);
    assert_eq!(default_log_capacity(0), MIN_LOG);
    assert_eq!(at(8 * MIN_LOG - 64), MIN_LOG);
    assert_eq!(at(8 * MIN_LOG), MIN_LOG);
    assert_eq!(at(8 * MIN_LOG + 64), MIN_LOG + 8);
    assert_eq!(at(8 * MIN_LOG + 63), MIN_LOG, "a multiple of 8");
    assert_eq!(at(8 * DEFAULT_MAX_LOG - 64), DEFAULT_MAX_LOG - 8);
    assert_eq!(at(8 * DEFAULT_MAX_LOG), DEFAULT_MAX_LOG);
    assert_eq!(at(8 * DEFAULT_MAX_LOG + 64), DEFAULT_MAX_LOG);
    assert_eq!(default_log_capacity(u64::MAX), DEFAULT_MAX_LOG);
    // And `create` uses it.
    let size = HEADER_SIZE + 8 * DEFAULT_MAX_LOG + (1 << 20);
    assert_eq!(log_of(size, None), Ok(DEFAULT_MAX_LOG));
}

/// One transaction on a 256-byte log: its writes chain extension segments until the
/// eighth is full; the next write is refused with `LogFull` and nothing written, and the
/// transaction still aborts cleanly.
#[test]
fn a_transaction_chains_at_most_8_log_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let opts = CreateOptions {
        log_capacity: Some(MIN_LOG),
        ..CreateOptions::new(1 << 20)
    };
    let heap = Heap::create_with(dir.path().join("x.heap"), &opts).unwrap();
    let len = 256 << 10;
    let big = {
        let mut g = heap.lock().unwrap();
        let big = g.alloc_bytes(len, 8).unwrap();
        g.bytes_mut(big, len).unwrap().fill(1);
        big
    };
    let mut g = heap.lock().unwrap();
    let mut most = 0;
    let mut written = 0;
    let err = loop {
        let n = written + 8;
        assert!(n <= len, "the log never filled");
        match g.bytes_mut(big, n) {
            Ok(b) => b[written as usize..].fill(2),
            Err(e) => break e,
        }
        written = n;
        let ext = g.own_blocks().len() - 1;
        assert!(ext >= most, "extensions are only added");
        most = ext;
    };
    assert_eq!(most, LOG_EXTENSIONS, "the transaction used every extension");
    match err {
        Error::Txn(TxnError::LogFull { needed, free, cap }) => {
            assert_eq!((needed, free), (ENTRY_HEADER + 8, 0));
            assert!(cap > MIN_LOG * (1 << LOG_EXTENSIONS), "{cap}");
        }
        e => panic!("the ninth extension: {e}"),
    }
    assert_eq!(g.own_blocks().len(), 1 + LOG_EXTENSIONS, "no ninth segment");
    let undo = g.abort().unwrap();
    assert_eq!(undo.bytes_restored, written);
    let g = heap.lock().unwrap();
    assert_eq!(g.own_blocks().len(), 1, "the extensions were freed");
    assert!(g.bytes(big, len).unwrap().iter().all(|&b| b == 1));
    assert!(g.check().is_clean());
}

/// The file's side of the smallest log: a descriptor whose capacity is below `MIN_LOG`
/// (8-aligned, inside its block) is one no create made, and `check` names it; `MIN_LOG`
/// itself is a log's capacity like any other.
#[test]
fn a_log_capacity_below_the_smallest_in_the_file_is_refused() {
    use super::{heap_file, peek, poke, quick};
    use crate::alloc::st;
    use crate::check::Rule;
    use crate::txn::LogFault;
    let (_dir, path) = heap_file(1 << 20);
    let created = u64::from_le_bytes(peek(&path, st!(log.cap)));
    assert!(created > MIN_LOG);
    for (cap, rules) in [
        (MIN_LOG, vec![]),
        (MIN_LOG - 8, vec![Rule::Log(LogFault::BadCapacity)]),
        (ENTRY_HEADER, vec![Rule::Log(LogFault::BadCapacity)]),
        (created, vec![]),
    ] {
        poke(&path, st!(log.cap), &cap.to_le_bytes());
        let heap = Heap::open_with(&path, &quick()).unwrap();
        assert_eq!(
            heap.lock().unwrap().check().rules(),
            rules,
            "log.cap = {cap}"
        );
    }
}

/// A transaction trusts the log's descriptor it checked before only while the file says
/// the same: a capacity changed in the file since (here halved, still a sound log) is
/// checked again and honoured, so an image larger than the new capacity goes to an
/// extension, not past the new end of the log.
#[test]
fn a_log_capacity_changed_in_the_file_is_honoured_by_the_next_transaction() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.heap");
    let opts = CreateOptions {
        log_capacity: Some(1024),
        ..CreateOptions::new(256 << 10)
    };
    let heap = Heap::create_with(&path, &opts).unwrap();
    let data = heap.lock().unwrap().alloc_bytes(600, 8).unwrap();
    {
        // A logged write: the transaction checks the log's descriptor and keeps it.
        let mut g = heap.lock().unwrap();
        g.bytes_mut(data, 8).unwrap()[0] = 1;
        assert_eq!(g.own_blocks().len(), 1);
    }
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&512u64.to_le_bytes(), crate::alloc::st!(log.cap))
        .unwrap();
    let mut g = heap.lock().unwrap();
    assert_eq!(g.log_usage(), (0, 512));
    g.bytes_mut(data, 600).unwrap()[0] = 2;
    assert_eq!(
        g.own_blocks().len(),
        2,
        "an image of 616 bytes in a log of 512 needs an extension"
    );
    drop(g);
    assert!(heap.lock().unwrap().check().is_clean());
}
