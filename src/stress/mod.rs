//! `mapheap stress [PATH]`: forked workers hammer one heap while the parent SIGKILLs them at
//! random and starts replacements; at the end the parent checks the heap and verifies every
//! committed node.
//!
//! * [`graph`]: the shared offset graph and what "committed" means.
//! * [`board`]: the scoreboard in shared memory (journal of directory stores, takeover
//!   attribution and latency).
//! * [`worker`]: a worker's loop.
//! * [`report`]: the summary; [`json`]: its `--json` form.
//! * [`procs`], [`shm`], [`rng`]: fork/reap/kill, shared memory, a small generator; the fork
//!   tests in integration/ use them too.
//!
//! The parent never holds a heap handle while workers run and never takes the heap's lock
//! before they are all gone, so a hung lock cannot hang it; it forks only while it has one
//! thread (the progress bar never starts its ticker thread, and draws only on a terminal),
//! and every fork is checked.
//! Kills come from the parent (`kill(pid, SIGKILL)`), so this works in a release build
//! without the `mutants` feature.

pub mod board;
pub mod graph;
pub mod json;
pub mod procs;
pub mod report;
pub mod rng;
pub mod shm;
pub mod worker;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use board::{Board, MAX_DIR};
use graph::Graph;
use procs::{Exit, Pid};
pub use report::Summary;
use rng::Rng;
use shm::Shared;

use crate::heap::io_err;
use crate::{CreateOptions, Error, Heap, OpenOptions, Result};

/// Options of `mapheap stress`.
#[derive(Debug, clap::Args)]
pub struct StressArgs {
    /// Heap file to create (kept afterwards); a temporary file if omitted.
    pub path: Option<PathBuf>,
    /// Replace PATH if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// How long the workers run, in seconds.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Workers kept running (default: 2 per CPU).
    #[arg(long)]
    pub workers: Option<usize>,
    /// SIGKILLs per second, at random moments (a Poisson process); 0 for none.
    #[arg(long, default_value_t = 10.0)]
    pub kill_rate: f64,
    /// Initial heap capacity, e.g. 4M (the heap grows when full).
    #[arg(long, default_value = "4M", value_parser = crate::size::parse_size)]
    pub size: u64,
    /// Seed of every random choice (default: from the clock; printed in the summary).
    #[arg(long)]
    pub seed: Option<u64>,
    /// How long a waiter sleeps before probing whether the lock's owner died, in ms.
    #[arg(long, default_value_t = 5)]
    pub probe_ms: u64,
    /// Directory slots of the graph (at most this many committed nodes).
    #[arg(long, default_value_t = 512)]
    pub nodes: u64,
    /// Largest node payload in bytes.
    #[arg(long, default_value_t = 2048)]
    pub max_payload: u64,
}

fn bad_arg(size: u64, why: &'static str) -> Error {
    Error::BadSize { size, why }
}

struct Running {
    pid: Pid,
    serial: u64,
}

struct Parent<'a> {
    path: &'a Path,
    args: &'a StressArgs,
    board: &'a Board,
    rng: Rng,
    seed: u64,
    next_serial: u64,
    running: Vec<Running>,
    kills: u64,
    violations: Vec<String>,
}

