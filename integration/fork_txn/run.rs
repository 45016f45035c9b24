//! The driver every workload shares: worker processes, each mapping the heap at an address
//! of its own, run one workload's operations (one `HeapGuard`, so one transaction, per
//! operation) while the parent SIGKILLs them at random instants and forks replacements.
//! Afterwards the parent checks what must hold whatever instant each kill hit: the
//! workload's invariant, `check()` clean, and no allocated block unreachable from the
//! workload's root (the heap's own blocks, `HeapGuard::own_blocks`, aside).
//!
//! Workers also check the invariant (and `check()`) right after every takeover, and every
//! few operations, so a broken state is caught where it appears; the first worker to find
//! one writes why on the scoreboard (shared memory outside the heap, which the parent reads
//! without the heap's lock) and exits 1.

use std::collections::HashSet;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use mapheap::mutant::{self, Mutant};
use mapheap::stress::procs::{self, spin, Exit};
use mapheap::{Heap, HeapGuard, OpenOptions};

use crate::board::{Board, GENS, MAX_WORKERS};
use crate::ensure;
use crate::fork_support::*;

/// Probe interval of every handle: a takeover follows a death within a few ms.
pub const PROBE_MS: u64 = 3;
/// Heap size: the workloads stay far below it, so nothing ever grows (and remaps).
pub const HEAP_SIZE: u64 = 1 << 20;
/// A worker checks the invariant every this many operations (and after every takeover).
const VERIFY_EVERY: u64 = 8;

