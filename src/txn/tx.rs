//! The process-local side of a transaction: what this guard has logged already, so that
//! each range is imaged once (T5), and a block this transaction allocated needs no image.
//! It mirrors the log in the file; the file is the truth, and a recoverer needs nothing
//! of this.

use super::entry::{locate, word0, Entry, EntryKind, Segment, ENTRY_HEADER};
use super::small::SmallMap;
use super::undo::{self, Undo};
use super::{TxnError, LOG_COMMITTED};
use crate::alloc::{st, AllocError, Arena, KeptFree};
use crate::format::LOG_EXTENSIONS;
use crate::mutant::{active, Mutant};

/// What `Tx::imaged` holds for a block the transaction allocated: every byte of it is new,
/// so none needs an image.
const FRESH: u64 = u64::MAX;

/// The transaction of the guard that holds the lock in this process.
#[derive(Default)]
pub struct Tx {
    /// Bytes of log entries made (the file's `log.len`); 0: nothing logged yet.
    len: u64,
    /// The entries made, in order.
    entries: Vec<Entry>,
    /// The log's segments (the file's, mirrored): empty until the first entry.
    segs: Vec<Segment>,
    /// The log's own block and capacity as last checked (`segments`), so that a
    /// transaction does not check them again while they have not changed.
    seg0: Option<Segment>,
    /// Per range start (a payload, or a root entry): how many of its bytes need no image,
    /// because they are imaged already, or all of them ([`FRESH`]) for a block this
    /// transaction allocated. (One map, so that a write looks up one key once.)
    imaged: SmallMap,
    /// Payloads this transaction frees at commit (the value is unused).
    freed: SmallMap,
    /// The steps of this transaction's first free, kept from its check to its commit
    /// (allocated at the first free of the attachment, then reused).
    kept: Option<Box<KeptFree>>,
    /// A commit or rollback failed half-way: the log in the file is the truth now, and
    /// only the next guard's recovery may touch it. Its `len` is kept, so the transaction
    /// stays active, and every call but `reset` refuses it.
    failed: bool,
}

impl Tx {
    /// Whether anything was logged (so the guard must commit or roll back).
    #[inline]
    pub fn active(&self) -> bool {
        self.len != 0
    }

    /// Whether `payload` is to be freed by this transaction (then it may not be used).
    #[inline]
    pub fn is_freed(&self, payload: u64) -> bool {
        !self.freed.is_empty() && self.freed.contains(payload)
    }

    /// Bytes of log in use (whether any is: [`Tx::active`]).
    pub fn log_len(&self) -> u64 {
        self.len
    }

    /// Forgets everything (after the log was committed, rolled back or recovered).
    pub fn reset(&mut self) {
        self.len = 0;
        self.entries.clear();
        self.segs.clear();
        self.imaged.clear();
        self.freed.clear();
        // (The kept free needs no forgetting: the first free of every transaction keeps its
        // own steps or none, before any commit could make them.)
        self.failed = false;
    }

    fn usable(&self) -> Result<(), TxnError> {
        if self.failed {
            return Err(TxnError::Ended);
        }
        Ok(())
    }

