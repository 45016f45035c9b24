//! Capacity limits: `MIN_CAPACITY` (the header, one minimum block and the sentinel), the
//! page rounding of every size asked for, `MAX_CAPACITY` (64 TiB), and the generation
//! counter, which wraps.

use super::{heap_file, peek, poke, quick};
use crate::error::Error;
use crate::format::{
    page_size, validate_capacity, FormatError, ALIGN, HEADER_SIZE, MAX_CAPACITY, MIN_CAPACITY,
    STATE_OFFSET,
};
use crate::heap::Heap;

fn page() -> u64 {
    u64::from(page_size())
}

/// Whether `create` refused `size` as a bad size (`Err` holds the reason it gave).
fn create_size(size: u64) -> Result<u64, Result<&'static str, Error>> {
    let dir = tempfile::tempdir().unwrap();
    match Heap::create(dir.path().join("c.heap"), size) {
        Ok(h) => Ok(h.lock().unwrap().capacity()),
        Err(Error::BadSize { size: s, why }) => {
            assert_eq!(s, size);
            Err(Ok(why))
        }
        Err(e) => Err(Err(e)),
    }
}

#[test]
fn create_sizes_at_the_capacity_limits() {
    // Every size is rounded up to the page: one byte past the header makes a page of arena.
    assert!(HEADER_SIZE < MIN_CAPACITY && HEADER_SIZE.is_multiple_of(page()));
    for size in [0, 1, HEADER_SIZE - 1, HEADER_SIZE] {
        let why = create_size(size).unwrap_err().unwrap();
        assert!(why.contains("smaller than"), "{size}: {why}");
    }
    for size in [
        HEADER_SIZE + 1,
        MIN_CAPACITY - 1,
        MIN_CAPACITY,
        HEADER_SIZE + page(),
    ] {
        assert_eq!(create_size(size).unwrap(), HEADER_SIZE + page(), "{size}");
    }
    assert_eq!(
        create_size(HEADER_SIZE + page() + 1).unwrap(),
        HEADER_SIZE + 2 * page()
    );
    // The messages and docs/limits.md say 64 TiB: the constant must be that (the largest
    // block of such a heap still has a TLSF class, limits_tests::alloc).
    assert_eq!(
        MAX_CAPACITY,
        64 << 40,
        "MAX_CAPACITY is not the documented 64 TiB"
    );
    // Past the largest capacity: refused by its size. At it: accepted by the size check,
    // then refused by the file system (no disk has 64 TiB to reserve).
    for size in [MAX_CAPACITY + 1, MAX_CAPACITY + page(), u64::MAX] {
        let why = create_size(size).unwrap_err().unwrap();
        assert!(why.contains("64 TiB"), "{size}: {why}");
    }
    match create_size(MAX_CAPACITY) {
        Err(Err(Error::NoSpace { size, .. })) => assert_eq!(size, MAX_CAPACITY),
        Ok(cap) => assert_eq!(cap, MAX_CAPACITY),
        r => panic!("MAX_CAPACITY: {r:?}"),
    }
}

#[test]
fn validate_capacity_at_its_limits() {
    let file = MAX_CAPACITY;
    // The smallest arena holds one minimum block (32 bytes) and the 8-byte sentinel: 16424,
    // written out so that the constant's own arithmetic is checked too.
    assert_eq!(validate_capacity(16384 + 32 + 8, file), Ok(()));
    assert!(
        validate_capacity(16384 + 32, file).is_err(),
        "no room for the sentinel"
    );
    for ok in [
        MIN_CAPACITY,
        MIN_CAPACITY + ALIGN,
        MAX_CAPACITY - ALIGN,
        MAX_CAPACITY,
    ] {
        assert_eq!(validate_capacity(ok, file), Ok(()), "{ok}");
    }
    for bad in [
        0,
        MIN_CAPACITY - ALIGN,
        MIN_CAPACITY + 1,
        MAX_CAPACITY + ALIGN,
        u64::MAX - 7,
    ] {
        assert_eq!(
            validate_capacity(bad, u64::MAX),
            Err(FormatError::BadCapacity {
                capacity: bad,
                file_len: u64::MAX
            }),
            "{bad}"
        );
    }
    // The file's length bounds it too: at the length, not past it.
    assert!(validate_capacity(1 << 20, 1 << 20).is_ok());
    assert!(validate_capacity((1 << 20) + ALIGN, 1 << 20).is_err());
}

