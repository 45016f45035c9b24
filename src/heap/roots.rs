//! Named roots: the entry points of the structures kept in a heap.
//!
//! Invariant R1: a root names the payload of an allocated block large enough for the type
//! it was registered with, and carries that type's fingerprint (size, alignment, hash of
//! the type's name); asking for it as another type is an error, never a reinterpretation.
//! Roots store offsets, never addresses.

use bytemuck::Pod;

use super::HeapGuard;
use crate::error::{Error, Result};
use crate::format::{fnv1a, Root, ROOT_NAME_LEN};
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
    if b.is_empty() || b.len() > ROOT_NAME_LEN || b.contains(&0) {
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

impl HeapGuard<'_> {
    fn root_entry(&self, name: &[u8; ROOT_NAME_LEN]) -> Option<(usize, Root)> {
        let a = self.arena();
        a.state()
            .roots
            .iter()
            .enumerate()
            .find(|(_, r)| &r.name == name)
            .map(|(i, r)| (i, *r))
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
        let Some((_, r)) = self.root_entry(&key) else {
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
        let idx = match self.root_entry(&key) {
            Some((i, _)) => i,
            None => self
                .arena()
                .state()
                .roots
                .iter()
                .position(|r| r.name == [0; ROOT_NAME_LEN])
                .ok_or(Error::RootTableFull)?,
        };
        let stored = self.stored(off.raw());
        self.arena_mut().state_mut().roots[idx] = Root {
            name: key,
            size: fp.size,
            align: fp.align,
            type_hash: fp.hash,
            offset: stored,
            reserved: 0,
        };
        Ok(())
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
        let Some((i, r)) = self.root_entry(&key) else {
            return Ok(None);
        };
        let off = self.loaded(r.offset);
        self.arena_mut().state_mut().roots[i] = bytemuck::Zeroable::zeroed();
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
