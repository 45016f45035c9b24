//! `HeapGuard`: the lock held, the heap usable.
//!
//! Invariant G1: every Rust reference into the mapping that a guard hands out borrows the
//! guard, so it dies before the lock is released and before any remap (which needs
//! `&mut self` or a new guard). Invariant G2 (offset resolution): an `Offset<T>` resolves only
//! if it is non-null, aligned for `T`, the payload start of an allocated block inside the
//! arena, and that block's payload holds `size_of::<T>()` bytes.

use bytemuck::Pod;

use super::{format_err, io_err, Heap, Local, FIRST_BASE};
use crate::alloc::{AllocError, Arena, RepairReport};
use crate::check::{self, Report};
use crate::error::{Error, Result};
use crate::format::{self, FLAG_NEEDS_REPAIR, HEADER_SIZE};
use crate::map::{self, Mapping};
use crate::mutant::{active, Mutant};
use crate::offset::Offset;
use crate::sync::{self, Acquired, OwnerId};

/// What happened when the lock was taken over from a dead owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The owner that died holding the lock (`None` if the repair was asked for by a guard
    /// dropped during a panic).
    pub dead: Option<OwnerId>,
    /// What the repair did.
    pub repair: RepairReport,
}

/// Usage figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Bytes of the file in use by the heap.
    pub capacity: u64,
    /// Growth count.
    pub generation: u64,
    /// Bytes in allocated blocks, headers included.
    pub used_bytes: u64,
    /// Allocated blocks.
    pub used_blocks: u64,
    /// Bytes in free blocks.
    pub free_bytes: u64,
    /// Free blocks.
    pub free_blocks: u64,
    /// The largest free block (what one allocation can get, minus its 8-byte header).
    pub largest_free: u64,
    /// Free blocks by size: entry `i` counts sizes in `[2^i, 2^(i+1))`.
    pub free_histogram: Vec<u64>,
}

/// One block of the arena, for `dump`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BlockInfo {
    /// Offset of the header.
    pub offset: u64,
    /// Size including the header.
    pub size: u64,
    /// Whether it is free.
    pub free: bool,
}

/// The heap, locked. Dropping it releases the lock.
///
/// References into the heap borrow the guard, so none outlives the lock (invariant G1).
/// This compiles:
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let heap = mapheap::Heap::create(dir.path().join("h"), 1 << 20).unwrap();
/// let v: u64 = {
///     let mut g = heap.lock().unwrap();
///     let o = g.alloc(1u64).unwrap();
///     *g.get(o).unwrap()
/// };
/// assert_eq!(v, 1);
/// ```
///
/// and this, which would keep a reference past the unlock, does not:
///
/// ```compile_fail
/// # let dir = tempfile::tempdir().unwrap();
/// let heap = mapheap::Heap::create(dir.path().join("h"), 1 << 20).unwrap();
/// let r: &u64 = {
///     let mut g = heap.lock().unwrap();
///     let o = g.alloc(1u64).unwrap();
///     g.get(o).unwrap()
/// };
/// assert_eq!(*r, 1);
/// ```
///
/// nor does holding a shared reference across an allocation (which may move nothing, but
/// may write the free lists the reference's neighbours live in):
///
/// ```compile_fail
/// # let dir = tempfile::tempdir().unwrap();
/// let heap = mapheap::Heap::create(dir.path().join("h"), 1 << 20).unwrap();
/// let mut g = heap.lock().unwrap();
/// let o = g.alloc(1u64).unwrap();
/// let r = g.get(o).unwrap();
/// g.alloc(2u64).unwrap();
/// assert_eq!(*r, 1);
/// ```
pub struct HeapGuard<'h> {
    heap: &'h Heap,
    local: &'h mut Local,
    // Boxed: a recovery is rare, and a small guard is cheaper to return on every lock.
    recovered: Option<Box<Recovery>>,
}

