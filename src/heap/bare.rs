//! A heap over a bare [`Arena`]: the layout `create` writes and the recovery every lock runs
//! after a death, as functions of the arena alone. `Heap::create_with` and `HeapGuard` use
//! them, and so do the shuttle transaction model (models/shuttle_txn/), which runs the heap
//! in a plain buffer shared by its model threads: the model recovers with the production
//! sequence, not a copy of it.
//!
//! Invariant H4 (docs/invariants.md): [`recover_arena`] checks everything it will touch (the
//! allocator's chain, the whole log, every block it will free) before its first store (D1),
//! then repairs the allocator, then rolls the logged transaction back or finishes it, then
//! clears the repair flag; every step can be cut short by a death and done again.

use super::guard::Recovery;
use crate::alloc::{st, Arena, RepairReport};
use crate::error::{Error, Result};
use crate::format::{self, Identity, FLAG_NEEDS_REPAIR, MIN_CAPACITY, STATE_OFFSET};
use crate::mutant::{active, Mutant};
use crate::sync::OwnerId;
use crate::txn;

/// Lays out a new heap in the `len` bytes at `base`: the identity (page size `page`,
/// creation time `created_ns`), the state (capacity `len`, generation 1), an empty arena,
/// and the undo log's block of `log_cap` bytes (the caller rounded it to 8 and checked it
/// is at least `txn::MIN_LOG`).
/// Fails with [`Error::BadSize`] (its `size` is `len`) when the arena cannot hold the log.
///
/// # Safety
/// `base` is page-aligned (to `page`) and points to `len` writable bytes, zero but for what
/// this writes, that nothing else reads or writes until this returns.
#[doc(hidden)]
pub unsafe fn format_in(
    base: *mut u8,
    len: u64,
    page: u64,
    created_ns: u64,
    log_cap: u64,
) -> Result<()> {
    if len < MIN_CAPACITY {
        return Err(Error::BadSize {
            size: len,
            why: "smaller than the 16 KiB header plus one block",
        });
    }
    let id = Identity::new(page as u32, created_ns);
    // SAFETY: the caller's contract: `len >= MIN_CAPACITY` bytes, page-aligned, ours alone;
    // the Identity and the State lie inside them at aligned offsets.
    unsafe {
        std::ptr::write(base.cast::<Identity>(), id);
        let st = base.add(STATE_OFFSET).cast::<format::State>();
        (*st).capacity = len;
        (*st).generation = 1;
    }
    // SAFETY: as above; nobody else touches the bytes while the arena lives.
    let mut arena = unsafe { Arena::new(base, len, page) };
    arena.format()?;
    // The log's block holds exactly its capacity (at least MIN_LOG, which the options'
    // check refused below; far above the smallest payload).
    debug_assert!(log_cap >= txn::MIN_LOG);
    let block = arena.alloc(log_cap, 8).map_err(|_| Error::BadSize {
        size: len,
        why: "too small for the heap's undo log (see CreateOptions::log_capacity)",
    })?;
    arena.store_state(st!(log.block), block)?;
    arena.store_state(st!(log.cap), log_cap)?;
    Ok(())
}

/// Whether whoever held the lock before left anything in flight: the repair flag, the
/// allocator's intent record, or a transaction in the undo log (one cache line). A lock
/// that finds any, or that took the lock over from a dead owner, runs [`recover_arena`].
#[doc(hidden)]
#[inline]
pub fn leftovers(a: &Arena<'_>) -> bool {
    let st = a.state();
    st.flags | st.intent.op | st.log.len | st.log.done != 0
}

/// The recovery a lock runs before anything else when the previous owner died (`dead`) or
/// left something in flight ([`leftovers`]): plans the allocator's repair (reading only),
/// parses and checks the whole log against it, repairs the allocator, rolls the logged
/// transaction back or finishes it, and clears the repair flag. Says what it did.
#[doc(hidden)]
pub fn recover_arena(a: &mut Arena<'_>, dead: Option<OwnerId>) -> Result<Recovery> {
    let plan = a.plan_repair().map_err(Error::Repair)?;
    if let Some(entries) = txn::entries_to_check(a)? {
        txn::check_images(a, &plan, &entries)?;
    }
    let repair = if active(Mutant::SkipRepair) {
        RepairReport::default()
    } else {
        a.apply_repair(plan).map_err(Error::Repair)?
    };
    let undone = txn::recover(a)?;
    let flags = a.state().flags;
    if flags & FLAG_NEEDS_REPAIR != 0 {
        a.set_flags(flags & !FLAG_NEEDS_REPAIR)
            .map_err(Error::Repair)?;
    }
    Ok(Recovery {
        dead,
        repair,
        undone,
    })
}
