//! What the allocator's tests share: an arena over a buffer of this process, a seeded
//! generator, and the conformance check that holds a direct path to the planned one.

use super::Arena;

/// A page-aligned, zeroed buffer holding a freshly formatted arena.
pub(crate) struct Buf {
    pub(crate) ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Buf {
    pub(crate) fn new(len: usize) -> Buf {
        Buf::with_capacity(len, len as u64)
    }

    /// A buffer of `len` bytes whose arena uses only the first `capacity`.
    pub(crate) fn with_capacity(len: usize, capacity: u64) -> Buf {
        let layout = std::alloc::Layout::from_size_align(len, 4096).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        let b = Buf { ptr, layout };
        let mut a = b.arena();
        a.store_state(st!(capacity), capacity).unwrap();
        a.format().unwrap();
        b
    }

    pub(crate) fn arena(&self) -> Arena<'_> {
        // SAFETY: `ptr` is a page-aligned allocation of `layout.size()` bytes that lives as
        // long as `self`; this thread is the only user, which stands in for the lock.
        unsafe { Arena::new(self.ptr, self.layout.size() as u64, 4096) }
    }
}

impl Buf {
    /// Every byte of the buffer.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        // SAFETY: `ptr` holds `layout.size()` initialised (zeroed, then written) bytes, and
        // nothing writes them while this `&self` borrow copies them.
        unsafe { std::slice::from_raw_parts(self.ptr, self.layout.size()).to_vec() }
    }

    /// The first-level bitmap and the second-level bitmaps, as the file holds them.
    pub(crate) fn bitmaps(&self) -> (u64, [u32; crate::format::FL_COUNT]) {
        let a = self.arena();
        (a.state().fl_bitmap, a.state().sl_bitmap)
    }

    /// Overwrites every byte with `bytes` (of the same length).
    pub(crate) fn set_bytes(&self, bytes: &[u8]) {
        assert_eq!(bytes.len(), self.layout.size());
        // SAFETY: as in `bytes`; this thread is the buffer's only user and no arena over
        // it is alive across the call (callers make a new one after it).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr, bytes.len()) }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// A small xorshift generator: the cases are the same on every run.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A direct path against the planned one it stands in for, from `image` (a conformance
/// check, as the ShardStore paper's against its reference): `Ok(false)` if the direct path
/// declined with nothing written; `Ok(true)` if it took the case and matched the planned
/// path: the same result, store count and crash-point marks, and the same bytes after the
/// whole and after every prefix of its stores (so the same stores in the same order).
pub(crate) fn conforms<T: PartialEq + std::fmt::Debug>(
    buf: &Buf,
    image: &[u8],
    what: &str,
    direct: &dyn Fn(&mut Arena<'_>) -> Option<T>,
    planned: &dyn Fn(&mut Arena<'_>) -> Option<T>,
) -> std::result::Result<bool, String> {
    use crate::fault;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    buf.set_bytes(image);
    fault::count_stores();
    let Some(got) = direct(&mut buf.arena()) else {
        return if buf.bytes() == image && fault::stores() == 0 {
            Ok(false)
        } else {
            Err(format!("{what}: declined after writing"))
        };
    };
    let (n, marks, after) = (fault::stores(), fault::marks(), buf.bytes());
    buf.set_bytes(image);
    fault::count_stores();
    let want = planned(&mut buf.arena());
    if want.as_ref() != Some(&got)
        || fault::stores() != n
        || fault::marks() != marks
        || buf.bytes() != after
    {
        return Err(format!(
            "{what}: direct {got:x?} in {n} stores, planned {want:x?} in {} stores \
             (marks {marks:?} and {:?}; bytes {})",
            fault::stores(),
            fault::marks(),
            if buf.bytes() == after {
                "same"
            } else {
                "differ"
            }
        ));
    }
    for k in 1..n {
        let mut prefix = Vec::new();
        for path in [direct, planned] {
            buf.set_bytes(image);
            fault::arm_store_unwind(Some(k));
            let r = catch_unwind(AssertUnwindSafe(|| path(&mut buf.arena())));
            fault::arm_store_unwind(None);
            match r {
                Err(p) if p.downcast_ref::<fault::Crashed>().is_some() => {}
                _ => return Err(format!("{what}: no death after store {k}")),
            }
            prefix.push(buf.bytes());
        }
        if prefix[0] != prefix[1] {
            return Err(format!("{what}: the bytes differ after store {k} of {n}"));
        }
    }
    Ok(true)
}
