//! Every rule of `check` seen firing: one row per [`Rule`], each a function that breaks
//! exactly that rule on a valid heap; the test expects exactly that rule reported. The
//! rows are a `match` without a wildcard, so a new rule without a row does not compile,
//! and [`Rule::all`] is checked against the rows' own list.

use super::{ListFault, RootFault, Rule};
use crate::alloc::{st, Arena, ChainFault};
use crate::format::block::{encode, FREE, PREV_FREE};
use crate::format::{Root, LOG_COMMITTED};
use crate::heap::HeapGuard;
use crate::mutant::{with, Mutant};
use crate::offset::Offset;
use crate::txn::LogFault;
use crate::Heap;

/// The valid heap the rows break: `[log][a: root "r"][b free][c][d free][e: to the end]`,
/// with b and d of different size classes, and the last block used.
struct Valid {
    a: u64,
    b: u64,
    c: u64,
    d: u64,
    e: u64,
    log: u64,
}

fn valid(heap: &Heap) -> Valid {
    let mut g = heap.lock().unwrap();
    let a = g.alloc_bytes(100, 8).unwrap().raw() - 8;
    let b = g.alloc_bytes(100, 8).unwrap().raw() - 8;
    let c = g.alloc_bytes(100, 8).unwrap().raw() - 8;
    let d = g.alloc_bytes(300, 8).unwrap().raw() - 8;
    // Fill the rest, so that the last block is used: each time the largest request the
    // free tail's class is sure to hold, until nothing is left.
    loop {
        let t = g.stats().largest_free;
        if t < 32 {
            break;
        }
        let (fl, sl) = crate::alloc::tlsf::mapping_insert(t);
        g.alloc_bytes(crate::alloc::tlsf::class_min(fl, sl).max(32) - 8, 8)
            .unwrap();
    }
    let e = g.blocks().last().unwrap().offset;
    g.set_root("r", Offset::<u64>::from_raw(a + 8)).unwrap();
    g.free(Offset::<u8>::from_raw(b + 8)).unwrap();
    g.free(Offset::<u8>::from_raw(d + 8)).unwrap();
    g.checkpoint().unwrap();
    let report = g.check();
    assert!(report.is_clean(), "the valid heap is not: {report:?}");
    let log = g.stats().log_block;
    Valid { a, b, c, d, e, log }
}

/// An arena over the guard's mapping, to break things with the allocator's own tools.
fn arena<'g>(g: &'g HeapGuard<'_>) -> Arena<'g> {
    // SAFETY: test-only: the guard holds the lock and lives as long as the arena; the
    // capacity lies inside the mapping (the guard checked it); no reference into the heap
    // is alive while the arena writes.
    unsafe { Arena::new(g.base_address() as *mut u8, g.capacity(), 4096) }
}

fn poke(g: &HeapGuard<'_>, at: u64, v: u64) {
    assert!(at.is_multiple_of(8) && at + 8 <= g.capacity());
    // SAFETY: test-only: an aligned word inside the mapping, written under the lock, with
    // no reference into the heap alive.
    unsafe { ((g.base_address() + at as usize) as *mut u64).write(v) }
}

fn peek(g: &HeapGuard<'_>, at: u64) -> u64 {
    // SAFETY: as in `poke`, reading.
    unsafe { ((g.base_address() + at as usize) as *const u64).read() }
}

/// What `pick` takes from each violation `check` reports now, in report order.
fn reported<T>(g: &HeapGuard<'_>, pick: impl Fn(&super::Violation) -> Option<T>) -> Vec<T> {
    g.check().violations.iter().filter_map(pick).collect()
}

fn size_of_block(g: &HeapGuard<'_>, o: u64) -> u64 {
    arena(g).header(o).unwrap().size
}

fn root_at(i: u64) -> u64 {
    st!(roots) + 64 * i
}

fn read_root(g: &HeapGuard<'_>, i: u64) -> Root {
    let w: [u64; 8] = std::array::from_fn(|k| peek(g, root_at(i) + 8 * k as u64));
    bytemuck::cast(w)
}

fn write_root(g: &HeapGuard<'_>, i: u64, r: Root, fix_sum: bool) {
    let mut r = r;
    if fix_sum {
        r.checksum = r.checksum_of();
    }
    let w: [u64; 8] = bytemuck::cast(r);
    for (k, x) in w.iter().enumerate() {
        poke(g, root_at(i) + 8 * k as u64, *x);
    }
}

/// A log entry at the log's start and the length that takes it in.
fn log_entry(g: &HeapGuard<'_>, v: &Valid, w0: u64, target: u64, len: u64) {
    poke(g, v.log, w0);
    poke(g, v.log + 8, target);
    poke(g, st!(log.len), len);
}

