//! Anonymous shared memory that a forked child shares with its parent: the scoreboard of
//! `mapheap stress` and of the fork tests. It lives outside the heap on purpose: the parent
//! reads it without taking the heap's lock, so a hung lock cannot hang the parent.

use std::io;
use std::ops::Deref;
use std::ptr::NonNull;

/// A `T` in a `MAP_SHARED | MAP_ANONYMOUS` mapping, zero-initialised; fork children made after
/// it was created see the same `T`.
pub struct Shared<T> {
    ptr: NonNull<T>,
    len: usize,
}

impl<T: Sync> Shared<T> {
    /// Maps a zeroed `T`.
    ///
    /// # Safety
    /// All-zero bytes must be a valid `T`, and `T` must be sound to use from several
    /// processes at once through `&T`: only atomics (or data nobody writes), no pointers into
    /// process-private memory, nothing that needs `Drop`.
    pub unsafe fn zeroed() -> io::Result<Shared<T>> {
        assert!(
            align_of::<T>() <= 4096,
            "page alignment is the most a mapping gives"
        );
        let len = size_of::<T>().max(1);
        // SAFETY: an anonymous shared mapping of `len` bytes; the kernel picks the address
        // and zero-fills it; the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Shared {
            ptr: NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?,
            len,
        })
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the mapping is live, page-aligned (so aligned for T), zero-initialised,
        // which `zeroed`'s contract makes a valid T, and only ever shared as `&T`.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // SAFETY: the range is our own mapping; `&T`s borrowed from `self` are dead.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
