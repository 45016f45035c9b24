//! Recovery of a transaction left by an owner that died (or by a guard whose own ending
//! failed): after the allocator's repair, roll the log back, or finish a committed one.

use super::entry::{parse_in, segments_recovering, Entry, EntryKind};
use super::undo::{commit, rollback};
use super::{LogFault, TxnError, LOG_COMMITTED};
use crate::alloc::{st, Arena, RepairPlan};
use crate::format::LOG_DONE_ALL;

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
/// (and may name blocks its deferred frees have freed), so they are not judged. Reads only.
pub fn check_images(a: &Arena<'_>, plan: &RepairPlan, entries: &[Entry]) -> Result<(), TxnError> {
    if a.state().log.len & LOG_COMMITTED != 0 {
        return Ok(());
    }
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
    Ok(())
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
        out.frees_finished = commit(a, &segs, &entries)?;
    } else {
        let u = rollback(a, &segs, &entries)?;
        out.bytes_restored = u.bytes_restored;
        out.blocks_freed = u.blocks_freed;
    }
    Ok(Some(out))
}