#[test]
fn grow_at_the_capacity_limit() {
    let (_d, path) = heap_file(64 << 10);
    let heap = Heap::open(&path).unwrap();
    let mut g = heap.lock().unwrap();
    let cap = g.capacity();
    for past in [MAX_CAPACITY + 1, u64::MAX] {
        match g.grow(past) {
            Err(Error::BadSize { why, .. }) => assert!(why.contains("64 TiB"), "{why}"),
            r => panic!("grow({past}): {r:?}"),
        }
    }
    match g.grow(MAX_CAPACITY) {
        Err(Error::NoSpace { size, .. }) => assert_eq!(size, MAX_CAPACITY),
        Ok(()) => assert_eq!(g.capacity(), MAX_CAPACITY),
        Err(e) => panic!("grow(MAX_CAPACITY): {e}"),
    }
    if g.capacity() == cap {
        assert!(g.check().is_clean(), "a refused growth changed nothing");
        g.grow(cap + 1).unwrap();
        assert_eq!(g.capacity(), cap + page(), "a growth is page-rounded up");
    }
}

/// `State::generation` is compared for equality only: at `u64::MAX` a growth wraps it to
/// 0, and another handle still notices and remaps.
#[test]
fn the_generation_wraps_and_other_handles_still_remap() {
    let _watchdog = crate::watchdog!(20);
    let (_d, path) = heap_file(64 << 10);
    let at = STATE_OFFSET as u64 + 8;
    poke(&path, at, &(u64::MAX - 1).to_le_bytes());
    let grower = Heap::open_with(&path, &quick()).unwrap();
    let reader = Heap::open_with(&path, &quick()).unwrap();
    for want in [u64::MAX, 0, 1] {
        let (cap, off) = {
            let mut g = grower.lock().unwrap();
            g.grow_by(64 << 10).unwrap();
            assert_eq!(g.stats().generation, want);
            let off = g.alloc_bytes(60 << 10, 8).unwrap();
            g.bytes_mut(off, 60 << 10).unwrap().fill(want as u8 ^ 0x5a);
            (g.capacity(), off)
        };
        // A handle attached before the growth, and one attached after it (whose first
        // generation seen may be the wrapped 0).
        let late = Heap::open(&path).unwrap();
        for h in [&reader, &late] {
            let g = h.lock().unwrap();
            assert_eq!(g.capacity(), cap, "growth to generation {want} seen");
            let b = g.bytes(off, 60 << 10).unwrap();
            assert!(
                b.iter().all(|&x| x == want as u8 ^ 0x5a),
                "generation {want}"
            );
            assert!(g.check().is_clean());
        }
    }
    drop((grower, reader));
    assert_eq!(u64::from_le_bytes(peek(&path, at)), 1);
}

/// Whether `open` refuses a file whose state holds `capacity` and `generation` (each ≤ the
/// file's length) as a bad capacity.
fn capacity_refused(capacity: u64, generation: u64) -> bool {
    let (_d, path) = heap_file(64 << 10);
    poke(&path, STATE_OFFSET as u64, &capacity.to_le_bytes());
    poke(&path, STATE_OFFSET as u64 + 8, &generation.to_le_bytes());
    match Heap::open_with(&path, &quick()) {
        Err(Error::Format {
            source: FormatError::BadCapacity { capacity: c, .. },
            ..
        }) => c == capacity,
        Err(e) => panic!("capacity {capacity}, generation {generation}: {e}"),
        Ok(_) => false,
    }
}

/// A capacity below `MIN_CAPACITY`, or not a multiple of `ALIGN`, is refused at open
/// whatever the generation, also the 0 a new handle starts from (found by the fuzz target:
/// a zeroed state opened, and a growth then underflowed on the sentinel's offset).
#[test]
fn a_bad_capacity_is_refused_at_open_whatever_the_generation() {
    for generation in [0, 1, 7, u64::MAX] {
        for capacity in [0, 8, MIN_CAPACITY - ALIGN, MIN_CAPACITY + 4] {
            assert!(
                capacity_refused(capacity, generation),
                "capacity {capacity} at generation {generation} opened"
            );
        }
    }
}

#[test]
fn mutant_trust_capacity_at_open_is_caught_by_open() {
    use crate::mutant::{with, Mutant};
    assert!(capacity_refused(0, 0));
    assert!(
        !with(Mutant::TrustCapacityAtOpen, || capacity_refused(0, 0)),
        "a zero capacity at generation 0 refused anyway"
    );
}
