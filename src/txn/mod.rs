//! Transactions: every `HeapGuard` is one, kept crash-atomic by an undo log in the file.
//!
//! The log is the payload of a block the heap owns (`State::log.block`); entries fill its
//! first `log.len` bytes. Only the holder of the heap's lock writes it (T1). Entries:
//!
//! ```text
//! word 0: kind (bits 0..8) | data length in bytes (bits 32..64)
//! word 1: target (a file offset)
//! data:   the before-image, padded to 8 bytes (IMAGE only)
//! ```
//!
//! * IMAGE: the bytes `[target, target + length)` as they were before this transaction
//!   first wrote them: a range of a block that existed before it, or a root entry.
//! * ALLOC: the block whose payload is at `target` was allocated by this transaction.
//! * FREE: the block whose payload is at `target` is to be freed at commit.
//! * PAD: filler to the end of a segment; the next entry starts the next segment.
//!
//! When the log's own block is full, the transaction allocates an extension segment
//! (listed in `State::log.ext`, at least twice the last segment), so a transaction is
//! bounded by the heap's free space and the table's 8 extensions, not by the log's
//! capacity alone.
//!
//! Invariants (docs/invariants.md):
//! * T1 an entry is written whole before the store of `log.len` that takes it in (the
//!   entry's commit), and the data it guards is written only after that store.
//! * T2 one 8-byte store of `log.len` with [`LOG_COMMITTED`] makes a transaction final;
//!   before it a death rolls the transaction back, after it a death finishes it.
//! * T3 rollback restores images newest-first, lowering `log.len` past each entry only
//!   after its undo is done, and frees the transaction's blocks; every step is idempotent,
//!   so a recoverer that dies half-way leaves the next owner the rest of the same rollback.
//! * T4 deferred frees run only after the commit store, each at most once (`log.done`
//!   counts them; a free found done already is skipped), and `log.len` is cleared last.
//! * T5 no write through the guard reaches a block that existed before the transaction
//!   without an IMAGE entry covering it (or fails with [`TxnError::LogFull`]).

mod entry;
mod recover;
mod small;
mod tx;
mod undo;

#[cfg(test)]
mod tests;

pub use entry::{
    locate, parse, parse_in, roots_range, segments, Entry, EntryKind, LogFault, Segment,
    ENTRY_HEADER,
};
pub use recover::{check_images, entries_to_check, pending, recover, Undone};
pub use tx::Tx;
pub use undo::{commit, rollback, Undo};

use crate::format::HEADER_SIZE;
pub use crate::format::{LogState, LOG_COMMITTED, LOG_LEN_MASK};

/// Errors of the transaction layer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxnError {
    /// The undo log has no room for what a write must save first.
    #[error(
        "the undo log is full: {needed} more bytes needed, {free} of {cap} free \
         (nothing was written; abort the guard, or create the heap with a larger log_capacity)"
    )]
    LogFull {
        /// Bytes the entry needs.
        needed: u64,
        /// Bytes left.
        free: u64,
        /// The log's capacity.
        cap: u64,
    },
    /// The log in the file is not a log this version writes.
    #[error("undo log corrupted at byte {pos}: {}", fault.what())]
    BadLog {
        /// Byte of the log where it went wrong.
        pos: u64,
        /// What was wrong.
        fault: LogFault,
    },
    /// This guard's commit or rollback failed half-way; the log is left to the next
    /// guard's recovery, and this guard can change nothing more.
    #[error("this guard's transaction could not end (an earlier error said why); take the lock again to recover")]
    Ended,
    /// The allocator refused during an undo or a deferred free.
    #[error(transparent)]
    Alloc(#[from] crate::alloc::AllocError),
}

/// The default log capacity for a heap of `size` bytes: an eighth of the arena, at least
/// 256 bytes and at most 1 MiB (docs/transactions.md).
pub fn default_log_capacity(size: u64) -> u64 {
    (size.saturating_sub(HEADER_SIZE) / 8).clamp(MIN_LOG, DEFAULT_MAX_LOG) & !7
}

/// The smallest log a heap may have: room for a few entries (an allocation takes 16
/// bytes of log, a write of `n` bytes `16 + n`).
pub const MIN_LOG: u64 = 256;
/// The largest log the default gives.
pub const DEFAULT_MAX_LOG: u64 = 1 << 20;