    fn end(&mut self, r: Result<u64, TxnError>) -> Result<u64, TxnError> {
        match r {
            Ok(n) => {
                self.reset();
                Ok(n)
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// The file offset where an entry of `size` bytes goes next. If the segment in use
    /// cannot hold it, fills the segment's rest with a PAD entry and moves to the next
    /// segment, allocating an extension (listed in `log.ext` by the allocation's own plan,
    /// so a death leaves it either unallocated or listed) if there is none.
    #[inline]
    fn room(&mut self, a: &mut Arena<'_>, size: u64) -> Result<u64, TxnError> {
        // The common case: one segment, with room; at a transaction's first entry, the
        // log's own block, if the descriptor is still the one checked last.
        let one = match self.segs[..] {
            [only] => Some(only),
            [] => self.known_seg0(a),
            _ => None,
        };
        if let Some(seg) = one {
            if self.len + size <= seg.end() {
                if self.segs.is_empty() {
                    self.segs.push(seg);
                }
                return Ok(seg.at + (self.len - seg.base));
            }
        }
        self.room_slow(a, size)
    }

    /// The log's own block as last checked (`segments`), if the descriptor still says what
    /// it said then. Outside a transaction no extension is listed.
    #[inline]
    fn known_seg0(&self, a: &Arena<'_>) -> Option<Segment> {
        let log = &a.state().log;
        self.seg0
            .filter(|s| s.at == log.block && s.cap == log.cap && log.ext[0] == 0)
    }

    /// [`Tx::room`] when the entry does not fit the one segment known, or none is known.
    #[inline(never)]
    fn room_slow(&mut self, a: &mut Arena<'_>, size: u64) -> Result<u64, TxnError> {
        if self.segs.is_empty() {
            // The descriptor is file data: checked before the first entry goes where it
            // says (D1), and again whenever it is not what was checked last.
            let seg0 = match self.known_seg0(a) {
                Some(s) => s,
                None => {
                    let segs = super::entry::segments(a, &a.state().log)?;
                    if segs.len() != 1 {
                        return Err(TxnError::BadLog {
                            pos: 0,
                            fault: super::LogFault::BadExtension,
                        });
                    }
                    segs[0]
                }
            };
            self.seg0 = Some(seg0);
            self.segs.push(seg0);
        }
        loop {
            let last = self.segs[self.segs.len() - 1];
            let (seg, rem) = locate(&self.segs, self.len).unwrap_or((last, 0));
            if size <= rem {
                return Ok(seg.at + (self.len - seg.base));
            }
            if rem >= ENTRY_HEADER {
                let at = seg.at + (self.len - seg.base);
                let pad = Entry {
                    pos: self.len,
                    at,
                    kind: EntryKind::Pad,
                    target: 0,
                    len: rem - ENTRY_HEADER,
                };
                a.store(at, word0(EntryKind::Pad, pad.len))?;
                a.store(at + 8, 0)?;
                a.store_state(st!(log.len), Self::len_word(seg.end()))?;
                self.entries.push(pad);
            }
            self.len = seg.end();
            if seg != last {
                continue;
            }
            let i = self.segs.len() - 1;
            let total: u64 = self.segs.iter().map(|s| s.cap).sum();
            let full = TxnError::LogFull {
                needed: size,
                free: 0,
                cap: total,
            };
            if i == LOG_EXTENSIONS {
                return Err(full);
            }
            let cap = size.max(2 * last.cap).next_multiple_of(8);
            let payload =
                match a.alloc_with(cap, 8, |e, p| e.set_st(st!(log.ext) + 8 * i as u64, p)) {
                    Ok(p) => p,
                    Err(AllocError::OutOfSpace { .. }) => return Err(full),
                    Err(e) => return Err(e.into()),
                };
            let usable = a.usable_size(payload)? & !7;
            self.segs.push(Segment {
                base: last.end(),
                at: payload,
                cap: usable,
            });
        }
    }

    fn len_word(new: u64) -> u64 {
        if active(Mutant::CommitBeforeLog) {
            new | LOG_COMMITTED
        } else {
            new
        }
    }

    fn append(
        &mut self,
        a: &mut Arena<'_>,
        kind: EntryKind,
        target: u64,
        n: u64,
    ) -> Result<(), TxnError> {
        self.usable()?;
        let at = self.room(a, ENTRY_HEADER + n)?;
        let e = Entry {
            pos: self.len,
            at,
            kind,
            target,
            len: n,
        };
        a.put_entry(at, [word0(kind, n), target], n)?;
        // T1: the entry is in with this store, and the data it guards is written after.
        a.store_state(st!(log.len), Self::len_word(self.len + e.size()))?;
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        self.len += e.size();
        self.entries.push(e);
        Ok(())
    }

    /// Before a write to `[payload, payload + n)` of an allocated block that
    /// [`Tx::saved_already`] said needs an image: saves what this transaction has not
    /// saved of it yet.
    #[inline]
    pub fn before_write(
        &mut self,
        a: &mut Arena<'_>,
        payload: u64,
        n: u64,
    ) -> Result<(), TxnError> {
        let want = n.next_multiple_of(8);
        let have = self.imaged.get(payload).unwrap_or(0);
        if have >= want {
            return Ok(());
        }
        self.append(a, EntryKind::Image, payload + have, want - have)?;
        self.imaged.insert(payload, want);
        Ok(())
    }

    /// Whether a write to `[payload, payload + n)` needs no new before-image: it writes
    /// nothing, or to a block this transaction allocated, or to bytes it saved already.
    /// Reads only this process's mirror (a guard checks it before it touches the file).
    #[inline(always)]
    pub fn saved_already(&self, payload: u64, n: u64) -> bool {
        n == 0 || self.imaged.get(payload).unwrap_or(0) >= n.next_multiple_of(8)
    }

    /// Before a change of the root entry at file offset `at`: saves it once.
    pub fn before_root_write(&mut self, a: &mut Arena<'_>, at: u64) -> Result<(), TxnError> {
        if self.imaged.contains(at) {
            return Ok(());
        }
        self.append(a, EntryKind::Image, at, 64)?;
        self.imaged.insert(at, 64);
        Ok(())
    }

    /// Allocates, recording the block in the log between the allocation's commit store and
    /// the clearing of its intent, so that no moment leaves it unaccounted for.
    pub fn alloc(&mut self, a: &mut Arena<'_>, size: u64, align: u64) -> Result<u64, TxnError> {
        self.usable()?;
        let at = self.room(a, ENTRY_HEADER)?;
        let pos = self.len;
        let len = Self::len_word(pos + ENTRY_HEADER);
        let head = word0(EntryKind::Alloc, 0);
        let payload = match a.alloc_logged_direct(size, align, at, head, len) {
            Some(p) => p,
            None => a.alloc_with(size, align, |e, payload| {
                e.put(at, head)?;
                e.put(at + 8, payload)?;
                e.set_st(st!(log.len), len)
            })?,
        };
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        self.len = pos + ENTRY_HEADER;
        self.entries.push(Entry {
            pos,
            at,
            kind: EntryKind::Alloc,
            target: payload,
            len: 0,
        });
        self.imaged.insert(payload, FRESH);
        Ok(payload)
    }

    /// Frees at commit: checks the block and plans its free now (D1), records the free,
    /// changes nothing else.
    pub fn free(&mut self, a: &mut Arena<'_>, payload: u64) -> Result<(), TxnError> {
        self.usable()?;
        a.used_block(payload)?;
        if payload == a.state().log.block {
            return Err(AllocError::InvalidOffset {
                offset: payload,
                reason: "it is the heap's undo log",
            }
            .into());
        }
        if self.is_freed(payload) {
            return Err(AllocError::DoubleFree { offset: payload }.into());
        }
        // D1: a free that cannot be made is refused now, with nothing logged; at the
        // commit it would fail after the commit store and leave the transaction to repair.
        if self.freed.is_empty() {
            // The first free of the transaction: its steps are kept for the commit.
            let kept = self.kept.get_or_insert_with(Box::default);
            a.check_free_keeping(payload, kept)?;
        } else if !a.free_direct_ok(payload) {
            a.check_free(payload)?;
        }
        if active(Mutant::FreeBeforeCommit) {
            a.free(payload)?;
        }
        self.append(a, EntryKind::Free, payload, 0)?;
        self.freed.insert(payload, 0);
        Ok(())
    }

    /// Commits (T2) and carries out the deferred frees (T4); returns how many.
    pub fn commit(&mut self, a: &mut Arena<'_>) -> Result<u64, TxnError> {
        self.usable()?;
        if !self.active() {
            return Ok(0);
        }
        let r = undo::commit(a, &self.segs, &self.entries, self.kept.as_deref_mut());
        self.end(r)
    }

    /// Rolls back (T3).
    pub fn rollback(&mut self, a: &mut Arena<'_>) -> Result<Undo, TxnError> {
        self.usable()?;
        if !self.active() {
            return Ok(Undo::default());
        }
        let r = undo::rollback(a, &self.segs, &self.entries).map(|u| (u, 0));
        match r {
            Ok((u, _)) => {
                self.reset();
                Ok(u)
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}
