//! Support for the fork tests (fork_heap, fork_death): the run's seed and scale, re-exec
//! children, self-verifying blocks and a table of published blocks in the heap. The runner
//! is `crate::harness` (libtest's protocol, one test at a time, a watchdog per test);
//! processes, shared memory and the generator come from `mapheap::stress` (the same code
//! `mapheap stress` runs).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bytemuck::{Pod, Zeroable};

use mapheap::stress::procs::{self, Exit};
use mapheap::stress::rng;
use mapheap::{CreateOptions, Heap, HeapGuard, Offset, OpenOptions};

use crate::ensure;
pub use crate::harness::{case, note, Context, TestResult};
pub use mapheap::stress::procs::{fork_child, mono_ns, reap, reap_all, Pid};
pub use mapheap::stress::rng::Rng;
pub use mapheap::stress::shm::Shared;

/// Environment variable that makes a re-executed test binary run a child role.
pub const ROLE_ENV: &str = "MAPHEAP_FORK_ROLE";

/// `MAPHEAP_FORK_SCALE` (default 1): multiplies processes, rounds and kills.
pub fn scale() -> u64 {
    std::env::var("MAPHEAP_FORK_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

/// A test's bound at the run's scale: `secs` at scale 1, times the scale.
pub fn bound(secs: u64) -> u64 {
    secs * scale()
}

/// A seed for this run: `MAPHEAP_FORK_SEED` or the clock (printed, so a failure can be
/// replayed as far as scheduling allows).
pub fn seed() -> u64 {
    std::env::var("MAPHEAP_FORK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| mono_ns() ^ u64::from(std::process::id()))
}

/// The line each binary prints (to stderr) before its first test, and each watchdog message
/// repeats: what a rerun needs to repeat the random choices.
pub fn header() -> String {
    format!(
        "seed {} (MAPHEAP_FORK_SEED), scale {} (MAPHEAP_FORK_SCALE)",
        seed_value(),
        scale()
    )
}

/// In a re-executed child (`MAPHEAP_FORK_ROLE` set): switches on `MAPHEAP_MUTANT`, runs the
/// role and returns its exit status. `None` in the test binary proper, which then starts
/// the harness: roles are dispatched before any test runs.
pub fn dispatch_role(roles: impl FnOnce(&str) -> TestResult) -> Option<ExitCode> {
    let role = std::env::var(ROLE_ENV).ok()?;
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of this process: a re-executed child
    // dies with the test process that spawned it, as forked children do.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    mapheap::mutant::init_from_env();
    Some(match roles(&role) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("child {role} (pid {}): {e}", std::process::id());
            ExitCode::from(1)
        }
    })
}

/// A forked child's body: `Err` is printed and becomes exit status 1.
pub fn child(f: impl FnOnce() -> TestResult) -> i32 {
    match f() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("child {}: {e}", std::process::id());
            1
        }
    }
}

static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

fn seed_value() -> u64 {
    *SEED.get_or_init(seed)
}

/// The run's seed mixed with `salt`.
pub fn seeded(salt: u64) -> u64 {
    rng::mix(seed_value() ^ rng::mix(salt))
}

/// A fresh heap of `size` bytes in a new temporary directory.
pub fn fresh_heap(size: u64) -> Result<(tempfile::TempDir, std::path::PathBuf), String> {
    let dir = tempfile::tempdir().ctx("tempdir")?;
    let path = dir.path().join("fork.heap");
    Heap::create_with(&path, &CreateOptions::new(size)).ctx("create")?;
    Ok((dir, path))
}

/// Open options with a short probe interval.
pub fn probe(ms: u64) -> OpenOptions {
    OpenOptions {
        probe_interval: Duration::from_millis(ms),
        ..OpenOptions::default()
    }
}

/// Opens `path` afresh (in a child: its own open, its own slot, its own mapping).
pub fn attach(path: &Path, probe_ms: u64) -> Heap {
    Heap::open_with(path, &probe(probe_ms)).expect("open the heap in the child")
}

