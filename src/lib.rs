//! mapheap: a compact allocator inside a memory-mapped file, addressed by offsets, guarded
//! by a process-shared robust lock of its own.
//!
//! Several processes open the same file; each maps it wherever its address space allows.
//! Everything stored in the heap refers to other things by [`Offset`], never by address,
//! so the heap means the same at every address. [`Heap::lock`] takes the heap's own futex
//! lock, which survives its owner's death: the next locker takes it over, repairs the heap
//! from the block chain and the intent record, and says so ([`HeapGuard::recovered`]).
//!
//! ```
//! use bytemuck::{Pod, Zeroable};
//! use mapheap::{Heap, Offset};
//!
//! #[repr(C)]
//! #[derive(Clone, Copy, Pod, Zeroable)]
//! struct Node {
//!     value: u64,
//!     next: Offset<Node>,
//! }
//!
//! # fn main() -> mapheap::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("list.heap");
//! {
//!     let heap = Heap::create(&path, 1 << 20)?;
//!     let mut g = heap.lock()?;
//!     let mut head = Offset::<Node>::NULL;
//!     for value in 1..=3 {
//!         head = g.alloc(Node { value, next: head })?;
//!     }
//!     g.set_root("list", head)?;
//! } // the guard unlocks, the handle detaches
//!
//! // Later, in this or any other process, at whatever address the file maps to:
//! let heap = Heap::open(&path)?;
//! let g = heap.lock()?;
//! let mut at = g.root::<Node>("list")?.expect("root exists");
//! let mut sum = 0;
//! while !at.is_null() {
//!     let node = g.get(at)?; // checked: in bounds, aligned, an allocated block
//!     sum += node.value;
//!     at = node.next;
//! }
//! assert_eq!(sum, 6);
//! assert!(g.check().is_clean());
//! # Ok(())
//! # }
//! ```
//!
//! Modules, from the bottom up: [`format`] (the bytes on disk), [`sync`] (the lock
//! protocol and its platforms), [`alloc`] (TLSF over the mapped arena), [`map`] (files and
//! mappings), [`heap`] (the public handle and guard), [`check`] (the invariant walker).
//! [`mutant`] and [`fault`] hold the seeded bugs and crash points the tests use; both are
//! inert in a normal build (`watchdog`, the tests' bound on blocking, exists only in test
//! builds). docs/invariants.md says which code keeps which invariant and
//! which test proves each check can fail.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod alloc;
pub mod bench;
pub mod check;
pub mod error;
pub mod fault;
pub mod format;
pub mod heap;
#[cfg(test)]
mod limits_tests;
pub mod map;
pub mod mutant;
pub mod offset;
pub mod progress;
pub mod size;
pub mod stress;
pub mod sync;
pub mod txn;
#[cfg(feature = "mutants")]
pub mod watchdog;

pub use error::{Error, Result};
pub use heap::{CreateOptions, Heap, HeapGuard, OpenOptions};
pub use offset::Offset;
