//! The lock protocol, written once for every platform.
//!
//! Invariants kept here (ids from docs/invariants.md):
//! * L1 mutual exclusion: the word moves from `0` or from a dead owner's exact word to
//!   `me` only by a successful CAS, so at most one live attachment owns it.
//! * L2 no lost wake-up: whoever sleeps on the word first makes sure WAITERS is set in the
//!   value it sleeps on; unlock clears the word with one swap and, if that swap saw WAITERS,
//!   wakes one sleeper afterwards; a sleeper that was woken takes the lock with WAITERS set
//!   (Drepper's rule), because it cannot know whether others still sleep.
//! * L3 ordering: the acquiring CAS is `Acquire` and the releasing swap `Release`, so the
//!   protected data written by one owner is visible to the next.
//! * L7 bounded spinning: a locker that finds the word held looks at it again at most
//!   `Platform::spin_limit` times before it announces itself and sleeps; it never spins
//!   after a sleep, so a dead owner costs a spinner one bounded spin and then the usual
//!   time-out and probe.
//! * L4 death: a waiter whose wait timed out asks the platform whether the owner named by
//!   the word it saw is alive; if not, it takes the lock over by CAS from that exact word,
//!   keeping WAITERS, so exactly one waiter recovers and the others keep sleeping safely.
//! * L6 progress: after every return from `wait` (woken, time-out, or a word that had
//!   already moved on) the waiter reads the word again before it decides anything, so it
//!   never sleeps on a value the word no longer has and takes a freed lock.

use std::sync::atomic::Ordering::{self, Acquire, Relaxed, Release};

use super::platform::{CrashPoint, Platform, WaitOutcome};
use super::word::{OwnerId, WAITERS};
use crate::mutant::{active, Mutant};

/// How the lock was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquired {
    /// From a live owner or a free word: the protected data is consistent.
    Clean,
    /// Taken over from `dead`, who died holding the lock: the protected data may be
    /// half-changed and must be repaired before use.
    Recovered {
        /// The owner that died.
        dead: OwnerId,
    },
}

impl Acquired {
    /// Whether the previous owner died holding the lock.
    pub fn recovered(self) -> bool {
        matches!(self, Acquired::Recovered { .. })
    }
}

#[inline(always)]
fn acquire_order() -> Ordering {
    if active(Mutant::RelaxedAcquire) {
        Relaxed
    } else {
        Acquire
    }
}

/// Takes the lock for `me`, sleeping while it is held, taking it over if its owner died.
#[inline]
pub fn lock<P: Platform>(p: &P, me: OwnerId) -> Acquired {
    match p.compare_exchange(0, me.raw(), acquire_order(), Relaxed) {
        Ok(_) => {
            p.crash_point(CrashPoint::LockAcquired);
            Acquired::Clean
        }
        Err(seen) => lock_slow(p, me, seen),
    }
}

#[cold]
fn lock_slow<P: Platform>(p: &P, me: OwnerId, mut c: u32) -> Acquired {
    // Adaptive spinning (L7): before sleeping at all, look at a held word a bounded number
    // of times; a holder about to unlock saves a sleep and a wake. The bound is what keeps
    // a dead owner's word (which never changes) from holding a spinner for ever: past it,
    // the spinner sleeps, times out and probes, as every waiter does (L4). A word found free
    // is taken below exactly as the fast path takes it.
    let mut spins = if active(Mutant::UnboundedSpin) {
        u32::MAX
    } else {
        p.spin_limit()
    };
    while spins > 0 && c & !WAITERS != 0 {
        p.spin();
        c = p.load(Relaxed);
        spins -= 1;
    }
    // Once we have slept, others may be asleep too: take the lock with WAITERS set.
    let mut slept = false;
    loop {
        if c & !WAITERS == 0 {
            // A free word. A bare WAITERS bit naming no owner is never written by this
            // protocol (unlock swaps in 0), so it comes from a corrupt file: it counts as
            // free too (and keeps the bit), or every locker would sleep on it forever.
            let new = if (slept || c != 0) && !active(Mutant::WokenTakesWithoutWaiters) {
                me.raw() | WAITERS
            } else {
                me.raw()
            };
            match p.compare_exchange(c, new, acquire_order(), Relaxed) {
                Ok(_) => {
                    p.crash_point(CrashPoint::LockAcquired);
                    return Acquired::Clean;
                }
                Err(seen) => {
                    c = seen;
                    continue;
                }
            }
        }
        if c & WAITERS == 0 {
            // Announce ourselves before sleeping; sleep on the value that carries the bit.
            match p.compare_exchange(c, c | WAITERS, Relaxed, Relaxed) {
                Ok(_) => c |= WAITERS,
                Err(seen) => {
                    c = seen;
                    continue;
                }
            }
        }
        match p.wait(c) {
            WaitOutcome::Woken => {
                if active(Mutant::WaitMeansOwnership) {
                    return Acquired::Clean;
                }
            }
            WaitOutcome::TimedOut => {
                if let Some(taken) = try_takeover(p, me, c) {
                    return taken;
                }
            }
        }
        slept = true;
        if !active(Mutant::StaleWordAfterWait) {
            c = p.load(Relaxed);
        }
    }
}

/// After a timed-out wait on `seen`: if the owner it names is dead, take the lock over by
/// CAS from exactly `seen`. `None` if the owner lives or the word moved on.
fn try_takeover<P: Platform>(p: &P, me: OwnerId, seen: u32) -> Option<Acquired> {
    let dead = OwnerId::from_word(seen)?;
    if dead == me || p.owner_alive(dead) {
        return None;
    }
    // Others may be asleep on the dead owner's word: keep WAITERS so our unlock wakes one.
    let new = if active(Mutant::RecoveryDropsWaiters) {
        me.raw()
    } else {
        me.raw() | WAITERS
    };
    if active(Mutant::TakeoverByStore) {
        p.store(new, Relaxed);
        // A store gives no ordering either; pair it with a fence so only the lost CAS is
        // the seeded bug.
        let _ = p.load(acquire_order());
    } else if p
        .compare_exchange(seen, new, acquire_order(), Relaxed)
        .is_err()
    {
        return None;
    }
    p.crash_point(CrashPoint::TakeoverDone);
    Some(Acquired::Recovered { dead })
}

/// Releases the lock held by `me` and wakes one sleeper if any may sleep.
#[inline]
pub fn unlock<P: Platform>(p: &P, me: OwnerId) {
    let release = if active(Mutant::RelaxedRelease) {
        Relaxed
    } else {
        Release
    };
    if active(Mutant::WakeBeforeRelease) {
        let c = p.load(Relaxed);
        if c & WAITERS != 0 {
            p.wake(1);
        }
        p.swap(0, release);
        return;
    }
    let prev = p.swap(0, release);
    debug_assert_eq!(
        OwnerId::from_word(prev),
        Some(me),
        "unlock by an attachment that does not own the lock"
    );
    p.crash_point(CrashPoint::UnlockReleased);
    if prev & WAITERS != 0 && !active(Mutant::UnlockWithoutWake) {
        p.wake(1);
    }
}
