//! The direct free against the planned one it stands in for (a conformance test): on random
//! arenas, sound and corrupted, for random payloads, the direct path either declines with
//! nothing written, or frees as the planned path does, with its bytes after every prefix of
//! its stores, its store count and its crash-point marks.

use crate::alloc::testkit::{conforms, Buf, Rng};
use crate::alloc::Arena;
use crate::format::block::{FREE, PREV_FREE};
use crate::format::BLOCK_HEADER;
use crate::mutant::{with, Mutant};

/// Which cases the direct path took (so that a test can see every branch met).
#[derive(Debug, Default)]
struct Met {
    alone: u32,
    next: u32,
    prev: u32,
    both: u32,
    bitmap: u32,
    declined: u32,
}

/// One free of `payload` on an arena holding `image`; `sound`: the arena is sound and
/// `payload` is an allocated block's, so the direct path must take it (the planned path is
/// then left the corrupt heaps and the bad arguments only).
fn compare(
    buf: &Buf,
    image: &[u8],
    payload: u64,
    sound: bool,
    met: &mut Met,
) -> Result<(), String> {
    let direct = |a: &mut Arena<'_>| a.free_direct(payload).then_some(());
    let planned = |a: &mut Arena<'_>| a.free(payload).ok();
    buf.set_bytes(image);
    let (ok, before) = {
        let a = buf.arena();
        let o = payload.wrapping_sub(BLOCK_HEADER);
        let next = a
            .header(o)
            .ok()
            .and_then(|h| a.header(o + h.size).ok().map(|n| (h, n)));
        (a.free_direct_ok(payload), next)
    };
    let maps = buf.bitmaps();
    let took = conforms(buf, image, &format!("free {payload:#x}"), &direct, &planned)?;
    if took != ok {
        return Err(format!(
            "free {payload:#x}: free_direct_ok says {ok}, free_direct {took}"
        ));
    }
    if !took && sound {
        return Err(format!("free {payload:#x}: declined on a sound heap"));
    }
    if !took {
        met.declined += 1;
        return Ok(());
    }
    let (h, n) = before.expect("a freed block has a header and a next one");
    match (h.flags & PREV_FREE != 0, n.flags & FREE != 0) {
        (false, false) => met.alone += 1,
        (false, true) => met.next += 1,
        (true, false) => met.prev += 1,
        (true, true) => met.both += 1,
    }
    if buf.bitmaps() != maps {
        met.bitmap += 1;
    }
    Ok(())
}