/// Breaks exactly `rule` on the valid heap `v`.
fn break_rule(g: &mut HeapGuard<'_>, v: &Valid, rule: Rule) {
    let sentinel = g.capacity() - 8;
    match rule {
        Rule::Chain(ChainFault::TagMismatch) => poke(g, sentinel, 0x1234_5678),
        Rule::Chain(ChainFault::SizeOutOfRange) => poke(g, v.e, encode(v.e, 1 << 40, 0)),
        Rule::Chain(ChainFault::SentinelEarly) => poke(g, v.e, encode(v.e, 0, 0)),
        Rule::Chain(ChainFault::NoSentinel) => poke(g, sentinel, encode(sentinel, 64, 0)),
        Rule::Chain(ChainFault::SentinelFree) => poke(g, sentinel, encode(sentinel, 0, FREE)),
        Rule::Chain(ChainFault::OutsideArena) => {
            unreachable!("not a rule check can report: see Rule::all")
        }
        Rule::AdjacentFree => {
            // Free c without merging it: listed, footed, counted; only A4 is broken.
            with(Mutant::FreeWithoutCoalesce, || {
                arena(g).free(v.c + 8).unwrap();
            });
        }
        Rule::PrevFreeBit => {
            let s = size_of_block(g, v.c);
            poke(g, v.c, encode(v.c, s, 0));
        }
        Rule::SentinelPrevFree => poke(g, sentinel, encode(sentinel, 0, PREV_FREE)),
        Rule::Footer => {
            let s = size_of_block(g, v.b);
            poke(g, v.b + s - 8, s + 8);
        }
        Rule::NotListed => {
            let s = size_of_block(g, v.b);
            arena(g).edit(|e| e.unlink(v.b, s)).unwrap();
        }
        Rule::List(ListFault::NotFree) => {
            // The used block c heads the empty list (0, 1), its bits set as for a list.
            poke(g, st!(heads) + 8, v.c);
            let w = peek(g, st!(sl_bitmap));
            poke(g, st!(sl_bitmap), w | 2);
        }
        Rule::List(ListFault::WrongClass) => {
            let s = size_of_block(g, v.b);
            arena(g).edit(|e| e.unlink(v.b, s)).unwrap();
            poke(g, v.b + 8, 0);
            poke(g, v.b + 16, 0);
            poke(g, st!(heads) + 8, v.b);
            let w = peek(g, st!(sl_bitmap));
            poke(g, st!(sl_bitmap), w | 2);
            let f = peek(g, st!(fl_bitmap));
            poke(g, st!(fl_bitmap), f | 1);
        }
        Rule::List(ListFault::ListedTwice) => poke(g, v.b + 8, v.b),
        Rule::List(ListFault::PrevNotBack) => poke(g, v.d + 16, v.a),
        Rule::SlBit => {
            let w = peek(g, st!(sl_bitmap));
            poke(g, st!(sl_bitmap), w | 2);
        }
        Rule::FlBit => {
            let w = peek(g, st!(fl_bitmap));
            poke(g, st!(fl_bitmap), w | 1 << 30);
        }
        Rule::Counter => {
            let w = peek(g, st!(used_bytes));
            poke(g, st!(used_bytes), w + 8);
        }
        Rule::Root(RootFault::Checksum) => {
            let mut r = read_root(g, 0);
            r.type_hash ^= 1;
            write_root(g, 0, r, false);
        }
        Rule::Root(RootFault::UnusedNotZero) => poke(g, root_at(5) + 48, 1),
        Rule::Root(RootFault::Name) => {
            let mut r = read_root(g, 0);
            r.name[20] = b'x';
            write_root(g, 0, r, true);
        }
        Rule::Root(RootFault::Align) => {
            let mut r = read_root(g, 0);
            r.align = 3;
            write_root(g, 0, r, true);
        }
        Rule::Root(RootFault::Duplicate) => {
            let r = read_root(g, 0);
            write_root(g, 1, r, true);
        }
        Rule::Root(RootFault::Dangling) => {
            let mut r = read_root(g, 0);
            r.offset = v.c + 16;
            write_root(g, 0, r, true);
        }
        Rule::Root(RootFault::Stale) => {
            // A word inside the free block b that decodes as a used header at its offset.
            let x = v.b + 24;
            poke(g, x, encode(x, 32, 0));
            let mut r = read_root(g, 0);
            r.offset = x + 8;
            write_root(g, 0, r, true);
        }
        Rule::Root(RootFault::TooSmall) => {
            let mut r = read_root(g, 0);
            r.size = 10_000;
            write_root(g, 0, r, true);
        }
        Rule::PendingIntent => poke(g, st!(intent.op), 1),
        Rule::NeedsRepair => poke(g, st!(flags), crate::format::FLAG_NEEDS_REPAIR),
        Rule::UnknownFlags => poke(g, st!(flags), 4),
        Rule::NotZero => {
            // Byte 70, in the lock area after the word (the word itself is left alone).
            let w = peek(g, 64);
            poke(g, 64, w | 1 << 48);
        }
        Rule::Log(LogFault::NoBlock) => poke(g, st!(log.block), v.c + 16),
        Rule::Log(LogFault::BadCapacity) => poke(g, st!(log.cap), 7),
        Rule::Log(LogFault::BadLength) => {
            let cap = peek(g, st!(log.cap));
            poke(g, st!(log.len), cap + 8);
        }
        Rule::Log(LogFault::BadExtension) => poke(g, st!(log.ext) + 8, v.c + 8),
        Rule::Log(LogFault::CutOff) => poke(g, st!(log.len), 8),
        Rule::Log(LogFault::BadKind) => log_entry(g, v, 9, 0, 16),
        Rule::Log(LogFault::Misaligned) => log_entry(g, v, 1 | 8 << 32, v.a + 12, 24),
        Rule::Log(LogFault::BadImage) => log_entry(g, v, 1 | 8 << 32, 0x20, 24),
        Rule::Log(LogFault::BadTarget) => log_entry(g, v, 2, v.log, 16),
        Rule::Log(LogFault::Overrun) => {
            // The second entry (48 bytes, an image of 32) where the length leaves it 24: past
            // position 0, so that the room it has is the length less its position.
            log_entry(g, v, 2, v.a + 8, 16);
            poke(g, v.log + 16, 1 | 32 << 32);
            poke(g, v.log + 24, v.a + 8);
            poke(g, st!(log.len), 40);
        }
        Rule::Log(LogFault::BadDone) => {
            log_entry(g, v, 2, v.a + 8, 16);
            poke(g, st!(log.done), 1);
        }
        Rule::Log(LogFault::ImageOutsideBlocks) => {
            unreachable!("found by recovery, not by check: see Rule::all")
        }
        Rule::Log(LogFault::Committed) => poke(g, st!(log.len), LOG_COMMITTED),
    }
}

