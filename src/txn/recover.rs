//! Recovery of a transaction left by an owner that died (or by a guard whose own ending
//! failed): after the allocator's repair, roll the log back, or finish a committed one.

use super::entry::{parse_in, segments_recovering, Entry, EntryKind};
use super::undo::{commit, rollback};
use super::{LogFault, TxnError, LOG_COMMITTED};
use crate::alloc::{st, AllocError, Arena, RepairPlan};
use crate::format::{BLOCK_HEADER, LOG_DONE_ALL};

/// What recovery did to the transaction it found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Undone {
    /// The transaction had committed: its deferred frees were finished, nothing undone.
    pub committed: bool,
    /// Bytes of before-images written back.
    pub bytes_restored: u64,
    /// Blocks the transaction had allocated, freed.
    pub blocks_freed: u64,
    /// Deferred frees carried out (of a committed transaction).
    pub frees_finished: u64,
    /// Entries the log held.
    pub entries: u64,
}

/// Every before-image that a rollback would write back must lie inside one block that
/// stays allocated after the repair `plan` (the log is file data: a recoverer trusts
/// nothing it has not checked). A committed transaction's images are never written back
/// (and may name blocks its deferred frees have freed), so they are not judged. And every
/// block the recovery will free (a rolled-back transaction's allocations, a committed
/// one's deferred frees not yet done, the extension segments) must be one the free can
/// take (see [`freeable`]). Reads only: all of it is checked before the repair's first
/// store (D1).
pub fn check_images(a: &Arena<'_>, plan: &RepairPlan, entries: &[Entry]) -> Result<(), TxnError> {
    let log = a.state().log;
    let committed = log.len & LOG_COMMITTED != 0;
    if !committed {
        let used: Vec<(u64, u64)> = plan.used_payloads().collect();
        for e in entries.iter().filter(|e| e.kind == EntryKind::Image) {
            if super::entry::roots_range().contains(&e.target) {
                continue;
            }
            let i = used.partition_point(|&(start, _)| start <= e.target);
            let inside = i > 0 && e.target + e.len <= used[i - 1].1;
            if !inside {
                return Err(TxnError::BadLog {
                    pos: e.pos,
                    fault: LogFault::ImageOutsideBlocks,
                });
            }
        }
    }
    let to_free = entries.iter().filter(|e| {
        if committed {
            e.kind == EntryKind::Free
        } else {
            e.kind == EntryKind::Alloc
        }
    });
    let done = if committed { log.done } else { 0 };
    for e in to_free.skip(usize::try_from(done).unwrap_or(usize::MAX)) {
        if !freeable(a, plan, e.target) {
            return Err(TxnError::BadLog {
                pos: e.pos,
                fault: LogFault::BadTarget,
            });
        }
    }
    // (A dead last extension, `cap` 0, is only delisted, never freed.)
    for s in segments_recovering(a, &log)?
        .iter()
        .skip(1)
        .filter(|s| s.cap != 0)
    {
        if !freeable(a, plan, s.at) {
            return Err(TxnError::BadLog {
                pos: 0,
                fault: LogFault::BadExtension,
            });
        }
    }
    Ok(())
}

/// Whether the recovery's free of `payload` (`undo::free_if_used`) will free a block of
/// the repaired chain or skip one already freed, rather than fail half-way or free bytes
/// that are no block: its header must start a block of the chain `plan` leaves, or be the
/// stale header, marked free, of a block an earlier attempt freed and merged into a free
/// neighbour (at least 24 bytes inside that neighbour, so the repair's stores to its
/// links and footer do not touch it).
fn freeable(a: &Arena<'_>, plan: &RepairPlan, payload: u64) -> bool {
    let o = payload.wrapping_sub(BLOCK_HEADER);
    let blocks = plan.blocks();
    let i = blocks.partition_point(|b| b.offset <= o);
    let Some(b) = i.checked_sub(1).map(|i| blocks[i]) else {
        return false;
    };
    if b.offset == o {
        return true;
    }
    b.header.is_free()
        && o >= b.offset + 24
        && o + 16 <= b.offset + b.header.size
        && matches!(a.used_block(payload), Err(AllocError::DoubleFree { .. }))
}

/// Whether the log holds anything to recover (what a lock reads to decide).
pub fn pending(a: &Arena<'_>) -> bool {
    let log = a.state().log;
    log.len != 0 || log.done != 0
}

/// The entries recovery will process, checked (D1): `None` when the entries themselves
/// are finished with (a committed transaction past its deferred frees).
pub fn entries_to_check(a: &Arena<'_>) -> Result<Option<Vec<Entry>>, TxnError> {
    let log = a.state().log;
    if log.len == 0 {
        return Ok(None);
    }
    let segs = segments_recovering(a, &log)?;
    if log.len & LOG_COMMITTED != 0 && log.done == LOG_DONE_ALL {
        return Ok(None);
    }
    parse_in(a, &log, &segs).map(Some)
}

/// Finishes or rolls back the transaction in the log, if there is one. The caller checked
/// the log ([`entries_to_check`], [`check_images`]) before the repair's first store (D1);
/// it is parsed again here, after the repair, which changed only what the chain derives.
pub fn recover(a: &mut Arena<'_>) -> Result<Option<Undone>, TxnError> {
    let log = a.state().log;
    if !pending(a) {
        return Ok(None);
    }
    if log.len == 0 {
        // A transaction over but for its `done` (a death between the last two stores).
        a.store_state(st!(log.done), 0)?;
        return Ok(None);
    }
    let segs = segments_recovering(a, &log)?;
    let entries = entries_to_check(a)?.unwrap_or_default();
    let mut out = Undone {
        entries: entries.len() as u64,
        ..Undone::default()
    };
    if log.len & LOG_COMMITTED != 0 {
        out.committed = true;
        out.frees_finished = commit(a, &segs, &entries, None)?;
    } else {
        let u = rollback(a, &segs, &entries)?;
        out.bytes_restored = u.bytes_restored;
        out.blocks_freed = u.blocks_freed;
    }
    Ok(Some(out))
}
