//! Named roots: the entry points of the structures kept in a heap.
//!
//! Invariant R1: a root names the payload of an allocated block large enough for the type
//! it was registered with, and carries that type's fingerprint (size, alignment, hash of
//! the type's name); asking for it as another type is an error, never a reinterpretation.
//! Roots store offsets, never addresses.
//!
//! Invariant R2: every used root entry carries the checksum of its other 56 bytes, and an
//! unused entry is all zero. A lookup that meets an entry breaking this refuses (a damaged
//! name must not read as "no such root", or `find_or_init` would orphan the structure).
//! A change of an entry is logged first (T5), so a death half-way through its eight stores
//! is rolled back, and the checksum never reports a change that was merely interrupted.

use bytemuck::Pod;

use super::HeapGuard;
use crate::alloc::st;
use crate::check::RootFault;
use crate::error::{Error, Result};
use crate::format::{fnv1a, Root, ROOT_COUNT, ROOT_NAME_LEN};
use crate::mutant::{active, Mutant};
use crate::offset::Offset;

/// A root as listed by [`HeapGuard::roots`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RootInfo {
    /// Its name.
    pub name: String,
    /// Offset of its payload.
    pub offset: u64,
    /// `size_of` of its type.
    pub size: u32,
    /// `align_of` of its type.
    pub align: u32,
    /// Hash of its type's name.
    pub type_hash: u64,
}

struct Fingerprint {
    size: u32,
    align: u32,
    hash: u64,
    name: &'static str,
}

fn fingerprint<T>() -> Fingerprint {
    let name = std::any::type_name::<T>();
    Fingerprint {
        size: size_of::<T>() as u32,
        align: align_of::<T>() as u32,
        hash: fnv1a(name.as_bytes()),
        name,
    }
}

