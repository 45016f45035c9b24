//! Resolution of offsets (G2), reads, and writes that are logged first (T5).
//!
//! Every mutable access to a block that existed before this transaction first saves the
//! bytes it exposes in the undo log; a block the transaction allocated needs nothing. The
//! log block itself and a block this transaction is freeing never resolve.

use bytemuck::Pod;

use super::guard::HeapGuard;
use super::FIRST_BASE;
use crate::alloc::AllocError;
use crate::error::{Error, Result};
use crate::format::HEADER_SIZE;
use crate::mutant::{active, Mutant};
use crate::offset::Offset;
use crate::txn::TxnError;

impl HeapGuard<'_> {
    pub(super) fn base(&self) -> *mut u8 {
        if active(Mutant::WrongBase) {
            return FIRST_BASE.load(std::sync::atomic::Ordering::Relaxed) as *mut u8;
        }
        self.local.map.base()
    }

    /// The address of `[raw, raw + size)` if `raw` is the payload of an allocated block
    /// that holds `size` bytes (G2). The checks are all compares on the one header word
    /// and the state; only a refusal builds its message (`refusal`, cold), so the common
    /// resolution is inlined into `get`/`get_mut` and costs no error plumbing.
    #[inline(always)]
    fn resolve(&self, raw: u64, size: u64, align: u64, ty: &'static str) -> Result<*mut u8> {
        // `align` is `align_of::<T>()` or 1: a power of two, so a mask (no division).
        let why = if raw == 0 {
            Refusal::Null
        } else if raw & (align - 1) != 0 {
            Refusal::Misaligned(align)
        } else {
            let a = self.arena();
            if raw == a.state().log.block {
                Refusal::Log
            } else if self.local.tx.is_freed(raw) {
                Refusal::Freed
            } else {
                match a.usable_size(raw) {
                    Err(e) => Refusal::Block(e),
                    Ok(usable) => {
                        let slack = if active(Mutant::BoundsOffByOne) { 8 } else { 0 };
                        if size > usable + slack {
                            Refusal::TooBig(size, usable)
                        } else if raw.saturating_add(size) > self.local.map.len() {
                            // Unreachable while capacity <= mapping length (`refresh`);
                            // kept so that no state of the file can make a resolution
                            // read outside the mapping.
                            Refusal::Beyond
                        } else {
                            debug_assert!(raw >= HEADER_SIZE);
                            // SAFETY: usable_size proved [raw, raw + usable) is a payload
                            // inside the arena, and [raw, raw + size) lies inside the
                            // mapping (checked just above).
                            return Ok(unsafe { self.base().add(raw as usize) });
                        }
                    }
                }
            }
        };
        Err(refusal(raw, ty, why))
    }

    #[inline(always)]
    fn resolve_as<T>(&self, off: Offset<T>) -> Result<*mut T> {
        let p = self.resolve(
            off.raw(),
            size_of::<T>() as u64,
            align_of::<T>() as u64,
            std::any::type_name::<T>(),
        )?;
        Ok(p.cast())
    }

    /// Saves what a write to `[payload, payload + n)` would overwrite, unless this
    /// transaction saved it already or allocated the block: that lookup in the
    /// transaction's mirror is all a write to a fresh block or to bytes imaged before pays,
    /// inlined; the image itself is made out of line.
    #[inline(always)]
    fn log_write(&mut self, payload: u64, n: u64) -> Result<()> {
        if self.local.tx.saved_already(payload, n) {
            return Ok(());
        }
        self.log_image(payload, n)
    }

    /// [`HeapGuard::log_write`] when the bytes need a before-image.
    #[inline(never)]
    fn log_image(&mut self, payload: u64, n: u64) -> Result<()> {
        let (mut a, tx) = self.tx_parts();
        match tx.before_write(&mut a, payload, n) {
            Err(TxnError::LogFull { .. }) if active(Mutant::OverflowSkipsLog) => Ok(()),
            r => Ok(r?),
        }
    }

    /// The `T` at `off`, borrowed for as long as the guard.
    // `inline(always)`, as `get_mut`: the resolution is a few compares on one header word
    // (refusals and images are out of line), and a call's frame would cost as much again
    // (a write to a block this guard allocated: 121 instructions called, 99 inlined).
    #[inline(always)]
    pub fn get<T: Pod>(&self, off: Offset<T>) -> Result<&T> {
        let p = self.resolve_as(off)?;
        // SAFETY: `resolve` checked bounds, alignment and that the bytes are an allocated
        // payload; we hold the lock, so no other process writes them; T is Pod, so any bytes
        // are a valid T; the borrow is tied to the guard.
        Ok(unsafe { &*p })
    }

    /// The `T` at `off`, mutably, for as long as the guard. Its bytes are saved in the undo
    /// log first (once per transaction), so a rollback or a death puts them back.
    #[inline(always)]
    pub fn get_mut<T: Pod>(&mut self, off: Offset<T>) -> Result<&mut T> {
        let p = self.resolve_as(off)?;
        self.log_write(off.raw(), size_of::<T>() as u64)?;
        // SAFETY: as in `get`; `&mut self` makes this the only live reference into the heap.
        Ok(unsafe { &mut *p })
    }

    /// A copy of the `T` at `off`.
    #[inline]
    pub fn read<T: Pod>(&self, off: Offset<T>) -> Result<T> {
        self.get(off).copied()
    }

    /// Overwrites the `T` at `off` (logged first, like [`HeapGuard::get_mut`]).
    #[inline]
    pub fn write<T: Pod>(&mut self, off: Offset<T>, value: T) -> Result<()> {
        let p = self.resolve_as(off)?;
        if active(Mutant::ImageAfterWrite) {
            // SAFETY: as in `get_mut`.
            unsafe { p.write(value) };
            return self.log_write(off.raw(), size_of::<T>() as u64);
        }
        self.log_write(off.raw(), size_of::<T>() as u64)?;
        // SAFETY: as in `get_mut`: resolved, aligned, inside an allocated payload, no other
        // reference alive.
        unsafe { p.write(value) };
        Ok(())
    }

    /// `len` bytes of the block at `off`.
    pub fn bytes(&self, off: Offset<u8>, len: u64) -> Result<&[u8]> {
        let p = self.resolve(off.raw(), len, 1, "[u8]")?;
        // SAFETY: as in `get`, for `len` bytes.
        Ok(unsafe { std::slice::from_raw_parts(p, len as usize) })
    }

    /// `len` bytes of the block at `off`, mutably (logged first, like
    /// [`HeapGuard::get_mut`]; a range too large for the log is `Error::Txn(LogFull)`).
    pub fn bytes_mut(&mut self, off: Offset<u8>, len: u64) -> Result<&mut [u8]> {
        let p = self.resolve(off.raw(), len, 1, "[u8]")?;
        self.log_write(off.raw(), len)?;
        // SAFETY: as in `get_mut`, for `len` bytes.
        Ok(unsafe { std::slice::from_raw_parts_mut(p, len as usize) })
    }
}

/// Why an offset did not resolve.
enum Refusal {
    Null,
    Misaligned(u64),
    Log,
    Freed,
    Block(AllocError),
    TooBig(u64, u64),
    Beyond,
}

/// The error of a refused resolution (out of line: only a refusal pays for its message).
#[cold]
#[inline(never)]
fn refusal(offset: u64, ty: &'static str, why: Refusal) -> Error {
    let why = match why {
        Refusal::Null => "null".into(),
        Refusal::Misaligned(align) => format!("not aligned to {align}"),
        Refusal::Log => "it is the heap's undo log".into(),
        Refusal::Freed => "this transaction frees it".into(),
        Refusal::Block(AllocError::DoubleFree { .. }) => "the block is free".into(),
        Refusal::Block(other) => other.to_string(),
        Refusal::TooBig(size, usable) => format!("{size} bytes do not fit the block's {usable}"),
        Refusal::Beyond => "beyond this process's mapping".into(),
    };
    Error::BadOffset { offset, ty, why }
}
