//! The allocator alone, over an aligned buffer in this process: the paths a heap file
//! reaches only when it is corrupt, and the edges of each check, one condition at a time.
//! (Whole-heap behaviour is tested through the guard in `heap::tests` and `alloc_model`.)

use super::testkit::Buf;
use super::*;
use crate::format::{FL_COUNT, HEADER_SIZE, MIN_BLOCK};

#[test]
fn checked_list_refuses_each_bad_field_alone() {
    let buf = Buf::new(64 << 10);
    let arena = buf.arena();
    let mut plan = Plan::new();
    let a = Editor::new(&arena, &mut plan);
    let b = HEADER_SIZE;
    assert!(a.checked_list(b, MIN_BLOCK, 0, 1).is_ok());
    assert!(
        a.checked_list(b, MIN_BLOCK, FL_COUNT, 0).is_err(),
        "class beyond the table"
    );
    assert!(
        a.checked_list(b, MIN_BLOCK - 8, 0, 0).is_err(),
        "smaller than a block"
    );
    let room = a.sentinel() - b;
    assert!(
        a.checked_list(b, room, 0, 0).is_ok(),
        "exactly up to the sentinel"
    );
    assert!(
        a.checked_list(b, room + 8, 0, 0).is_err(),
        "past the sentinel"
    );
    assert!(
        a.checked_list(u64::MAX - 8, MIN_BLOCK, 0, 0).is_err(),
        "overflow"
    );
}

#[test]
fn extend_refuses_each_bad_capacity_alone_and_takes_a_good_one() {
    let buf = Buf::with_capacity(128 << 10, 64 << 10);
    let mut a = buf.arena();
    let old = 64 << 10;
    let before = buf.bytes();
    for (bad, why) in [
        (old, "not larger"),
        (old - 4096, "smaller"),
        ((128 << 10) + 4096, "beyond the mapping"),
        (old + 4096 + 4, "not 8-aligned"),
        (old + MIN_BLOCK - 8, "less than a block more"),
    ] {
        // The one refusal that names the capacity, before the plan reads the arena (a
        // capacity let through would be refused later, by another rule, for another word).
        match a.extend(bad) {
            Err(AllocError::Corrupt { offset, what }) => {
                assert_eq!(
                    (offset, what),
                    (bad, "growth to an invalid capacity"),
                    "{why}"
                );
            }
            r => panic!("{why}: growth to {bad:#x}: {r:?}"),
        }
        assert!(buf.bytes() == before, "{why}: refused, yet written");
    }
    // A dry run may plan up to the capacity it checks, so only the largest heap bounds it.
    let past = crate::format::MAX_CAPACITY + 8;
    match a.check_growth(past) {
        Err(AllocError::Corrupt { offset, what }) => {
            assert_eq!((offset, what), (past, "growth to an invalid capacity"));
        }
        r => panic!("a dry growth past the largest heap: {r:?}"),
    }
    a.extend(128 << 10).unwrap();
    assert_eq!(a.state().capacity, 128 << 10);
    assert_eq!(
        a.header(a.sentinel()).unwrap().size,
        0,
        "no sentinel at the new end"
    );
    let mut free = Vec::new();
    a.walk(|b| free.push(b.header.is_free())).unwrap();
    assert_eq!(
        free,
        [true],
        "the new space did not join the free last block"
    );
}

/// A bulk copy refuses a range that is misaligned, ragged, outside the arena and the root
/// table, past the capacity, or that overflows, each alone, for its destination and its
/// source; and takes ranges inside the arena or the root table.
#[test]
fn copy_words_refuses_each_bad_range_alone() {
    let buf = Buf::new(64 << 10);
    let mut a = buf.arena();
    let cap = a.state().capacity;
    let good = HEADER_SIZE + 64;
    let roots = st!(roots);
    assert!(a.copy_words(good, good + 64, 32).is_ok());
    assert!(a.copy_words(roots, good, 64).is_ok(), "into the root table");
    for (bad, n, why) in [
        (good + 4, 32, "misaligned"),
        (good, 12, "ragged length"),
        (8, 32, "in the header, outside the root table"),
        (roots - 8, 64, "straddling the root table's start"),
        (cap - 16, 32, "past the capacity"),
        (u64::MAX - 7, 16, "overflowing"),
    ] {
        assert!(a.copy_words(bad, good, n).is_err(), "destination {why}");
        assert!(a.copy_words(good, bad, n).is_err(), "source {why}");
    }
}