#[test]
fn every_rule_is_seen_firing() {
    let _watchdog = crate::watchdog!(60);
    let rules = Rule::all();
    assert!(rules.len() > 40, "only {} rules", rules.len());
    for rule in rules {
        let dir = tempfile::tempdir().unwrap();
        let heap = Heap::create(dir.path().join("h.heap"), 96 << 10).unwrap();
        let v = valid(&heap);
        let mut g = heap.lock().unwrap();
        break_rule(&mut g, &v, rule);
        let report = g.check();
        assert_eq!(
            report.rules(),
            vec![rule],
            "breaking {rule:?} alone: {:#?}",
            report.violations
        );
        // Each violation says which invariant it is (the report's text for `mapheap check`).
        for v in &report.violations {
            let text = v.to_string();
            assert!(
                text.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    || text.starts_with("root"),
                "{text}"
            );
        }
        // The heap stays broken for `mapheap check`; the next lock may refuse it.
        std::mem::forget(g);
        drop(heap);
    }
}

/// `Rule::all` lists every rule `check` can report, and only those: the two faults it
/// leaves out cannot be seen by a check under a guard (a guard's capacity is checked
/// against its mapping, so no header lies outside; only recovery walks before-images).
#[test]
fn rule_list_leaves_out_only_what_check_cannot_see() {
    let all = Rule::all();
    for f in ChainFault::ALL {
        let listed = all.contains(&Rule::Chain(*f));
        assert_eq!(listed, *f != ChainFault::OutsideArena, "{f:?}");
    }
    for f in LogFault::ALL {
        let listed = all.contains(&Rule::Log(*f));
        assert_eq!(listed, *f != LogFault::ImageOutsideBlocks, "{f:?}");
    }
    let mut dedup = all.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), all.len(), "a rule listed twice");
}

/// A first-level bit past the classes is named by its own index (the row above sets a bit
/// inside them), at both ends of the unused bits.
#[test]
fn a_first_level_bit_past_the_classes_is_reported_at_its_index() {
    use super::Violation;
    use crate::format::FL_COUNT;
    let _watchdog = crate::watchdog!(30);
    for fl in [FL_COUNT, FL_COUNT + 3, 63] {
        let dir = tempfile::tempdir().unwrap();
        let heap = Heap::create(dir.path().join("h.heap"), 96 << 10).unwrap();
        let g = heap.lock().unwrap();
        let w = peek(&g, st!(fl_bitmap));
        poke(&g, st!(fl_bitmap), w | 1 << fl);
        assert_eq!(g.check().violations, vec![Violation::FlBit { fl }]);
        poke(&g, st!(fl_bitmap), w);
    }
}