/// One workload: its root, its operations, and the invariant they keep.
pub trait Workload: Sync {
    /// Makes the root structure (in the parent, before any worker starts).
    fn init(&self, g: &mut HeapGuard<'_>) -> TestResult;
    /// One operation, in the caller's guard: plain transactional code. `pause` busy-waits
    /// inside the transaction, between its writes, so that kills land there often.
    fn op(&self, g: &mut HeapGuard<'_>, rng: &mut Rng, pause: &dyn Fn()) -> TestResult;
    /// Checks the invariant; returns every payload reachable from the root (the root's own
    /// block included) and a one-line summary.
    fn verify(&self, g: &HeapGuard<'_>) -> Result<(HashSet<u64>, String), String>;
}

/// How a run goes.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Workers alive at once.
    pub workers: u64,
    /// SIGKILLs the parent sends.
    pub kills: u64,
    /// The gap before each kill is uniform in `[0, gap_us)` microseconds.
    pub gap_us: u64,
    /// Busy-wait iterations of each `pause` inside a transaction.
    pub spin: u32,
    /// How many workers (the last slots) never pause: kills land in the allocator's few
    /// stores and the log's appends more often in them.
    pub unpaused: u64,
    /// A seeded bug switched on in every worker (after fork), never in the parent.
    pub mutant: Option<Mutant>,
    /// Salt of the run's random choices (mixed with the run's seed).
    pub salt: u64,
}

/// What a run that passed did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub kills: u64,
    pub ops: u64,
    /// Guards (or opens) that took the lock over from a dead owner.
    pub takeovers: u64,
    /// Recoveries that rolled back a transaction a kill had left half made.
    pub rolled_back: u64,
    /// Recoveries that finished a transaction killed after its commit store.
    pub finished: u64,
    /// Checks of the invariant that workers made while the kills went on.
    pub verified: u64,
    /// Distinct base addresses the workers mapped the heap at.
    pub addresses: u64,
    /// The final verification's summary.
    pub summary: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// The figures, for a test's note.
    pub fn line(&self) -> String {
        format!(
            "{} kills in {:.1} s: {} ops, {} takeovers, {} transactions rolled back, {} \
             finished; {} checks by workers; {} addresses; {}",
            self.kills,
            self.elapsed.as_secs_f64(),
            self.ops,
            self.takeovers,
            self.rolled_back,
            self.finished,
            self.verified,
            self.addresses,
            self.summary
        )
    }
}

/// Where worker `slot` maps the heap in its `gen`-th incarnation: 1 GiB apart, so two
/// live workers (different slots) never share an address, and a replacement maps
/// elsewhere than the worker it replaces.
fn hint(slot: u64, gen: u64) -> usize {
    0x2400_0000_0000 + (slot as usize * GENS + (gen as usize % GENS)) * (1 << 30)
}

/// Opens `path` mapped at `at`, inside a PROT_NONE reservation made with
/// MAP_FIXED_NOREPLACE (which fails rather than replace anything mapped there).
fn open_at(path: &Path, at: usize) -> Result<Heap, String> {
    let len = std::fs::metadata(path).ctx("stat")?.len() as usize;
    // SAFETY: a new private PROT_NONE reservation; MAP_FIXED_NOREPLACE fails rather than
    // replace an existing mapping; the result is checked before use.
    let p = unsafe {
        libc::mmap(
            at as *mut libc::c_void,
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_NORESERVE
                | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED || p as usize != at {
        return Err(format!(
            "cannot reserve {len} bytes at {at:#x}: {}",
            std::io::Error::last_os_error()
        ));
    }
    let opts = OpenOptions {
        probe_interval: Duration::from_millis(PROBE_MS),
        map_at: NonNull::new(p.cast()),
        ..OpenOptions::default()
    };
    Heap::open_with(path, &opts).ctx("open at a chosen address")
}

struct Worker<'a, W> {
    w: &'a W,
    board: &'a Board,
    path: &'a Path,
    slot: u64,
    gen: u64,
    plan: Plan,
}

impl<W: Workload> Worker<'_, W> {
    /// Checks the heap and the invariant (after a takeover, and every few operations).
    fn verify(&self, g: &HeapGuard<'_>, why: &str) -> TestResult {
        let report = g.check();
        ensure!(
            report.is_clean(),
            "{why}: check: {:?}",
            report.violations.first()
        );
        self.w.verify(g).map_err(|e| format!("{why}: {e}"))?;
        self.board.verified.fetch_add(1, SeqCst);
        Ok(())
    }

    fn run(&self) -> TestResult {
        if let Some(m) = self.plan.mutant {
            mutant::set_process(Some(m));
        }
        let at = hint(self.slot, self.gen);
        let heap = open_at(self.path, at)?;
        let mut pending = heap.recovered_at_open().cloned();
        let mut rng = Rng::new(seeded(self.plan.salt ^ (self.slot << 32) ^ self.gen));
        let unpaused = self.slot + self.plan.unpaused >= self.plan.workers;
        let spin_n = if unpaused { 0 } else { self.plan.spin };
        let pause = move || spin(spin_n);
        let mut step = 0u64;
        while self.board.stop.load(SeqCst) == 0 {
            let mut g = heap.lock().ctx("lock")?;
            if step == 0 {
                ensure!(
                    g.base_address() == at,
                    "mapped at {:#x}, asked for {at:#x}",
                    g.base_address()
                );
                self.board.bases[self.slot as usize * GENS + self.gen as usize % GENS]
                    .store(at as u64, SeqCst);
            }
            if let Some(r) = g.recovered().cloned().or_else(|| pending.take()) {
                self.board.record(&r);
                self.verify(&g, &format!("after a takeover ({r:?})"))?;
            } else if step.is_multiple_of(VERIFY_EVERY) {
                self.verify(&g, "between operations")?;
            }
            self.w.op(&mut g, &mut rng, &pause)?;
            drop(g);
            step += 1;
            self.board.ops.fetch_add(1, SeqCst);
        }
        Ok(())
    }
}

fn spawn<W: Workload>(
    w: &W,
    board: &Board,
    path: &Path,
    slot: u64,
    gen: u64,
    plan: Plan,
) -> Result<Pid, String> {
    fork_child(|| {
        let worker = Worker {
            w,
            board,
            path,
            slot,
            gen,
            plan,
        };
        match worker.run() {
            Ok(()) => 0,
            Err(e) => {
                board.fail(&format!(
                    "worker {slot}.{gen} (pid {}): {e}",
                    std::process::id()
                ));
                1
            }
        }
    })
    .ctx("fork")
}

/// A worker that ended by itself: the message it left, or how it ended.
fn ended(board: &Board, what: &str, e: Exit) -> String {
    match board.failure() {
        Some(msg) => msg,
        None => format!("{what} ended with {e:?} without a message"),
    }
}

/// Starts the workers (their pids in `pids`), then kills and replaces one at a time,
/// `plan.kills` times (counted in `kills`); then waits for the survivors to go on. `Ok(Some)`
/// says why the run is broken (a worker ended by itself, or no progress); `Err` is the
/// parent's own failure.
fn kill_loop<W: Workload>(
    w: &W,
    board: &Board,
    path: &Path,
    plan: Plan,
    pids: &mut Vec<Pid>,
    kills: &mut u64,
) -> Result<Option<String>, String> {
    let mut rng = Rng::new(seeded(plan.salt));
    let mut gens = vec![0u64; plan.workers as usize];
    for slot in 0..plan.workers {
        pids.push(spawn(w, board, path, slot, 0, plan)?);
    }
    while *kills < plan.kills {
        std::thread::sleep(Duration::from_micros(rng.below(plan.gap_us)));
        if let Some((i, e)) = pids
            .iter()
            .enumerate()
            .find_map(|(i, &p)| procs::try_reap(p).ok().flatten().map(|e| (i, e)))
        {
            pids.remove(i);
            return Ok(Some(ended(board, &format!("worker {i}"), e)));
        }
        let slot = rng.below(plan.workers) as usize;
        procs::kill9(pids[slot]);
        let e = reap(pids[slot], deadline(10)).ctx("reap victim")?;
        if !e.killed() {
            pids.remove(slot);
            return Ok(Some(ended(board, &format!("worker {slot}"), e)));
        }
        *kills += 1;
        gens[slot] += 1;
        pids[slot] = spawn(w, board, path, slot as u64, gens[slot], plan)?;
    }
    // The last victim's lock must be taken over, and work go on.
    let from = board.ops.load(SeqCst);
    let went_on = wait_until(Duration::from_secs(10), || {
        board.ops.load(SeqCst) >= from + 20 || board.failure().is_some()
    });
    Ok((!went_on).then(|| "no progress in 10 s after the last kill".to_string()))
}

/// Runs `plan` over workload `w` on a fresh heap; `Err` says what broke.
pub fn run<W: Workload>(w: &W, plan: Plan) -> Result<Outcome, String> {
    ensure!(
        (1..=MAX_WORKERS as u64).contains(&plan.workers),
        "{} workers: a run has 1 to {MAX_WORKERS}",
        plan.workers
    );
    let started = Instant::now();
    let (_dir, path) = fresh_heap(HEAP_SIZE)?;
    {
        let heap = Heap::open(&path).ctx("open")?;
        w.init(&mut heap.lock().ctx("lock")?)
            .map_err(|e| format!("init: {e}"))?;
    }
    // SAFETY: Board is atomics only; all-zero is its initial state.
    let board: Shared<Board> = unsafe { Shared::zeroed() }.ctx("shm")?;
    let mut pids = Vec::new();
    let mut kills = 0;
    let looped = kill_loop(w, &board, &path, plan, &mut pids, &mut kills);
    if looped.is_err() {
        // The parent itself failed (fork, reap): end every worker before returning.
        pids.iter().for_each(|&p| procs::kill9(p));
        let _ = reap_all(&pids, deadline(10));
    }
    let broken = looped?;
    board.stop.store(1, SeqCst);
    let exits = reap_all(&pids, deadline(20)).ctx("reap")?;
    if let Some(b) = broken.or_else(|| board.failure()) {
        return Err(format!("after {kills} kills: {b}"));
    }
    expect_all_ok("worker", &exits)?;
    let mut out = final_check(w, &path, &board)
        .map_err(|e| format!("after {kills} kills, at the end: {e}"))?;
    out.kills = kills;
    out.elapsed = started.elapsed();
    Ok(out)
}

/// The parent's look once every worker has stopped: a takeover left to do is done here
/// (and counted); then `check()`, the invariant, and no leak.
fn final_check<W: Workload>(w: &W, path: &Path, board: &Board) -> Result<Outcome, String> {
    let heap = Heap::open_with(path, &probe(PROBE_MS)).ctx("final open")?;
    if let Some(r) = heap.recovered_at_open() {
        board.record(r);
    }
    let g = heap.lock().ctx("final lock")?;
    let report = g.check();
    ensure!(report.is_clean(), "final check: {:?}", report.violations);
    let (live, summary) = w.verify(&g).map_err(|e| format!("final verify: {e}"))?;
    let leaked = leaks(&g, &live);
    ensure!(
        leaked == (0, 0),
        "{} blocks ({} bytes) are allocated but unreachable from the root",
        leaked.0,
        leaked.1
    );
    let addresses: HashSet<u64> = board
        .bases
        .iter()
        .map(|b| b.load(SeqCst))
        .filter(|&b| b != 0)
        .collect();
    Ok(Outcome {
        ops: board.ops.load(SeqCst),
        takeovers: board.takeovers.load(SeqCst),
        rolled_back: board.rolled_back.load(SeqCst),
        finished: board.finished.load(SeqCst),
        verified: board.verified.load(SeqCst),
        addresses: addresses.len() as u64,
        summary,
        ..Outcome::default()
    })
}

/// A run of `plan` that must pass, with kills inside transactions: at least `min_rolled`
/// transactions rolled back by a recoverer (so the kills did land mid-transaction), and
/// every worker slot at more than one address.
pub fn must_pass<W: Workload>(w: &W, plan: Plan, min_rolled: u64) -> Result<Outcome, String> {
    let out = run(w, plan)?;
    ensure!(
        out.kills == plan.kills,
        "{} kills, planned {}",
        out.kills,
        plan.kills
    );
    ensure!(
        out.rolled_back >= min_rolled,
        "only {} of {} kills left a transaction to roll back (wanted at least {min_rolled}): \
         the kills did not land inside transactions ({})",
        out.rolled_back,
        out.kills,
        out.line()
    );
    ensure!(
        out.addresses > plan.workers,
        "the workers mapped the heap at only {} addresses",
        out.addresses
    );
    Ok(out)
}
