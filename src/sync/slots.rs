//! The attachment table: who may own the lock, and whether they are still alive.
//!
//! Each attached handle claims one slot by taking an OFD write lock (`F_OFD_SETLK`) on that
//! slot's byte of the file through its own open file description, then bumps the slot's
//! incarnation. The kernel drops an OFD lock the moment the last descriptor of that open
//! file description closes, which happens when the process dies, even while it is a zombie
//! not yet reaped, and whatever pid the kernel hands out next.
//!
//! Invariant (L5): an owner id is alive iff its slot still carries its incarnation and some
//! open file description still holds the slot's byte lock. A newcomer that claimed a dead
//! process's slot has bumped the incarnation, so the dead id is seen dead even though the
//! byte is locked again; a probe that races the newcomer may say "alive" for a while, never
//! "dead" for a live owner.

use std::io;
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU32, Ordering};

use bytemuck::{Pod, Zeroable};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};

use super::word::{OwnerId, INCARNATION_MASK, MAX_SLOTS};
use super::LockError;
use crate::mutant::{active, Mutant};

/// One slot of the attachment table as it sits in the file. Its fields are only ever
/// accessed atomically (`AtomicU32::from_ptr`): other processes read them at any time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct SlotRecord {
    /// How many times the slot was claimed (mod 2^23 where it enters an owner id).
    pub incarnation: u32,
    /// The pid of the process that claimed it last (for humans and `stat`; never trusted
    /// for liveness).
    pub pid: u32,
}

/// The attachment table of one mapping, seen through one open file description.
#[derive(Clone, Copy)]
pub struct Slots<'a> {
    records: *mut SlotRecord,
    count: u32,
    fd: BorrowedFd<'a>,
    /// File offset of slot 0's lock byte; slot `i` locks byte `lock_base + i`.
    lock_base: i64,
    _mapping: PhantomData<&'a SlotRecord>,
}