/// `word` and `store` take a state word or an arena word below both the capacity and the
/// mapping, and refuse every other offset, each condition alone (a capacity smaller than
/// the mapping, so that the two bounds differ).
#[test]
fn word_and_store_refuse_each_bad_offset_alone() {
    let buf = Buf::with_capacity(64 << 10, 32 << 10);
    let mut a = buf.arena();
    let cap = a.state().capacity;
    assert!(cap < a.map_len());
    for ok in [HEADER_SIZE, cap - 8] {
        assert!(a.word(ok).is_ok(), "{ok:#x}");
    }
    for (bad, why) in [
        (cap, "at the capacity, inside the mapping"),
        (a.map_len() - 8, "inside the mapping, past the capacity"),
        (a.map_len(), "at the mapping's end"),
        (HEADER_SIZE + 4, "misaligned"),
        (HEADER_SIZE - 8, "in the header"),
        (u64::MAX - 7, "overflowing"),
    ] {
        assert!(a.word(bad).is_err(), "word {why}");
        assert!(a.store(bad, 0).is_err(), "store {why}");
    }
    assert!(a.set_flags(0).is_ok(), "a state word");
}

/// An allocation refuses a free-list head that is not a free block big enough for the
/// request (a corrupt list), for each of the two faults alone.
#[test]
fn alloc_refuses_a_listed_block_that_is_used_or_too_small_each_alone() {
    use crate::format::block::{encode, FREE};
    // The one free block of a fresh arena, rewritten with a valid tag but used.
    let buf = Buf::new(64 << 10);
    let mut a = buf.arena();
    let b = HEADER_SIZE;
    let size = a.header(b).unwrap().size;
    a.store(b, encode(b, size, 0)).unwrap();
    assert!(
        a.alloc(24, 8).is_err(),
        "a used block on a free list was handed out"
    );
    // The same block free, but its size shrunk below what its list promises.
    let buf = Buf::new(64 << 10);
    let mut a = buf.arena();
    a.store(b, encode(b, MIN_BLOCK, FREE)).unwrap();
    assert!(
        a.alloc(1000, 8).is_err(),
        "a block smaller than its list's class was handed out"
    );
}

#[test]
fn free_refuses_a_used_header_whose_size_runs_past_the_sentinel() {
    use crate::format::block::encode;
    let buf = Buf::new(64 << 10);
    let mut a = buf.arena();
    // A block far enough from the arena's start that its offset exceeds the size it is
    // given below (an overrun must be seen as one, not as a wrapped subtraction).
    let mut last = 0;
    for _ in 0..8 {
        last = a.alloc(4000, 8).unwrap();
    }
    let o = last - BLOCK_HEADER;
    let size = a.sentinel() - o + 32;
    assert!(size < o && size.is_multiple_of(8));
    a.store(o, encode(o, size, 0)).unwrap();
    match a.free(last) {
        Err(AllocError::InvalidOffset { offset, reason }) => {
            assert_eq!((offset, reason), (last, "not the start of a block"));
        }
        r => panic!("a used block running past the sentinel was freed: {r:?}"),
    }
}

/// Two used blocks x and y (and one after them), then x freed; y's free reads x's block
/// (its free predecessor).
fn two_blocks_and_x_freed() -> (Buf, u64, u64) {
    let buf = Buf::new(64 << 10);
    let mut a = buf.arena();
    let x = a.alloc(100, 8).unwrap();
    let y = a.alloc(100, 8).unwrap();
    a.alloc(100, 8).unwrap();
    a.free(x).unwrap();
    (buf, x, y)
}