/// Random arenas of random histories (blocks of a few sizes, about half of them freed, so
/// that lists hold one block or several and neighbours are free or not). A quarter of the
/// arenas then have one word that the free of a live block reads (a free neighbour's
/// header, link or footer, or a link of its list neighbours) overwritten with a nearby
/// offset, a small value, or one no read may take (misaligned, in the file's header, past
/// the capacity, wrapping), so that lists point into blocks, back-links disagree, and a
/// free's own stores alias the words it reads. Each arena frees a few of its blocks, live
/// and not, and a few offsets that are no block.
fn run_cases(cases: u32) -> Result<Met, String> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut met = Met::default();
    for case in 0..cases {
        let buf = Buf::new(64 << 10);
        let (live, dead, target) = {
            let mut a = buf.arena();
            let sizes = [8, 24, 40, 100, 300, 1000, 3000];
            let kinds = 1 + rng.below(4);
            let mut all = Vec::new();
            for _ in 0..rng.below(80) {
                let size = sizes[((rng.below(kinds) * 5) % 7) as usize] + rng.below(16);
                match a.alloc(size, 8) {
                    Ok(p) => all.push(p),
                    Err(_) => break,
                }
            }
            let (mut live, mut dead) = (Vec::new(), Vec::new());
            for p in all {
                if rng.below(2) == 0 {
                    a.free(p).unwrap();
                    dead.push(p);
                } else {
                    live.push(p);
                }
            }
            let mut target = None;
            if case % 4 == 3 {
                // A word the free of a live block will read: a header, a link or a footer of
                // a free neighbour, or a link of that neighbour's own list neighbours.
                let (mut reads, mut owner) = (Vec::new(), Vec::new());
                for &p in &live {
                    let before = reads.len();
                    let o = p - BLOCK_HEADER;
                    let (Ok(h), Some(n)) = (a.header(o), a.header(o).ok().map(|h| o + h.size))
                    else {
                        continue;
                    };
                    let mut near = |b: u64| {
                        if let Ok(bh) = a.header(b) {
                            if bh.is_free() {
                                reads.extend([b, b + 8, b + 16, b + bh.size - 8]);
                                for l in [a.word(b + 8), a.word(b + 16)].into_iter().flatten() {
                                    if l != 0 {
                                        reads.extend([l + 8, l + 16]);
                                    }
                                }
                            }
                        }
                    };
                    near(n);
                    if h.flags & PREV_FREE != 0 {
                        if let Ok(psize) = a.word(o - 8) {
                            near(o - psize);
                        }
                    }
                    owner.extend(std::iter::repeat_n(p, reads.len() - before));
                }
                // Two corruptions the words above do not make: the head of the list a free
                // with no merge links into (a state word), made a word no store may take;
                // and the footer of a free predecessor, made the distance to a free block
                // further back (a valid free header, listed, that is not its neighbour).
                let (mut heads, mut footers) = (Vec::new(), Vec::new());
                let free: Vec<u64> = dead
                    .iter()
                    .map(|&p| p - BLOCK_HEADER)
                    .filter(|&b| a.header(b).is_ok_and(|h| h.is_free()))
                    .collect();
                for &p in &live {
                    let o = p - BLOCK_HEADER;
                    let h = a.header(o).unwrap();
                    let next_free = a.header(o + h.size).is_ok_and(|n| n.is_free());
                    if h.flags & PREV_FREE == 0 && !next_free {
                        let (fl, sl) = crate::alloc::tlsf::mapping_insert(h.size);
                        heads.push((p, crate::alloc::lists::list_index(fl, sl)));
                    }
                    if h.flags & PREV_FREE != 0 {
                        let psize = a.word(o - 8).unwrap();
                        if let Some(&q) = free.iter().find(|&&q| q < o - psize) {
                            footers.push((p, o - 8, o - q));
                        }
                    }
                }
                let kind = rng.below(4);
                if kind == 0 && !heads.is_empty() {
                    let (p, idx) = heads[rng.below(heads.len() as u64) as usize];
                    let v = unreadable(0)[rng.below(6) as usize];
                    a.store_state(crate::alloc::lists::head_at(idx), v).unwrap();
                    target = Some(p);
                } else if kind == 1 && !footers.is_empty() {
                    let (p, at, v) = footers[rng.below(footers.len() as u64) as usize];
                    a.store(at, v).unwrap();
                    target = Some(p);
                } else if !reads.is_empty() {
                    let k = rng.below(reads.len() as u64) as usize;
                    let at = reads[k];
                    target = Some(owner[k]);
                    let b = at & !31;
                    let near = [b, b + 8, b + 16, b + 24, b.wrapping_sub(16)];
                    let v = match rng.below(4) {
                        0 => near[rng.below(5) as usize],
                        1 => rng.below(64) * 8,
                        2 => unreadable(b)[rng.below(6) as usize],
                        _ => live.first().map_or(0, |&p| p - BLOCK_HEADER),
                    };
                    a.store(at, v).unwrap();
                }
            }
            (live, dead, target)
        };
        let image = buf.bytes();
        if let Some(p) = target {
            // The free that reads the word overwritten.
            compare(&buf, &image, p, false, &mut met)?;
        }
        for _ in 0..4 {
            let (payload, valid) = match rng.below(8) {
                0 if !dead.is_empty() => (dead[rng.below(dead.len() as u64) as usize], false),
                1 => (4096 + rng.below(8192), false),
                // Below a block header's size (no header before it), or just past the
                // file's header, aligned or not.
                2 if rng.below(2) == 0 => (
                    [0, 4, 8, 12, 16 + 16, 16 << 10][rng.below(6) as usize],
                    false,
                ),
                _ if !live.is_empty() => (live[rng.below(live.len() as u64) as usize], true),
                _ => (8, false),
            };
            compare(&buf, &image, payload, valid && case % 4 != 3, &mut met)?;
        }
    }
    Ok(met)
}

/// Words no read may take, for the arenas of these tests (64 KiB): one misaligned, 4 bytes
/// past `b`, one inside the file's header, at and past the capacity, and one that wraps
/// past the end of u64.
fn unreadable(b: u64) -> [u64; 6] {
    let cap = 64 << 10;
    [b + 4, 0x18, cap - 8, cap, cap + 64, u64::MAX - 7]
}

