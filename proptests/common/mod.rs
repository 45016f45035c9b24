//! Support shared by the property-test targets in `proptests/`: configuration and scaling,
//! running a property through proptest's `TestRunner` (so mutant tests can assert that it
//! fails), child processes for cases that may crash, address-space reservations, fill
//! patterns, and the TLSF bound the allocator model uses.
//!
//! See docs/properties.md.
#![allow(dead_code)]

pub mod entry;
pub mod graph;

use std::fmt::Debug;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{
    Config, FileFailurePersistence, RngSeed, TestCaseError, TestError, TestRunner,
};

/// The block header size, minimum block, header area and size-class constants, restated
/// here from docs/format.md rather than imported, so the model does not share a bug with
/// the code it checks.
pub const BLOCK_HEADER: u64 = 8;
/// Smallest block (header, two links, footer).
pub const MIN_BLOCK: u64 = 32;
/// Where the arena starts.
pub const HEADER_SIZE: u64 = 16384;
/// Blocks below this size are classed linearly (8-byte steps).
pub const SMALL_BLOCK: u64 = 256;
/// log2 of the second-level lists per first-level class.
pub const SL_LOG2: u32 = 5;

/// Environment variable that names the role of a re-executed test binary.
pub const CHILD_ENV: &str = "MAPHEAP_PROP_CHILD";
/// Environment variable: seconds before a child case counts as hung (default 20).
pub const CHILD_TIMEOUT_ENV: &str = "MAPHEAP_PROP_CHILD_TIMEOUT";

/// Number of cases: `PROPTEST_CASES` if set, else the property's own default (chosen so
/// that a plain `cargo test` finishes in a few minutes on two cores).
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// The bound of a property test (its watchdog, `mapheap::watchdog!`): a minute, plus
/// `ms_per_case` for each case it runs (`cases(default_cases)`), about ten times what a case
/// takes on two idle cores, so a deep run's larger `PROPTEST_CASES` raises it too.
pub fn bound_secs(default_cases: u32, ms_per_case: u64) -> u64 {
    60 + u64::from(cases(default_cases)) * ms_per_case / 1000
}

/// The configuration of a property in the default run: `cases` (scaled by
/// `PROPTEST_CASES`), failures persisted to `regressions` (a path under
/// proptests/regressions/, replayed first on every run), everything else from proptest's
/// environment variables (`PROPTEST_RNG_SEED`, `PROPTEST_MAX_SHRINK_ITERS`, ...).
pub fn config(default_cases: u32, regressions: &'static str) -> Config {
    Config {
        cases: cases(default_cases),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        fork: false,
        timeout: 0,
        ..Config::default()
    }
}

/// The configuration of a mutant run: a fixed seed, a fixed number of cases, no
/// persistence (a mutant's failure is expected and must not become a regression case),
/// and a bounded shrink.
pub fn mutant_config(cases: u32, seed: u64) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        fork: false,
        timeout: 0,
        max_shrink_iters: 200,
        max_shrink_time: 60_000,
        ..Config::default()
    }
}

/// What one run of a property gave.
#[derive(Debug)]
pub struct Outcome {
    /// `Err(message)` if the property failed (the message holds the minimal case).
    pub result: Result<(), String>,
    /// How many cases ran before the first failure (or in all, if none failed), persisted
    /// regression cases included, shrinking excluded.
    pub cases_to_failure: u64,
    /// Cases run in all, shrink steps included.
    pub cases_run: u64,
}

/// Runs `test` over `strategy` with `config`, counting cases.
pub fn run_property<S>(
    config: Config,
    strategy: &S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Outcome
where
    S: Strategy,
    S::Value: Debug,
{
    use std::sync::atomic::{AtomicU64, Ordering};
    let ran = AtomicU64::new(0);
    let first_fail = AtomicU64::new(0);
    let mut runner = TestRunner::new(config);
    let r = runner.run(strategy, |v| {
        let n = ran.fetch_add(1, Ordering::Relaxed) + 1;
        let r = test(v);
        if r.is_err() && first_fail.load(Ordering::Relaxed) == 0 {
            first_fail.store(n, Ordering::Relaxed);
        }
        r
    });
    let cases_run = ran.load(Ordering::Relaxed);
    let f = first_fail.load(Ordering::Relaxed);
    let result = match r {
        Ok(()) => Ok(()),
        Err(TestError::Abort(why)) => Err(format!("aborted: {why}")),
        Err(TestError::Fail(why, value)) => {
            Err(format!("{why}\nminimal failing input: {value:#?}"))
        }
    };
    Outcome {
        result,
        cases_to_failure: if f == 0 { cases_run } else { f },
        cases_run,
    }
}

/// Runs a property of the default run and panics with the minimal failing case.
pub fn assert_property<S>(
    name: &str,
    config: Config,
    strategy: &S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let cases = config.cases;
    let t = Instant::now();
    let out = run_property(config, strategy, test);
    if let Err(e) = out.result {
        panic!(
            "property {name} failed after {} cases (reproduce: rerun; the seed is persisted \
             in proptests/regressions/):\n{e}",
            out.cases_to_failure
        );
    }
    eprintln!(
        "property {name}: {} cases passed ({cases} new) in {:.1?}",
        out.cases_run,
        t.elapsed()
    );
}

/// Asserts that a property run with a seeded bug failed; returns the report line.
pub fn assert_caught(mutant: &str, property: &str, out: &Outcome) -> String {
    match &out.result {
        Ok(()) => panic!(
            "mutant {mutant} survived property {property}: {} cases passed",
            out.cases_run
        ),
        Err(e) => {
            let first = e.lines().next().unwrap_or("");
            let line = format!(
                "mutant {mutant} caught by {property} at case {} ({} cases incl. shrinking): {first}",
                out.cases_to_failure, out.cases_run
            );
            eprintln!("{line}");
            line
        }
    }
}

/// Turns any displayable error into a test-case failure.
pub fn fail(msg: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(msg.to_string())
}

/// `Err(fail(..))` unless `cond`.
#[allow(unused_macros)]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(proptest::test_runner::TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

// ---- child processes ------------------------------------------------------------------

/// How a child process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildEnd {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal (SIGSEGV, SIGBUS, SIGABRT...).
    Signaled(i32),
    /// Still running at the deadline; it was killed.
    TimedOut,
}