/// A free kept from its check (`kept.rs`) is made from its plan only while the words that
/// plan read are unchanged: at once it is, and it leaves exactly the arena a free planned
/// again leaves; after an allocation that took the free neighbour it read, it is refused
/// with nothing written, and the free planned again is sound.
#[test]
fn a_kept_free_is_made_only_while_what_it_read_is_unchanged() {
    let (kept_buf, _, y) = two_blocks_and_x_freed();
    let (plain_buf, ..) = two_blocks_and_x_freed();
    let mut kept = KeptFree::default();
    let mut a = kept_buf.arena();
    a.check_free_keeping(y, &mut kept).unwrap();
    assert_eq!(kept.payload(), y);
    assert!(a.free_kept(y, &mut kept), "an unchanged plan was not used");
    plain_buf.arena().free(y).unwrap();
    assert!(
        kept_buf.bytes() == plain_buf.bytes(),
        "the kept free differs"
    );
    assert!(!a.free_kept(y, &mut kept), "a kept plan was used twice");

    let (buf, x, y) = two_blocks_and_x_freed();
    let mut a = buf.arena();
    a.check_free_keeping(y, &mut kept).unwrap();
    assert_eq!(a.alloc(100, 8).unwrap(), x);
    let before = buf.bytes();
    assert!(!a.free_kept(y, &mut kept), "a stale plan was used");
    assert!(buf.bytes() == before, "a refused kept free wrote");
    a.free(y).unwrap();
    assert_eq!(damage(&a), vec![]);
}

/// `KeptPlanUnchecked`: the stale plan of the test above made as it is; `check` reports
/// the damage.
#[test]
fn mutant_kept_plan_unchecked_is_caught_by_check() {
    use crate::mutant::{with, Mutant};
    let (buf, x, y) = two_blocks_and_x_freed();
    let mut a = buf.arena();
    let mut kept = KeptFree::default();
    a.check_free_keeping(y, &mut kept).unwrap();
    assert_eq!(a.alloc(100, 8).unwrap(), x);
    assert!(with(Mutant::KeptPlanUnchecked, || a.free_kept(y, &mut kept)));
    assert!(
        !damage(&a).is_empty(),
        "KeptPlanUnchecked not caught by check"
    );
}

/// What `check` reports of the allocator (a bare arena has no undo log, which it reports
/// too).
fn damage(a: &Arena<'_>) -> Vec<crate::check::Violation> {
    let mut v = crate::check::check(a).violations;
    v.retain(|v| !matches!(v, crate::check::Violation::Log { .. }));
    v
}

/// The four counters are stored once per operation, together, before the store that clears
/// the intent record (a death before it leaves them to the repair, which rebuilds them):
/// an allocation that splits, and a free that merges with its free predecessor.
#[test]
fn an_operation_stores_each_counter_once_before_clearing_its_intent() {
    let (buf, _, y) = two_blocks_and_x_freed();
    let mut a = buf.arena();
    let counters = st!(used_bytes)..st!(used_bytes) + 32;
    for name in ["alloc", "free"] {
        let mut plan = Plan::new();
        {
            let mut e = Editor::new(&a, &mut plan);
            match name {
                "alloc" => e.plan_alloc(200, 8, |_, _| Ok(())).map(drop),
                _ => e.plan_free(y),
            }
            .unwrap();
        }
        let stores = plan.planned();
        let clear = stores
            .iter()
            .rposition(|&(at, v)| at == st!(intent.op) && v == 0)
            .expect("the intent is cleared");
        assert_eq!(
            clear,
            stores.len() - 1,
            "{name}: the clear is the last store"
        );
        for c in counters.clone().step_by(8) {
            let at: Vec<usize> = (0..stores.len()).filter(|&i| stores[i].0 == c).collect();
            assert!(
                at.len() <= 1,
                "{name}: counter {c:#x} stored {} times",
                at.len()
            );
        }
        a.apply(&plan);
    }
    assert_eq!(damage(&a), vec![]);
}

/// Exactly the four counter words of the state are counters, in state order; every other
/// state word (including the words right after them) is stored as it is planned.
#[test]
fn only_the_four_counters_are_counters() {
    use crate::format::{STATE_OFFSET, STATE_SIZE};
    let counters = [
        st!(used_bytes),
        st!(used_blocks),
        st!(free_bytes),
        st!(free_blocks),
    ];
    for at in (STATE_OFFSET as u64..(STATE_OFFSET + STATE_SIZE) as u64).step_by(8) {
        let want = counters.iter().position(|&c| c == at);
        assert_eq!(Editor::counter(at), want, "state word {at:#x}");
    }
}

