//! Crash points: named instructions at which tests kill a process (or a model thread).
//!
//! Invariant: without the `mutants` feature [`hit`] is an empty inline function, so the
//! points cost nothing in a normal build. With it, a fork test arms one point in a child
//! ([`arm`]); the child then SIGKILLs itself the `n`-th time it passes that point, which is
//! exactly what a crash at that instruction looks like to every other process.
//!
//! The lock protocol reports its points through `Platform::crash_point`, so that loom and
//! shuttle platforms can make one model thread "die" there; the real platform forwards to
//! [`hit`].
//!
//! Beside the named points, every store the heap makes to its file passes [`stored`]
//! (invariant D2 in `alloc`): a test counts the stores of an operation ([`stores`]) and
//! then dies after the k-th one, for every k ([`arm_store_unwind`], [`arm_store_kill`]), so
//! a store added later is covered without anyone placing a point by hand.
//!
//! An in-process death ([`arm_unwind`], [`arm_store_unwind`]) unwinds with a [`Crashed`]
//! payload and marks the thread as dying ([`dying`]): the heap guard then leaves the lock
//! and the file exactly as they are, as a SIGKILL would, and the test drops the handle (its
//! slot's OFD lock goes with it) so that a fresh handle takes the lock over.

/// Where a process may be made to die.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CrashPoint {
    /// Just after the acquiring CAS succeeded (the process holds the lock).
    LockAcquired = 1,
    /// Just after a takeover CAS made this process the owner of a dead owner's lock.
    TakeoverDone,
    /// In unlock, after the releasing swap and before the wake.
    UnlockReleased,
    /// In an allocation split, after the tail block's header is written and before the
    /// shrinking store that commits the split.
    SplitTailWritten,
    /// In an allocation, after the commit and before the free lists are consistent again.
    AllocCommitted,
    /// In a free, after merging with the next block and before the block is marked free.
    FreeMergedNext,
    /// In growth, after the file was extended and remapped, before the heap changes.
    GrowExtended,
    /// In growth, after the new capacity and sentinel are written, before the old sentinel
    /// becomes the block that commits the new space.
    GrowSentinelWritten,
    /// In an aligned allocation, after the store that splits the alignment gap off the
    /// front of the block, before the gap's footer is written and it is listed.
    AlignGapSplit,
    /// Right after the store that commits a transaction (T2).
    TxCommitted,
}

impl CrashPoint {
    /// Every point, for parsing names in tests and the CLI.
    pub const ALL: &'static [CrashPoint] = &[
        CrashPoint::LockAcquired,
        CrashPoint::TakeoverDone,
        CrashPoint::UnlockReleased,
        CrashPoint::SplitTailWritten,
        CrashPoint::AllocCommitted,
        CrashPoint::FreeMergedNext,
        CrashPoint::GrowExtended,
        CrashPoint::GrowSentinelWritten,
        CrashPoint::AlignGapSplit,
        CrashPoint::TxCommitted,
    ];

    /// Whether the point lies in the lock protocol rather than in a change of the heap.
    pub fn is_lock(self) -> bool {
        matches!(
            self,
            CrashPoint::LockAcquired | CrashPoint::TakeoverDone | CrashPoint::UnlockReleased
        )
    }

    /// The point whose `Debug` name is `name`.
    pub fn parse(name: &str) -> Option<CrashPoint> {
        Self::ALL.iter().copied().find(|p| format!("{p:?}") == name)
    }
}

#[cfg(feature = "mutants")]
mod imp {
    use super::CrashPoint;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