impl Parent<'_> {
    fn spawn(&mut self) -> Result<()> {
        let serial = self.next_serial;
        self.next_serial += 1;
        self.board.reset_serial(serial);
        let cfg = worker::Config {
            path: self.path,
            probe: Duration::from_millis(self.args.probe_ms),
            serial,
            seed: rng::mix(self.seed ^ rng::mix(serial + 1)),
            max_payload: self.args.max_payload,
            board: self.board,
        };
        let pid = procs::fork_child(|| worker::main(&cfg)).map_err(io_err("fork", self.path))?;
        self.running.push(Running { pid, serial });
        Ok(())
    }

    /// Reaps workers that ended on their own: during the run that is a violation.
    fn reap_unexpected(&mut self) -> Result<()> {
        let mut i = 0;
        while i < self.running.len() {
            let r = &self.running[i];
            match procs::try_reap(r.pid).map_err(io_err("waitpid", self.path))? {
                None => i += 1,
                Some(e) => {
                    self.violations.push(format!(
                        "worker {} (pid {}) ended by itself during the run: {e:?}",
                        r.serial, r.pid
                    ));
                    self.running.swap_remove(i);
                    self.spawn()?;
                }
            }
        }
        Ok(())
    }

    fn kill_one(&mut self) -> Result<()> {
        if self.running.is_empty() {
            return Ok(());
        }
        let i = self.rng.below(self.running.len() as u64) as usize;
        let r = self.running.swap_remove(i);
        self.board.mark_killed(r.serial);
        procs::kill9(r.pid);
        let e = procs::reap(r.pid, Instant::now() + Duration::from_secs(10))
            .map_err(io_err("waitpid", self.path))?;
        self.kills += 1;
        if !e.killed() {
            self.violations.push(format!(
                "worker {} (pid {}) ended before the kill reached it: {e:?}",
                r.serial, r.pid
            ));
        }
        self.spawn()
    }

    fn stop_all(&mut self) -> Result<()> {
        self.board
            .stop
            .store(1, std::sync::atomic::Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        for r in std::mem::take(&mut self.running) {
            let e = procs::reap(r.pid, deadline).map_err(io_err("waitpid", self.path))?;
            if e == Exit::TimedOut {
                self.violations.push(format!(
                    "worker {} (pid {}) did not stop within 10 s (a hung lock?)",
                    r.serial, r.pid
                ));
            } else if !e.ok() {
                self.violations.push(format!(
                    "worker {} (pid {}) exited with {e:?} at the end",
                    r.serial, r.pid
                ));
            }
        }
        Ok(())
    }
}

fn progress(duration: Duration) -> ProgressBar {
    crate::progress::bar(
        duration.as_millis() as u64,
        "{elapsed_precise} [{bar:30}] {percent:>3}% {msg}",
    )
}

