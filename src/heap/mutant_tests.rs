//! One test per seeded bug of the allocator, the checker's invariants and the heap layer:
//! each runs the same scenario without the mutant (clean) and with it (caught).

use super::tests_support::fresh;
use super::*;
use crate::check::{Report, Violation};
use crate::mutant::{with, Mutant};
use crate::offset::Offset;

/// A small scenario that exercises split, exact fit, free with both neighbours, and roots.
fn scenario(m: Option<Mutant>) -> Report {
    let (_d, _p, heap) = fresh(256 << 10);
    // A seeded bug may make the allocator itself refuse a later step (it validates what it
    // follows); the scenario then stops there and the checker must still see the damage.
    let mut g = heap.lock().unwrap();
    let mut run = || -> Result<()> {
        let a = g.alloc_bytes(100, 8)?;
        let b = g.alloc_bytes(200, 8)?;
        let c = g.alloc_bytes(300, 8)?;
        let _d = g.alloc_bytes(40, 8)?;
        g.free(b)?;
        g.free(a)?;
        g.free(c)?;
        // Frees take effect at the commit.
        g.checkpoint()?;
        let r = g.alloc(7u64)?;
        g.set_root("r", r)
    };
    let outcome = match m {
        Some(m) => with(m, run),
        None => run(),
    };
    if m.is_none() {
        outcome.unwrap();
    }
    // In the same guard: the next lock would repair what an interrupted change left.
    g.check()
}

fn caught(m: Mutant, pred: impl Fn(&Violation) -> bool) {
    let clean = scenario(None);
    assert!(clean.is_clean(), "baseline not clean: {clean:?}");
    let r = scenario(Some(m));
    assert!(r.violations.iter().any(pred), "{m:?} not caught: {r:?}");
}

#[test]
fn mutant_split_tail_misplaced_is_caught_by_check_chain() {
    caught(Mutant::SplitTailMisplaced, |v| {
        matches!(v, Violation::Chain { .. })
    });
}

#[test]
fn mutant_keep_empty_list_bit_is_caught_by_check_bitmap() {
    caught(Mutant::KeepEmptyListBit, |v| {
        matches!(v, Violation::SlBit { .. } | Violation::FlBit { .. })
    });
}

#[test]
fn mutant_fill_without_list_bit_is_caught_by_check_bitmap() {
    caught(Mutant::FillWithoutListBit, |v| {
        matches!(v, Violation::SlBit { .. } | Violation::FlBit { .. })
    });
}

#[test]
fn mutant_no_footer_is_caught_by_check_footer() {
    caught(Mutant::NoFooter, |v| matches!(v, Violation::Footer { .. }));
}

#[test]
fn mutant_counter_drift_is_caught_by_check_counters() {
    caught(Mutant::CounterDrift, |v| {
        matches!(
            v,
            Violation::Counter {
                name: "used_blocks",
                ..
            }
        )
    });
}

#[test]
fn mutant_absolute_address_is_caught_by_check_roots() {
    caught(Mutant::AbsoluteAddress, |v| {
        matches!(v, Violation::Root { .. })
    });
}

/// A handle whose guard was forgotten and which then detached looks exactly like a process
/// that died holding the lock. A newcomer that claims the same slot must see the old owner
/// as dead (its incarnation moved on) and take the lock over.
fn newcomer_takes_over(m: Option<Mutant>) -> bool {
    let (_d, path, heap) = fresh(256 << 10);
    std::mem::forget(heap.lock().unwrap());
    drop(heap);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Some(m) = m {
            crate::mutant::set_thread(Some(m));
        }
        let opts = OpenOptions {
            probe_interval: Duration::from_millis(1),
            ..OpenOptions::default()
        };
        let h = Heap::open_with(&path, &opts).unwrap();
        let recovered = h.lock().map(|g| g.recovered().is_some()).unwrap_or(false);
        // open itself took the lock first and reported the repair there.
        let _ = tx.send(recovered || h.check().map(|r| r.is_clean()).unwrap_or(false));
        let _d = _d;
    });
    // With the mutant the newcomer's id equals the dead owner's, so it waits for itself
    // forever; the thread is left blocked and dies with the test process.
    rx.recv_timeout(Duration::from_secs(2)).unwrap_or(false)
}

#[test]
fn mutant_slot_keeps_incarnation_is_caught_by_newcomer_takeover() {
    assert!(
        newcomer_takes_over(None),
        "a newcomer did not take over a dead owner's lock"
    );
    assert!(
        !newcomer_takes_over(Some(Mutant::SlotKeepsIncarnation)),
        "a newcomer with the dead owner's id still took over"
    );
}

