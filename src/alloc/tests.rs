//! The allocator alone, over an aligned buffer in this process: the paths a heap file
//! reaches only when it is corrupt, and the edges of each check, one condition at a time.
//! (Whole-heap behaviour is tested through the guard in `heap::tests` and `alloc_model`.)

use super::*;
use crate::format::{FL_COUNT, HEADER_SIZE, MIN_BLOCK};

/// A page-aligned, zeroed buffer holding a freshly formatted arena.
struct Buf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Buf {
    fn new(len: usize) -> Buf {
        Buf::with_capacity(len, len as u64)
    }

    /// A buffer of `len` bytes whose arena uses only the first `capacity`.
    fn with_capacity(len: usize, capacity: u64) -> Buf {
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

    fn arena(&self) -> Arena<'_> {
        // SAFETY: `ptr` is a page-aligned allocation of `layout.size()` bytes that lives as
        // long as `self`; this thread is the only user, which stands in for the lock.
        unsafe { Arena::new(self.ptr, self.layout.size() as u64, 4096) }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

#[test]
fn checked_list_refuses_each_bad_field_alone() {
    let buf = Buf::new(64 << 10);
    let arena = buf.arena();
    let mut plan = Plan::new();
    let a = Editor::new(&arena, &mut plan);
    let b = HEADER_SIZE;
    assert!(a.checked_list(b, MIN_BLOCK, 0, 1).is_ok());
    assert!(
        a.checked_list(b, MIN_BLOCK, FL_COUNT, 0).is_err(),
        "class beyond the table"
    );
    assert!(
        a.checked_list(b, MIN_BLOCK - 8, 0, 0).is_err(),
        "smaller than a block"
    );
    let room = a.sentinel() - b;
    assert!(
        a.checked_list(b, room, 0, 0).is_ok(),
        "exactly up to the sentinel"
    );
    assert!(
        a.checked_list(b, room + 8, 0, 0).is_err(),
        "past the sentinel"
    );
    assert!(
        a.checked_list(u64::MAX - 8, MIN_BLOCK, 0, 0).is_err(),
        "overflow"
    );
}

#[test]
fn extend_refuses_each_bad_capacity_alone_and_takes_a_good_one() {
    let buf = Buf::with_capacity(128 << 10, 64 << 10);
    let mut a = buf.arena();
    let old = 64 << 10;
    for (bad, why) in [
        (old, "not larger"),
        (old - 4096, "smaller"),
        ((128 << 10) + 4096, "beyond the mapping"),
        (old + 4096 + 4, "not 8-aligned"),
        (old + MIN_BLOCK - 8, "less than a block more"),
    ] {
        assert!(a.extend(bad).is_err(), "{why}: {bad}");
        assert_eq!(a.state().capacity, old, "{why}: refused, yet changed");
    }
    a.extend(128 << 10).unwrap();
    assert_eq!(a.state().capacity, 128 << 10);
    assert_eq!(
        a.header(a.sentinel()).unwrap().size,
        0,
        "no sentinel at the new end"
    );
    let mut free = Vec::new();
    a.walk(|b| free.push(b.header.is_free())).unwrap();
    assert_eq!(
        free,
        [true],
        "the new space did not join the free last block"
    );
}
