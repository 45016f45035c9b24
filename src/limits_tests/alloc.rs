//! The allocator's limits: the TLSF class edges (`SMALL_BLOCK` and every `(fl, sl)` class
//! boundary, up to the last class `FL_COUNT - 1`), the minimum block (`MIN_BLOCK`, also the
//! smallest allocation and the smallest split-off remainder), the largest alignment (the
//! page size) and the width of a block header's size field.

use super::{fill, heap_file};
use crate::alloc::tlsf::{class_min, mapping_insert, mapping_search};
use crate::alloc::AllocError;
use crate::error::Error;
use crate::format::block::{decode, encode, FREE};
use crate::format::{
    page_size, ALIGN, BLOCK_HEADER, FL_COUNT, FL_SHIFT, HEADER_SIZE, MAX_CAPACITY, MIN_BLOCK,
    SL_COUNT, SMALL_BLOCK,
};
use crate::heap::{block_for, Heap};

/// Every class in order, with its least size and its width (the next class's least size
/// minus its own).
fn classes() -> Vec<((usize, usize), u64, u64)> {
    let all: Vec<(usize, usize)> = (0..FL_COUNT)
        .flat_map(|f| (0..SL_COUNT).map(move |s| (f, s)))
        .collect();
    all.iter()
        .enumerate()
        .map(|(i, &c)| {
            let m = class_min(c.0, c.1);
            let next = match all.get(i + 1) {
                Some(&n) => class_min(n.0, n.1),
                None => 1 << (FL_COUNT as u32 + FL_SHIFT - 1),
            };
            (c, m, next - m)
        })
        .collect()
}

#[test]
fn every_tlsf_class_edge_maps_to_its_class() {
    let cs = classes();
    assert_eq!(cs.len(), FL_COUNT * SL_COUNT);
    // The class a search for `x` gives: the first whose least size is at least `x`.
    let first_at_least = |x: u64| cs.iter().find(|&&(_, m, _)| m >= x).map(|&(c, _, _)| c);
    for (i, &(c, m, width)) in cs.iter().enumerate() {
        assert!(width >= ALIGN && width.is_multiple_of(ALIGN), "{c:?}");
        assert_eq!(mapping_insert(m), c, "least size {m}");
        assert_eq!(mapping_insert(m + width - ALIGN), c, "last size of {c:?}");
        if i > 0 {
            assert_eq!(mapping_insert(m - ALIGN), cs[i - 1].0, "below {c:?}");
        }
        // A search must never give a class some block of which is smaller than the
        // request: one step above an edge it skips to the next class.
        for x in [m.saturating_sub(ALIGN), m, m + ALIGN, m + width - ALIGN] {
            match first_at_least(x) {
                Some(want) => assert_eq!(mapping_search(x), want, "search for {x}"),
                None => assert_eq!(mapping_search(x).0, FL_COUNT, "past the last class"),
            }
        }
    }
    // Below SMALL_BLOCK every class is one size wide; at it the first-level classes start.
    assert_eq!(mapping_insert(SMALL_BLOCK - ALIGN), (0, SL_COUNT - 1));
    assert_eq!(mapping_insert(SMALL_BLOCK), (1, 0));
    assert!(cs.iter().all(|&((f, _), _, w)| f > 1 || w == ALIGN));
    // Every block and every request a heap can hold has a class; the first size that has
    // none lies beyond MAX_CAPACITY plus the largest search slack (alignment + MIN_BLOCK).
    let first_without = 1u64 << (FL_COUNT as u32 + FL_SHIFT - 1);
    assert_eq!(mapping_insert(first_without).0, FL_COUNT);
    assert!(mapping_search(MAX_CAPACITY + 65536 + MIN_BLOCK).0 < FL_COUNT);
    assert!(block_for(MAX_CAPACITY - HEADER_SIZE, 65536).is_some());
    assert_eq!(block_for(first_without, 8), None);
    assert_eq!(block_for(u64::MAX, 8), None);
}

#[test]
fn the_smallest_allocation_is_a_32_byte_block() {
    let (_d, path) = heap_file(64 << 10);
    let heap = Heap::open(&path).unwrap();
    let mut g = heap.lock().unwrap();
    let small = MIN_BLOCK - BLOCK_HEADER;
    for (len, usable) in [
        (0, small),
        (1, small),
        (small, small),
        (small + 1, small + ALIGN),
        (small + ALIGN + 1, small + 2 * ALIGN),
    ] {
        let p = g.alloc_bytes(len, 1).unwrap();
        assert!(!p.is_null());
        assert_eq!(g.usable_size(p).unwrap(), usable, "{len} bytes");
        let b = g
            .blocks()
            .into_iter()
            .find(|b| b.offset == p.raw() - BLOCK_HEADER);
        assert_eq!(
            b.map(|b| b.size),
            Some(usable + BLOCK_HEADER),
            "{len} bytes"
        );
    }
    g.checkpoint().unwrap();
    assert!(g.check().is_clean());
}

