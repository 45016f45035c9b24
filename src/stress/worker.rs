//! A stress worker: a forked process that attaches afresh and runs random graph operations,
//! one per critical section, until the parent says stop or kills it.

use std::path::Path;
use std::time::Duration;

use super::board::Board;
use super::graph::Graph;
use super::rng::Rng;
use crate::{Error, Heap, OpenOptions, Result};

/// What a worker needs (all of it copied into the child by fork).
pub struct Config<'a> {
    /// The heap file.
    pub path: &'a Path,
    /// Probe interval of its attachment.
    pub probe: Duration,
    /// Its serial number (unique over the run).
    pub serial: u64,
    /// Seed of its random choices.
    pub seed: u64,
    /// Largest node payload.
    pub max_payload: u64,
    /// The scoreboard.
    pub board: &'a Board,
}

/// Exit status of a worker that hit an error.
pub const FAILED: i32 = 3;

/// The child's body: returns its exit status.
pub fn main(cfg: &Config<'_>) -> i32 {
    // A panic is recorded as a violation; only the first few are printed, in one line each.
    let serial = cfg.serial;
    let board = cfg.board as *const Board as usize;
    std::panic::set_hook(Box::new(move |info| {
        // SAFETY: the board is a shared mapping made by the parent before the fork; this
        // child never unmaps it (it leaves through `_exit` from inside the fork), so it is
        // live for the rest of this process, and `Board` is only used through `&`.
        let board = unsafe { &*(board as *const Board) };
        let msg = format!("worker {serial} (pid {}) {info}", std::process::id());
        if board.panicked() < 3 {
            eprintln!("mapheap stress: {}", msg.replace('\n', " "));
        }
        board.violation(&msg);
    }));
    match run(cfg) {
        Ok(()) => 0,
        Err(e) => {
            cfg.board
                .violation(&format!("worker {} failed: {e}", cfg.serial));
            FAILED
        }
    }
}

fn run(cfg: &Config<'_>) -> Result<()> {
    let board = cfg.board;
    let opts = OpenOptions {
        probe_interval: cfg.probe,
        ..OpenOptions::default()
    };
    let heap = Heap::open_with(cfg.path, &opts)?;
    let me = heap.owner();
    board.register(me, cfg.serial);
    if let Some(r) = heap.recovered_at_open() {
        board.on_recovery(r, true);
    }
    let graph = {
        let g = heap.lock()?;
        if let Some(r) = g.recovered() {
            board.on_recovery(r, false);
        }
        Graph::open(&g)?.ok_or_else(|| Error::BadOffset {
            offset: 0,
            ty: "stress graph",
            why: "the heap has no stress graph root".into(),
        })?
    };
    let mut rng = Rng::new(cfg.seed);
    let mut journal = board.journal(me.slot());
    while !board.stopped() {
        let mut g = heap.lock()?;
        if let Some(r) = g.recovered() {
            board.on_recovery(r, false);
            let report = g.check();
            if !report.is_clean() {
                board.violation(&format!("check after a takeover: {}", report.violations[0]));
            }
        }
        board.reconcile(&graph, &g)?;
        let done = graph.random_op(&mut g, &mut rng, cfg.max_payload, &mut journal)?;
        drop(g);
        board.count(&done);
        if cfg.serial == 0 {
            board.first_op(done.kind);
        }
    }
    Ok(())
}
