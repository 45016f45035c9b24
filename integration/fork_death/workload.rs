//! The shared workload of the death tests: survivors and victims run the same critical
//! sections on one heap (publish, unpublish and free, scratch alloc and free, growth), and
//! record every takeover and its repair on a scoreboard outside the heap, which the parent
//! reads without the lock.

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use mapheap::fault::{self, CrashPoint};
use mapheap::heap::Recovery;
use mapheap::stress::procs::{self, spin};
use mapheap::{Heap, HeapGuard, Offset};

use crate::ensure;
use crate::fork_support::*;

pub const PROBE_MS: u64 = 3;
pub const COLS: u64 = 8;
pub const GROW_STEP: u64 = 64 << 10;
pub const MAXREC: usize = 64;

/// The scoreboard, outside the heap: the parent reads it without the heap's lock.
#[repr(C)]
pub struct Board {
    pub stop: AtomicU32,
    pub recoveries: AtomicU64,
    pub dead: [AtomicU32; MAXREC],
    pub at_ns: [AtomicU64; MAXREC],
    pub intent_op: [AtomicU64; MAXREC],
    pub freed: [AtomicU32; MAXREC],
    pub grew: [AtomicU32; MAXREC],
    pub dirty_check: AtomicU64,
    pub ops: AtomicU64,
    pub victim_owner: [AtomicU32; 1024],
    pub kill_ns: [AtomicU64; 1024],
}