/// An allocation from a free block splits the rest off only if the rest is a whole
/// minimum block (32 bytes); a smaller rest stays in the allocated block.
#[test]
fn a_split_leaves_a_free_block_only_of_32_bytes_or_more() {
    let (_d, path) = heap_file(64 << 10);
    let heap = Heap::open(&path).unwrap();
    // One free block of a class's least size (so a search for any request up to it finds
    // it), between used blocks.
    let whole = 4096;
    assert_eq!(
        class_min(mapping_insert(whole).0, mapping_insert(whole).1),
        whole
    );
    {
        let mut g = heap.lock().unwrap();
        let x = g.alloc_bytes(whole - BLOCK_HEADER, 8).unwrap();
        fill(&mut g);
        g.free(x).unwrap();
        g.checkpoint().unwrap();
        let s = g.stats();
        assert_eq!((s.free_blocks, s.largest_free), (1, whole));
    }
    for (rest, split) in [
        (MIN_BLOCK + ALIGN, true),
        (MIN_BLOCK, true),
        (MIN_BLOCK - ALIGN, false),
        (0, false),
    ] {
        let mut g = heap.lock().unwrap();
        let p = g.alloc_bytes(whole - rest - BLOCK_HEADER, 8).unwrap();
        let s = g.stats();
        if split {
            assert_eq!((s.free_blocks, s.free_bytes), (1, rest), "rest {rest}");
            assert_eq!(g.usable_size(p).unwrap(), whole - rest - BLOCK_HEADER);
        } else {
            assert_eq!((s.free_blocks, s.free_bytes), (0, 0), "rest {rest}");
            assert_eq!(g.usable_size(p).unwrap(), whole - BLOCK_HEADER);
        }
        assert!(g.check().is_clean(), "rest {rest}: {:?}", g.check());
        g.abort().unwrap();
    }
    let mut g = heap.lock().unwrap();
    assert!(matches!(
        g.alloc_bytes(whole - BLOCK_HEADER + 1, 8),
        Err(Error::Alloc(AllocError::OutOfSpace { .. }))
    ));
}

#[test]
fn alignment_up_to_the_page_size_is_kept_and_beyond_refused() {
    let (_d, path) = heap_file(1 << 20);
    let heap = Heap::open(&path).unwrap();
    let mut g = heap.lock().unwrap();
    let page = u64::from(page_size());
    let mut align = 1;
    while align <= page {
        for len in [0, 1, align] {
            let p = g.alloc_bytes(len, align).unwrap();
            assert!(p.raw().is_multiple_of(align), "{len} bytes at {align}");
        }
        align *= 2;
    }
    for bad in [2 * page, 0, 3, page + ALIGN, page - 1, u64::MAX] {
        match g.alloc_bytes(8, bad) {
            Err(Error::Alloc(AllocError::BadAlign { align, page: p })) => {
                assert_eq!((align, p), (bad, page))
            }
            r => panic!("alignment {bad}: {r:?}"),
        }
    }
    g.checkpoint().unwrap();
    assert!(g.check().is_clean());
}

/// A block header keeps a block's size in bits 3..48: the largest block it can describe
/// is 2^48 - 8 bytes, far above what a heap of `MAX_CAPACITY` can hold.
#[test]
fn a_block_headers_size_field_holds_sizes_below_2_pow_48() {
    const { assert!(MAX_CAPACITY < 1 << 48) };
    let off = HEADER_SIZE;
    for size in [MIN_BLOCK, MAX_CAPACITY - HEADER_SIZE, (1 << 48) - ALIGN] {
        let h = decode(off, encode(off, size, FREE)).unwrap();
        assert_eq!((h.size, h.is_free()), (size, true), "{size}");
    }
    // One step past the field: not encodable (a debug assertion), or, without debug
    // assertions, not read back as that size.
    let past = 1u64 << 48;
    match std::panic::catch_unwind(|| encode(off, past, 0)) {
        // Refused by the debug assertion.
        Err(_) => {}
        Ok(w) => assert_ne!(decode(off, w).map(|h| h.size), Some(past)),
    }
}
