//! mapheap: a compact allocator inside a memory-mapped file, addressed by offsets, guarded
//! by a process-shared robust lock of its own.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod alloc;
pub mod check;
pub mod error;
pub mod fault;
pub mod format;
pub mod heap;
pub mod map;
pub mod mutant;
pub mod offset;
pub mod sync;
pub use error::{Error, Result};
pub use heap::{CreateOptions, Heap, HeapGuard, OpenOptions};
pub use offset::Offset;
pub mod bench;
pub mod stress;
