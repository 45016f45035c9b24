//! The header's own rules: bytes that must be zero, flag bits, the intent record, and the
//! undo log's descriptor and entries.
//!
//! The identity is checked by `open` (F2) and the lock word and attachment table belong
//! to the lock protocol (any value is handled there), so they are not judged here; every
//! other header byte is either checked by a rule of this module or of its siblings, or
//! documented as free (docs/format.md, "Which bytes are checked").

use super::Violation;
use crate::alloc::Arena;
use crate::format::{
    FLAGS_KNOWN, FLAG_NEEDS_REPAIR, HEADER_SIZE, INTENT_NONE, LOCK_OFFSET, LOG_COMMITTED,
    SLOTS_END, STATE_OFFSET, STATE_SIZE,
};
use crate::mutant::{active, Mutant};
use crate::txn::{parse, LogFault, TxnError};

/// The ranges of the header that must be zero: the lock area after the word, the gap
/// after the attachment table, and the tail after the state.
pub fn zero_ranges() -> [std::ops::Range<u64>; 3] {
    [
        LOCK_OFFSET as u64 + 4..LOCK_OFFSET as u64 + 64,
        SLOTS_END as u64..STATE_OFFSET as u64,
        (STATE_OFFSET + STATE_SIZE) as u64..HEADER_SIZE,
    ]
}

/// The bits of a little-endian word that hold its bytes `lo..hi` (`lo <= hi <= 8`).
fn byte_mask(lo: u64, hi: u64) -> u64 {
    if hi - lo == 8 {
        u64::MAX
    } else {
        ((1u64 << (8 * (hi - lo))) - 1) << (8 * lo)
    }
}

pub(super) fn check(arena: &Arena<'_>, v: &mut Vec<Violation>) {
    let st = arena.state();
    if st.intent.op != INTENT_NONE {
        v.push(Violation::PendingIntent { op: st.intent.op });
    }
    if st.flags & FLAG_NEEDS_REPAIR != 0 {
        v.push(Violation::NeedsRepair);
    }
    if st.flags & !FLAGS_KNOWN != 0 && !active(Mutant::SkipFlagsCheck) {
        v.push(Violation::UnknownFlags {
            bits: st.flags & !FLAGS_KNOWN,
        });
    }
    if active(Mutant::SkipZeroCheck) {
        return;
    }
    for r in zero_ranges() {
        let mut at = r.start & !7;
        while at < r.end {
            let w = arena.header_word(at).unwrap_or(0);
            // Only the bytes of the word inside the range count (the lock word shares one).
            let lo = r.start.saturating_sub(at).min(8);
            let hi = (r.end - at).min(8);
            let mask = byte_mask(lo, hi);
            if w & mask != 0 {
                let first = (w & mask).trailing_zeros() as u64 / 8;
                v.push(Violation::NotZero { offset: at + first });
            }
            at += 8;
        }
    }
}

/// The undo log: well formed whenever `check` runs (inside a transaction it holds that
/// transaction's entries; after any recovery it is empty).
pub(super) fn check_log(arena: &Arena<'_>, v: &mut Vec<Violation>) {
    let log = arena.state().log;
    match parse(arena, &log) {
        Ok(_) => {}
        Err(TxnError::BadLog { pos, fault }) => v.push(Violation::Log { pos, fault }),
        Err(_) => v.push(Violation::Log {
            pos: 0,
            fault: LogFault::NoBlock,
        }),
    }
    if log.len & LOG_COMMITTED != 0 {
        v.push(Violation::Log {
            pos: log.len & !LOG_COMMITTED,
            fault: LogFault::Committed,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::byte_mask;

    /// Every byte range of a word, against the mask built byte by byte (today's zero
    /// ranges only take whole words and the lock word's upper half, so the ranges in
    /// between are checked here).
    #[test]
    fn byte_mask_holds_exactly_the_bytes_of_its_range() {
        for lo in 0..8u64 {
            for hi in lo..=8u64 {
                let bytes: u64 = (lo..hi).map(|b| 0xff << (8 * b)).sum();
                assert_eq!(byte_mask(lo, hi), bytes, "bytes {lo}..{hi}");
            }
        }
    }
}