    static POINT: AtomicU32 = AtomicU32::new(0);
    static COUNTDOWN: AtomicU32 = AtomicU32::new(0);
    /// Kill this process after this many more stores (0: never).
    static KILL_AFTER_STORES: AtomicU64 = AtomicU64::new(0);
    /// Set once any point was armed: until then `hit` is one load of a global.
    static EVER: AtomicBool = AtomicBool::new(false);
    thread_local! {
        static UNWIND_AT: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
        /// Stores made by this thread since `count_stores` (for the enumeration).
        static STORES: Cell<u64> = const { Cell::new(0) };
        /// Unwind after this many more stores (0: never).
        static UNWIND_AFTER_STORES: Cell<u64> = const { Cell::new(0) };
        static DYING: Cell<bool> = const { Cell::new(false) };
        /// How the next `map::reserve`'s `fallocate` fails: the bytes of the growth it
        /// keeps, and its errno (0: it does not fail).
        static RESERVE_FAILURE: Cell<(u64, i32)> = const { Cell::new((0, 0)) };
        /// Named points passed since `count_stores`, with the store count at each.
        static MARKS: std::cell::RefCell<Vec<(CrashPoint, u64)>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    pub fn marks() -> Vec<(CrashPoint, u64)> {
        MARKS.with(|m| m.borrow().clone())
    }

    /// A thread already unwinding (a panicking guard rolling back) cannot unwind again:
    /// the death is not simulated there (an abort would end the test binary).
    fn can_die() -> bool {
        !std::thread::panicking()
    }

    fn die_in_process(point: Option<CrashPoint>, store: u64) -> ! {
        DYING.with(|d| d.set(true));
        std::panic::resume_unwind(Box::new(super::Crashed { point, store }))
    }

    pub fn arm_unwind(point: Option<CrashPoint>, nth: u32) {
        EVER.store(true, Ordering::Relaxed);
        if point.is_none() {
            DYING.with(|d| d.set(false));
        }
        UNWIND_AT.with(|c| c.set((point.map_or(0, |p| p as u32), nth.max(1))));
    }

    pub fn arm_store_unwind(k: Option<u64>) {
        EVER.store(true, Ordering::Relaxed);
        if k.is_none() {
            DYING.with(|d| d.set(false));
        }
        STORES.with(|c| c.set(0));
        UNWIND_AFTER_STORES.with(|c| c.set(k.unwrap_or(0)));
    }

    pub fn arm_store_kill(k: Option<u64>) {
        EVER.store(true, Ordering::Relaxed);
        KILL_AFTER_STORES.store(k.unwrap_or(0), Ordering::Relaxed);
    }

    pub fn count_stores() {
        EVER.store(true, Ordering::Relaxed);
        STORES.with(|c| c.set(0));
        MARKS.with(|m| m.borrow_mut().clear());
    }

    pub fn stores() -> u64 {
        STORES.with(|c| c.get())
    }

    pub fn dying() -> bool {
        EVER.load(Ordering::Relaxed) && DYING.with(|d| d.get())
    }

    pub fn arm_reserve_failure(f: Option<(u64, i32)>) {
        RESERVE_FAILURE.with(|c| c.set(f.unwrap_or((0, 0))));
    }

    pub fn take_reserve_failure() -> Option<(u64, i32)> {
        let f = RESERVE_FAILURE.with(|c| c.replace((0, 0)));
        (f.1 != 0).then_some(f)
    }

    #[inline]
    pub fn stored() {
        if !EVER.load(Ordering::Relaxed) {
            return;
        }
        let n = STORES.with(|c| {
            let n = c.get() + 1;
            c.set(n);
            n
        });
        if UNWIND_AFTER_STORES.with(|c| c.get()) == n && can_die() {
            UNWIND_AFTER_STORES.with(|c| c.set(0));
            die_in_process(None, n);
        }
        let k = KILL_AFTER_STORES.load(Ordering::Relaxed);
        if k != 0 && KILL_AFTER_STORES.fetch_sub(1, Ordering::Relaxed) == 1 {
            // SAFETY: raising a signal on ourselves has no memory-safety preconditions;
            // SIGKILL cannot be caught, so nothing after this line runs.
            unsafe {
                libc::raise(libc::SIGKILL);
            }
        }
    }

    pub fn arm(point: Option<CrashPoint>, nth: u32) {
        EVER.store(true, Ordering::Relaxed);
        COUNTDOWN.store(nth.max(1), Ordering::Relaxed);
        POINT.store(point.map_or(0, |p| p as u32), Ordering::Relaxed);
    }

    #[inline]
    pub fn hit(point: CrashPoint) {
        if !EVER.load(Ordering::Relaxed) {
            return;
        }
        MARKS.with(|m| {
            if let Ok(mut m) = m.try_borrow_mut() {
                if m.len() < 4096 {
                    m.push((point, STORES.with(|c| c.get())));
                }
            }
        });
        let (at, left) = UNWIND_AT.with(|c| c.get());
        if at == point as u32 {
            if left == 1 && can_die() {
                UNWIND_AT.with(|c| c.set((0, 0)));
                die_in_process(Some(point), STORES.with(|c| c.get()));
            }
            UNWIND_AT.with(|c| c.set((at, left - 1)));
        }
        if POINT.load(Ordering::Relaxed) != point as u32 {
            return;
        }
        if COUNTDOWN.fetch_sub(1, Ordering::Relaxed) == 1 {
            // SAFETY: raising a signal on ourselves has no memory-safety preconditions;
            // SIGKILL cannot be caught, so nothing after this line runs.
            unsafe {
                libc::raise(libc::SIGKILL);
            }
        }
    }
}

/// Kills this process with SIGKILL the `nth` time (from 1) it passes `point`;
/// `None` disarms. Only with the `mutants` feature.
#[cfg(feature = "mutants")]
pub fn arm(point: Option<CrashPoint>, nth: u32) {
    imp::arm(point, nth)
}

/// The panic payload of a crash simulated by [`arm_unwind`] or [`arm_store_unwind`].
#[derive(Debug)]
pub struct Crashed {
    /// The named point it died at, if it died at one.
    pub point: Option<CrashPoint>,
    /// How many stores this thread had made since it was armed.
    pub store: u64,
}

/// Makes this thread unwind with a [`Crashed`] payload the `nth` time it passes `point`
/// (`None` disarms, and ends the dying state). Unwinding leaves the shared memory exactly
/// as a SIGKILL at that instruction would, and the guard being dropped leaves the lock held
/// (see [`dying`]). For in-process tests of the repair; `resume_unwind` skips the panic
/// hook, so nothing is printed.
#[cfg(feature = "mutants")]
pub fn arm_unwind(point: Option<CrashPoint>, nth: u32) {
    imp::arm_unwind(point, nth)
}

/// Makes this thread unwind with a [`Crashed`] payload right after its `k`-th store to a
/// heap file from now (`None` disarms, and ends the dying state). Also restarts the count
/// of [`stores`].
#[cfg(feature = "mutants")]
pub fn arm_store_unwind(k: Option<u64>) {
    imp::arm_store_unwind(k)
}

/// Kills this process with SIGKILL right after its `k`-th store from now (any thread;
/// `None` disarms).
#[cfg(feature = "mutants")]
pub fn arm_store_kill(k: Option<u64>) {
    imp::arm_store_kill(k)
}

/// Restarts this thread's count of stores (read it with [`stores`]).
#[cfg(feature = "mutants")]
pub fn count_stores() {
    imp::count_stores()
}

/// Stores this thread made to heap files since [`count_stores`] or an arming.
#[cfg(feature = "mutants")]
pub fn stores() -> u64 {
    imp::stores()
}

/// The named points this thread passed since [`count_stores`], each with the number of
/// stores made before it (so a test can tell which stores come after, say, a commit).
#[cfg(feature = "mutants")]
pub fn marks() -> Vec<(CrashPoint, u64)> {
    imp::marks()
}

/// Whether this thread is unwinding out of a simulated death: a guard dropped then must
/// leave everything as it is (no rollback, no unlock), as a killed process would.
#[cfg(feature = "mutants")]
#[inline]
pub fn dying() -> bool {
    imp::dying()
}

/// Makes this thread's next `map::reserve` see its `fallocate` fail with `errno` after
/// extending the file by `kept` bytes: ENOSPC with some bytes kept is what ext4 and XFS do
/// when the disk fills during the call (they keep the blocks taken, and ext4 the length
/// reached; a tmpfs gives everything back itself, so the full-disk test on one cannot show
/// it); EOPNOTSUPP is a file system without `fallocate`. `None` disarms.
#[cfg(feature = "mutants")]
pub fn arm_reserve_failure(failure: Option<(u64, i32)>) {
    imp::arm_reserve_failure(failure)
}

/// The reservation failure armed for this thread (kept bytes, errno), disarming it.
#[cfg(feature = "mutants")]
pub fn take_reserve_failure() -> Option<(u64, i32)> {
    imp::take_reserve_failure()
}

/// No reservation failure is ever armed in a normal build.
#[cfg(not(feature = "mutants"))]
#[inline(always)]
pub fn take_reserve_failure() -> Option<(u64, i32)> {
    None
}

/// Whether this thread is unwinding out of a simulated death (never, in a normal build).
#[cfg(not(feature = "mutants"))]
#[inline(always)]
pub fn dying() -> bool {
    false
}

/// Passes the store crash point: called after every store to a heap file (D2).
#[cfg(feature = "mutants")]
#[inline]
pub fn stored() {
    imp::stored()
}

/// Passes the store crash point (nothing in a normal build).
#[cfg(not(feature = "mutants"))]
#[inline(always)]
pub fn stored() {}

/// Marks a crash point in the real code.
#[cfg(feature = "mutants")]
#[inline]
pub fn hit(point: CrashPoint) {
    imp::hit(point)
}

/// Marks a crash point in the real code (nothing in a normal build).
#[cfg(not(feature = "mutants"))]
#[inline(always)]
pub fn hit(_point: CrashPoint) {}