impl<'h> HeapGuard<'h> {
    #[inline]
    pub(super) fn new(
        heap: &'h Heap,
        local: &'h mut Local,
        acquired: Acquired,
    ) -> Result<HeapGuard<'h>> {
        let mut g = HeapGuard {
            heap,
            local,
            recovered: None,
        };
        g.refresh()?;
        let dead = match acquired {
            Acquired::Recovered { dead } => Some(dead),
            Acquired::Clean => None,
        };
        if dead.is_some() || g.arena().state().flags & FLAG_NEEDS_REPAIR != 0 {
            g.repair(dead)?;
        }
        Ok(g)
    }

    #[cold]
    fn repair(&mut self, dead: Option<OwnerId>) -> Result<()> {
        self.arena_mut().state_mut().flags |= FLAG_NEEDS_REPAIR;
        let repair = if active(Mutant::SkipRepair) {
            RepairReport::default()
        } else {
            self.arena_mut().repair().map_err(Error::Repair)?
        };
        self.arena_mut().state_mut().flags &= !FLAG_NEEDS_REPAIR;
        self.recovered = Some(Box::new(Recovery { dead, repair }));
        Ok(())
    }

    /// Remaps if another process grew the heap; validates the capacity against the file.
    #[inline]
    fn refresh(&mut self) -> Result<()> {
        let (capacity, generation) = {
            let a = self.arena();
            (a.state().capacity, a.state().generation)
        };
        if capacity <= self.local.map.len()
            && generation == self.local.generation
            && format::validate_capacity(capacity, self.local.map.len()).is_ok()
        {
            return Ok(());
        }
        if active(Mutant::StaleMapping) {
            return Ok(());
        }
        self.remap(capacity, generation)
    }

    #[cold]
    fn remap(&mut self, capacity: u64, generation: u64) -> Result<()> {
        let path = &self.heap.path;
        let file_len = self
            .heap
            .file
            .metadata()
            .map_err(io_err("stat", path))?
            .len();
        format::validate_capacity(capacity, file_len).map_err(format_err(path))?;
        if capacity > self.local.map.len() {
            self.local.map =
                Mapping::new(&self.heap.file, file_len, None).map_err(io_err("remap", path))?;
        }
        self.local.generation = generation;
        Ok(())
    }

    pub(super) fn arena(&self) -> Arena<'_> {
        // SAFETY: we hold the heap's lock for as long as `self` lives; the mapping covers
        // the capacity (checked by `refresh`) and is page-aligned; the returned arena
        // borrows `self`, so only shared references into the arena (from `get`) can
        // coexist with it, and the arena's `&self` methods only read headers atomically.
        unsafe {
            Arena::new(
                self.local.map.base(),
                self.local.map.len(),
                u64::from(self.heap.page_size),
            )
        }
    }

    /// The arena for changes: `&mut self` guarantees no reference handed out by this guard
    /// is alive. (`arena` is for reading; only this one may be used to change the heap.)
    pub(super) fn arena_mut(&mut self) -> Arena<'_> {
        self.arena()
    }

    /// `Some` if the previous owner died holding the lock and the heap was repaired.
    pub fn recovered(&self) -> Option<&Recovery> {
        self.recovered.as_deref()
    }

    /// Where this process has the heap mapped now (changes when the heap grows).
    pub fn base_address(&self) -> usize {
        self.local.map.base() as usize
    }

    fn base(&self) -> *mut u8 {
        if active(Mutant::WrongBase) {
            return FIRST_BASE.load(std::sync::atomic::Ordering::Relaxed) as *mut u8;
        }
        self.local.map.base()
    }

    // ---- allocation -------------------------------------------------------------------

    /// Allocates `len` bytes aligned to `align` (a power of two up to the page size).
    /// With `OpenOptions::grow_limit`, a request that finds no room grows the heap first.
    pub fn alloc_bytes(&mut self, len: u64, align: u64) -> Result<Offset<u8>> {
        match self.arena_mut().alloc(len, align) {
            Ok(off) => Ok(Offset::from_raw(off)),
            Err(AllocError::OutOfSpace { .. }) if self.heap.grow_limit.is_some() => {
                self.grow_for(len, align)?;
                Ok(Offset::from_raw(self.arena_mut().alloc(len, align)?))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Grows toward `grow_limit` so that a request of `len` bytes aligned to `align` fits
    /// in the new space alone: to twice the capacity, or further if the request needs it.
    #[cold]
    fn grow_for(&mut self, len: u64, align: u64) -> Result<()> {
        let page = u64::from(self.heap.page_size);
        let limit = if active(Mutant::GrowPastLimit) {
            u64::MAX / page * page
        } else {
            self.heap.grow_limit.unwrap_or(0) / page * page
        };
        let cap = self.capacity();
        // The new space becomes one free block (merged with a free last block); TLSF finds
        // a block for a request in the class above `len + header + alignment slack`, so
        // leave room for twice that.
        let need = len
            .saturating_add(align)
            .saturating_add(format::MIN_BLOCK)
            .saturating_mul(2);
        let want = cap
            .saturating_mul(2)
            .max(cap.saturating_add(need))
            .min(limit);
        if want <= cap {
            return Err(AllocError::OutOfSpace {
                requested: len,
                align,
                capacity: cap,
            }
            .into());
        }
        self.grow(want)
    }

    /// Allocates room for a `T` and moves `value` into it.
    pub fn alloc<T: Pod>(&mut self, value: T) -> Result<Offset<T>> {
        let off = self
            .alloc_bytes(size_of::<T>() as u64, align_of::<T>() as u64)?
            .cast::<T>();
        *self.get_mut(off)? = value;
        Ok(off)
    }

    /// Frees the block at `off`. A null, stale or foreign offset is an error.
    pub fn free<T>(&mut self, off: Offset<T>) -> Result<()> {
        self.arena_mut().free(off.raw())?;
        Ok(())
    }

    /// Usable payload bytes of the block at `off` (at least what was asked for).
    pub fn usable_size<T>(&self, off: Offset<T>) -> Result<u64> {
        Ok(self.arena().usable_size(off.raw())?)
    }

    /// Grows the heap to `new_capacity` bytes (rounded up to the page size). Other
    /// attached processes remap when they next take the lock.
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

    // ---- resolution -------------------------------------------------------------------

    fn resolve(&self, raw: u64, size: u64, align: u64, ty: &'static str) -> Result<*mut u8> {
        let bad = |why: String| Error::BadOffset {
            offset: raw,
            ty,
            why,
        };
        if raw == 0 {
            return Err(bad("null".into()));
        }
        // `align` is `align_of::<T>()` or 1: a power of two, so a mask (no division).
        if raw & (align - 1) != 0 {
            return Err(bad(format!("not aligned to {align}")));
        }
        let usable = self.arena().usable_size(raw).map_err(|e| {
            bad(match e {
                AllocError::DoubleFree { .. } => "the block is free".into(),
                other => other.to_string(),
            })
        })?;
        let slack = if active(Mutant::BoundsOffByOne) { 8 } else { 0 };
        if size > usable + slack {
            return Err(bad(format!("{size} bytes do not fit the block's {usable}")));
        }
        if raw.saturating_add(size) > self.local.map.len() {
            // Unreachable while capacity <= mapping length (`refresh`); kept so that no
            // state of the file can make a resolution read outside the mapping.
            return Err(bad("beyond this process's mapping".into()));
        }
        debug_assert!(raw >= HEADER_SIZE);
        // SAFETY: usable_size proved [raw, raw + usable) is a payload inside the arena, and
        // [raw, raw + size) lies inside the mapping (checked just above).
        Ok(unsafe { self.base().add(raw as usize) })
    }

    fn resolve_as<T>(&self, off: Offset<T>) -> Result<*mut T> {
        let p = self.resolve(
            off.raw(),
            size_of::<T>() as u64,
            align_of::<T>() as u64,
            std::any::type_name::<T>(),
        )?;
        Ok(p.cast())
    }

    /// The `T` at `off`, borrowed for as long as the guard.
    pub fn get<T: Pod>(&self, off: Offset<T>) -> Result<&T> {
        let p = self.resolve_as(off)?;
        // SAFETY: `resolve` checked bounds, alignment and that the bytes are an allocated
        // payload; we hold the lock, so no other process writes them; T is Pod, so any bytes
        // are a valid T; the borrow is tied to the guard.
        Ok(unsafe { &*p })
    }

    /// The `T` at `off`, mutably, for as long as the guard.
    pub fn get_mut<T: Pod>(&mut self, off: Offset<T>) -> Result<&mut T> {
        let p = self.resolve_as(off)?;
        // SAFETY: as in `get`; `&mut self` makes this the only live reference into the heap.
        Ok(unsafe { &mut *p })
    }

    /// A copy of the `T` at `off`.
    pub fn read<T: Pod>(&self, off: Offset<T>) -> Result<T> {
        self.get(off).copied()
    }

    /// Overwrites the `T` at `off`.
    pub fn write<T: Pod>(&mut self, off: Offset<T>, value: T) -> Result<()> {
        *self.get_mut(off)? = value;
        Ok(())
    }

    /// `len` bytes of the block at `off`.
    pub fn bytes(&self, off: Offset<u8>, len: u64) -> Result<&[u8]> {
        let p = self.resolve(off.raw(), len, 1, "[u8]")?;
        // SAFETY: as in `get`, for `len` bytes.
        Ok(unsafe { std::slice::from_raw_parts(p, len as usize) })
    }

    /// `len` bytes of the block at `off`, mutably.
    pub fn bytes_mut(&mut self, off: Offset<u8>, len: u64) -> Result<&mut [u8]> {
        let p = self.resolve(off.raw(), len, 1, "[u8]")?;
        // SAFETY: as in `get_mut`, for `len` bytes.
        Ok(unsafe { std::slice::from_raw_parts_mut(p, len as usize) })
    }

    // ---- inspection -------------------------------------------------------------------

    /// Checks every invariant of the heap (see [`crate::check`]).
    pub fn check(&self) -> Report {
        check::check(&self.arena())
    }

    /// Usage figures.
    pub fn stats(&self) -> Stats {
        let a = self.arena();
        let st = a.state();
        let mut s = Stats {
            capacity: st.capacity,
            generation: st.generation,
            used_bytes: st.used_bytes,
            used_blocks: st.used_blocks,
            free_bytes: st.free_bytes,
            free_blocks: st.free_blocks,
            largest_free: 0,
            free_histogram: vec![0; 64],
        };
        let _ = a.walk(|b| {
            if b.header.is_free() {
                s.largest_free = s.largest_free.max(b.header.size);
                s.free_histogram[63 - b.header.size.leading_zeros() as usize] += 1;
            }
        });
        while s.free_histogram.last() == Some(&0) {
            s.free_histogram.pop();
        }
        s
    }

    /// Every block, in address order (stops at the first broken header).
    pub fn blocks(&self) -> Vec<BlockInfo> {
        let mut v = Vec::new();
        let _ = self.arena().walk(|b| {
            v.push(BlockInfo {
                offset: b.offset,
                size: b.header.size,
                free: b.header.is_free(),
            })
        });
        v
    }

    /// Writes dirty pages to the file (for durability across a machine crash; processes
    /// always see each other's writes without it).
    pub fn flush(&self) -> Result<()> {
        self.local
            .map
            .flush()
            .map_err(io_err("msync", &self.heap.path))
    }
}

impl Drop for HeapGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The holder panicked, maybe in the middle of a change: the next guard repairs.
            self.arena_mut().state_mut().flags |= FLAG_NEEDS_REPAIR;
        }
        sync::unlock(&self.heap.futex(), self.heap.owner);
    }
}
