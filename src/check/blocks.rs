//! The physical chain (A2), neighbours (A4, A6) and counters (A7).

use std::collections::{HashMap, HashSet};

use super::{Report, Violation};
use crate::alloc::{Arena, Block};

/// What the chain walk saw, for the other rules.
pub(super) struct Chain {
    /// Free blocks: offset to size.
    pub free: HashMap<u64, u64>,
    /// Used blocks' offsets.
    pub used: HashSet<u64>,
    /// Whether the walk reached the sentinel.
    pub whole: bool,
}

pub(super) fn check(arena: &Arena<'_>, report: &mut Report) -> Chain {
    let v = &mut report.violations;
    let mut blocks: Vec<Block> = Vec::new();
    let whole = match arena.walk_chain(|b| blocks.push(b)) {
        Ok(_) => true,
        Err(b) => {
            v.push(Violation::Chain {
                offset: b.offset,
                fault: b.fault,
            });
            false
        }
    };
    report.blocks = blocks.len() as u64;
    let mut free: HashMap<u64, u64> = HashMap::new();
    let mut used = HashSet::new();
    let (mut used_bytes, mut free_bytes) = (0u64, 0u64);
    let mut prev: Option<Block> = None;
    for b in &blocks {
        let prev_free = prev.is_some_and(|p| p.header.is_free());
        if b.header.prev_free() != prev_free {
            v.push(Violation::PrevFreeBit { block: b.offset });
        }
        if b.header.is_free() {
            if let Some(p) = prev.filter(|p| p.header.is_free()) {
                v.push(Violation::AdjacentFree {
                    first: p.offset,
                    second: b.offset,
                });
            }
            let footer = arena.word(b.offset + b.header.size - 8).unwrap_or(u64::MAX);
            if footer != b.header.size {
                v.push(Violation::Footer {
                    block: b.offset,
                    found: footer,
                });
            }
            free.insert(b.offset, b.header.size);
            free_bytes += b.header.size;
        } else {
            used.insert(b.offset);
            used_bytes += b.header.size;
        }
        prev = Some(*b);
    }
    report.free_blocks = free.len() as u64;
    // The sentinel's PREV_FREE bit speaks of the last block only if the walk reached it.
    if whole {
        let last_free = prev.is_some_and(|p| p.header.is_free());
        if let Ok(sh) = arena.header(arena.sentinel()) {
            if sh.prev_free() != last_free {
                v.push(Violation::SentinelPrevFree {
                    sentinel: arena.sentinel(),
                });
            }
        }
        let st = arena.state();
        for (name, recorded, counted) in [
            ("used_bytes", st.used_bytes, used_bytes),
            ("used_blocks", st.used_blocks, used.len() as u64),
            ("free_bytes", st.free_bytes, free_bytes),
            ("free_blocks", st.free_blocks, free.len() as u64),
        ] {
            if recorded != counted {
                v.push(Violation::Counter {
                    name,
                    recorded,
                    counted,
                });
            }
        }
    }
    Chain { free, used, whole }
}
