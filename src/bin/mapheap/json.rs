//! The `--json` forms of `stat`, `check` and `dump` (schema in docs/cli.md).
//!
//! The library's report types serialize themselves (`Stats`, `BlockInfo`, `RootInfo`,
//! `check::Report`'s `Violation`, `RepairReport`); these wrappers add what the command
//! knows beside them (the path, attachments, the arena's bounds, each violation's message).

use mapheap::alloc::RepairReport;
use mapheap::check::{Report, Violation};
use mapheap::heap::{BlockInfo, Recovery, RootInfo, Stats};
use mapheap::sync::slots::SlotRecord;
use serde::Serialize;

/// Pretty-printed JSON of a value made of plain structs, strings and integers.
pub fn to_string(v: &impl Serialize) -> String {
    // These types hold no map with non-string keys and no failing Serialize impl.
    serde_json::to_string_pretty(v).expect("plain data serializes")
}

/// `mapheap stat --json`.
#[derive(Serialize)]
pub struct Stat<'a> {
    pub path: String,
    #[serde(flatten)]
    pub stats: &'a Stats,
    pub roots: Vec<RootInfo>,
    pub attachments: Vec<Attachment>,
}

/// One claimed attachment slot.
#[derive(Serialize)]
pub struct Attachment {
    pub slot: u32,
    pub incarnation: u32,
    pub pid: u32,
}

impl Attachment {
    pub fn new((slot, rec): (u32, SlotRecord)) -> Attachment {
        Attachment {
            slot,
            incarnation: rec.incarnation,
            pid: rec.pid,
        }
    }
}

/// `mapheap check --json`.
#[derive(Serialize)]
pub struct Check<'a> {
    pub path: String,
    pub recovered: Option<Recovered<'a>>,
    pub blocks: u64,
    pub free_blocks: u64,
    pub clean: bool,
    pub violations: Vec<CheckViolation<'a>>,
}

impl<'a> Check<'a> {
    pub fn new(path: String, recovered: Option<Recovered<'a>>, report: &'a Report) -> Check<'a> {
        Check {
            path,
            recovered,
            blocks: report.blocks,
            free_blocks: report.free_blocks,
            clean: report.is_clean(),
            violations: report
                .violations
                .iter()
                .map(|v| CheckViolation {
                    violation: v,
                    message: v.to_string(),
                })
                .collect(),
        }
    }
}

/// A violation's fields (tagged by `kind`) and its message, which starts with the
/// invariant's id.
#[derive(Serialize)]
pub struct CheckViolation<'a> {
    #[serde(flatten)]
    pub violation: &'a Violation,
    pub message: String,
}

/// A takeover from a dead lock owner, done while the command attached or locked.
#[derive(Serialize)]
pub struct Recovered<'a> {
    /// Whether `Heap::open` did it (else the command's own guard).
    pub at_open: bool,
    pub dead_owner: Option<Owner>,
    pub repair: &'a RepairReport,
}

impl<'a> Recovered<'a> {
    pub fn new(r: &'a Recovery, at_open: bool) -> Recovered<'a> {
        Recovered {
            at_open,
            dead_owner: r.dead.map(|d| Owner {
                slot: d.slot(),
                incarnation: d.incarnation(),
            }),
            repair: &r.repair,
        }
    }
}

/// A lock owner: its attachment slot and the incarnation of that slot's claim.
#[derive(Serialize)]
pub struct Owner {
    pub slot: u32,
    pub incarnation: u32,
}

/// `mapheap dump --json`.
#[derive(Serialize)]
pub struct Dump<'a> {
    pub path: String,
    pub capacity: u64,
    pub arena_start: u64,
    pub arena_end: u64,
    pub total_blocks: usize,
    pub truncated: bool,
    pub blocks: &'a [BlockInfo],
    pub roots: Vec<RootInfo>,
}
