//! The invariant walker behind `Heap::check` and `mapheap check`.
//!
//! Invariant: [`check`] only reads, through the arena's bounds-checked accessors, and every
//! walk is bounded by the number of blocks on the chain, so it terminates and never panics
//! whatever the file holds; every broken invariant becomes one [`Violation`] in the report.
//! Every byte of the header is either checked by some rule or documented as free in
//! docs/format.md, "Which bytes are checked" (the header-byte sweep, proptests/header_sweep.rs,
//! holds the two together).
//! Each rule has a [`Rule`], and `check::tests::every_rule_is_seen_firing` breaks each one
//! alone on a valid heap. The ids (A2, A4, ...) are those of docs/invariants.md.

mod blocks;
mod header;
mod lists;
mod roots;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::alloc::{Arena, ChainFault};
use crate::txn::LogFault;

/// What is wrong with an entry of a free list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ListFault {
    /// The entry is not a free block of the chain.
    NotFree,
    /// The block's size belongs to another list.
    WrongClass,
    /// The block is listed a second time (a cycle, or two lists).
    ListedTwice,
    /// The block's `prev` link does not point back.
    PrevNotBack,
}

/// What is wrong with a root (R1, R2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum RootFault {
    /// The entry's checksum does not match (R2).
    Checksum,
    /// An unused entry holds non-zero bytes (R2).
    UnusedNotZero,
    /// The name is not UTF-8 padded with NUL bytes (R2).
    Name,
    /// The type's alignment is not a power of two (R2).
    Align,
    /// Two entries have the same name (R2).
    Duplicate,
    /// The offset is not the payload of an allocated block (R1).
    Dangling,
    /// The offset's header is a stale one, not a used block on the chain (R1).
    Stale,
    /// The block is too small or misaligned for the root's type (R1).
    TooSmall,
}

impl RootFault {
    /// What it means, in words, with the invariant's id.
    pub fn what(self) -> &'static str {
        match self {
            RootFault::Checksum => "R2 checksum mismatch",
            RootFault::UnusedNotZero => "R2 unused entry not zero",
            RootFault::Name => "R2 name not UTF-8 padded with NUL bytes",
            RootFault::Align => "R2 alignment not a power of two",
            RootFault::Duplicate => "R2 a second entry with this name",
            RootFault::Dangling => "R1 names no allocated block",
            RootFault::Stale => "R1 not the payload of a used block on the chain (a stale header)",
            RootFault::TooSmall => "R1 block too small or misaligned for the root's type",
        }
    }
}