/// Creating the same path over and over while another thread opens it: an opener must
/// see a whole heap or no file, never a half-made one.
fn half_made_seen(m: Option<Mutant>) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut bad = 0;
    std::thread::scope(|s| {
        s.spawn(|| {
            // Stop the opener even if a create panics, or it would spin forever (a broken
            // library must fail this test, not hang it).
            struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
            impl Drop for Stop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let _stop = Stop(&stop);
            if let Some(m) = m {
                crate::mutant::set_thread(Some(m));
            }
            let mut o = CreateOptions::new(4 << 20);
            o.overwrite = true;
            for _ in 0..150 {
                drop(Heap::create_with(&path, &o).unwrap());
            }
        });
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match Heap::open(&path) {
                Ok(_) => {}
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => bad += 1,
            }
        }
    });
    bad
}

#[test]
fn mutant_create_in_place_is_caught_by_concurrent_open() {
    let _watchdog = crate::watchdog!(120);
    if std::env::var_os("MAPHEAP_CREATE_IN_PLACE_CHILD").is_some() {
        // In the child: an in-place create truncates a file another thread has mapped, so
        // besides Format errors the opener may die of SIGBUS; either way it is caught.
        assert_eq!(half_made_seen(Some(Mutant::CreateInPlace)), 0);
        return;
    }
    assert_eq!(half_made_seen(None), 0);
    let run = crate::watchdog::run_test(
        "heap::mutant_tests::mutant_create_in_place_is_caught_by_concurrent_open",
        None,
        &[("MAPHEAP_CREATE_IN_PLACE_CHILD", "1")],
        Duration::from_secs(60),
    );
    // A child that hangs until the deadline has not passed either.
    assert!(
        run.code != Some(0),
        "the in-place create went unnoticed: {}",
        run.output
    );
}

#[test]
fn offsets_of_one_heap_are_refused_by_an_unrelated_one() {
    let (_d1, _p1, h1) = fresh(256 << 10);
    let (_d2, _p2, h2) = fresh(256 << 10);
    let o = h1.lock().unwrap().alloc_bytes(200, 8).unwrap();
    let g2 = h2.lock().unwrap();
    assert!(g2.get(o.cast::<[u8; 64]>()).is_err());
    assert!(g2.get(Offset::<u64>::from_raw(o.raw())).is_err());
}

#[test]
fn mutant_wrong_class_is_caught_by_check_lists() {
    caught(Mutant::WrongClass, |v| {
        matches!(
            v,
            Violation::List {
                fault: crate::check::ListFault::WrongClass,
                ..
            }
        )
    });
}

#[test]
fn mutant_skip_identity_check_is_caught_by_open() {
    let (_d, path, heap) = fresh(256 << 10);
    drop(heap);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] = b'X';
    std::fs::write(&path, &bytes).unwrap();
    let refused = |m: Option<Mutant>| {
        let open = || matches!(Heap::open(&path), Err(Error::Format { .. }));
        match m {
            Some(m) => with(m, open),
            None => open(),
        }
    };
    assert!(refused(None));
    assert!(
        !refused(Some(Mutant::SkipIdentityCheck)),
        "bad magic refused anyway"
    );
}

/// Whether a fork child's use of its parent's handle is refused with `Error::Forked`.
fn forked_child_is_refused(m: Option<Mutant>) -> bool {
    let (_d, _p, heap) = fresh(256 << 10);
    drop(heap.lock().unwrap());
    // SAFETY: the child only switches the mutant on and calls `Heap::lock`, which fails on
    // the fork-epoch check before touching any lock or allocating (with the mutant it takes
    // the lock under the parent's id, the bug); it then leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        crate::mutant::set_process(m);
        let code = match heap.lock() {
            Err(Error::Forked) => 0,
            _ => 1,
        };
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut st = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert!(libc::WIFEXITED(st), "child status {st:#x}");
    // The parent's handle still works whatever the child did.
    heap.lock().unwrap().alloc(1u64).unwrap();
    libc::WEXITSTATUS(st) == 0
}

#[test]
fn a_forked_child_cannot_use_its_parents_handle() {
    // Waits for a fork child.
    let _watchdog = crate::watchdog!(20);
    assert!(forked_child_is_refused(None));
}