fn encode_name(name: &str) -> Result<[u8; ROOT_NAME_LEN]> {
    let b = name.as_bytes();
    let too_long = if active(Mutant::RootNameOffByOne) {
        b.len() >= ROOT_NAME_LEN
    } else {
        b.len() > ROOT_NAME_LEN
    };
    if b.is_empty() || too_long || b.contains(&0) {
        return Err(Error::RootName(name.to_string()));
    }
    let mut out = [0u8; ROOT_NAME_LEN];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

fn decode_name(name: &[u8; ROOT_NAME_LEN]) -> String {
    let end = name.iter().position(|&c| c == 0).unwrap_or(ROOT_NAME_LEN);
    String::from_utf8_lossy(&name[..end]).into_owned()
}

/// What is wrong with a root entry on its own, if anything (R2). Shared with `check`.
pub fn entry_fault(r: &Root) -> Option<RootFault> {
    if r.name == [0; ROOT_NAME_LEN] {
        return (!r.is_unused()).then_some(RootFault::UnusedNotZero);
    }
    if r.checksum != r.checksum_of() && !active(Mutant::IgnoreRootChecksum) {
        return Some(RootFault::Checksum);
    }
    let end = r.name.iter().position(|&c| c == 0).unwrap_or(ROOT_NAME_LEN);
    if r.name[end..].iter().any(|&c| c != 0) || std::str::from_utf8(&r.name[..end]).is_err() {
        return Some(RootFault::Name);
    }
    if !r.align.is_power_of_two() {
        return Some(RootFault::Align);
    }
    None
}

impl HeapGuard<'_> {
    /// The entry named `name` (R2): a damaged table is an error, never "not found". The
    /// entry found is checked; every entry is checked only when none has the name (a
    /// damaged name must not pass for "no such root"), so a lookup that finds its root
    /// costs one checksum, not 32.
    fn root_entry(&self, name: &[u8; ROOT_NAME_LEN]) -> Result<Option<(usize, Root)>> {
        let a = self.arena();
        let roots = &a.state().roots;
        if let Some((i, r)) = roots.iter().enumerate().find(|(_, r)| &r.name == name) {
            if let Some(fault) = entry_fault(r) {
                return Err(Error::RootTable { index: i, fault });
            }
            return Ok(Some((i, *r)));
        }
        for (i, r) in roots.iter().enumerate() {
            if let Some(fault) = entry_fault(r) {
                return Err(Error::RootTable { index: i, fault });
            }
        }
        Ok(None)
    }

    /// Writes entry `idx` (logged first, T5): eight stores, the checksum last.
    fn store_root(&mut self, idx: usize, r: &Root) -> Result<()> {
        let at = st!(roots) + 64 * idx as u64;
        let (mut a, tx) = self.tx_parts();
        tx.before_root_write(&mut a, at)?;
        let words: [u64; 8] = bytemuck::cast(*r);
        for (k, w) in words.iter().enumerate() {
            a.store_state(at + 8 * k as u64, *w)?;
        }
        Ok(())
    }

    /// What the root's offset field holds for `off` (the `AbsoluteAddress` mutant stores
    /// an address instead).
    fn stored(&self, off: u64) -> u64 {
        if active(Mutant::AbsoluteAddress) {
            off + self.base_address() as u64
        } else {
            off
        }
    }

    fn loaded(&self, stored: u64) -> u64 {
        if active(Mutant::AbsoluteAddress) {
            stored.wrapping_sub(self.base_address() as u64)
        } else {
            stored
        }
    }

    /// The root `name`, if it exists, as an `Offset<T>`; an error if it holds another type.
    pub fn root<T: Pod>(&self, name: &str) -> Result<Option<Offset<T>>> {
        let key = encode_name(name)?;
        let Some((_, r)) = self.root_entry(&key)? else {
            return Ok(None);
        };
        let want = fingerprint::<T>();
        if (r.size, r.align, r.type_hash) != (want.size, want.align, want.hash)
            && !active(Mutant::IgnoreRootType)
        {
            return Err(Error::RootType {
                name: name.to_string(),
                stored: format!(
                    "type of {} bytes, alignment {}, hash {:#x}",
                    r.size, r.align, r.type_hash
                ),
                wanted: format!(
                    "{} ({} bytes, alignment {})",
                    want.name, want.size, want.align
                ),
            });
        }
        Ok(Some(Offset::from_raw(self.loaded(r.offset))))
    }

    /// Registers `off` (an allocated `T`) as the root `name`, replacing an existing root of
    /// that name whatever its type.
    pub fn set_root<T: Pod>(&mut self, name: &str, off: Offset<T>) -> Result<()> {
        let key = encode_name(name)?;
        self.get(off)?;
        let fp = fingerprint::<T>();
        let idx = match self.root_entry(&key)? {
            Some((i, _)) => i,
            None => self
                .arena()
                .state()
                .roots
                .iter()
                .take(ROOT_COUNT)
                .position(|r| r.name == [0; ROOT_NAME_LEN])
                .ok_or(Error::RootTableFull)?,
        };
        let stored = self.stored(off.raw());
        let mut r = Root {
            name: key,
            size: fp.size,
            align: fp.align,
            type_hash: fp.hash,
            offset: stored,
            checksum: 0,
        };
        r.checksum = r.checksum_of();
        self.store_root(idx, &r)
    }

    /// The root `name`; if there is none, allocates `init()` and registers it.
    pub fn find_or_init<T: Pod>(
        &mut self,
        name: &str,
        init: impl FnOnce() -> T,
    ) -> Result<Offset<T>> {
        if let Some(off) = self.root::<T>(name)? {
            return Ok(off);
        }
        let off = self.alloc(init())?;
        if let Err(e) = self.set_root(name, off) {
            self.free(off)?;
            return Err(e);
        }
        Ok(off)
    }

    /// Removes the root `name` (the block stays allocated); returns its offset.
    pub fn remove_root(&mut self, name: &str) -> Result<Option<u64>> {
        let key = encode_name(name)?;
        let Some((i, r)) = self.root_entry(&key)? else {
            return Ok(None);
        };
        let off = self.loaded(r.offset);
        self.store_root(i, &bytemuck::Zeroable::zeroed())?;
        Ok(Some(off))
    }

    /// Every root.
    pub fn roots(&self) -> Vec<RootInfo> {
        self.arena()
            .state()
            .roots
            .iter()
            .filter(|r| r.name != [0; ROOT_NAME_LEN])
            .map(|r| RootInfo {
                name: decode_name(&r.name),
                offset: self.loaded(r.offset),
                size: r.size,
                align: r.align,
                type_hash: r.type_hash,
            })
            .collect()
    }
}
