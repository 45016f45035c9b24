//! Rollback and commit: the two ways a transaction ends, each idempotent step by step
//! (T2, T3, T4), so that the same code serves a live guard and a recoverer, and a
//! recoverer that dies half-way leaves the rest to the next owner.
//!
//! Extension segments are freed once no entry lies in them: in a rollback as soon as
//! `log.len` has come down to a segment's first position, in a commit once every deferred
//! free is done (`log.done` = [`LOG_DONE_ALL`]). So `log.len` is never 0 while an
//! extension is listed, and every lock notices a transaction left behind by reading
//! `log.len` alone.

use super::entry::{Entry, EntryKind, Segment, ENTRY_HEADER};
use super::{TxnError, LOG_COMMITTED, LOG_LEN_MASK};
use crate::alloc::{st, AllocError, Arena, KeptFree};
use crate::format::{LOG_DONE_ALL, LOG_EXTENSIONS};
use crate::mutant::{active, Mutant};

/// What a rollback undid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Undo {
    /// Bytes of before-images written back.
    pub bytes_restored: u64,
    /// Blocks of the transaction freed.
    pub blocks_freed: u64,
    /// Entries undone.
    pub entries: u64,
}

/// Frees the block at `payload` unless a previous attempt already did (then the block's
/// header says free: it was freed, or merged into a free neighbour, which leaves its old
/// header behind marked free). `true` if it freed it now.
pub(crate) fn free_if_used(a: &mut Arena<'_>, payload: u64) -> Result<bool, TxnError> {
    match a.free(payload) {
        Ok(()) => Ok(true),
        Err(AllocError::DoubleFree { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Frees, newest first, every extension segment whose first position is at or past
/// `from` (each freed, then delisted).
fn free_extensions(a: &mut Arena<'_>, segs: &[Segment], from: u64) -> Result<(), TxnError> {
    for (i, s) in segs.iter().enumerate().skip(1).rev() {
        if s.base < from {
            break;
        }
        let slot = st!(log.ext) + 8 * (i as u64 - 1);
        if a.state().log.ext[i - 1] != 0 {
            // A dead segment (`cap` 0, see `segments_recovering`) is no block to free.
            if s.cap != 0 {
                free_if_used(a, s.at)?;
            }
            a.store_state(slot, 0)?;
        }
    }
    debug_assert!(segs.len() <= LOG_EXTENSIONS + 1);
    Ok(())
}

/// Rolls back the uncommitted transaction whose parsed entries are `entries`, in the
/// segments `segs`: newest-first, each undone before `log.len` is lowered past it (T3).
pub fn rollback(a: &mut Arena<'_>, segs: &[Segment], entries: &[Entry]) -> Result<Undo, TxnError> {
    let mut undo = Undo::default();
    if active(Mutant::ClearLogFirst) {
        a.store_state(st!(log.len), 0)?;
    }
    // Segments past the length hold nothing (a death came between an extension's
    // allocation and its first entry).
    free_extensions(a, segs, a.state().log.len & LOG_LEN_MASK)?;
    // Newest-first. (Each range is imaged once per transaction, so the images never
    // overlap and their order alone cannot be wrong; the newest-first walk is what lets
    // `log.len` fall entry by entry, which makes a half-done rollback resumable.)
    for e in entries.iter().rev() {
        match e.kind {
            EntryKind::Image => {
                a.copy_words(e.target, e.at + ENTRY_HEADER, e.len)?;
                undo.bytes_restored += e.len;
            }
            EntryKind::Alloc => {
                if !active(Mutant::RollbackKeepsAllocs) && free_if_used(a, e.target)? {
                    undo.blocks_freed += 1;
                }
            }
            EntryKind::Free | EntryKind::Pad => {}
        }
        a.store_state(st!(log.len), e.pos)?;
        free_extensions(a, segs, e.pos)?;
        undo.entries += 1;
    }
    if a.state().log.len != 0 {
        a.store_state(st!(log.len), 0)?;
    }
    Ok(undo)
}

/// Commits the transaction whose parsed entries are `entries` (if the commit store was not
/// made yet, makes it: T2), then carries out its deferred frees not yet done (T4), frees
/// its extension segments and clears the log. Returns how many frees it carried out now.
/// A live transaction passes the plan it kept of its first free (`kept`), made as it is if
/// nothing it read has changed; a recoverer has none.
#[inline]
pub fn commit(
    a: &mut Arena<'_>,
    segs: &[Segment],
    entries: &[Entry],
    kept: Option<&mut KeptFree>,
) -> Result<u64, TxnError> {
    let (len, done) = (a.state().log.len, a.state().log.done);
    let frees = entries.iter().any(|e| e.kind == EntryKind::Free);
    if len & LOG_COMMITTED == 0 && done == 0 && !frees && segs.len() <= 1 {
        // Nothing to do after the commit: the one store that makes the transaction final
        // is the one that clears its log (T2).
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        a.store_state(st!(log.len), 0)?;
        crate::fault::hit(crate::fault::CrashPoint::TxCommitted);
        return Ok(0);
    }
    commit_in_steps(a, segs, entries, len, done, kept)
}

/// [`commit`] of a transaction with deferred frees or extensions, or one a recoverer
/// finishes: the commit store, then the frees one by one (T4).
#[inline(never)]
fn commit_in_steps(
    a: &mut Arena<'_>,
    segs: &[Segment],
    entries: &[Entry],
    len: u64,
    done: u64,
    mut kept: Option<&mut KeptFree>,
) -> Result<u64, TxnError> {
    if len & LOG_COMMITTED == 0 {
        // Every entry is in before this store (T1), so the transaction is final with it.
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        a.store_state(st!(log.len), (len & LOG_LEN_MASK) | LOG_COMMITTED)?;
        crate::fault::hit(crate::fault::CrashPoint::TxCommitted);
    }
    let mut freed = 0;
    if done != LOG_DONE_ALL {
        let mut k = 0;
        for e in entries.iter().filter(|e| e.kind == EntryKind::Free) {
            k += 1;
            if k <= done {
                continue;
            }
            let made = match kept.as_deref_mut() {
                Some(kf) if k == 1 => a.free_kept(e.target, kf),
                _ => false,
            } || a.free_direct(e.target);
            if made || free_if_used(a, e.target)? {
                freed += 1;
            }
            a.store_state(st!(log.done), k)?;
        }
        if segs.len() > 1 {
            // The entries are finished with: the segments holding them may go.
            a.store_state(st!(log.done), LOG_DONE_ALL)?;
        }
    }
    free_extensions(a, segs, 0)?;
    // Length first: a transaction whose length is 0 is over, and a `done` left behind by a
    // death here is cleared by the next lock (it reads `done` too).
    a.store_state(st!(log.len), 0)?;
    if a.state().log.done != 0 {
        a.store_state(st!(log.done), 0)?;
    }
    Ok(freed)
}