/// Runs the stress job, prints the summary (as text, or as JSON if `json`);
/// `ExitCode::FAILURE` if any violation was found.
pub fn run(args: &StressArgs, json: bool) -> Result<ExitCode> {
    let summary = run_summary(args)?;
    if json {
        println!("{}", summary.json());
    } else {
        println!("{}", summary.render());
    }
    Ok(if summary.violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the stress job and returns its summary (the tests call this).
pub fn run_summary(args: &StressArgs) -> Result<Summary> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = args.workers.unwrap_or(2 * cpus);
    if workers == 0 || workers > board::SLOTS - 8 {
        return Err(bad_arg(workers as u64, "--workers must be 1 to 120"));
    }
    if args.nodes == 0 || args.nodes > MAX_DIR as u64 {
        return Err(bad_arg(args.nodes, "--nodes must be 1 to 16384"));
    }
    let non_negative = |x: f64| x.is_finite() && x >= 0.0;
    if !non_negative(args.duration) || !non_negative(args.kill_rate) {
        return Err(bad_arg(
            0,
            "--duration and --kill-rate must be non-negative",
        ));
    }
    let seed = args
        .seed
        .unwrap_or_else(|| procs::mono_ns() ^ u64::from(std::process::id()));
    let tmp;
    let path = match &args.path {
        Some(p) => p.clone(),
        None => {
            tmp = tempfile::tempdir()
                .map_err(io_err("create temporary directory", Path::new(".")))?;
            tmp.path().join("stress.heap")
        }
    };
    let probe = Duration::from_millis(args.probe_ms);
    let open = OpenOptions {
        probe_interval: probe,
        ..OpenOptions::default()
    };
    let initial_cap = {
        let mut o = CreateOptions::new(args.size);
        o.overwrite = args.overwrite;
        o.open = open.clone();
        let heap = Heap::create_with(&path, &o)?;
        let mut g = heap.lock()?;
        Graph::create(&mut g, args.nodes)?;
        g.capacity()
    };
    // SAFETY: Board is atomics only (arrays of them), all-zero is its initial state, and it
    // holds no pointer: sound to share between the forked processes.
    let board: Shared<Board> =
        unsafe { Shared::zeroed() }.map_err(io_err("map the scoreboard for", &path))?;
    let mut parent = Parent {
        path: &path,
        args,
        board: &board,
        rng: Rng::new(seed),
        seed,
        next_serial: 0,
        running: Vec::new(),
        kills: 0,
        violations: Vec::new(),
    };
    let duration = Duration::from_secs_f64(args.duration);
    let pb = progress(duration);
    let start = Instant::now();
    for _ in 0..workers {
        parent.spawn()?;
    }
    let mean_gap = if args.kill_rate > 0.0 {
        1.0 / args.kill_rate
    } else {
        f64::INFINITY
    };
    let mut next_kill = parent.rng.exp(mean_gap);
    let mut last_draw = Instant::now();
    loop {
        let now = start.elapsed();
        if now >= duration {
            break;
        }
        parent.reap_unexpected()?;
        if now.as_secs_f64() >= next_kill {
            parent.kill_one()?;
            next_kill =
                next_kill.max(start.elapsed().as_secs_f64() - mean_gap) + parent.rng.exp(mean_gap);
            continue;
        }
        if last_draw.elapsed() >= Duration::from_millis(100) {
            last_draw = Instant::now();
            pb.set_position(now.as_millis() as u64);
            pb.set_message(format!(
                "ops {}  kills {}  recoveries {}  violations {}",
                board.total_ops(),
                parent.kills,
                board.total_recoveries(),
                board.total_violations() + parent.violations.len() as u64
            ));
        }
        let wait = (next_kill - now.as_secs_f64()).clamp(0.0, 0.005);
        std::thread::sleep(Duration::from_secs_f64(wait));
    }
    parent.stop_all()?;
    let elapsed = start.elapsed();
    pb.finish_and_clear();

    // Every worker is gone: attach, take over the last dead owner's lock if need be, settle
    // the journal, then check and verify everything.
    let heap = Heap::open_with(&path, &open)?;
    let mut final_recoveries = 0;
    if let Some(r) = heap.recovered_at_open() {
        final_recoveries += u64::from(r.dead.is_some());
    }
    let g = heap.lock()?;
    if let Some(r) = g.recovered() {
        final_recoveries += u64::from(r.dead.is_some());
    }
    let graph = Graph::open(&g)?.ok_or_else(|| Error::BadOffset {
        offset: 0,
        ty: "stress graph",
        why: "the graph root is gone".into(),
    })?;
    board.reconcile(&graph, &g)?;
    let check = g.check();
    let verified = graph.verify(&g)?;
    let leaked = graph::leaks(&g, &verified.live);
    let capacity = g.capacity();
    drop(g);

    let tally = board.tally();
    let mut violations = tally.messages.clone();
    if tally.violations > tally.messages.len() as u64 {
        violations.push(format!(
            "... and {} more violations recorded by workers",
            tally.violations - tally.messages.len() as u64
        ));
    }
    violations.extend(parent.violations.iter().cloned());
    violations.extend(check.violations.iter().map(|v| format!("check: {v}")));
    violations.extend(verified.problems.iter().map(|p| format!("graph: {p}")));
    violations.extend(
        board
            .mirror_mismatches(&verified.dir)
            .into_iter()
            .map(|m| format!("lost store: {m}")),
    );
    if leaked.0 != 0 {
        violations.push(format!(
            "S4 leaked {} blocks ({} bytes): allocated, yet reached by nothing",
            leaked.0, leaked.1
        ));
    }
    let summary = Summary {
        path: path.display().to_string(),
        temporary: args.path.is_none(),
        elapsed,
        workers,
        seed,
        probe,
        capacity: (initial_cap, capacity),
        kills: parent.kills,
        spawned: parent.next_serial,
        tally,
        final_recoveries,
        check_blocks: (check.blocks, check.free_blocks),
        graph: (verified.slots, verified.nodes, verified.payload_bytes),
        largest_payload: verified.largest_payload,
        leaked,
        violations,
    };
    Ok(summary)
}