/// How each child ended, with a label for messages.
pub fn expect_all_ok(label: &str, exits: &[Exit]) -> TestResult {
    for (i, e) in exits.iter().enumerate() {
        ensure!(e.ok(), "{label} {i} ended with {e:?}, wanted exit 0");
    }
    Ok(())
}

/// Spawns this test binary again as child role `role` with extra environment.
pub fn reexec(role: &str, env: &[(&str, String)]) -> Result<Child, String> {
    let exe = std::env::current_exe().ctx("current_exe")?;
    let mut c = Command::new(exe);
    c.env(ROLE_ENV, role)
        .env_remove("MAPHEAP_MUTANT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().ctx("spawn re-exec child")
}

/// Waits for a re-exec child until `deadline` (SIGKILL past it); returns how it ended and
/// what it printed.
pub fn wait_child(mut child: Child, deadline: Instant) -> Result<(Exit, String), String> {
    let pid = child.id() as Pid;
    let exit = reap(pid, deadline).ctx("reap")?;
    let mut out = String::new();
    if let Some(mut so) = child.stdout.take() {
        use std::io::Read;
        let _ = so.read_to_string(&mut out);
    }
    // The child is reaped already; `Child` must not wait again.
    std::mem::forget(child);
    Ok((exit, out))
}

/// A `key=value` field from a child's output.
pub fn field(out: &str, key: &str) -> Option<u64> {
    out.split_whitespace().find_map(|w| {
        w.strip_prefix(key)
            .and_then(|r| r.strip_prefix('='))
            .and_then(|v| {
                v.strip_prefix("0x")
                    .map_or_else(|| v.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
            })
    })
}

// ---- self-verifying blocks --------------------------------------------------------------

/// Head of a test block: the pattern of `seed` fills `len` bytes after it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockHead {
    /// Seed of the pattern.
    pub seed: u64,
    /// Payload bytes after the head.
    pub len: u64,
}

const BHEAD: u64 = size_of::<BlockHead>() as u64;

/// Allocates a block of `len` payload bytes filled with the pattern of `seed`.
pub fn new_block(g: &mut HeapGuard<'_>, len: u64, seed: u64) -> mapheap::Result<u64> {
    let off = g.alloc_bytes(BHEAD + len, 8)?;
    write_block(g, off.raw(), len, seed)?;
    Ok(off.raw())
}

/// Rewrites the block at `off` with the pattern of `seed` (same length).
pub fn write_block(g: &mut HeapGuard<'_>, off: u64, len: u64, seed: u64) -> mapheap::Result<()> {
    let b = g.bytes_mut(Offset::from_raw(off), BHEAD + len)?;
    let (h, p) = b.split_at_mut(BHEAD as usize);
    rng::fill(seed, p);
    h.copy_from_slice(bytemuck::bytes_of(&BlockHead { seed, len }));
    Ok(())
}

/// Checks that the block at `off` is allocated and holds its own pattern; returns its head.
pub fn check_block(g: &HeapGuard<'_>, off: u64) -> Result<BlockHead, String> {
    let h: BlockHead = g
        .read(Offset::from_raw(off))
        .map_err(|e| format!("block {off:#x}: {e}"))?;
    let b = g
        .bytes(Offset::from_raw(off), BHEAD.saturating_add(h.len))
        .map_err(|e| format!("block {off:#x} (len {}): {e}", h.len))?;
    if !rng::matches(h.seed, &b[BHEAD as usize..]) {
        return Err(format!("block {off:#x} (seed {}): payload changed", h.seed));
    }
    Ok(h)
}

/// Every block this process was told it owns (`mine[col] = (offset, seed)`) is published in
/// its row where it put it, and intact.
pub fn verify_mine(g: &HeapGuard<'_>, c: &Ctl, me: u64, mine: &[Option<(u64, u64)>]) -> TestResult {
    let r = row(g, c, me)?;
    for (col, m) in mine.iter().enumerate() {
        let want = m.map_or(0, |(b, _)| b);
        ensure!(
            r[col] == want,
            "row {me} col {col} holds {:#x}, wanted {want:#x}",
            r[col]
        );
        if let Some((b, seed)) = m {
            let h = check_block(g, *b)?;
            ensure!(h.seed == *seed, "block {b:#x}: seed {} != {seed}", h.seed);
        }
    }
    Ok(())
}

// ---- a table of published blocks ---------------------------------------------------------

/// Root record of the fork tests: a table of `rows x cols` block offsets (0 = empty) and a
/// few counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Ctl {
    /// Offset of the table.
    pub table: u64,
    /// Rows (one per process).
    pub rows: u64,
    /// Columns (blocks per process).
    pub cols: u64,
    /// Shared counters.
    pub counters: [u64; 64],
}

