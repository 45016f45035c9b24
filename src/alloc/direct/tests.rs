//! The direct logged allocation against the planned one it stands in for (a conformance
//! test, as the ShardStore paper's against its reference): on random arenas, for random
//! requests, the direct path either declines with nothing written, or returns the planned
//! path's payload with the planned path's bytes after every prefix of its stores (so the
//! same stores in the same order), the same store count and the same crash-point marks.

use crate::alloc::testkit::{conforms, Buf, Rng};
use crate::alloc::{st, Arena};
use crate::mutant::{with, Mutant};

/// The log entry's head word and the length word the cases record (values, not meaning:
/// the paths must store them where and when the other does).
const HEAD: u64 = 0x2_0000_0002;
const LOG_LEN: u64 = 0x40;

/// One request on an arena holding `image`: `Ok(true)` if the direct path took it and
/// matched the planned one, `Ok(false)` if it declined and wrote nothing.
fn compare(
    buf: &Buf,
    image: &[u8],
    size: u64,
    align: u64,
    entry: u64,
    sound: bool,
) -> Result<bool, String> {
    let direct = |a: &mut Arena<'_>| a.alloc_logged_direct(size, align, entry, HEAD, LOG_LEN);
    let planned = |a: &mut Arena<'_>| {
        a.alloc_with(size, align, |e, p| {
            e.put(entry, HEAD)?;
            e.put(entry + 8, p)?;
            e.set_st(st!(log.len), LOG_LEN)
        })
        .ok()
    };
    let what = format!("size {size} align {align}");
    let took = conforms(buf, image, &what, &direct, &planned)?;
    // On a sound arena a word-aligned request that the plan serves is the direct path's
    // to take (the plan is left the other alignments and the anomalies).
    if sound && !took && align.is_power_of_two() && align <= 8 {
        buf.set_bytes(image);
        if planned(&mut buf.arena()).is_some() {
            return Err(format!("{what}: declined, and the plan serves it"));
        }
    }
    Ok(took)
}

/// Random arenas of random histories: blocks of a few sizes (so that lists hold several
/// blocks of a class), about half of them freed (some merge, most do not), so that free
/// blocks of many classes are listed, some alone and some not; each arena is asked for
/// random sizes. A quarter of the arenas then have about half of their lists' heads
/// corrupted (its back-link, its next link, or the head itself pointed at a used block or
/// into a block), where the direct path must decline or agree with the plan.
fn run_cases(cases: u32) -> Result<(u32, u32, u32), String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut taken, mut declined, mut bitmap) = (0, 0, 0);
    for case in 0..cases {
        let buf = Buf::new(64 << 10);
        let mut live = Vec::new();
        {
            let mut a = buf.arena();
            let sizes = [8, 24, 100, 300, 1000, 3000];
            let kinds = 1 + rng.below(3);
            for _ in 0..rng.below(60) {
                let size = sizes[((rng.below(kinds) * 7) % 6) as usize] + rng.below(16);
                match a.alloc(size, 8) {
                    Ok(p) => live.push(p),
                    Err(_) => break,
                }
            }
            let mut kept = Vec::new();
            for p in live {
                if rng.below(2) == 0 {
                    a.free(p).unwrap();
                } else {
                    kept.push(p);
                }
            }
            live = kept;
        }
        // The entry lies in a live block (as the log's does), or one is made for it.
        let entry = match live.first() {
            Some(&p) => p,
            None => buf.arena().alloc(16, 8).unwrap(),
        };
        let sound = case % 4 != 3;
        if !sound {
            let mut a = buf.arena();
            let lists: Vec<usize> = (0..a.state().heads.len())
                .filter(|&i| a.state().heads[i] != 0)
                .collect();
            // Each list's head alone, half of them: so that a request is served by a sound
            // list whose split's tail goes to a corrupt one.
            for idx in lists {
                if rng.below(2) == 0 {
                    continue;
                }
                let h = a.state().heads[idx];
                let used = entry - crate::format::BLOCK_HEADER;
                match rng.below(4) {
                    0 => a
                        .store(h + 16, [used, h, 8][rng.below(3) as usize])
                        .unwrap(),
                    1 => a
                        .store(h + 8, [used, h + 8, 8][rng.below(3) as usize])
                        .unwrap(),
                    2 => a
                        .store_state(crate::alloc::lists::head_at(idx), used)
                        .unwrap(),
                    _ => a
                        .store_state(crate::alloc::lists::head_at(idx), h + 8)
                        .unwrap(),
                }
            }
        }
        let image = buf.bytes();
        for _ in 0..4 {
            let size = [1, 8, 24, 40, 100, 200, 500, 2000][rng.below(8) as usize] + rng.below(40);
            // Mostly word-aligned (the direct path's case), sometimes not a power of two
            // or more than a word (the plan's: refused, or aligned with a gap).
            let align = [8, 8, 8, 8, 1, 4, 0, 3, 16, 64][rng.below(10) as usize];
            buf.set_bytes(&image);
            let before = buf.bitmaps();
            if compare(&buf, &image, size, align, entry, sound)? {
                taken += 1;
                // (The buffer holds the planned path's bytes before its last store, the
                // intent's clear: its bitmap stores are made.)
                if buf.bitmaps() != before {
                    bitmap += 1;
                }
            } else {
                declined += 1;
            }
        }
    }
    Ok((taken, declined, bitmap))
}