/// One broken invariant. (Serialized for `mapheap check --json` with its variant's name
/// as `kind`: docs/cli.md.)
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind")]
pub enum Violation {
    /// A2: the chain of block headers does not tile the arena.
    Chain {
        /// Where the walk stopped.
        offset: u64,
        /// Why.
        fault: ChainFault,
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
    /// A6: the sentinel's PREV_FREE bit disagrees with the last block.
    SentinelPrevFree {
        /// The sentinel.
        sentinel: u64,
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
    /// A5: a free list is broken.
    List {
        /// List `(fl, sl)`.
        list: (usize, usize),
        /// The entry.
        at: u64,
        /// What is wrong.
        fault: ListFault,
    },
    /// A5: a second-level bitmap bit disagrees with whether its list is empty.
    SlBit {
        /// First-level class.
        fl: usize,
        /// Second-level class.
        sl: usize,
    },
    /// A5: a first-level bitmap bit disagrees with its class's lists (or names no class).
    FlBit {
        /// First-level class.
        fl: usize,
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
    /// R1, R2: a root entry is damaged or names no fitting allocated block.
    Root {
        /// The entry's index.
        index: usize,
        /// Its name (lossy).
        name: String,
        /// What is wrong.
        fault: RootFault,
    },
    /// A3: an operation's intent record is still set outside a crash repair.
    PendingIntent {
        /// The operation code.
        op: u64,
    },
    /// A3: the heap is marked as needing repair.
    NeedsRepair,
    /// F4: bits of the state's flags that this version does not define.
    UnknownFlags {
        /// The bits.
        bits: u64,
    },
    /// F4: a byte of the header that must be zero is not.
    NotZero {
        /// The first non-zero byte of the word.
        offset: u64,
    },
    /// T1-T4: the undo log is damaged.
    Log {
        /// The byte of the log.
        pos: u64,
        /// What is wrong.
        fault: LogFault,
    },
}

/// The kind of a violation: one per rule `check` can report (the table of rules in
/// `check::tests` has one row for each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// [`Violation::Chain`] with this fault.
    Chain(ChainFault),
    /// [`Violation::AdjacentFree`].
    AdjacentFree,
    /// [`Violation::PrevFreeBit`].
    PrevFreeBit,
    /// [`Violation::SentinelPrevFree`].
    SentinelPrevFree,
    /// [`Violation::Footer`].
    Footer,
    /// [`Violation::NotListed`].
    NotListed,
    /// [`Violation::List`] with this fault.
    List(ListFault),
    /// [`Violation::SlBit`].
    SlBit,
    /// [`Violation::FlBit`].
    FlBit,
    /// [`Violation::Counter`].
    Counter,
    /// [`Violation::Root`] with this fault.
    Root(RootFault),
    /// [`Violation::PendingIntent`].
    PendingIntent,
    /// [`Violation::NeedsRepair`].
    NeedsRepair,
    /// [`Violation::UnknownFlags`].
    UnknownFlags,
    /// [`Violation::NotZero`].
    NotZero,
    /// [`Violation::Log`] with this fault.
    Log(LogFault),
}

impl Rule {
    /// Every rule `check` can report. Left out: `ChainFault::OutsideArena` (under a guard
    /// the capacity has been checked against the mapping, so the walk never reads outside)
    /// and `LogFault::ImageOutsideBlocks` (only recovery walks the before-images).
    pub fn all() -> Vec<Rule> {
        let mut v: Vec<Rule> = ChainFault::ALL
            .iter()
            .filter(|&&f| f != ChainFault::OutsideArena)
            .map(|&f| Rule::Chain(f))
            .collect();
        v.extend([
            Rule::AdjacentFree,
            Rule::PrevFreeBit,
            Rule::SentinelPrevFree,
            Rule::Footer,
            Rule::NotListed,
        ]);
        v.extend(
            [
                ListFault::NotFree,
                ListFault::WrongClass,
                ListFault::ListedTwice,
                ListFault::PrevNotBack,
            ]
            .map(Rule::List),
        );
        v.extend([Rule::SlBit, Rule::FlBit, Rule::Counter]);
        v.extend(
            [
                RootFault::Checksum,
                RootFault::UnusedNotZero,
                RootFault::Name,
                RootFault::Align,
                RootFault::Duplicate,
                RootFault::Dangling,
                RootFault::Stale,
                RootFault::TooSmall,
            ]
            .map(Rule::Root),
        );
        v.extend([
            Rule::PendingIntent,
            Rule::NeedsRepair,
            Rule::UnknownFlags,
            Rule::NotZero,
        ]);
        // Faults only recovery can find (the walk of images) are not `check` rules.
        v.extend(
            LogFault::ALL
                .iter()
                .filter(|&&f| f != LogFault::ImageOutsideBlocks)
                .map(|&f| Rule::Log(f)),
        );
        v
    }
}

impl Violation {
    /// The rule it breaks.
    pub fn rule(&self) -> Rule {
        match self {
            Violation::Chain { fault, .. } => Rule::Chain(*fault),
            Violation::AdjacentFree { .. } => Rule::AdjacentFree,
            Violation::PrevFreeBit { .. } => Rule::PrevFreeBit,
            Violation::SentinelPrevFree { .. } => Rule::SentinelPrevFree,
            Violation::Footer { .. } => Rule::Footer,
            Violation::NotListed { .. } => Rule::NotListed,
            Violation::List { fault, .. } => Rule::List(*fault),
            Violation::SlBit { .. } => Rule::SlBit,
            Violation::FlBit { .. } => Rule::FlBit,
            Violation::Counter { .. } => Rule::Counter,
            Violation::Root { fault, .. } => Rule::Root(*fault),
            Violation::PendingIntent { .. } => Rule::PendingIntent,
            Violation::NeedsRepair => Rule::NeedsRepair,
            Violation::UnknownFlags { .. } => Rule::UnknownFlags,
            Violation::NotZero { .. } => Rule::NotZero,
            Violation::Log { fault, .. } => Rule::Log(*fault),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Chain { offset, fault } => {
                write!(f, "A2 chain at {offset:#x}: {}", fault.what())
            }
            Violation::AdjacentFree { first, second } => {
                write!(f, "A4 adjacent free blocks {first:#x} and {second:#x}")
            }
            Violation::PrevFreeBit { block } => write!(
                f,
                "A6 PREV_FREE bit of {block:#x} disagrees with its predecessor"
            ),
            Violation::SentinelPrevFree { sentinel } => write!(
                f,
                "A6 PREV_FREE bit of the sentinel at {sentinel:#x} disagrees with the last block"
            ),
            Violation::Footer { block, found } => {
                write!(f, "A6 footer of free block {block:#x} is {found}")
            }
            Violation::NotListed { block } => {
                write!(f, "A5 free block {block:#x} is not in the list of its size")
            }
            Violation::List { list, at, fault } => {
                let what = match fault {
                    ListFault::NotFree => "not a free block on the chain",
                    ListFault::WrongClass => "size belongs to another class",
                    ListFault::ListedTwice => "block listed twice",
                    ListFault::PrevNotBack => "prev link does not point back",
                };
                write!(f, "A5 list {list:?} at {at:#x}: {what}")
            }
            Violation::SlBit { fl, sl } => {
                write!(f, "A5 second-level bit ({fl},{sl}) disagrees with its list")
            }
            Violation::FlBit { fl } => {
                write!(f, "A5 first-level bit {fl} disagrees with its lists")
            }
            Violation::Counter {
                name,
                recorded,
                counted,
            } => write!(
                f,
                "A7 counter {name}: recorded {recorded}, counted {counted}"
            ),
            Violation::Root { index, name, fault } => {
                write!(f, "root entry {index} ({name:?}): {}", fault.what())
            }
            Violation::PendingIntent { op } => write!(f, "A3 intent record {op} still set"),
            Violation::NeedsRepair => write!(f, "A3 heap marked as needing repair"),
            Violation::UnknownFlags { bits } => {
                write!(f, "F4 unknown flag bits {bits:#x} in the state")
            }
            Violation::NotZero { offset } => {
                write!(f, "F4 header byte {offset} must be zero")
            }
            Violation::Log { pos, fault } => {
                write!(f, "T1 undo log at byte {pos}: {}", fault.what())
            }
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

    /// The rules broken, in the order found (each once).
    pub fn rules(&self) -> Vec<Rule> {
        let mut out: Vec<Rule> = Vec::new();
        for v in &self.violations {
            if !out.contains(&v.rule()) {
                out.push(v.rule());
            }
        }
        out
    }
}

/// Walks the whole header and arena and reports each broken invariant.
pub fn check(arena: &Arena<'_>) -> Report {
    let mut report = Report::default();
    header::check(arena, &mut report.violations);
    let chain = blocks::check(arena, &mut report);
    lists::check(arena, &chain, &mut report.violations);
    roots::check(arena, &chain, &mut report.violations);
    header::check_log(arena, &mut report.violations);
    report
}
