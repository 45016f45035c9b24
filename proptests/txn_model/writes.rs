//! Writes and allocations inside a transaction: the accessors (`write`, `get_mut` with a
//! `[u8; N]`, `bytes_mut`), the length a step means, and each outcome against the model.
//!
//! Invariant: a write to a block older than the transaction saves, before the write, the
//! part of `[start, start + round_up(len, 8))` not saved yet (T5); a block the transaction
//! allocated is written with no before-image; an allocation is logged (ALLOC), so an undo
//! frees it.

use mapheap::alloc::AllocError;
use mapheap::{Error, HeapGuard, Offset};
use proptest::sample::Index;

use super::model::{fits, max_fit, ENTRY};
use super::reference::{Len, Size, Via};
use super::steps::{is_full, Run};
use super::tally;
use crate::common::pattern;

macro_rules! typed_sizes {
    ($($n:literal)*) => {
        /// The sizes of the `[u8; N]` that typed writes use.
        const TYPED: &[u64] = &[$($n),*];

        /// `data` written as one `[u8; N]` through `get_mut` or `write`.
        fn typed(g: &mut HeapGuard<'_>, get_mut: bool, off: u64, data: &[u8]) -> mapheap::Result<()> {
            match data.len() {
                $($n => {
                    let v: [u8; $n] = data.try_into().expect("length");
                    let o = Offset::<[u8; $n]>::from_raw(off);
                    if get_mut {
                        *g.get_mut(o)? = v;
                        Ok(())
                    } else {
                        g.write(o, v)
                    }
                })*
                n => unreachable!("no typed access of {n} bytes"),
            }
        }
    };
}
typed_sizes!(1 2 7 8 9 15 16 24 31 40 64 100 128 200 256 400 512 1024);

fn write_via(g: &mut HeapGuard<'_>, via: Via, off: u64, data: &[u8]) -> mapheap::Result<()> {
    match via {
        Via::BytesMut => {
            g.bytes_mut(Offset::from_raw(off), data.len() as u64)?
                .copy_from_slice(data);
            Ok(())
        }
        Via::Write => typed(g, false, off, data),
        Via::GetMut => typed(g, true, off, data),
    }
}

/// The length a `Len` means for a block of `usable` bytes this transaction wrote `w` of.
fn resolve(len: Len, usable: u64, w: u64, via: Via) -> u64 {
    let n = match len {
        Len::Small(k) => u64::from(k),
        Len::Any(i) => 1 + i.index(usable as usize) as u64,
        Len::Extend(d) => w + u64::from(d),
        Len::Within(i) if w > 0 => 1 + i.index(w as usize) as u64,
        Len::Within(_) => 8,
        Len::Whole => usable,
    }
    .clamp(1, usable);
    match via {
        Via::BytesMut => n,
        _ => *TYPED.iter().rev().find(|&&s| s <= n).expect("1 is typed"),
    }
}

impl Run {
    pub(super) fn write(
        &mut self,
        g: &mut HeapGuard<'_>,
        which: Index,
        fresh: bool,
        len: Len,
        via: Via,
        largest: u64,
    ) -> Result<(), String> {
        let t = &self.t;
        let mut cands: Vec<u64> = t.p.blocks.keys().copied().collect();
        if fresh && cands.iter().any(|b| t.fresh.contains(b)) {
            cands.retain(|b| t.fresh.contains(b));
        }
        let Some(&off) = cands.get(which.index(cands.len().max(1))) else {
            return Ok(());
        };
        let usable = t.p.blocks[&off].len() as u64;
        let w = t.written.get(&off).copied().unwrap_or(0);
        let n = resolve(len, usable, w, via);
        let old = !t.fresh.contains(&off);
        let have = t.imaged.get(&off).copied().unwrap_or(0);
        let want = n.next_multiple_of(8);
        // T5: the part of the range not saved yet, for a block older than the transaction.
        let image = if old && want > have { want - have } else { 0 };
        let mut log = t.log.clone();
        let room = if image > 0 {
            log.room(ENTRY + image, largest)
        } else {
            Ok(false)
        };
        let seed = self.next_seed();
        let data = pattern(seed, n as usize);
        let r = write_via(g, via, off, &data);
        match (&room, &r) {
            (Ok(_), Ok(())) => {
                if image > 0 {
                    log.push(ENTRY + image);
                    log.images += image;
                    self.t.imaged.insert(off, want);
                    self.count(&tally::IMAGES);
                }
                self.t.p.blocks.get_mut(&off).expect("block")[..n as usize].copy_from_slice(&data);
                self.t.written.insert(off, w.max(n));
                self.count(&tally::WRITES);
            }
            (Err(full), _) if is_full(&r, full) => self.count(&tally::LOG_FULL),
            _ => {
                return Err(format!(
                    "write of {n} bytes to {off:#x} via {via:?} (before-image: {image} bytes): \
                     {r:?}, model: room {room:?}"
                ))
            }
        }
        self.t.log = log;
        Ok(())
    }

    pub(super) fn alloc(
        &mut self,
        g: &mut HeapGuard<'_>,
        size: Size,
        align: u64,
        largest: u64,
    ) -> Result<(), String> {
        let size = match size {
            Size::Bytes(n) => n,
            Size::AllBut(leave) => match max_fit(largest.saturating_sub(u64::from(leave))) {
                Some(n) => n,
                None => return Ok(()),
            },
        };
        let mut log = self.t.log.clone();
        let room = log.room(ENTRY, largest);
        let r = g.alloc_bytes(size, align);
        let fit = fits(size, align, largest);
        match (&room, r) {
            (Ok(_), Ok(o)) if fit => {
                let p = o.raw();
                let usable = g.usable_size(o).map_err(|e| e.to_string())?;
                if usable < size || p % align != 0 {
                    return Err(format!(
                        "alloc({size}, {align}) gave {p:#x} with {usable} bytes"
                    ));
                }
                let data = pattern(self.next_seed(), usable as usize);
                // A block of this transaction: written without a before-image.
                g.bytes_mut(o, usable)
                    .map_err(|e| format!("filling the new block {p:#x}: {e}"))?
                    .copy_from_slice(&data);
                log.push(ENTRY);
                log.allocs += 1;
                self.t.fresh.insert(p);
                self.t.p.blocks.insert(p, data);
                self.count(&tally::ALLOCS);
            }
            // An extension taken first may leave too little for the block itself.
            (Ok(extended), Err(Error::Alloc(AllocError::OutOfSpace { .. })))
                if *extended || !fit =>
            {
                self.count(&tally::OUT_OF_SPACE)
            }
            (Err(full), r) if is_full(&r, full) => self.count(&tally::LOG_FULL),
            (_, r) => {
                return Err(format!(
                    "alloc({size}, {align}) with a largest free block of {largest}: {r:?}, \
                     model: room {room:?}, fits {fit}"
                ))
            }
        }
        self.t.log = log;
        Ok(())
    }
}