#[test]
fn mutant_ignore_fork_is_caught_by_the_fork_check() {
    // Waits for fork children.
    let _watchdog = crate::watchdog!(20);
    assert!(forked_child_is_refused(None));
    assert!(
        !forked_child_is_refused(Some(Mutant::IgnoreFork)),
        "the child's use of its parent's handle went unnoticed"
    );
}

fn other_handle_reads_grown_data(m: Option<Mutant>) -> bool {
    let (_d, path, heap) = fresh(64 << 10);
    let other = Heap::open(&path).unwrap();
    drop(other.lock().unwrap());
    {
        let mut g = heap.lock().unwrap();
        g.grow(2 << 20).unwrap();
        let big = g.alloc_bytes(1 << 20, 8).unwrap();
        g.bytes_mut(big, 1 << 20).unwrap().fill(3);
        g.set_root("big", big).unwrap();
    }
    let read = || -> Result<bool> {
        let g = other.lock()?;
        let big = g.root::<u8>("big")?.expect("root");
        Ok(g.bytes(big, 1 << 20)?.iter().all(|&b| b == 3) && g.check().is_clean())
    };
    let r = match m {
        Some(m) => with(m, read),
        None => read(),
    };
    r.unwrap_or(false)
}

#[test]
fn mutant_stale_mapping_is_caught_by_reading_after_growth() {
    // Two handles in one thread.
    let _watchdog = crate::watchdog!(20);
    assert!(other_handle_reads_grown_data(None));
    assert!(!other_handle_reads_grown_data(Some(Mutant::StaleMapping)));
}

#[test]
fn mutant_ignore_root_type_is_caught_by_the_fingerprint() {
    let (_d, _p, heap) = fresh(256 << 10);
    let mut g = heap.lock().unwrap();
    g.find_or_init("cfg", || 5u64).unwrap();
    assert!(matches!(
        g.root::<[u8; 3]>("cfg"),
        Err(Error::RootType { .. })
    ));
    let r = with(Mutant::IgnoreRootType, || g.root::<[u8; 3]>("cfg").is_ok());
    assert!(
        r,
        "a root was handed out as another type and nothing noticed... wrongly"
    );
}

#[test]
fn mutant_no_align_rounding_is_caught_by_alignment() {
    let (_d, _p, heap) = fresh(256 << 10);
    let mut g = heap.lock().unwrap();
    let aligned = |g: &mut HeapGuard<'_>| {
        (0..8).all(|i| {
            g.alloc_bytes(24 + i * 40, 4096)
                .unwrap()
                .raw()
                .is_multiple_of(4096)
        })
    };
    assert!(aligned(&mut g));
    assert!(!with(Mutant::NoAlignRounding, || aligned(&mut g)));
}

#[test]
fn mutant_bounds_off_by_one_is_caught_by_resolution() {
    let (_d, _p, heap) = fresh(256 << 10);
    let mut g = heap.lock().unwrap();
    let small = g.alloc_bytes(24, 8).unwrap();
    assert_eq!(g.usable_size(small).unwrap(), 24);
    let too_big = small.cast::<[u64; 4]>();
    assert!(g.get(too_big).is_err());
    assert!(with(Mutant::BoundsOffByOne, || g.get(too_big).is_ok()));
}

/// Bytes inside a payload that look like a used block's header (a plausible size, no
/// flags) must not make an interior offset resolve: only the tag tells them apart.
fn interior_offset_resolves(m: Option<Mutant>) -> bool {
    let (_d, _p, heap) = fresh(256 << 10);
    let mut g = heap.lock().unwrap();
    let a = g.alloc_bytes(256, 8).unwrap();
    g.bytes_mut(a, 256).unwrap()[8..16].copy_from_slice(&64u64.to_ne_bytes());
    let interior = Offset::<[u8; 16]>::from_raw(a.raw() + 16);
    let resolve = || g.get(interior).is_ok();
    match m {
        Some(m) => with(m, resolve),
        None => resolve(),
    }
}

#[test]
fn mutant_skip_header_tag_is_caught_by_interior_offsets() {
    assert!(!interior_offset_resolves(None));
    assert!(
        interior_offset_resolves(Some(Mutant::SkipHeaderTag)),
        "header-like user bytes were refused even without the tag"
    );
}