impl Board {
    fn record(&self, r: &Recovery) {
        let Some(dead) = r.dead else { return };
        let i = self.recoveries.fetch_add(1, SeqCst) as usize;
        if i < MAXREC {
            self.dead[i].store(dead.raw(), SeqCst);
            self.at_ns[i].store(procs::mono_ns(), SeqCst);
            self.intent_op[i].store(r.repair.intent_op, SeqCst);
            self.freed[i].store(u32::from(r.repair.freed_block.is_some()), SeqCst);
            self.grew[i].store(u32::from(r.repair.completed_growth), SeqCst);
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Expect {
    pub recoveries: u64,
    pub intent_op: u64,
    pub freed: bool,
    pub grew: bool,
}

pub const fn expect(recoveries: u64, intent_op: u64, freed: bool, grew: bool) -> Expect {
    Expect {
        recoveries,
        intent_op,
        freed,
        grew,
    }
}

#[derive(Clone, Copy)]
pub struct Role {
    pub row: u64,
    /// Survivors stop when told and verify; victims run until they die.
    pub survivor: bool,
    pub grow: bool,
    /// Busy-wait inside the critical section (victims of random kills hold the lock long).
    pub hold_spin: u32,
    /// Crash point armed after attaching.
    pub arm: Option<(CrashPoint, u32)>,
    pub seed: u64,
}

/// Attaches, then runs critical sections: publish a new block, unpublish and free one,
/// allocate and free a scratch block (which merges with its free neighbour), grow. Records
/// every takeover on the board and checks the heap after it. A survivor stops when told,
/// verifies that every block it was told it owns is intact, frees them, and exits 0.
pub fn workload(board: &Board, path: &Path, role: Role) -> TestResult {
    let heap = Heap::open_with(path, &probe(PROBE_MS)).ctx("open")?;
    if let Some(r) = heap.recovered_at_open() {
        board.record(r);
    }
    board.victim_owner[(role.row as usize) % 1024].store(heap.owner().raw(), SeqCst);
    if let Some((p, n)) = role.arm {
        fault::arm(Some(p), n);
    }
    let mut rng = Rng::new(role.seed);
    let mut mine: Vec<Option<(u64, u64)>> = vec![None; COLS as usize];
    let started = Instant::now();
    let mut step = 0u64;
    loop {
        if role.survivor && board.stop.load(SeqCst) != 0 {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "still running after 60 s (the crash point was never reached?)"
        );
        let mut g = heap.lock().ctx("lock")?;
        if let Some(r) = g.recovered() {
            board.record(r);
            let report = g.check();
            if !report.is_clean() {
                board.dirty_check.fetch_add(1, SeqCst);
                return Err(format!("check after takeover: {:?}", report.violations));
            }
            verify_own(&g, role.row, &mine)?;
        }
        let (_, c) = ctl(&g)?;
        step += 1;
        let op = if role.survivor {
            rng.below(4)
        } else {
            step % 4
        };
        let col = rng.below(COLS) as usize;
        match op {
            0 => {
                if mine[col].is_none() {
                    let seed = rng.next_u64();
                    let b = new_block(&mut g, rng.range(1, 1500), seed).ctx("alloc")?;
                    publish(&mut g, &c, role.row, col as u64, b).ctx("publish")?;
                    mine[col] = Some((b, seed));
                }
            }
            1 => {
                if let Some((b, seed)) = mine[col] {
                    let h = check_block(&g, b)?;
                    ensure!(h.seed == seed, "block {b:#x}: seed {} != {seed}", h.seed);
                    // Unpublish first, then free: a death in between leaks, never dangles.
                    publish(&mut g, &c, role.row, col as u64, 0).ctx("unpublish")?;
                    g.free(Offset::<u8>::from_raw(b)).ctx("free")?;
                    mine[col] = None;
                }
            }
            2 => {
                let b = g.alloc_bytes(rng.range(1, 3000), 8).ctx("scratch alloc")?;
                g.free(b).ctx("scratch free")?;
            }
            _ => {
                if role.grow {
                    g.grow_by(GROW_STEP).ctx("grow")?;
                } else {
                    verify_own(&g, role.row, &mine)?;
                }
            }
        }
        spin(role.hold_spin);
        drop(g);
        board.ops.fetch_add(1, SeqCst);
    }
    let mut g = heap.lock().ctx("lock")?;
    if let Some(r) = g.recovered() {
        board.record(r);
    }
    verify_own(&g, role.row, &mine)?;
    let (_, c) = ctl(&g)?;
    for (col, m) in mine.iter().enumerate() {
        if let Some((b, _)) = m {
            publish(&mut g, &c, role.row, col as u64, 0).ctx("unpublish")?;
            g.free(Offset::<u8>::from_raw(*b)).ctx("free")?;
        }
    }
    Ok(())
}

/// The blocks this survivor owns are where it published them, and intact.
fn verify_own(g: &HeapGuard<'_>, me: u64, mine: &[Option<(u64, u64)>]) -> TestResult {
    let (_, c) = ctl(g)?;
    verify_mine(g, &c, me, mine)
}

pub struct Setup {
    pub _dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
    pub board: Shared<Board>,
    pub initial: u64,
}

pub fn setup(rows: u64) -> Result<Setup, String> {
    let initial = 1 << 20;
    let (dir, path) = fresh_heap(initial)?;
    {
        let heap = Heap::open(&path).ctx("open")?;
        init_ctl(&mut heap.lock().ctx("lock")?, rows, COLS).ctx("init")?;
    }
    // SAFETY: Board is atomics only; all-zero is its initial state.
    let board = unsafe { Shared::zeroed() }.ctx("shm")?;
    Ok(Setup {
        _dir: dir,
        path,
        board,
        initial,
    })
}

pub fn spawn(s: &Setup, role: Role) -> Result<procs::Pid, String> {
    let (b, p) = (&*s.board, &s.path);
    fork_child(|| child(|| workload(b, p, role))).ctx("fork")
}

pub fn survivors(s: &Setup, n: u64, salt: u64) -> Result<Vec<procs::Pid>, String> {
    (0..n)
        .map(|row| {
            spawn(
                s,
                Role {
                    row,
                    survivor: true,
                    grow: false,
                    hold_spin: 0,
                    arm: None,
                    seed: seeded(salt + row),
                },
            )
        })
        .collect()
}

/// Stops the survivors and reaps them: each must have verified its blocks and exited 0.
pub fn stop(s: &Setup, pids: &[procs::Pid]) -> TestResult {
    s.board.stop.store(1, SeqCst);
    let exits = reap_all(pids, deadline(30)).ctx("reap")?;
    expect_all_ok("survivor", &exits)
}

/// The parent's final look: no takeover left to do, check clean, every published block
/// intact; returns the leaked `(blocks, bytes)` and the capacity.
pub fn final_check(s: &Setup) -> Result<((u64, u64), u64), String> {
    let heap = Heap::open_with(&s.path, &probe(PROBE_MS)).ctx("final open")?;
    let g = heap.lock().ctx("lock")?;
    ensure!(
        heap.recovered_at_open().is_none() && g.recovered().is_none(),
        "the survivors left a takeover to the final open"
    );
    let report = g.check();
    ensure!(report.is_clean(), "check: {:?}", report.violations);
    let live = verify_table(&g)?;
    Ok((leaks(&g, &live), g.capacity()))
}

/// Waits until the survivors have done `n` more operations (they are not stuck).
pub fn progress(board: &Board, n: u64, timeout: Duration) -> bool {
    let from = board.ops.load(SeqCst);
    wait_until(timeout, || board.ops.load(SeqCst) >= from + n)
}