#[test]
fn the_direct_allocation_makes_the_planned_stores_in_the_planned_order() {
    let _watchdog = crate::watchdog!(120);
    // MAPHEAP_CONFORMANCE_CASES arenas (300 by default; more in deep runs).
    let cases = std::env::var("MAPHEAP_CONFORMANCE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let (taken, declined, bitmap) = run_cases(cases).unwrap();
    eprintln!("taken {taken}, declined {declined}, with a bitmap change {bitmap}");
    // Both sides of the decision are met: the common case (some of it emptying or
    // filling a list), and the ones left to the plan.
    assert!(
        taken >= 100 && declined >= 100 && bitmap >= 20,
        "taken {taken}, declined {declined}, with a bitmap change {bitmap}"
    );
}

#[test]
fn mutant_direct_commit_first_is_caught_by_the_conformance_test() {
    let _watchdog = crate::watchdog!(120);
    let r = with(Mutant::DirectCommitFirst, || run_cases(10));
    // (Its extra store shows first: the count differs before any prefix is compared.)
    let e = r.expect_err("the direct path committed its split first, unseen");
    assert!(e.contains("stores"), "{e}");
}

/// A log entry that the plan refuses to write (past the capacity, or its second word past
/// it) is declined by the direct path with nothing written: every word it stores to is
/// checked against the capacity, not only against the arena's start and alignment.
#[test]
fn the_direct_allocation_declines_an_entry_past_the_capacity() {
    let buf = Buf::with_capacity(128 << 10, 64 << 10);
    // One used block (the entry's place when it is sound), then one free block to the end.
    let first = buf.arena().alloc(100, 8).unwrap();
    let image = buf.bytes();
    let cap = 64 << 10;
    // The same requests with an entry inside the arena are taken (so the declines below
    // are the entry's doing).
    for size in [8, 24, 100] {
        assert_eq!(
            compare(&buf, &image, size, 8, first, true),
            Ok(true),
            "size {size}"
        );
    }
    for entry in [cap + 64, cap - 8] {
        for size in [8, 24, 100] {
            assert_eq!(
                compare(&buf, &image, size, 8, entry, false),
                Ok(false),
                "entry {entry:#x}"
            );
        }
    }
}

/// A whole-block take whose successor link points 16 bytes before the next block's header
/// (a corrupt list: the successor's back-link and that header are one word). The plan reads
/// the header after the unlink has stored 0 to the back-link, so it sees 0 and refuses; the
/// direct path must decline, not read the file's word. (The word is made to decode as a
/// used header there, with the block's own offset in it, so that the symmetry check
/// passes: found by review, 2026-12-08.)
#[test]
fn the_direct_allocation_reads_the_next_header_as_the_plan_does() {
    use crate::alloc::lists::{head_at, list_index, sl_word};
    use crate::alloc::tlsf::mapping_insert;
    use crate::format::block::{decode, encode, FREE};
    let buf = Buf::new(2 << 20);
    let (b, nb) = (0x14_c5a8u64, 0x14_c5c8u64);
    assert!(
        decode(nb, b).is_some(),
        "the block's offset decodes as a header at the next block"
    );
    {
        let mut a = buf.arena();
        let (fl, sl) = mapping_insert(32);
        let idx = list_index(fl, sl);
        a.store(b, encode(b, 32, FREE)).unwrap();
        a.store(b + 8, b + 16).unwrap();
        a.store(b + 16, 0).unwrap();
        a.store(nb, b).unwrap();
        a.store_state(head_at(idx), b).unwrap();
        let (at, shift) = sl_word(fl);
        let word = a.header_word(at).unwrap();
        a.store_state(at, word | 1 << (shift + sl as u32)).unwrap();
        let fl_map = a.state().fl_bitmap;
        a.store_state(st!(fl_bitmap), fl_map | 1 << fl).unwrap();
    }
    let image = buf.bytes();
    let entry = 0x1000 * 16;
    assert_eq!(compare(&buf, &image, 24, 8, entry, false), Ok(false));
}

/// An arena mapped shorter than its capacity (a guard never hands one out, F3, but the
/// allocator must not rely on it for memory safety): a split whose tail's footer lies past
/// the mapping is declined with nothing written, as the plan refuses it.
#[test]
fn the_direct_allocation_declines_a_block_that_runs_past_the_mapping() {
    let buf = Buf::new(128 << 10);
    let image = buf.bytes();
    // SAFETY: the buffer holds 128 KiB; an arena over its first 64 KiB reads and writes
    // less of it.
    let mut short = unsafe { Arena::new(buf.ptr, 64 << 10, 4096) };
    let entry = crate::format::HEADER_SIZE + 64;
    assert_eq!(short.alloc_logged_direct(24, 8, entry, HEAD, LOG_LEN), None);
    assert!(buf.bytes() == image, "declined after writing");
    assert!(short.alloc(24, 8).is_err(), "the plan takes it");
}

/// A split whose tail goes to a list whose head is not a free block without a predecessor
/// (a corrupt file: its back-link set, or its header made used): the plan refuses to link
/// before it (`Editor::link`), so the direct path must decline. A 48-byte request is
/// served by an 80-byte block (the 48-byte list is empty), whose 32-byte tail goes before
/// the 32-byte block Z at its list's head.
#[test]
fn the_direct_allocation_declines_a_tail_list_whose_head_is_not_a_free_first_block() {
    use crate::format::block::encode;
    use crate::format::BLOCK_HEADER;
    for corrupt in ["back-link", "used header"] {
        let buf = Buf::new(64 << 10);
        let (z, s1) = {
            let mut a = buf.arena();
            let z = a.alloc(16, 8).unwrap();
            let s1 = a.alloc(100, 8).unwrap();
            let y = a.alloc(64, 8).unwrap();
            a.alloc(100, 8).unwrap();
            a.free(z).unwrap();
            a.free(y).unwrap();
            (z - BLOCK_HEADER, s1 - BLOCK_HEADER)
        };
        let image = buf.bytes();
        // Sound, the request is taken, its tail linked before z.
        assert_eq!(compare(&buf, &image, 32, 8, s1 + 16, true), Ok(true));
        buf.set_bytes(&image);
        {
            let mut a = buf.arena();
            match corrupt {
                "back-link" => a.store(z + 16, s1).unwrap(),
                _ => a.store(z, encode(z, 32, 0)).unwrap(),
            }
        }
        let image = buf.bytes();
        assert_eq!(
            compare(&buf, &image, 32, 8, s1 + 16, false),
            Ok(false),
            "{corrupt}"
        );
        buf.set_bytes(&image);
        assert!(
            buf.arena().alloc(32, 8).is_err(),
            "the plan refuses: {corrupt}"
        );
    }
}