/// A finished child: how it ended and what it wrote to stderr.
#[derive(Debug, Clone)]
pub struct ChildRun {
    /// How it ended.
    pub end: ChildEnd,
    /// Its standard error.
    pub stderr: String,
}

impl ChildRun {
    /// A one-line description for failure messages.
    pub fn describe(&self) -> String {
        let tail: String = {
            let lines: Vec<&str> = self.stderr.lines().collect();
            let from = lines.len().saturating_sub(12);
            lines[from..].join("\n")
        };
        match self.end {
            ChildEnd::Exited(c) => format!("child exited with {c}; stderr:\n{tail}"),
            ChildEnd::Signaled(s) => format!(
                "child killed by signal {s} ({}); stderr:\n{tail}",
                signal_name(s)
            ),
            ChildEnd::TimedOut => format!("child hung (killed at the deadline); stderr:\n{tail}"),
        }
    }
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        _ => "other",
    }
}

/// The child deadline: `MAPHEAP_PROP_CHILD_TIMEOUT` seconds, default 20.
pub fn child_timeout() -> Duration {
    let s = std::env::var(CHILD_TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20u64);
    Duration::from_secs(s)
}

/// Re-executes this test binary to run exactly the test `test_name` with `envs` set
/// (a fresh process: its own address space, its own mappings, ASLR anew), and waits for it
/// up to `timeout`, killing it after. The child's stderr is collected from a temporary
/// file; its stdout is discarded.
pub fn run_child(test_name: &str, envs: &[(&str, String)], timeout: Duration) -> ChildRun {
    use std::os::unix::process::ExitStatusExt;
    let exe = std::env::current_exe().expect("current_exe");
    let err_file = tempfile::tempfile().expect("temp file for child stderr");
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(err_file.try_clone().expect("dup")))
        .env_remove("MAPHEAP_MUTANT")
        .env("RUST_BACKTRACE", "0");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn the test binary");
    let deadline = Instant::now() + timeout;
    let mut sleep = Duration::from_micros(200);
    let end = loop {
        match child.try_wait().expect("wait for child") {
            Some(st) => {
                break match (st.code(), st.signal()) {
                    (Some(c), _) => ChildEnd::Exited(c),
                    (None, Some(s)) => ChildEnd::Signaled(s),
                    (None, None) => ChildEnd::Exited(-1),
                }
            }
            None if Instant::now() >= deadline => {
                // Our own child, by its handle (never by name).
                let _ = child.kill();
                let _ = child.wait();
                break ChildEnd::TimedOut;
            }
            None => {
                std::thread::sleep(sleep);
                sleep = (sleep * 2).min(Duration::from_millis(20));
            }
        }
    };
    let mut stderr = String::new();
    let mut f = err_file;
    use std::io::Seek;
    let _ = f.seek(std::io::SeekFrom::Start(0));
    let _ = f.read_to_string(&mut stderr);
    ChildRun { end, stderr }
}

/// The role this process was started in, if it is a re-executed child.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

// ---- address space --------------------------------------------------------------------

/// A `PROT_NONE` reservation of address space, unmapped on drop. Mappings placed inside it
/// with `MAP_FIXED` replace part of it; the reservation's own `munmap` on drop removes
/// whatever is left in its range, so every mapping placed in it must be gone first.
pub struct Reservation {
    ptr: NonNull<u8>,
    len: usize,
}

