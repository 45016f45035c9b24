//! Files and mappings: creation by rename, opening without following links, growth that
//! reserves disk space first, and shared mappings at any (or a chosen) address.
//!
//! Invariants:
//! * M1 no process ever maps a half-made heap: a heap is built in a temporary file in the
//!   same directory and renamed into place only when complete.
//! * M2 the file never shrinks while attached, and growth reserves its blocks
//!   (`fallocate`) before the heap uses them, so a full disk is an error at growth, never a
//!   SIGBUS at a later page fault.
//! * M3 a mapping's length never exceeds the file's length at the time it is made.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::ptr::NonNull;

use crate::mutant::{active, Mutant};

/// One `MAP_SHARED` read-write mapping of a file, unmapped on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping is an owned address range; moving it to another thread moves the
// ownership of that range. Access to the bytes is governed by the heap's lock, not by
// this type.
unsafe impl Send for Mapping {}
// SAFETY: `&Mapping` only hands out the base address and length and calls msync; what is
// done with the bytes behind the address is governed by the heap's lock and atomics.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `file`, at `at` if given (with MAP_FIXED: the caller
    /// owns that range, e.g. a PROT_NONE reservation), else wherever the kernel chooses.
    pub fn new(file: &File, len: u64, at: Option<NonNull<u8>>) -> io::Result<Mapping> {
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let (addr, fixed) = match at {
            Some(p) => (p.as_ptr().cast(), libc::MAP_FIXED),
            None => (std::ptr::null_mut(), 0),
        };
        // SAFETY: mapping a file we hold open; with MAP_FIXED the caller promised the
        // range is theirs to replace (see `Heap::open_at`); otherwise the kernel picks a free
        // range. The result is checked before use.
        let p = unsafe {
            libc::mmap(
                addr,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | fixed,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: NonNull::new(p.cast()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?,
            len,
        })
    }

    /// Start of the mapping (page-aligned).
    pub fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len as u64
    }

    /// Whether the mapping is empty (never, for a heap).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes dirty pages back to the file (msync).
    pub fn flush(&self) -> io::Result<()> {
        // SAFETY: the range is exactly our live mapping.
        let r = unsafe { libc::msync(self.ptr.as_ptr().cast(), self.len, libc::MS_SYNC) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range is our own mapping and no reference into it outlives the guard
        // that borrowed it (guards borrow the handle that owns this mapping).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Opens an existing heap file read-write, refusing symlinks, close-on-exec.
pub fn open_file(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    if !f.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(f)
}

/// Makes `file` at least `len` bytes long with its blocks reserved. Falls back to
/// `set_len` where the file system cannot `fallocate`. A reservation that fails leaves the
/// file as it was: ext4 and XFS keep the blocks of a `fallocate` that ran out of space
/// half-way (ext4 the length it reached, too), and a disk left full by a refused growth
/// would fail every other writer on it.
pub fn reserve(file: &File, len: u64) -> io::Result<()> {
    let cur = file.metadata()?.len();
    if cur >= len {
        return Ok(());
    }
    let e = match fallocate(file, cur, len - cur) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => file.set_len(len),
        _ => {
            // Shrinking back is safe (M2 is about attached mappings): every mapping ends
            // within the length the file had when it was made (M3), so within `cur`, and
            // no process maps more while this one grows the heap under the lock.
            if !active(Mutant::KeepFailedReserve) {
                let _ = file.set_len(cur);
            }
            Err(e)
        }
    }
}

/// `fallocate(file, 0, at, n)`; in tests, maybe a file system that fills up half-way or
/// has no `fallocate` (`fault::arm_reserve_failure`).
fn fallocate(file: &File, at: u64, n: u64) -> io::Result<()> {
    if let Some((kept, errno)) = crate::fault::take_reserve_failure() {
        file.set_len(at + kept.min(n))?;
        return Err(io::Error::from_raw_os_error(errno));
    }
    // SAFETY: fallocate on a descriptor we own; no memory is passed.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, at as i64, n as i64) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_grows_and_never_shrinks() {
        let f = tempfile::tempfile().unwrap();
        reserve(&f, 8192).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 8192);
        reserve(&f, 4096).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 8192);
    }

    /// A reservation the file system fails half-way gives back what it took: the file has
    /// its old length, and a later reservation works.
    #[test]
    fn a_reservation_that_runs_out_of_space_half_way_leaves_the_file_as_it_was() {
        let f = tempfile::tempfile().unwrap();
        reserve(&f, 8192).unwrap();
        crate::fault::arm_reserve_failure(Some((4096, libc::ENOSPC)));
        let e = reserve(&f, 8192 * 4).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(
            f.metadata().unwrap().len(),
            8192,
            "the kept part was not given back"
        );
        reserve(&f, 8192 * 4).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 8192 * 4);
    }

    /// Where the file system has no `fallocate`, the file is lengthened without it.
    #[test]
    fn a_file_system_without_fallocate_gets_the_length_set() {
        for errno in [libc::EOPNOTSUPP, libc::ENOSYS] {
            let f = tempfile::tempfile().unwrap();
            reserve(&f, 8192).unwrap();
            crate::fault::arm_reserve_failure(Some((0, errno)));
            reserve(&f, 8192 * 4).unwrap();
            assert_eq!(f.metadata().unwrap().len(), 8192 * 4, "errno {errno}");
        }
    }

    #[test]
    fn mutant_keep_failed_reserve_is_caught_by_the_half_way_test() {
        let f = tempfile::tempfile().unwrap();
        reserve(&f, 8192).unwrap();
        crate::fault::arm_reserve_failure(Some((4096, libc::ENOSPC)));
        let kept = crate::mutant::with(Mutant::KeepFailedReserve, || {
            reserve(&f, 8192 * 4).unwrap_err();
            f.metadata().unwrap().len()
        });
        assert_eq!(kept, 8192 + 4096, "the mutant gave the space back");
    }

    #[test]
    fn a_fixed_mapping_lands_where_asked_and_shares_the_file() {
        let f = tempfile::tempfile().unwrap();
        reserve(&f, 8192).unwrap();
        // SAFETY: reserving an address range of our own; it is replaced by MAP_FIXED below
        // and unmapped by the Mapping's drop (the rest by the explicit munmap).
        let hole = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4 * 8192,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(hole, libc::MAP_FAILED);
        let at = NonNull::new(hole.cast::<u8>()).unwrap();
        // SAFETY: inside our reservation.
        let at = unsafe { NonNull::new_unchecked(at.as_ptr().add(8192)) };
        let fixed = Mapping::new(&f, 8192, Some(at)).unwrap();
        assert_eq!(fixed.base(), at.as_ptr());
        assert_eq!((fixed.len(), fixed.is_empty()), (8192, false));
        let other = Mapping::new(&f, 8192, None).unwrap();
        assert_ne!(other.base(), fixed.base());
        // SAFETY: both mappings are live and 8192 bytes long; no references are held.
        unsafe {
            fixed.base().add(100).write(42);
            assert_eq!(other.base().add(100).read(), 42);
        }
        // msync writes the byte through to the file itself.
        fixed.flush().unwrap();
        let mut byte = [0u8];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut byte, 100).unwrap();
        assert_eq!(byte, [42]);
        drop(fixed);
        // SAFETY: unmapping the rest of our own reservation.
        unsafe { libc::munmap(hole, 4 * 8192) };
    }

    /// `flush` reports msync's failure: here its pages were taken away under it (ENOMEM).
    /// In a forked child, which has one thread, so that nothing else can map the freed
    /// range between the unmap and the flush.
    #[test]
    fn flush_reports_a_failed_msync() {
        let _watchdog = crate::watchdog!(10);
        let f = tempfile::tempfile().unwrap();
        reserve(&f, 8192).unwrap();
        let m = Mapping::new(&f, 8192, None).unwrap();
        m.flush().unwrap();
        // SAFETY: test-only. The child runs only system calls (munmap, msync, _exit) on
        // its copy of the mapping, which nothing reads after the unmap; the parent's
        // mapping is untouched.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: as above; the range is the child's copy of `m`.
            unsafe { libc::munmap(m.base().cast(), 8192) };
            let code = match m.flush() {
                Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => 0,
                Err(_) => 2,
                Ok(()) => 1,
            };
            // SAFETY: leaves the child at once, running no destructor (the parent owns the
            // file and the mapping).
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status),
            "the child did not exit: {status:#x}"
        );
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "flush of an unmapped range did not report ENOMEM (1: it said Ok)"
        );
    }

    #[test]
    fn open_refuses_links_and_directories() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("f");
        std::fs::write(&real, b"x").unwrap();
        let link = d.path().join("l");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(open_file(&real).is_ok());
        assert!(open_file(&link).is_err());
        assert!(open_file(d.path()).is_err());
    }
}