/// An aligned request takes the first aligned payload whose gap in front is none or can be
/// a block: a payload already aligned is taken where it is (no gap split off), a gap of
/// exactly the smallest block is split off as it is (not one alignment step later), and a
/// gap too small for a block is passed over.
#[test]
fn an_aligned_request_splits_off_the_smallest_gap_that_can_be_a_block() {
    // (the filler's payload, which puts the free tail where it does; the gap in front of
    // the tail's first 64-aligned payload that can be taken)
    for (filler, gap) in [(48, 0), (80, MIN_BLOCK)] {
        let buf = Buf::new(64 << 10);
        let mut a = buf.arena();
        assert_eq!(a.alloc(filler, 8).unwrap(), HEADER_SIZE + BLOCK_HEADER);
        let tail = HEADER_SIZE + BLOCK_HEADER + filler;
        assert!((tail + gap + BLOCK_HEADER).is_multiple_of(64));
        let p = a.alloc(24, 64).unwrap();
        assert_eq!(
            p,
            tail + gap + BLOCK_HEADER,
            "filler {filler}: the gap split off is not {gap} bytes"
        );
        // Not aligned to 128: the gap (at least a minimum block) is split off, and freed.
        let q = a.alloc(24, 128).unwrap();
        let g = q - BLOCK_HEADER - (p + 24);
        assert!(q.is_multiple_of(128) && g >= MIN_BLOCK, "gap {g}");
        assert_eq!(damage(&a), vec![]);
    }
}

/// The repair of a growth that reached its capacity store but not its commit refuses a
/// span that no block could fill (below the smallest block), and finishes one of exactly
/// the smallest block.
#[test]
fn an_interrupted_growth_below_the_smallest_block_is_refused() {
    let old = 32 << 10;
    for span in [8, 16, 24, MIN_BLOCK] {
        let buf = Buf::with_capacity(64 << 10, old);
        let mut a = buf.arena();
        let s = old - BLOCK_HEADER;
        a.store_state(st!(intent.block), s).unwrap();
        a.store_state(st!(intent.op), crate::format::INTENT_GROW)
            .unwrap();
        a.store_state(st!(capacity), old + span).unwrap();
        let plan = a.plan_repair();
        if span < MIN_BLOCK {
            assert_eq!(
                plan.map(drop),
                Err(AllocError::Corrupt {
                    offset: s,
                    what: "interrupted growth of an impossible size"
                }),
                "a span of {span} bytes"
            );
        } else {
            // The growth is finished: the chain ends with a block of the whole span.
            let plan = plan.expect("a span of the smallest block");
            let last = plan.blocks().last().copied().expect("a chain");
            assert_eq!((last.offset, last.header.size), (s, span));
        }
    }
}

/// Kept steps vouch for themselves only over the capacity and the mapping they were checked
/// over, and while every word they read is as it was: each condition alone.
#[test]
fn kept_steps_whose_arena_changed_vouch_for_nothing() {
    let (buf, _, y) = two_blocks_and_x_freed();
    let mut a = buf.arena();
    let mut steps = direct_free::FreeSteps::default();
    assert!(a.free_steps(y, &mut steps));
    assert!(steps.unchanged(&a), "nothing changed");
    let cap = a.state().capacity;
    a.store_state(st!(capacity), cap - 4096).unwrap();
    assert!(!steps.unchanged(&a), "another capacity");
    a.store_state(st!(capacity), cap).unwrap();
    // SAFETY: the buffer holds `map_len` bytes; a shorter arena over it reads less of it.
    let shorter = unsafe { Arena::new(buf.ptr, a.map_len() - 4096, 4096) };
    assert!(!steps.unchanged(&shorter), "another mapping length");
    // Each word read, changed alone (and put back).
    for k in 0..steps.reads_for_test().len() {
        let (at, v) = steps.reads_for_test()[k];
        a.cell_unchecked(at)
            .store(v ^ 8, std::sync::atomic::Ordering::Relaxed);
        assert!(!steps.unchanged(&a), "word {at:#x} changed");
        a.cell_unchecked(at)
            .store(v, std::sync::atomic::Ordering::Relaxed);
    }
    assert!(steps.unchanged(&a), "every word put back");
    // The heads the steps read are among those words: the head of x's list (x is unlinked
    // as y's free predecessor) and of the merged block's (where it is linked).
    let ysize = a.header(y - BLOCK_HEADER).unwrap().size;
    let xsize = a.word(y - BLOCK_HEADER - 8).unwrap();
    for size in [xsize, xsize + ysize] {
        let (fl, sl) = tlsf::mapping_insert(size);
        let idx = lists::list_index(fl, sl);
        let v = a.state().heads[idx];
        a.store_state(lists::head_at(idx), v ^ 8).unwrap();
        assert!(
            !steps.unchanged(&a),
            "the head of the list of {size}-byte blocks changed"
        );
        a.store_state(lists::head_at(idx), v).unwrap();
    }
}