impl Reservation {
    /// Reserves `len` bytes (rounded up to pages) of address space that nothing else can
    /// be mapped into.
    pub fn new(len: usize) -> Reservation {
        let page = page_size();
        let len = len.div_ceil(page) * page;
        // SAFETY: an anonymous PROT_NONE mapping at an address of the kernel's choosing
        // touches no existing memory; the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "reserve {len} bytes of address space");
        Reservation {
            ptr: NonNull::new(p.cast()).expect("mmap returned null"),
            len,
        }
    }

    /// The address `page_index` pages into the reservation, where a mapping of `len`
    /// bytes will be placed: asserts that it fits (a `MAP_FIXED` mapping running past the
    /// reservation would silently replace whatever is mapped beyond it).
    pub fn place(&self, page_index: usize, len: usize) -> NonNull<u8> {
        let off = page_index * page_size();
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.len),
            "a {len}-byte mapping at page {page_index} does not fit a {}-byte reservation",
            self.len
        );
        // SAFETY: `off < off + len <= self.len`, so the result stays inside the
        // reservation (non-null).
        unsafe { NonNull::new_unchecked(self.ptr.as_ptr().add(off)) }
    }

    /// Start of the reservation.
    pub fn base(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never empty.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: the range is our own reservation; callers drop every heap mapped inside
        // it first (see the type's doc), so nothing live is unmapped.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// The system page size.
pub fn page_size() -> usize {
    mapheap::format::page_size() as usize
}

// ---- data -----------------------------------------------------------------------------

/// `len` bytes derived from `seed`, every byte with bit 2 set: read as a little-endian
/// word at any 8-aligned position, a pattern has the block header's reserved bit set, so
/// no pattern word can ever pass for a block header (an offset into a payload is then
/// certainly rejected, never a 1-in-65536 accident).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u8) | 0x04
        })
        .collect()
}

/// A fresh temporary directory for one case's files.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mapheap-prop-")
        .tempdir()
        .expect("temp dir")
}

/// The length of the file at `path`.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A path next to `path` with another file name.
pub fn sibling(path: &Path, name: &str) -> PathBuf {
    path.with_file_name(name)
}

/// Opens a file read-only (for copies and reads of images).
pub fn read_file(path: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut v))
        .expect("read image");
    v
}

// ---- the TLSF bound -------------------------------------------------------------------

/// What the allocator searches its free lists for when asked for `size` bytes aligned to
/// `align` (a power of two): the whole block, `round_up(max(size, 24) + 8, 8)`, plus
/// `align + 32` when `align > 8` (room to split an aligned start off the front, whose gap
/// must itself be a block of at least 32 bytes). `None` if the request cannot be encoded.
pub fn tlsf_search(size: u64, align: u64) -> Option<u64> {
    let align = align.max(8);
    let payload = size.max(MIN_BLOCK - BLOCK_HEADER);
    let need = payload.checked_add(BLOCK_HEADER + 7)? & !7;
    Some(if align > 8 {
        need.checked_add(align + MIN_BLOCK)?
    } else {
        need
    })
}

/// The smallest free block that TLSF is certain to find for a search of `search` bytes:
/// `mapping_search` rounds the search up to the next size-class boundary, so that every
/// block of the class it looks in (and of every higher class) fits without walking a list.
/// Classes below 256 bytes are 8 bytes wide, so there the bound is `search` itself (sizes
/// are multiples of 8); above, class `f = floor(log2(s))` is split into 32 lists of width
/// `2^(f-5)`, so the bound is `search` rounded up to a multiple of `2^(f-5)`.
///
/// A free block smaller than this bound may go unused even if it could hold the request
/// (good fit, not best fit): an allocation fails with `OutOfSpace` exactly when the largest
/// free block is smaller than this bound, and succeeds exactly when it is not.
pub fn tlsf_guaranteed(search: u64) -> u64 {
    if search < SMALL_BLOCK {
        return search;
    }
    let f = 63 - search.leading_zeros();
    let step = 1u64 << (f - SL_LOG2);
    search.div_ceil(step) * step
}

/// The smallest block size of size class `(fl, sl)` (restated from docs/format.md; used to
/// aim generated sizes at class boundaries).
pub fn class_min(fl: u32, sl: u64) -> u64 {
    if fl == 0 {
        sl * 8
    } else {
        let shift = fl + 7;
        (1u64 << shift) + (sl << (shift - SL_LOG2))
    }
}

/// Block sizes at and around size-class boundaries up to `max`: the sizes most likely to
/// expose an off-by-one in `mapping_insert`/`mapping_search` or in a split.
pub fn boundary_block_sizes(max: u64) -> Vec<u64> {
    let mut v = Vec::new();
    for fl in 0..12u32 {
        for sl in [0u64, 1, 2, 15, 16, 30, 31] {
            let c = class_min(fl, sl);
            for d in [-8i64, 0, 8] {
                let s = c as i64 + d;
                if s >= MIN_BLOCK as i64 && (s as u64) <= max {
                    v.push(s as u64);
                }
            }
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}