fn cases() -> u32 {
    std::env::var("MAPHEAP_CONFORMANCE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

#[test]
fn the_direct_free_makes_the_planned_stores_in_the_planned_order() {
    let _watchdog = crate::watchdog!(120);
    // MAPHEAP_CONFORMANCE_CASES arenas (300 by default; more in deep runs).
    let met = run_cases(cases()).unwrap();
    eprintln!("{met:?}");
    // Every branch is met: a free alone, merged with either neighbour or both, one that
    // empties or fills a list (its bitmaps change), and the cases left to the plan.
    assert!(
        met.alone >= 20
            && met.next >= 20
            && met.prev >= 20
            && met.both >= 20
            && met.bitmap >= 20
            && met.declined >= 20,
        "{met:?}"
    );
}

#[test]
fn mutant_direct_free_commit_first_is_caught_by_the_conformance_test() {
    let _watchdog = crate::watchdog!(120);
    let e = with(Mutant::DirectFreeCommitFirst, || run_cases(20))
        .expect_err("the direct free grew the block over a listed neighbour, unseen");
    assert!(e.contains("differ after store"), "{e}");
}

/// The list of a free block is refused for each bad field alone, as `checked_list` refuses
/// it: a size below the smallest block, a block past the sentinel, and a size past the last
/// class (only an arena whose sentinel lies past every class would get that far: the steps
/// are given one, so that the class check is the one that refuses).
#[test]
fn the_list_of_a_free_block_is_refused_for_each_bad_field_alone() {
    use super::FreeSteps;
    use crate::alloc::tlsf::mapping_insert;
    use crate::format::{FL_COUNT, HEADER_SIZE, MIN_BLOCK};
    let f = FreeSteps {
        capacity: 64 << 10,
        ..FreeSteps::default()
    };
    let b = HEADER_SIZE;
    assert!(Arena::list_of(&f, b, MIN_BLOCK).is_some());
    assert!(
        Arena::list_of(&f, b, MIN_BLOCK - 8).is_none(),
        "below the smallest block"
    );
    let end = (64 << 10) - 8;
    assert!(
        Arena::list_of(&f, b, end - b).is_some(),
        "up to the sentinel"
    );
    assert!(
        Arena::list_of(&f, b, end - b + 8).is_none(),
        "past the sentinel"
    );
    assert!(Arena::list_of(&f, u64::MAX - 8, 64).is_none(), "wrapping");
    // The first size of class FL_COUNT, and the last of the class below it.
    let first = (1u64..63)
        .map(|k| 1u64 << k)
        .find(|&s| mapping_insert(s).0 >= FL_COUNT)
        .unwrap();
    let wide = FreeSteps {
        capacity: u64::MAX,
        ..FreeSteps::default()
    };
    assert_eq!(mapping_insert(first).0, FL_COUNT);
    assert!(
        Arena::list_of(&wide, b, first).is_none(),
        "past the last class"
    );
    assert!(
        Arena::list_of(&wide, b, first - 8).is_some(),
        "the last class"
    );
}

/// The block next to the sentinel, on a sound heap, is the direct path's to free (its end
/// is the sentinel: the bound is inclusive, as `used_block`'s is).
#[test]
fn the_direct_free_takes_the_block_next_to_the_sentinel() {
    let _watchdog = crate::watchdog!(60);
    let buf = Buf::new(64 << 10);
    let last = {
        let mut a = buf.arena();
        // Full of 100-byte blocks, then the rest (a size the small classes hold exactly)
        // taken whole: the last block ends where the sentinel starts.
        // (Bounded: 64 KiB holds fewer than 600 such blocks, and an allocator that never
        // fails must fail this test, not hang it.)
        let mut p = 0;
        for _ in 0..1_000 {
            match a.alloc(100, 8) {
                Ok(q) => p = q,
                Err(_) => break,
            }
        }
        if let Some(&rest) = a.state().heads.iter().find(|&&h| h != 0) {
            let size = a.header(rest).unwrap().size;
            p = a.alloc(size - BLOCK_HEADER, 8).unwrap();
        }
        let o = p - BLOCK_HEADER;
        assert_eq!(
            o + a.header(o).unwrap().size,
            a.sentinel(),
            "the last block"
        );
        p
    };
    let image = buf.bytes();
    let mut met = Met::default();
    compare(&buf, &image, last, true, &mut met).unwrap();
    assert_eq!(met.declined, 0);
}

/// A used header whose size is below the smallest block, with a header that decodes right
/// after it (a corrupt chain), used or free (then listed alone at its list's head, so that
/// a merge with it would go through): the plan refuses the free ("not the start of a
/// block"), and so the direct path must decline, whatever it would find next.
#[test]
fn the_direct_free_declines_a_used_block_smaller_than_the_smallest() {
    use crate::alloc::lists::{head_at, list_index};
    use crate::alloc::tlsf::mapping_insert;
    use crate::format::block::{encode, FREE};
    for next_free in [false, true] {
        let buf = Buf::new(64 << 10);
        let p = {
            let mut a = buf.arena();
            let p = a.alloc(100, 8).unwrap();
            a.alloc(100, 8).unwrap();
            let o = p - BLOCK_HEADER;
            let size = a.header(o).unwrap().size;
            let (r, rs) = (o + 16, size - 16);
            a.store(o, encode(o, 16, 0)).unwrap();
            if next_free {
                a.store(r, encode(r, rs, FREE)).unwrap();
                a.store(r + 8, 0).unwrap();
                a.store(r + 16, 0).unwrap();
                a.store(r + rs - 8, rs).unwrap();
                let (fl, sl) = mapping_insert(rs);
                a.store_state(head_at(list_index(fl, sl)), r).unwrap();
            } else {
                a.store(r, encode(r, rs, 0)).unwrap();
            }
            p
        };
        let image = buf.bytes();
        assert!(buf.arena().free(p).is_err(), "the plan refuses it");
        let mut met = Met::default();
        compare(&buf, &image, p, false, &mut met).unwrap();
        assert_eq!(met.declined, 1, "next block free: {next_free}");
    }
}

/// The links of a free neighbour made words no read may take, each alone: misaligned, in
/// the file's header, at the capacity, and wrapping. The plan refuses each (its
/// bounds-checked load); the direct path must decline without reading the word (a
/// misaligned or out-of-mapping read trips `Arena::cell_unchecked`'s assertion in tests).
#[test]
fn the_direct_free_declines_a_neighbour_whose_link_no_read_may_take() {
    for link in [8, 16] {
        for k in 0..6 {
            let buf = Buf::new(64 << 10);
            let (p, bad) = {
                let mut a = buf.arena();
                let p = a.alloc(100, 8).unwrap();
                let n = a.alloc(100, 8).unwrap();
                a.alloc(100, 8).unwrap();
                a.free(n).unwrap();
                let nb = n - BLOCK_HEADER;
                // A neighbour's link points near itself (misaligned) or elsewhere.
                let bad = unreadable(nb)[k];
                a.store(nb + link, bad).unwrap();
                (p, bad)
            };
            let image = buf.bytes();
            assert!(
                buf.arena().free(p).is_err(),
                "the plan refuses link {link} = {bad:#x}"
            );
            let mut met = Met::default();
            compare(&buf, &image, p, false, &mut met).unwrap();
            assert_eq!(met.declined, 1, "link {link} = {bad:#x}");
        }
    }
}

/// A free predecessor's footer made the distance to a free block further back (listed, a
/// valid free header, whose size is not that distance): the plan refuses ("PREV_FREE set
/// but the footer names no free block"), so the direct path must decline, not merge over
/// the used block between.
#[test]
fn the_direct_free_declines_a_footer_that_names_another_free_block() {
    let buf = Buf::new(64 << 10);
    let p = {
        let mut a = buf.arena();
        let x = a.alloc(100, 8).unwrap();
        a.alloc(100, 8).unwrap();
        let c = a.alloc(100, 8).unwrap();
        let p = a.alloc(100, 8).unwrap();
        a.alloc(100, 8).unwrap();
        a.free(x).unwrap();
        a.free(c).unwrap();
        let o = p - BLOCK_HEADER;
        a.store(o - 8, o - (x - BLOCK_HEADER)).unwrap();
        p
    };
    let image = buf.bytes();
    assert!(buf.arena().free(p).is_err(), "the plan refuses it");
    let mut met = Met::default();
    compare(&buf, &image, p, false, &mut met).unwrap();
    assert_eq!(met.declined, 1);
}