/// Three free blocks of one class, separated by used ones: the list is x3 -> x2 -> x1
/// (each free goes to the head). Returns the arena's buffer, the blocks' header offsets
/// and their size.
fn one_list_of_three() -> (Buf, [u64; 3], u64) {
    let buf = Buf::new(64 << 10);
    let mut a = buf.arena();
    let mut xs = [0; 3];
    for x in &mut xs {
        *x = a.alloc(100, 8).unwrap() - BLOCK_HEADER;
        a.alloc(100, 8).unwrap();
    }
    for x in xs {
        a.free(x + BLOCK_HEADER).unwrap();
    }
    let size = a.header(xs[1]).unwrap().size;
    (buf, xs, size)
}

/// An unlink refuses a list whose links do not point back on either side alone, with
/// nothing written: the predecessor's `next`, or the successor's `prev`.
#[test]
fn unlink_refuses_a_broken_back_link_on_each_side_alone() {
    for side in ["prev's next", "next's prev"] {
        let (buf, [x1, x2, x3], size) = one_list_of_three();
        let mut a = buf.arena();
        assert_eq!(a.word(x2 + 16).unwrap(), x3, "x2's prev is x3");
        assert_eq!(a.word(x2 + 8).unwrap(), x1, "x2's next is x1");
        let at = if side == "prev's next" {
            x3 + 8
        } else {
            x1 + 16
        };
        a.store(at, x2 + 64).unwrap();
        let before = buf.bytes();
        let r = a.edit(|e| e.unlink(x2, size));
        assert_eq!(
            r,
            Err(AllocError::Corrupt {
                offset: x2,
                what: "free-list links not symmetric"
            }),
            "{side} broken alone"
        );
        assert!(buf.bytes() == before, "{side}: the refused unlink wrote");
    }
}

/// An allocation split off a large free block whose tail stays in the block's class plans
/// the list's head once and no bitmap store (the list was not empty and is not now); one
/// that empties a list and fills another plans each list's bit once, and the class bits.
#[test]
fn a_plan_stores_each_head_once_and_only_the_bits_that_change() {
    let buf = Buf::new(64 << 10);
    let a = buf.arena();
    let bitmaps = st!(fl_bitmap)..st!(heads);
    let heads = st!(heads)..st!(heads) + 8 * (FL_COUNT * crate::format::SL_COUNT) as u64;
    let planned = |a: &Arena<'_>, size: u64| {
        let mut plan = Plan::new();
        Editor::new(a, &mut plan)
            .plan_alloc(size, 8, |_, _| Ok(()))
            .map(drop)
            .unwrap();
        let stores = plan.planned().to_vec();
        (plan, stores)
    };
    let count = |stores: &[(u64, u64)], r: &std::ops::Range<u64>| {
        stores.iter().filter(|(at, _)| r.contains(at)).count()
    };
    // The one free block (about 48 KiB) loses 40 bytes: its tail stays in its list.
    let (plan, stores) = planned(&a, 32);
    assert_eq!(count(&stores, &heads), 1, "the head: {stores:x?}");
    assert_eq!(count(&stores, &bitmaps), 0, "no bit changes: {stores:x?}");
    let mut a = a;
    a.apply(&plan);
    assert_eq!(damage(&a), vec![]);
    // A second small block, then the first freed: alone in its list (and its class). An
    // exact fit takes it and empties the list: its bit goes, and its class's.
    a.alloc(32, 8).unwrap();
    let fl_before = a.state().fl_bitmap;
    a.free(HEADER_SIZE + BLOCK_HEADER).unwrap();
    assert_ne!(
        a.state().fl_bitmap,
        fl_before,
        "the small block's class was empty"
    );
    let (plan, stores) = planned(&a, 32);
    assert_eq!(count(&stores, &heads), 1, "the emptied head: {stores:x?}");
    assert_eq!(
        count(&stores, &bitmaps),
        2,
        "its list bit, its class bit: {stores:x?}"
    );
    a.apply(&plan);
    assert_eq!(damage(&a), vec![]);
    assert_eq!(
        a.state().fl_bitmap,
        fl_before,
        "only the large block's class is left"
    );
}

