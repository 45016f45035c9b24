//! Log entries: their encoding, and the one parser that recovery and `check` share.

use super::TxnError;
use crate::alloc::{st, Arena};
use crate::format::{LogState, BLOCK_HEADER, HEADER_SIZE, LOG_DONE_ALL, LOG_LEN_MASK, ROOT_COUNT};

/// Bytes of an entry before its data.
pub const ENTRY_HEADER: u64 = 16;

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EntryKind {
    /// A before-image.
    Image = 1,
    /// A block this transaction allocated.
    Alloc = 2,
    /// A block to free at commit.
    Free = 3,
    /// Filler to the end of a segment (the next entry is in the next segment).
    Pad = 4,
}

/// One entry, as parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its position in the log (counted across the segments).
    pub pos: u64,
    /// Its file offset.
    pub at: u64,
    /// What it records.
    pub kind: EntryKind,
    /// The file offset it is about (a range start, or a payload).
    pub target: u64,
    /// Bytes of data (a before-image, or a pad's filler).
    pub len: u64,
}

impl Entry {
    /// Bytes the entry takes in the log.
    pub fn size(&self) -> u64 {
        ENTRY_HEADER + self.len
    }
}

/// One segment of the log: where its first byte is counted, where it lies, its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The log position of its first byte.
    pub base: u64,
    /// Its file offset (a payload).
    pub at: u64,
    /// Its bytes (a multiple of 8).
    pub cap: u64,
}

impl Segment {
    /// The position just past it.
    pub fn end(&self) -> u64 {
        self.base + self.cap
    }
}

/// The first word of an entry.
pub fn word0(kind: EntryKind, len: u64) -> u64 {
    kind as u64 | len << 32
}

/// The file range of the root table.
pub fn roots_range() -> std::ops::Range<u64> {
    st!(roots)..st!(roots) + 64 * ROOT_COUNT as u64
}

/// The segments of `log`: its own block, then each extension, each an allocated block.
/// Reads only.
pub fn segments(a: &Arena<'_>, log: &LogState) -> Result<Vec<Segment>, TxnError> {
    segments_in(a, log, false)
}

/// [`segments`] as a recoverer finds them: the last extension listed may be *dead*, a
/// block that is no longer allocated, returned with `cap` 0 (it holds no position, so
/// [`parse_in`] refuses a length that reaches into it). A death leaves one so in two
/// windows, both after the log stopped needing the segment: between an extension's
/// allocation and the clearing of its intent (the allocator's repair frees the block, but
/// the listing stays), and between the free of an extension and the store that delists it
/// (in a commit past its deferred frees, or a rollback below the segment's start). The
/// rollback or commit that resumes only delists it. Reads only.
pub fn segments_recovering(a: &Arena<'_>, log: &LogState) -> Result<Vec<Segment>, TxnError> {
    segments_in(a, log, true)
}

fn segments_in(a: &Arena<'_>, log: &LogState, dead_last: bool) -> Result<Vec<Segment>, TxnError> {
    let bad = |fault| Err(TxnError::BadLog { pos: 0, fault });
    let Ok(usable) = a.usable_size(log.block) else {
        return bad(LogFault::NoBlock);
    };
    // No create makes a log below MIN_LOG: a smaller capacity is a corrupt descriptor.
    if log.cap > usable || !log.cap.is_multiple_of(8) || log.cap < super::MIN_LOG {
        return bad(LogFault::BadCapacity);
    }
    // An extension is listed only after the entry that fills the segment before it, and
    // delisted before the length is cleared (undo.rs): an empty log lists none.
    if log.len & LOG_LEN_MASK == 0 && log.ext.iter().any(|&x| x != 0) {
        return bad(LogFault::BadExtension);
    }
    let mut segs = vec![Segment {
        base: 0,
        at: log.block,
        cap: log.cap,
    }];
    let mut ended = false;
    for &x in &log.ext {
        if x == 0 {
            ended = true;
            continue;
        }
        let last = segs[segs.len() - 1];
        // Only the last listed may be dead: nothing follows a dead one.
        if ended || last.cap == 0 || x == log.block || segs.iter().any(|s| s.at == x) {
            return bad(LogFault::BadExtension);
        }
        let usable = match a.usable_size(x) {
            Ok(n) => n,
            Err(_) if dead_last => 0,
            Err(_) => return bad(LogFault::BadExtension),
        };
        segs.push(Segment {
            base: last.end(),
            at: x,
            cap: usable & !7,
        });
    }
    Ok(segs)
}

/// The segment holding position `pos`, and the bytes left in it from there.
pub fn locate(segs: &[Segment], pos: u64) -> Option<(Segment, u64)> {
    segs.iter()
        .find(|s| s.base <= pos && pos < s.end())
        .map(|s| (*s, s.end() - pos))
}

/// What is wrong with a log (each one a rule `check` reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum LogFault {
    /// `log.block` is not an allocated block.
    NoBlock,
    /// `log.cap` is not a multiple of 8, exceeds the block, or is below `MIN_LOG`.
    BadCapacity,
    /// `log.len` is beyond the capacity or not a multiple of 8.
    BadLength,
    /// An extension segment is not an allocated block, or the table has a gap.
    BadExtension,
    /// An entry's header is cut off by `log.len`.
    CutOff,
    /// An entry's kind is unknown, or reserved bits are set.
    BadKind,
    /// An entry's target is not 8-aligned.
    Misaligned,
    /// A before-image's range is neither a root entry nor a payload range of the arena.
    BadImage,
    /// An ALLOC or FREE entry names no possible payload.
    BadTarget,
    /// An entry runs past `log.len`.
    Overrun,
    /// `log.done` is impossible (non-zero before the commit, or more than the frees).
    BadDone,
    /// A before-image lies outside every allocated block (found by recovery's walk).
    ImageOutsideBlocks,
    /// A committed transaction outside the commit (`check`: recovery finishes those).
    Committed,
}