/// A log extension must be a block of its own, listed only while the log holds entries: the
/// log's own block, or one listed twice, is refused, and so is any extension of an empty
/// log (a corrupt-image case found this: `check` passed it, and the next allocation's
/// transaction refused the log), while a used block listed once behind an entry is a sound
/// extension.
#[test]
fn a_log_extension_listed_twice_or_naming_the_log_is_refused() {
    let _watchdog = crate::watchdog!(30);
    let dir = tempfile::tempdir().unwrap();
    let heap = Heap::create(dir.path().join("h.heap"), 96 << 10).unwrap();
    let v = valid(&heap);
    let g = heap.lock().unwrap();
    let bad = Rule::Log(LogFault::BadExtension);
    let listed = |ext: [u64; 2]| {
        poke(&g, st!(log.ext), ext[0]);
        poke(&g, st!(log.ext) + 8, ext[1]);
        g.check().rules()
    };
    // An empty log: no extension at all.
    assert!(
        listed([v.c + 8, 0]).contains(&bad),
        "an empty log's extension"
    );
    // One entry in the log (the allocation of a): one extension may follow.
    log_entry(&g, &v, 2, v.a + 8, 16);
    for (ext, refused) in [
        ([v.c + 8, 0], false),
        ([v.c + 8, v.c + 8], true),
        ([v.log, 0], true),
        ([v.c + 8, v.log], true),
    ] {
        let rules = listed(ext);
        assert_eq!(rules.contains(&bad), refused, "ext {ext:?}: {rules:?}");
        assert!(refused || rules.is_empty(), "ext {ext:?}: {rules:?}");
    }
    poke(&g, st!(log.len), 0);
    poke(&g, st!(log.ext), 0);
    poke(&g, st!(log.ext) + 8, 0);
    assert!(g.check().is_clean());
}

/// `UnknownFlags` names exactly the unknown bits, not the known ones beside them.
#[test]
fn unknown_flags_are_reported_by_their_bits_alone() {
    let _watchdog = crate::watchdog!(30);
    let dir = tempfile::tempdir().unwrap();
    let heap = Heap::create(dir.path().join("h.heap"), 96 << 10).unwrap();
    let g = heap.lock().unwrap();
    poke(
        &g,
        st!(flags),
        crate::format::FLAG_NEEDS_REPAIR | 1 << 5 | 1 << 63,
    );
    let unknown = reported(&g, |v| match v {
        super::Violation::UnknownFlags { bits } => Some(*bits),
        _ => None,
    });
    assert_eq!(unknown, vec![1 << 5 | 1 << 63]);
    poke(&g, st!(flags), 0);
    assert!(g.check().is_clean());
}

/// `NotZero` names the first byte that is not zero, for a byte at each position of a word
/// (first, middle, last) in each of the zero ranges: a report that names the wrong byte
/// sends whoever reads it to the wrong place.
#[test]
fn a_byte_not_zero_is_reported_at_its_own_offset() {
    let _watchdog = crate::watchdog!(30);
    let dir = tempfile::tempdir().unwrap();
    let heap = Heap::create(dir.path().join("h.heap"), 96 << 10).unwrap();
    let g = heap.lock().unwrap();
    for r in super::header::zero_ranges() {
        let first_word = r.start.next_multiple_of(8);
        let last_word = (r.end - 1) & !7;
        let bytes = [
            r.start,
            first_word + 3,
            last_word + 7,
            (r.start + r.end) / 2,
        ];
        for byte in bytes.into_iter().filter(|b| r.contains(b)) {
            let word = byte & !7;
            let old = peek(&g, word);
            poke(&g, word, old | 0x5a << (8 * (byte - word)));
            let at = reported(&g, |v| match v {
                super::Violation::NotZero { offset } => Some(*offset),
                _ => None,
            });
            assert_eq!(at, vec![byte], "byte {byte} of the zero range {r:?}");
            poke(&g, word, old);
        }
    }
    assert!(g.check().is_clean());
}

/// A log left committed is reported at the length it holds, without the committed bit.
#[test]
fn a_committed_log_is_reported_at_its_length() {
    let _watchdog = crate::watchdog!(30);
    let dir = tempfile::tempdir().unwrap();
    let heap = Heap::create(dir.path().join("h.heap"), 96 << 10).unwrap();
    let g = heap.lock().unwrap();
    poke(&g, st!(log.len), LOG_COMMITTED);
    let at = reported(&g, |v| match v {
        super::Violation::Log {
            pos,
            fault: LogFault::Committed,
        } => Some(*pos),
        _ => None,
    });
    assert_eq!(at, vec![0]);
    poke(&g, st!(log.len), 0);
    assert!(g.check().is_clean());
}
