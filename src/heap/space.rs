//! Allocation (logged, so a rollback frees the block), free (deferred to commit), and
//! growth (not undone: it changes no user data, and the new space is free).
//!
//! Invariant H5: an allocation grows the heap only when `OpenOptions::grow_limit` allows
//! it, never past that limit (page-rounded down), and only by enough that the request is
//! then certain to fit: otherwise it fails with `OutOfSpace` and the heap is unchanged.

use bytemuck::Pod;

use super::guard::HeapGuard;
use super::io_err;
use crate::alloc::tlsf::{class_min, mapping_search};
use crate::alloc::AllocError;
use crate::error::{Error, Result};
use crate::format::{self, ALIGN, FL_COUNT};
use crate::map::{self, Mapping};
use crate::mutant::{active, Mutant};
use crate::offset::Offset;

/// The free block size `Arena::alloc` searches for, for `len` bytes aligned to `align`
/// (`None` if no heap could hold it).
pub fn search_size(len: u64, align: u64) -> Option<u64> {
    crate::alloc::block_sizes(len, align.max(ALIGN)).map(|(_, search)| search)
}

/// The smallest free block that TLSF's search is certain to find for `len` bytes aligned
/// to `align`: the least size of the first class whose every block fits the request.
pub fn block_for(len: u64, align: u64) -> Option<u64> {
    let search = search_size(len, align)?;
    if active(Mutant::GrowTooLittle) {
        return Some(search);
    }
    let (fl, sl) = mapping_search(search);
    (fl < FL_COUNT).then(|| class_min(fl, sl))
}

impl HeapGuard<'_> {
    /// Allocates `len` bytes aligned to `align` (a power of two up to the page size), as
    /// part of this transaction: a rollback frees it. With `OpenOptions::grow_limit`, a
    /// request that finds no room grows the heap first.
    pub fn alloc_bytes(&mut self, len: u64, align: u64) -> Result<Offset<u8>> {
        match self.tx_alloc(len, align) {
            Ok(off) => Ok(Offset::from_raw(off)),
            Err(e) => self.alloc_refused(e, len, align),
        }
    }

    /// [`HeapGuard::alloc_bytes`] after a refusal: with a grow limit, an allocation that
    /// found no room grows the heap and tries again (out of line, as every refusal is).
    #[cold]
    fn alloc_refused(&mut self, e: Error, len: u64, align: u64) -> Result<Offset<u8>> {
        match e {
            Error::Alloc(AllocError::OutOfSpace { .. }) if self.heap.grow_limit.is_some() => {
                self.grow_for(len, align)?;
                Ok(Offset::from_raw(self.tx_alloc(len, align)?))
            }
            e => Err(e),
        }
    }

    fn tx_alloc(&mut self, len: u64, align: u64) -> Result<u64> {
        let (mut a, tx) = self.tx_parts();
        Ok(tx.alloc(&mut a, len, align)?)
    }

    /// Grows toward `grow_limit` so that a request of `len` bytes aligned to `align` is
    /// certain to fit in the new space alone: to twice the capacity, or further if the
    /// request needs it; not at all if the limit cannot give it that much.
    #[cold]
    fn grow_for(&mut self, len: u64, align: u64) -> Result<()> {
        let page = u64::from(self.heap.page_size);
        let limit = if active(Mutant::GrowPastLimit) {
            u64::MAX / page * page
        } else {
            self.heap.grow_limit.unwrap_or(0) / page * page
        };
        let cap = self.capacity();
        let out = || {
            Error::from(AllocError::OutOfSpace {
                requested: len,
                align,
                capacity: cap,
            })
        };
        // The new space becomes one free block (merged with a free last block, which is
        // not counted on).
        let needed = block_for(len, align)
            .and_then(|b| cap.checked_add(b))
            .and_then(|n| n.checked_next_multiple_of(page))
            .ok_or_else(out)?;
        if needed > limit.min(format::MAX_CAPACITY) {
            return Err(out());
        }
        self.grow(needed.max(cap.saturating_mul(2).min(limit)))
    }

    /// Allocates room for a `T` and moves `value` into it.
    pub fn alloc<T: Pod>(&mut self, value: T) -> Result<Offset<T>> {
        let off = self
            .alloc_bytes(size_of::<T>() as u64, align_of::<T>() as u64)?
            .cast::<T>();
        // A block this guard allocated needs no image: this is what `write` would do,
        // without resolving again what was just allocated.
        // SAFETY: `alloc_bytes` just returned the payload of a block this guard allocated:
        // at least `size_of::<T>()` bytes, aligned to `align_of::<T>()`, inside the arena,
        // which the mapping covers (H3; a growth it made remapped); `&mut self` makes this
        // the only access, and T is Pod.
        unsafe { self.base().add(off.raw() as usize).cast::<T>().write(value) };
        Ok(off)
    }

    /// Frees the block at `off` when the transaction commits (a rollback keeps it). A null,
    /// stale or foreign offset is an error now; until the commit the block no longer
    /// resolves.
    pub fn free<T>(&mut self, off: Offset<T>) -> Result<()> {
        let (mut a, tx) = self.tx_parts();
        Ok(tx.free(&mut a, off.raw())?)
    }

    /// Usable payload bytes of the block at `off` (at least what was asked for).
    pub fn usable_size<T>(&self, off: Offset<T>) -> Result<u64> {
        Ok(self.arena().usable_size(off.raw())?)
    }

    /// Grows the heap to `new_capacity` bytes (rounded up to the page size). Other
    /// attached processes remap when they next take the lock. Growth is not undone by a
    /// rollback (it changes no data; the new space is free).
    pub fn grow(&mut self, new_capacity: u64) -> Result<()> {
        let page = u64::from(self.heap.page_size);
        let cap = self.capacity();
        let new = new_capacity
            .checked_next_multiple_of(page)
            .unwrap_or(u64::MAX);
        if new <= cap {
            return Ok(());
        }
        if new > format::MAX_CAPACITY {
            return Err(Error::BadSize {
                size: new_capacity,
                why: "larger than the 64 TiB a heap can address",
            });
        }
        // Refusal before damage: the whole growth is planned before the file is extended.
        self.arena().check_growth(new)?;
        let path = &self.heap.path;
        let reserved = if active(Mutant::GrowWithoutReserve) {
            self.heap.file.set_len(new)
        } else {
            map::reserve(&self.heap.file, new)
        };
        reserved.map_err(|source| Error::NoSpace {
            path: path.clone(),
            size: new,
            source,
        })?;
        crate::fault::hit(crate::fault::CrashPoint::GrowExtended);
        self.local.map = Mapping::new(&self.heap.file, new, None).map_err(io_err("remap", path))?;
        self.arena_mut().extend(new)?;
        self.local.generation = self.arena().state().generation;
        Ok(())
    }

    /// Grows the heap by at least `bytes`.
    pub fn grow_by(&mut self, bytes: u64) -> Result<()> {
        let cap = self.capacity();
        self.grow(cap.saturating_add(bytes))
    }

    /// Current capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.arena().state().capacity
    }
}
