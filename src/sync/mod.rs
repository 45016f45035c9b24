//! The process-shared lock: a robust futex lock of our own in the mapped file.
//!
//! * [`word`]: the 32-bit lock word (owner id + WAITERS).
//! * [`platform`]: the trait the protocol runs on; real, loom and shuttle platforms
//!   implement it.
//! * [`protocol`]: lock, unlock and takeover, written once.
//! * [`futex`]: the Linux platform over a mapping.
//! * [`slots`]: the attachment table and the OFD-lock liveness probe.
//!
//! Threads of one process: each `Heap` handle claims its own slot, and the word names the
//! handle. Threads sharing a handle are ordered by this same lock (a CAS from 0 admits one
//! of them; the others wait, and never take over from their own live process). See
//! docs/lock-protocol.md and docs/decisions.md.

pub mod futex;
pub mod platform;
pub mod protocol;
pub mod slots;
pub mod word;

#[cfg(test)]
mod spin_tests;

pub use futex::{Futex, Table, Waiting, DEFAULT_PROBE_INTERVAL};
pub use platform::{CrashPoint, Platform, WaitOutcome};
pub use protocol::{lock, unlock, Acquired};
pub use slots::{SlotRecord, Slots};
pub use word::{OwnerId, WAITERS};

/// Errors of the lock layer.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Every slot of the attachment table is held by a live attachment.
    #[error("all {slots} attachment slots are in use by live processes")]
    NoFreeSlot {
        /// Size of the table.
        slots: u32,
    },
    /// A system call on the file failed.
    #[error("lock system call failed: {0}")]
    Io(#[from] std::io::Error),
}