impl LogFault {
    /// Every fault, for the table of `check`'s rules.
    pub const ALL: &'static [LogFault] = &[
        LogFault::NoBlock,
        LogFault::BadCapacity,
        LogFault::BadLength,
        LogFault::BadExtension,
        LogFault::CutOff,
        LogFault::BadKind,
        LogFault::Misaligned,
        LogFault::BadImage,
        LogFault::BadTarget,
        LogFault::Overrun,
        LogFault::BadDone,
        LogFault::ImageOutsideBlocks,
        LogFault::Committed,
    ];

    /// What it means, in words.
    pub fn what(self) -> &'static str {
        match self {
            LogFault::NoBlock => "the log's block is not an allocated block",
            LogFault::BadCapacity => {
                "the log's capacity does not fit its block, or is below 256 bytes"
            }
            LogFault::BadLength => "the log's length is beyond its capacity",
            LogFault::BadExtension => "an extension segment is not an allocated block",
            LogFault::CutOff => "an entry is cut off by the log's length",
            LogFault::BadKind => "an entry's kind is unknown",
            LogFault::Misaligned => "an entry's target is not 8-aligned",
            LogFault::BadImage => "a before-image's range is not a root entry or a payload range",
            LogFault::BadTarget => "an entry names no possible payload",
            LogFault::Overrun => "an entry runs past the log's length",
            LogFault::BadDone => "the count of deferred frees done is impossible",
            LogFault::ImageOutsideBlocks => "a before-image lies outside every allocated block",
            LogFault::Committed => "a committed transaction was left unfinished",
        }
    }
}

/// Parses the entries of `log` (which must be the heap's current descriptor): every entry
/// well-formed, inside a segment, its target where such an entry may point. Reads only.
pub fn parse(a: &Arena<'_>, log: &LogState) -> Result<Vec<Entry>, TxnError> {
    let segs = segments(a, log)?;
    parse_in(a, log, &segs)
}

/// [`parse`] over known segments.
pub fn parse_in(a: &Arena<'_>, log: &LogState, segs: &[Segment]) -> Result<Vec<Entry>, TxnError> {
    let bad = |pos, fault| Err(TxnError::BadLog { pos, fault });
    let len = log.len & LOG_LEN_MASK;
    let total = segs[segs.len() - 1].end();
    if len > total || !len.is_multiple_of(8) {
        return bad(len, LogFault::BadLength);
    }
    let arena = HEADER_SIZE + BLOCK_HEADER..a.sentinel();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < len {
        let Some((seg, rem)) = locate(segs, pos) else {
            return bad(pos, LogFault::CutOff);
        };
        if rem < ENTRY_HEADER {
            // Too little room for an entry: the next one starts the next segment.
            if seg.end() > len {
                return bad(pos, LogFault::CutOff);
            }
            pos = seg.end();
            continue;
        }
        if len - pos < ENTRY_HEADER {
            return bad(pos, LogFault::CutOff);
        }
        let at = seg.at + (pos - seg.base);
        let (Ok(w0), Ok(target)) = (a.word(at), a.word(at + 8)) else {
            return bad(pos, LogFault::CutOff);
        };
        let kind = match w0 & 0xff {
            1 => EntryKind::Image,
            2 => EntryKind::Alloc,
            3 => EntryKind::Free,
            4 => EntryKind::Pad,
            _ => return bad(pos, LogFault::BadKind),
        };
        if w0 >> 8 & 0xff_ffff != 0 {
            return bad(pos, LogFault::BadKind);
        }
        let e = Entry {
            pos,
            at,
            kind,
            target,
            len: w0 >> 32,
        };
        if !target.is_multiple_of(8) || !e.len.is_multiple_of(8) {
            return bad(pos, LogFault::Misaligned);
        }
        if e.size() > rem || e.size() > len - pos {
            return bad(pos, LogFault::Overrun);
        }
        match kind {
            EntryKind::Image => {
                let n = e.len;
                let roots = roots_range();
                let in_roots =
                    roots.contains(&target) && (target - roots.start).is_multiple_of(64) && n == 64;
                let in_log = |t: u64, n: u64| {
                    segs.iter()
                        .any(|s| t < s.at + s.cap && s.at < t.saturating_add(n))
                };
                let in_arena = target.checked_add(n).is_some_and(|end| {
                    arena.contains(&target) && end <= arena.end && !in_log(target, n)
                });
                if n == 0 || !(in_roots || in_arena) {
                    return bad(pos, LogFault::BadImage);
                }
            }
            EntryKind::Alloc | EntryKind::Free => {
                if e.len != 0 || !arena.contains(&target) || segs.iter().any(|s| s.at == target) {
                    return bad(pos, LogFault::BadTarget);
                }
            }
            EntryKind::Pad => {
                if target != 0 || e.size() != rem {
                    return bad(pos, LogFault::BadKind);
                }
            }
        }
        pos += e.size();
        out.push(e);
    }
    let frees = out.iter().filter(|e| e.kind == EntryKind::Free).count() as u64;
    let committed = log.len & super::LOG_COMMITTED != 0;
    let done_ok = if committed {
        log.done <= frees || log.done == LOG_DONE_ALL
    } else {
        log.done == 0
    };
    if !done_ok {
        return bad(len, LogFault::BadDone);
    }
    Ok(out)
}