impl<'a> Slots<'a> {
    /// A view of `count` records at `records`, locked through `fd`.
    ///
    /// # Safety
    /// `records` must point to `count` properly aligned `SlotRecord`s in a shared mapping that
    /// stays mapped for `'a`, and their fields must only ever be accessed atomically.
    #[inline]
    pub unsafe fn new(
        records: *mut SlotRecord,
        count: u32,
        fd: BorrowedFd<'a>,
        lock_base: u64,
    ) -> Slots<'a> {
        assert!(count <= MAX_SLOTS);
        Slots {
            records,
            count,
            fd,
            lock_base: lock_base as i64,
            _mapping: PhantomData,
        }
    }

    /// Number of slots.
    pub fn count(&self) -> u32 {
        self.count
    }

    fn field(&self, slot: u32, pid: bool) -> &'a AtomicU32 {
        assert!(slot < self.count);
        // SAFETY: `slot < count`, so the record lies inside the table that `new`'s contract
        // keeps mapped and aligned for 'a; its fields are only accessed atomically, so a
        // shared `&AtomicU32` to them is sound even though other processes write them.
        unsafe {
            let rec = self.records.add(slot as usize);
            let ptr = if pid {
                std::ptr::addr_of_mut!((*rec).pid)
            } else {
                std::ptr::addr_of_mut!((*rec).incarnation)
            };
            AtomicU32::from_ptr(ptr)
        }
    }

    /// The record of `slot` as last seen (for `stat`).
    pub fn record(&self, slot: u32) -> SlotRecord {
        SlotRecord {
            incarnation: self.field(slot, false).load(Ordering::Acquire),
            pid: self.field(slot, true).load(Ordering::Relaxed),
        }
    }

    fn flock(&self, slot: u32, kind: libc::c_short) -> libc::flock {
        // SAFETY: `flock` is a plain C struct for which all-zero bytes are a valid value.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = kind;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = self.lock_base + i64::from(slot);
        fl.l_len = 1;
        fl
    }

    /// Claims a free slot for the calling process (whose pid is `pid`) and returns its new
    /// owner id. The claim lasts until [`Slots::release`] or until the open file description
    /// behind `fd` is closed, e.g. by the process's death.
    pub fn claim(&self, pid: u32) -> Result<OwnerId, LockError> {
        for slot in 0..self.count {
            let fl = self.flock(slot, libc::F_WRLCK as libc::c_short);
            match fcntl(self.fd, FcntlArg::F_OFD_SETLK(&fl)) {
                Ok(_) => {}
                Err(Errno::EAGAIN) | Err(Errno::EACCES) => continue,
                Err(e) => return Err(LockError::Io(io::Error::from(e))),
            }
            // The byte is ours: whoever claimed this slot before is dead or detached. A new
            // incarnation makes every word that names the old claim certainly dead.
            let inc = self.field(slot, false);
            let n = if active(Mutant::SlotKeepsIncarnation) {
                inc.load(Ordering::Acquire)
            } else {
                inc.fetch_add(1, Ordering::AcqRel).wrapping_add(1)
            };
            self.field(slot, true).store(pid, Ordering::Relaxed);
            return Ok(OwnerId::new(slot, n));
        }
        Err(LockError::NoFreeSlot { slots: self.count })
    }

    /// Gives `owner`'s slot back (on detach).
    pub fn release(&self, owner: OwnerId) -> Result<(), LockError> {
        let fl = self.flock(owner.slot(), libc::F_UNLCK as libc::c_short);
        fcntl(self.fd, FcntlArg::F_OFD_SETLK(&fl))
            .map(drop)
            .map_err(|e| LockError::Io(io::Error::from(e)))
    }

    /// Whether `owner` is alive. `false` is certain; `true` may lag (see the module doc).
    pub fn alive(&self, owner: OwnerId) -> bool {
        if owner.slot() >= self.count {
            // A word naming no slot of ours was never written by a live attachment.
            return false;
        }
        let inc = self.field(owner.slot(), false).load(Ordering::Acquire);
        if inc & INCARNATION_MASK != owner.incarnation() {
            return false;
        }
        if active(Mutant::ProbeByKill) {
            let pid = self.field(owner.slot(), true).load(Ordering::Relaxed);
            // SAFETY: kill with signal 0 only checks for existence; no memory is touched.
            return unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
        }
        let mut fl = self.flock(owner.slot(), libc::F_WRLCK as libc::c_short);
        match fcntl(self.fd, FcntlArg::F_OFD_GETLK(&mut fl)) {
            Ok(_) => fl.l_type != libc::F_UNLCK as libc::c_short,
            // Unknown is not dead.
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::Mapping;
    use std::fs::File;
    use std::os::fd::AsFd;

    fn table() -> (tempfile::NamedTempFile, Mapping) {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(4096).unwrap();
        let m = Mapping::new(f.as_file(), 4096, None).unwrap();
        (f, m)
    }

    fn slots<'a>(m: &'a Mapping, f: &'a File) -> Slots<'a> {
        // SAFETY: 8 records at the start of a live 4096-byte mapping, only used atomically.
        unsafe { Slots::new(m.base().cast(), 8, f.as_fd(), 0) }
    }

    #[test]
    fn a_closed_description_frees_its_slot_and_retires_its_id() {
        let (tmp, m) = table();
        let a = File::options()
            .read(true)
            .write(true)
            .open(tmp.path())
            .unwrap();
        let b = File::options()
            .read(true)
            .write(true)
            .open(tmp.path())
            .unwrap();
        let id_a = slots(&m, &a).claim(100).unwrap();
        let id_b = slots(&m, &b).claim(200).unwrap();
        assert_ne!(id_a.slot(), id_b.slot());
        assert!(slots(&m, &b).alive(id_a));
        assert!(slots(&m, &a).alive(id_b));
        drop(a); // the "process" behind a dies: its OFD lock goes with its last descriptor
        assert!(!slots(&m, &b).alive(id_a));
        let c = File::options()
            .read(true)
            .write(true)
            .open(tmp.path())
            .unwrap();
        let id_c = slots(&m, &c).claim(300).unwrap();
        assert_eq!(id_c.slot(), id_a.slot(), "the freed slot is reused");
        assert_ne!(id_c, id_a, "with a new incarnation");
        assert!(
            !slots(&m, &b).alive(id_a),
            "the newcomer does not revive the dead id"
        );
        assert!(slots(&m, &b).alive(id_c));
        assert_eq!(slots(&m, &b).record(id_c.slot()).pid, 300);
        slots(&m, &c).release(id_c).unwrap();
        assert!(!slots(&m, &b).alive(id_c));
    }

    #[test]
    fn a_full_table_is_an_error_and_a_foreign_slot_is_dead() {
        let (tmp, m) = table();
        let files: Vec<File> = (0..9)
            .map(|_| {
                File::options()
                    .read(true)
                    .write(true)
                    .open(tmp.path())
                    .unwrap()
            })
            .collect();
        for f in &files[..8] {
            slots(&m, f).claim(1).unwrap();
        }
        assert!(matches!(
            slots(&m, &files[8]).claim(1),
            Err(LockError::NoFreeSlot { slots: 8 })
        ));
        assert!(!slots(&m, &files[8]).alive(OwnerId::new(50, 0)));
    }
}