/// `store_state` stores only to an aligned word of the state: the words just before and
/// after it, an arena word and a misaligned offset are refused, with nothing written.
#[test]
fn store_state_refuses_every_word_outside_the_state() {
    use crate::format::{STATE_OFFSET, STATE_SIZE};
    let buf = Buf::new(64 << 10);
    let mut a = buf.arena();
    let (first, end) = (STATE_OFFSET as u64, (STATE_OFFSET + STATE_SIZE) as u64);
    for at in [first - 8, end, HEADER_SIZE, first + 4] {
        let before = buf.bytes();
        assert_eq!(
            a.store_state(at, 0x5a5a),
            Err(AllocError::Corrupt {
                offset: at,
                what: "not a state word"
            }),
            "{at:#x}"
        );
        assert!(buf.bytes() == before, "{at:#x} was written");
    }
    for at in [first, end - 8] {
        a.store_state(at, a.header_word(at).unwrap()).unwrap();
    }
}

/// The repair merges each run of adjacent free blocks into its first block and says how
/// many pairs it merged: a run of three free blocks is two merges, a lone one none.
#[test]
fn a_repair_counts_each_pair_of_free_blocks_it_merges() {
    use crate::format::block::{encode, FREE, PREV_FREE};
    let buf = Buf::new(64 << 10);
    let mut a = buf.arena();
    let blocks: Vec<u64> = (0..5).map(|_| a.alloc(56, 8).unwrap() - 8).collect();
    // blocks[0..3] marked free by hand (a death could leave such a run before the repair
    // of an interrupted free), blocks[3] used, blocks[4] used: one run of three.
    for (i, &o) in blocks[..3].iter().enumerate() {
        let flags = if i == 0 { FREE } else { FREE | PREV_FREE };
        a.store(o, encode(o, 64, flags)).unwrap();
    }
    let next = blocks[3];
    let h = a.header(next).unwrap();
    a.store(next, encode(next, h.size, h.flags | PREV_FREE))
        .unwrap();
    let plan = a.plan_repair().unwrap();
    let report = a.apply_repair(plan).unwrap();
    assert_eq!(report.merged, 2, "{report:?}");
    let h = a.header(blocks[0]).unwrap();
    assert_eq!((h.is_free(), h.size), (true, 3 * 64));
}

/// `header_word` reads the header's words only: aligned, below `HEADER_SIZE`; anything
/// else is `None`, each condition alone (its callers, `check`'s header rules, never pass
/// another).
#[test]
fn header_word_reads_only_aligned_words_of_the_header() {
    let buf = Buf::new(64 << 10);
    let a = buf.arena();
    assert!(a.header_word(0).is_some());
    assert!(a.header_word(HEADER_SIZE - 8).is_some(), "the last word");
    assert_eq!(a.header_word(HEADER_SIZE), None, "past the header");
    assert_eq!(a.header_word(4), None, "misaligned");
    assert_eq!(a.header_word(u64::MAX - 7), None, "wrapping");
}

/// A free whose block goes to a list whose head points 16 bytes before another block's
/// header (a corrupt file) is refused when it is checked, directly and planned, with
/// nothing written. Before, only the head's back-link's bounds were checked: in a
/// transaction that then freed that other block, the first free's link overwrote the
/// second's header at the commit, and the second failed after the commit store (found by
/// review, 2026-12-08).
#[test]
fn a_free_into_a_list_whose_head_points_into_another_block_is_refused() {
    let buf = Buf::new(64 << 10);
    let mut a = buf.arena();
    let p = a.alloc(100, 8).unwrap();
    a.alloc(100, 8).unwrap();
    let q = a.alloc(100, 8).unwrap();
    a.alloc(100, 8).unwrap();
    let size = a.header(p - BLOCK_HEADER).unwrap().size;
    let (fl, sl) = tlsf::mapping_insert(size);
    let head = q - BLOCK_HEADER - 16;
    a.store_state(lists::head_at(lists::list_index(fl, sl)), head)
        .unwrap();
    let before = buf.bytes();
    assert!(!a.free_direct_ok(p), "the direct check took it");
    assert!(a.check_free(p).is_err(), "the planned check took it");
    assert!(!a.free_direct(p), "the direct free took it");
    assert!(a.free(p).is_err(), "the planned free took it");
    assert!(buf.bytes() == before, "a refused free wrote");
}
