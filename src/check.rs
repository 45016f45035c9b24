//! The invariant walker behind `Heap::check` and `mapheap check`.
//!
//! Invariant: [`check`] only reads, through the arena's bounds-checked accessors, and every
//! walk is bounded by the number of blocks on the chain, so it terminates and never panics
//! whatever the file holds; every broken invariant becomes one [`Violation`] in the report.
//! The ids (A2, A4, ...) are those of docs/invariants.md.

use std::collections::HashMap;
use std::fmt;

use crate::alloc::tlsf::mapping_insert;
use crate::alloc::{AllocError, Arena, Block};
use crate::format::{BLOCK_HEADER, FLAG_NEEDS_REPAIR, FL_COUNT, INTENT_NONE, ROOT_COUNT, SL_COUNT};

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind")]
pub enum Violation {
    /// A2: the chain of block headers does not tile the arena.
    Chain {
        /// Where the walk stopped.
        offset: u64,
        /// What was wrong.
        what: &'static str,
    },
    /// A4: two physically adjacent free blocks.
    AdjacentFree {
        /// The first block.
        first: u64,
        /// The second block.
        second: u64,
    },
    /// A6: a block's PREV_FREE bit disagrees with its predecessor.
    PrevFreeBit {
        /// The block.
        block: u64,
    },
    /// A6: a free block's footer does not repeat its size.
    Footer {
        /// The block.
        block: u64,
        /// Footer found.
        found: u64,
    },
    /// A5: a free block is in no list, or in the wrong one.
    NotListed {
        /// The block.
        block: u64,
    },
    /// A5: a list holds something that is not a free block of its class.
    BadListEntry {
        /// List `(fl, sl)`.
        list: (usize, usize),
        /// The entry.
        entry: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A5: a list's links are not symmetric or it does not end.
    BadLinks {
        /// List `(fl, sl)`.
        list: (usize, usize),
        /// Where.
        at: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A5: a bitmap bit disagrees with whether its list is empty.
    Bitmap {
        /// First-level class.
        fl: usize,
        /// Second-level class, or `None` for the first-level bit.
        sl: Option<usize>,
    },
    /// A7: a counter in the state disagrees with the chain.
    Counter {
        /// Which counter.
        name: &'static str,
        /// Value recorded.
        recorded: u64,
        /// Value counted.
        counted: u64,
    },
    /// R1: a root names no allocated block big enough for its type.
    Root {
        /// The root's name.
        name: String,
        /// Its offset.
        offset: u64,
        /// Why.
        what: String,
    },
    /// A3: an operation's intent record is still set outside a crash repair.
    PendingIntent {
        /// The operation code.
        op: u64,
    },
    /// A3: the heap is marked as needing repair.
    NeedsRepair,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Chain { offset, what } => write!(f, "A2 chain at {offset:#x}: {what}"),
            Violation::AdjacentFree { first, second } => {
                write!(f, "A4 adjacent free blocks {first:#x} and {second:#x}")
            }
            Violation::PrevFreeBit { block } => {
                write!(
                    f,
                    "A6 PREV_FREE bit of {block:#x} disagrees with its predecessor"
                )
            }
            Violation::Footer { block, found } => {
                write!(f, "A6 footer of free block {block:#x} is {found}")
            }
            Violation::NotListed { block } => {
                write!(f, "A5 free block {block:#x} is not in the list of its size")
            }
            Violation::BadListEntry { list, entry, what } => {
                write!(f, "A5 list {list:?} entry {entry:#x}: {what}")
            }
            Violation::BadLinks { list, at, what } => {
                write!(f, "A5 list {list:?} at {at:#x}: {what}")
            }
            Violation::Bitmap { fl, sl } => match sl {
                Some(sl) => write!(f, "A5 second-level bit ({fl},{sl}) disagrees with its list"),
                None => write!(f, "A5 first-level bit {fl} disagrees with its lists"),
            },
            Violation::Counter {
                name,
                recorded,
                counted,
            } => write!(
                f,
                "A7 counter {name}: recorded {recorded}, counted {counted}"
            ),
            Violation::Root { name, offset, what } => {
                write!(f, "R1 root {name:?} at {offset:#x}: {what}")
            }
            Violation::PendingIntent { op } => write!(f, "A3 intent record {op} still set"),
            Violation::NeedsRepair => write!(f, "A3 heap marked as needing repair"),
        }
    }
}

/// What `check` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Blocks on the chain (sentinel excluded).
    pub blocks: u64,
    /// Free blocks on the chain.
    pub free_blocks: u64,
    /// Every broken invariant, in the order found.
    pub violations: Vec<Violation>,
}

