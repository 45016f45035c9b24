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
    let run = || -> Result<()> {
        let mut g = heap.lock()?;
        let a = g.alloc_bytes(100, 8)?;
        let b = g.alloc_bytes(200, 8)?;
        let c = g.alloc_bytes(300, 8)?;
        let _d = g.alloc_bytes(40, 8)?;
        g.free(b)?;
        g.free(a)?;
        g.free(c)?;
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
    let report = heap.lock().unwrap().check();
    report
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
        matches!(v, Violation::Bitmap { .. })
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
            if let Some(m) = m {
                crate::mutant::set_thread(Some(m));
            }
            let mut o = CreateOptions::new(4 << 20);
            o.overwrite = true;
            for _ in 0..150 {
                drop(Heap::create_with(&path, &o).unwrap());
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
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
    if std::env::var_os("MAPHEAP_CREATE_IN_PLACE_CHILD").is_some() {
        // In the child: an in-place create truncates a file another thread has mapped, so
        // besides Format errors the opener may die of SIGBUS; either way it is caught.
        assert_eq!(half_made_seen(Some(Mutant::CreateInPlace)), 0);
        return;
    }
    assert_eq!(half_made_seen(None), 0);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "heap::mutant_tests::mutant_create_in_place_is_caught_by_concurrent_open",
            "--test-threads=1",
        ])
        .env("MAPHEAP_CREATE_IN_PLACE_CHILD", "1")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the in-place create went unnoticed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_forked_child_cannot_use_its_parents_handle() {
    let (_d, _p, heap) = fresh(256 << 10);
    drop(heap.lock().unwrap());
    // SAFETY: the child only calls `Heap::lock`, which fails on the fork-epoch check before
    // touching any lock or allocating, and then leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
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
    assert!(
        libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
        "status {st:#x}"
    );
    // the parent's handle still works
    heap.lock().unwrap().alloc(1u64).unwrap();
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
