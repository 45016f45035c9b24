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
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    static POINT: AtomicU32 = AtomicU32::new(0);
    static COUNTDOWN: AtomicU32 = AtomicU32::new(0);
    /// Set once any point was armed: until then `hit` is one load of a global.
    static EVER: AtomicBool = AtomicBool::new(false);
    thread_local! {
        static UNWIND_AT: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((0, 0)) };
    }

    pub fn arm_unwind(point: Option<CrashPoint>, nth: u32) {
        EVER.store(true, Ordering::Relaxed);
        UNWIND_AT.with(|c| c.set((point.map_or(0, |p| p as u32), nth.max(1))));
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
        let (at, left) = UNWIND_AT.with(|c| c.get());
        if at == point as u32 {
            if left == 1 {
                UNWIND_AT.with(|c| c.set((0, 0)));
                std::panic::resume_unwind(Box::new(super::Crashed(point)));
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

/// The panic payload of a crash simulated by [`arm_unwind`].
#[derive(Debug)]
pub struct Crashed(pub CrashPoint);

/// Makes this thread unwind with a [`Crashed`] payload the `nth` time it passes `point`
/// (`None` disarms). Unwinding leaves the shared memory exactly as a SIGKILL at that
/// instruction would; the guard being dropped marks the heap for repair. For in-process
/// tests of the repair; `resume_unwind` skips the panic hook, so nothing is printed.
#[cfg(feature = "mutants")]
pub fn arm_unwind(point: Option<CrashPoint>, nth: u32) {
    imp::arm_unwind(point, nth)
}

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