impl Report {
    /// Whether every invariant holds.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Walks the whole arena and reports each broken invariant.
pub fn check(arena: &Arena<'_>) -> Report {
    let mut report = Report::default();
    let v = &mut report.violations;
    let st = arena.state();
    if st.intent.op != INTENT_NONE {
        v.push(Violation::PendingIntent { op: st.intent.op });
    }
    if st.flags & FLAG_NEEDS_REPAIR != 0 {
        v.push(Violation::NeedsRepair);
    }

    let mut blocks: Vec<Block> = Vec::new();
    if let Err(e) = arena.walk(|b| blocks.push(b)) {
        let (offset, what) = match e {
            AllocError::Corrupt { offset, what } => (offset, what),
            _ => (0, "unreadable"),
        };
        v.push(Violation::Chain { offset, what });
    }
    report.blocks = blocks.len() as u64;

    // Physical neighbours: A4 and A6.
    let mut free: HashMap<u64, u64> = HashMap::new();
    let (mut used_bytes, mut used_blocks, mut free_bytes) = (0u64, 0u64, 0u64);
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
            used_blocks += 1;
            used_bytes += b.header.size;
        }
        prev = Some(*b);
    }
    report.free_blocks = free.len() as u64;
    // The sentinel's PREV_FREE bit speaks of the last block only if the walk reached it.
    let chain_whole = !v.iter().any(|x| matches!(x, Violation::Chain { .. }));
    if chain_whole && prev.is_some() {
        let last_free = prev.is_some_and(|p| p.header.is_free());
        if let Ok(sh) = arena.header(arena.sentinel()) {
            if sh.prev_free() != last_free {
                v.push(Violation::PrevFreeBit {
                    block: arena.sentinel(),
                });
            }
        }
    }

    // Free lists and bitmaps: A5.
    let mut listed: HashMap<u64, (usize, usize)> = HashMap::new();
    for fl in 0..FL_COUNT {
        let mut any = false;
        for sl in 0..SL_COUNT {
            let list = (fl, sl);
            let head = st.heads[fl * SL_COUNT + sl];
            let bit = st.sl_bitmap[fl] & (1 << sl) != 0;
            if bit != (head != 0) {
                v.push(Violation::Bitmap { fl, sl: Some(sl) });
            }
            any |= head != 0;
            // Ends: every step either stops or records a new free block of the chain in
            // `listed`, and a block seen again (a cycle, or one listed twice) stops the walk.
            let (mut at, mut back) = (head, 0u64);
            while at != 0 {
                let Some(&size) = free.get(&at) else {
                    v.push(Violation::BadListEntry {
                        list,
                        entry: at,
                        what: "not a free block on the chain",
                    });
                    break;
                };
                if mapping_insert(size) != list {
                    v.push(Violation::BadListEntry {
                        list,
                        entry: at,
                        what: "size belongs to another class",
                    });
                }
                if listed.insert(at, list).is_some() {
                    v.push(Violation::BadLinks {
                        list,
                        at,
                        what: "block listed twice",
                    });
                    break;
                }
                match arena.word(at + 16) {
                    Ok(p) if p == back => {}
                    _ => v.push(Violation::BadLinks {
                        list,
                        at,
                        what: "prev link does not point back",
                    }),
                }
                back = at;
                at = arena.word(at + 8).unwrap_or(0);
            }
        }
        if any != (st.fl_bitmap & (1 << fl) != 0) {
            v.push(Violation::Bitmap { fl, sl: None });
        }
    }
    if st.fl_bitmap >> FL_COUNT != 0 {
        v.push(Violation::Bitmap {
            fl: FL_COUNT,
            sl: None,
        });
    }
    let mut unlisted: Vec<u64> = free
        .keys()
        .filter(|b| !listed.contains_key(b))
        .copied()
        .collect();
    unlisted.sort_unstable();
    v.extend(
        unlisted
            .into_iter()
            .map(|block| Violation::NotListed { block }),
    );

    // Counters: A7 (only meaningful on a whole chain).
    if chain_whole {
        for (name, recorded, counted) in [
            ("used_bytes", st.used_bytes, used_bytes),
            ("used_blocks", st.used_blocks, used_blocks),
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

    // Roots: R1. The header in front of a root must be a used block on the chain, not just
    // a word that decodes as one: a stale header left inside a free block (or inside another
    // block) decodes too, and resolution cannot tell it apart without walking the chain.
    let used_on_chain: std::collections::HashSet<u64> = blocks
        .iter()
        .filter(|b| !b.header.is_free())
        .map(|b| b.offset)
        .collect();
    for root in st.roots.iter().take(ROOT_COUNT) {
        if root.name == [0; 32] {
            continue;
        }
        let name = String::from_utf8_lossy(&root.name)
            .trim_end_matches('\0')
            .to_string();
        let what = match arena.usable_size(root.offset) {
            Ok(_)
                if chain_whole
                    && !used_on_chain.contains(&root.offset.wrapping_sub(BLOCK_HEADER)) =>
            {
                "not the payload of a used block on the chain (a stale header)".to_string()
            }
            Ok(cap)
                if cap >= u64::from(root.size)
                    && root.offset % u64::from(root.align.max(1)) == 0 =>
            {
                continue
            }
            Ok(_) => "block too small or misaligned for the root's type".to_string(),
            Err(e) => e.to_string(),
        };
        v.push(Violation::Root {
            name,
            offset: root.offset,
            what,
        });
    }
    report
}