/// Name of the root.
pub const CTL: &str = "fork-ctl";

/// Makes the root record and its table.
pub fn init_ctl(g: &mut HeapGuard<'_>, rows: u64, cols: u64) -> mapheap::Result<Offset<Ctl>> {
    let t = g.alloc_bytes(rows * cols * 8, 8)?;
    g.bytes_mut(t, rows * cols * 8)?.fill(0);
    let ctl = g.alloc(Ctl {
        table: t.raw(),
        rows,
        cols,
        counters: [0; 64],
    })?;
    g.set_root(CTL, ctl)?;
    Ok(ctl)
}

/// The root record.
pub fn ctl(g: &HeapGuard<'_>) -> Result<(Offset<Ctl>, Ctl), String> {
    let off = g.root::<Ctl>(CTL).ctx("root")?.ok_or("no fork-ctl root")?;
    Ok((off, g.read(off).ctx("read ctl")?))
}

/// Row `row` of the table.
pub fn row(g: &HeapGuard<'_>, c: &Ctl, row: u64) -> Result<Vec<u64>, String> {
    let t = table(g, c)?;
    Ok(t[(row * c.cols) as usize..((row + 1) * c.cols) as usize].to_vec())
}

/// The whole table.
pub fn table(g: &HeapGuard<'_>, c: &Ctl) -> Result<Vec<u64>, String> {
    let b = g
        .bytes(Offset::from_raw(c.table), c.rows * c.cols * 8)
        .ctx("table")?;
    Ok(b.chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// Publishes (or clears, with 0) entry `(row, col)`: one 8-byte store.
pub fn publish(
    g: &mut HeapGuard<'_>,
    c: &Ctl,
    row: u64,
    col: u64,
    off: u64,
) -> mapheap::Result<()> {
    let b = g.bytes_mut(Offset::from_raw(c.table), c.rows * c.cols * 8)?;
    let t: &mut [u64] = bytemuck::cast_slice_mut(b);
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    t[(row * c.cols + col) as usize] = off;
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

/// Verifies every published block and returns the payload offsets the table reaches
/// (including the table and the root record).
pub fn verify_table(g: &HeapGuard<'_>) -> Result<std::collections::HashSet<u64>, String> {
    let (off, c) = ctl(g)?;
    let mut live = std::collections::HashSet::from([off.raw(), c.table]);
    for (i, &b) in table(g, &c)?.iter().enumerate() {
        if b != 0 {
            check_block(g, b).map_err(|e| format!("table entry {i}: {e}"))?;
            live.insert(b);
        }
    }
    Ok(live)
}

/// `(blocks, bytes)` allocated but not in `live`.
pub fn leaks(g: &HeapGuard<'_>, live: &std::collections::HashSet<u64>) -> (u64, u64) {
    mapheap::stress::graph::leaks(g, live)
}

/// Waits until `cond` holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Deadline `secs` from now.
pub fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// How a child ended, for messages.
pub fn describe(e: Exit) -> String {
    format!("{e:?}")
}

/// Whether `pid` is an unreaped zombie.
pub fn zombie(pid: Pid) -> bool {
    procs::exited_unreaped(pid).unwrap_or(false) && procs::is_zombie(pid)
}
