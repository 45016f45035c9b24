//! The Linux platform: std atomics on the mapped word and `SYS_futex`.
//!
//! Invariant: waits and wakes never carry FUTEX_PRIVATE_FLAG, because a private futex is
//! keyed by the address space and never wakes another process; a shared futex on a
//! `MAP_SHARED` file mapping is keyed by (inode, offset), so processes that map the file at
//! different addresses meet on the same queue. Waits use an absolute CLOCK_MONOTONIC deadline
//! (FUTEX_WAIT_BITSET), so retrying after EINTR never extends the probe interval.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::platform::{CrashPoint, Platform, WaitOutcome};
use super::slots::Slots;
use super::word::OwnerId;
use crate::mutant::{active, Mutant};

const FUTEX_WAIT_BITSET: libc::c_int = 9;
const FUTEX_WAKE: libc::c_int = 1;
const FUTEX_PRIVATE_FLAG: libc::c_int = 128;
const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;

/// How long a waiter sleeps before it probes the owner's liveness, by default.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// Looks at a held word before sleeping (L7): about as long as a short critical section
/// (a few hundred nanoseconds of `pause`), far below a futex sleep and wake.
pub const SPIN_LIMIT: u32 = 100;

/// What a waiter needs besides the word: the attachment table, to probe an owner, and how
/// long to sleep before probing. Only the slow path asks for either, so a [`Futex`] holds
/// this by reference and the lock's fast path builds nothing but two pointers (a `Heap`
/// answers from its own fields; [`Table`] holds the two for any other caller).
pub trait Waiting {
    /// The attachment table.
    fn slots(&self) -> Slots<'_>;
    /// How long a waiter sleeps before it probes the owner's liveness.
    fn probe(&self) -> Duration;
}

/// An attachment table and a probe interval, held together (for callers without a `Heap`:
/// the lock's own tests and benches).
#[derive(Clone, Copy)]
pub struct Table<'a> {
    /// The attachment table.
    pub slots: Slots<'a>,
    /// The probe interval.
    pub probe: Duration,
}

impl Waiting for Table<'_> {
    fn slots(&self) -> Slots<'_> {
        self.slots
    }

    fn probe(&self) -> Duration {
        self.probe
    }
}

/// The lock word of a mapping, and what its waiters need (see [`Waiting`]).
#[derive(Clone, Copy)]
pub struct Futex<'a> {
    word: &'a AtomicU32,
    waiting: &'a dyn Waiting,
}

impl<'a> Futex<'a> {
    /// The platform for `word` (inside a shared file mapping), whose waiters probe through
    /// `waiting`.
    #[inline]
    pub fn new(word: &'a AtomicU32, waiting: &'a dyn Waiting) -> Futex<'a> {
        Futex { word, waiting }
    }

    fn op(base: libc::c_int) -> libc::c_int {
        if active(Mutant::FutexPrivate) {
            base | FUTEX_PRIVATE_FLAG
        } else {
            base
        }
    }
}

fn deadline_after(d: Duration) -> libc::timespec {
    // SAFETY: all-zero is a valid timespec; clock_gettime only writes through the valid
    // pointer we pass.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `now` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let nanos = now.tv_nsec as u64 + u64::from(d.subsec_nanos());
    libc::timespec {
        tv_sec: now.tv_sec + d.as_secs() as libc::time_t + (nanos / 1_000_000_000) as libc::time_t,
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    }
}

impl Platform for Futex<'_> {
    #[inline]
    fn load(&self, order: Ordering) -> u32 {
        self.word.load(order)
    }

    #[inline]
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        self.word.compare_exchange(current, new, success, failure)
    }

    #[inline]
    fn swap(&self, new: u32, order: Ordering) -> u32 {
        self.word.swap(new, order)
    }

    fn store(&self, new: u32, order: Ordering) {
        self.word.store(new, order)
    }

    fn wait(&self, expected: u32) -> WaitOutcome {
        let deadline = deadline_after(self.waiting.probe());
        loop {
            // SAFETY: the word is a live, aligned u32 in a shared mapping that outlives this
            // call; the kernel reads it and the deadline, and writes nothing.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.word.as_ptr(),
                    Self::op(FUTEX_WAIT_BITSET),
                    expected,
                    &deadline as *const libc::timespec,
                    std::ptr::null::<u32>(),
                    FUTEX_BITSET_MATCH_ANY,
                )
            };
            if r == 0 {
                return WaitOutcome::Woken;
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ETIMEDOUT) => return WaitOutcome::TimedOut,
                // EAGAIN: the word already moved on. Anything else: look again.
                _ => return WaitOutcome::Woken,
            }
        }
    }

    fn wake(&self, n: u32) {
        // SAFETY: as in `wait`; FUTEX_WAKE only reads the address as a key.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word.as_ptr(),
                Self::op(FUTEX_WAKE),
                n.min(i32::MAX as u32),
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }

    fn owner_alive(&self, owner: OwnerId) -> bool {
        self.waiting.slots().alive(owner)
    }

    #[inline]
    fn crash_point(&self, at: CrashPoint) {
        crate::fault::hit(at)
    }

    #[inline]
    fn spin_limit(&self) -> u32 {
        SPIN_LIMIT
    }

    #[inline]
    fn spin(&self) {
        std::hint::spin_loop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stress::procs::mono_ns;

    fn ns(t: libc::timespec) -> u64 {
        t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
    }

    /// The wait's absolute deadline is "now + d" on CLOCK_MONOTONIC, exactly, whole seconds
    /// and nanosecond carries included: a deadline in the past would turn every wait into
    /// a busy probe loop, one too far would delay takeovers.
    #[test]
    fn deadline_is_now_plus_the_interval() {
        for d in [
            Duration::from_millis(10),
            Duration::from_nanos(999_999_999),
            Duration::from_millis(1500),
            Duration::from_secs(3),
        ] {
            for _ in 0..100 {
                let t0 = mono_ns();
                let dl = deadline_after(d);
                let t1 = mono_ns();
                assert!(dl.tv_nsec >= 0 && dl.tv_nsec < 1_000_000_000, "{d:?}");
                let d = d.as_nanos() as u64;
                assert!(
                    t0 + d <= ns(dl) && ns(dl) <= t1 + d,
                    "{d} ns: {t0} {} {t1}",
                    ns(dl)
                );
            }
        }
    }
}
