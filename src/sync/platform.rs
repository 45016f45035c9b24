//! The platform trait: everything the lock protocol needs from the world.
//!
//! Invariant: the protocol in `protocol.rs` touches the lock word only through a
//! [`Platform`], so the same code runs on a real mapping (`futex.rs`), under loom and under
//! shuttle (models/). A platform must emulate a futex faithfully: `wait` compares the word
//! with `expected` and goes to sleep atomically with respect to `wake` (the kernel does this
//! under its hash-bucket lock; a model does it under its queue mutex), so that a lost wake-up
//! shows up as a deadlock, not as a hidden delay.

use std::sync::atomic::Ordering;

pub use crate::fault::CrashPoint;

use super::word::OwnerId;

/// Why `wait` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Woken, or the word no longer held `expected`, or a spurious return. The caller must
    /// look at the word again; it owns nothing.
    Woken,
    /// The probe interval elapsed (a model returns this only once time may have passed,
    /// e.g. after a death). The caller should probe the owner's liveness.
    TimedOut,
}

/// Atomic access to one lock word, a futex on it, and a liveness oracle for owners.
pub trait Platform {
    /// Atomic load of the word.
    fn load(&self, order: Ordering) -> u32;
    /// Atomic compare-and-exchange of the word (strong).
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32>;
    /// Atomic swap of the word.
    fn swap(&self, new: u32, order: Ordering) -> u32;
    /// Atomic store. The correct protocol never stores to the word (a store racing an RMW
    /// hides lost updates); only the `TakeoverByStore` mutant does.
    fn store(&self, new: u32, order: Ordering);
    /// Sleeps while the word equals `expected`, for at most one probe interval. May return
    /// spuriously.
    fn wait(&self, expected: u32) -> WaitOutcome;
    /// Wakes up to `n` sleepers.
    fn wake(&self, n: u32);
    /// Whether the attachment `owner` is still alive. `false` must be certain (the owner can
    /// never again touch the word); `true` may be wrong for a while.
    fn owner_alive(&self, owner: OwnerId) -> bool;
    /// A point at which a test may make this thread or process die.
    fn crash_point(&self, _at: CrashPoint) {}
    /// How many times a locker that found the word held looks at it again before it
    /// sleeps (adaptive spinning, L7). 0: it never spins. (No default: each platform,
    /// the real one, the models' and the scripted one of the spin tests, states its own.)
    fn spin_limit(&self) -> u32;
    /// The pause between two looks of a spinning locker (a CPU hint on a real platform; a
    /// model yields to its other threads).
    fn spin(&self);
}
