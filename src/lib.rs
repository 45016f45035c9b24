//! mapheap: a compact allocator inside a memory-mapped file, addressed by offsets, guarded
//! by a process-shared robust lock of its own.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod fault;
pub mod mutant;
pub mod sync;