/// The capacity at which allocations stop growing a heap opened with a 256 KiB limit.
fn capacity_when_growth_stops(m: Option<Mutant>) -> u64 {
    let (_d, path, heap) = fresh(64 << 10);
    drop(heap);
    let opts = OpenOptions {
        grow_limit: Some(256 << 10),
        ..OpenOptions::default()
    };
    let heap = Heap::open_with(&path, &opts).unwrap();
    let mut g = heap.lock().unwrap();
    let fill = |g: &mut HeapGuard<'_>| {
        for _ in 0..400 {
            if g.alloc_bytes(1000, 8).is_err() {
                break;
            }
        }
    };
    match m {
        Some(m) => with(m, || fill(&mut g)),
        None => fill(&mut g),
    }
    g.capacity()
}

#[test]
fn mutant_grow_past_limit_is_caught_by_the_limit() {
    assert!(capacity_when_growth_stops(None) <= 256 << 10);
    assert!(capacity_when_growth_stops(Some(Mutant::GrowPastLimit)) > 256 << 10);
}

/// `StaleWordAfterWait`: a waiter goes back to sleep on the word it saw before it slept and
/// never reads it again, so once the word has moved on it spins for ever (L6). In
/// `threads_share_a_handle` every thread that finds the lock held hangs; only the test's
/// watchdog can end it, and must, with its message, within the test's bound (plus the time
/// to start the process); the same run without the mutant passes. The scenario runs in a
/// child process (this binary again, `--exact`), because the watchdog ends the whole process.
#[test]
fn mutant_stale_word_after_wait_is_caught_by_the_watchdog() {
    use super::tests::SHARED_HANDLE_BOUND_SECS as BOUND;
    use crate::watchdog::{run_test, WATCHDOG_EXIT};
    let _watchdog = crate::watchdog!(3 * BOUND + 60);
    let test = "heap::tests::threads_share_a_handle";
    let limit = Duration::from_secs(BOUND + 30);
    let ok = run_test(test, None, &[], limit);
    assert_eq!(
        ok.code,
        Some(0),
        "the same run without the mutant must pass: {ok:?}"
    );
    let run = run_test(test, Some(Mutant::StaleWordAfterWait), &[], limit);
    let said = format!("watchdog: test {test} did not finish within its bound of {BOUND} s");
    assert!(
        run.code == Some(WATCHDOG_EXIT) && run.output.contains(&said),
        "StaleWordAfterWait not caught by the watchdog (wanted exit {WATCHDOG_EXIT} and {said:?}): {run:?}"
    );
    assert!(
        run.elapsed >= Duration::from_secs(BOUND),
        "the watchdog fired after {:?}, before the bound",
        run.elapsed
    );
}

/// How many of the deaths of a re-create (after each of its stores, k = 1, 2, ...) left
/// the path other than as it was: the previous heap, whole, with its root. The create
/// writes a file nobody can see and renames it into place (M1), so a death anywhere leaves
/// the old heap; in place (`CreateInPlace`) the half-made file is what an opener finds.
/// The enumeration behind the race tests, which see that mutant only when an opener looks
/// at the wrong moment.
fn torn_by_a_dying_create(m: Option<Mutant>) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    let old = || {
        let mut o = CreateOptions::new(64 << 10);
        o.overwrite = true;
        let h = Heap::create_with(&path, &o).unwrap();
        let mut g = h.lock().unwrap();
        let r = g.alloc(7u64).unwrap();
        g.set_root("old", r).unwrap();
    };
    let mut o = CreateOptions::new(128 << 10);
    o.overwrite = true;
    let mut torn = 0;
    for k in 1.. {
        old();
        crate::fault::arm_store_unwind(Some(k));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let create = || Heap::create_with(&path, &o).map(drop);
            match m {
                Some(m) => with(m, create),
                None => create(),
            }
        }));
        crate::fault::arm_store_unwind(None);
        match r {
            Ok(r) => {
                r.unwrap();
                assert!(k > 10, "a create of only {k} stores");
                return torn;
            }
            Err(p) if p.downcast_ref::<crate::fault::Crashed>().is_some() => {}
            Err(p) => std::panic::resume_unwind(p),
        }
        let whole = Heap::open_with(&path, &super::tests_support::quick()).is_ok_and(|h| {
            let g = h.lock().unwrap();
            g.check().is_clean() && g.root::<u64>("old").is_ok_and(|r| r.is_some())
        });
        torn += u64::from(!whole);
    }
    unreachable!()
}

#[test]
fn a_create_that_dies_after_any_store_leaves_the_old_heap() {
    assert_eq!(torn_by_a_dying_create(None), 0);
}

#[test]
fn mutant_create_in_place_is_caught_by_a_death_after_every_store() {
    assert!(torn_by_a_dying_create(Some(Mutant::CreateInPlace)) > 0);
}
