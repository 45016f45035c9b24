//! The heap layer's error: every way a public call can fail, each with a clear message.
//! Lower layers keep their own enums (`FormatError`, `LockError`, `AllocError`) and are
//! wrapped here unchanged, so callers can match on the cause.

use std::path::PathBuf;

use crate::alloc::AllocError;
use crate::format::FormatError;
use crate::sync::LockError;
use crate::txn::TxnError;

/// Errors of `Heap` and `HeapGuard`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on the heap file failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid heap image.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: FormatError,
    },
    /// The lock layer failed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The allocator refused.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// The transaction layer refused (a full undo log, or a damaged one).
    #[error(transparent)]
    Txn(TxnError),
    /// `create` found a file at the path and was not asked to replace it.
    #[error("{0} already exists (pass overwrite to replace it)")]
    Exists(PathBuf),
    /// The file system has no room for the heap's new size.
    #[error("no space to grow {path} to {size} bytes: {source}")]
    NoSpace {
        /// The file.
        path: PathBuf,
        /// Size asked for.
        size: u64,
        /// The cause (ENOSPC, EFBIG, ...).
        source: std::io::Error,
    },
    /// A size outside what a heap can have.
    #[error("invalid heap size {size}: {why}")]
    BadSize {
        /// Size asked for.
        size: u64,
        /// Why it is refused.
        why: &'static str,
    },
    /// The handle was made by another process (this one is a fork child).
    #[error("this heap handle was opened by another process (inherited across fork); open the heap again in this process")]
    Forked,
    /// An offset that cannot be resolved.
    #[error("offset {offset:#x} cannot be resolved as {ty}: {why}")]
    BadOffset {
        /// The raw offset.
        offset: u64,
        /// The type it was resolved as.
        ty: &'static str,
        /// Why.
        why: String,
    },
    /// A root name that is empty, too long or has a NUL.
    #[error("invalid root name {0:?} (1 to 32 bytes, no NUL)")]
    RootName(String),
    /// A root exists with another type.
    #[error("root {name:?} holds a {stored}, not a {wanted}")]
    RootType {
        /// The root.
        name: String,
        /// Fingerprint stored.
        stored: String,
        /// Fingerprint asked for.
        wanted: String,
    },
    /// The root table is full.
    #[error("all root slots are in use")]
    RootTableFull,
    /// An entry of the root table is damaged (R2): no lookup answers until it is repaired.
    #[error("root table entry {index} is damaged: {} (run mapheap check)", fault.what())]
    RootTable {
        /// The entry.
        index: usize,
        /// What is wrong.
        fault: crate::check::RootFault,
    },
    /// Repair after an owner's death failed: the heap is corrupt.
    #[error("repair after the lock owner's death failed: {0}")]
    Repair(AllocError),
}

/// Result of the heap layer.
pub type Result<T> = std::result::Result<T, Error>;

impl From<TxnError> for Error {
    /// The allocator's refusals keep their own variant, so that `Error::Alloc(OutOfSpace)`
    /// means the same inside a transaction as it always did.
    fn from(e: TxnError) -> Error {
        match e {
            TxnError::Alloc(a) => Error::Alloc(a),
            other => Error::Txn(other),
        }
    }
}
