//! The runner of the `harness = false` binaries (lock_smoke, disk_full, fork_heap,
//! fork_death): libtest's command line and output through libtest-mimic, so `cargo test`,
//! `cargo nextest run` and `cargo nextest list` treat them like any other target (`--list`,
//! name filters, `--exact`, `--skip`, `--ignored`).
//!
//! Invariants kept here:
//! * the tests run one at a time on the main thread (`test_threads` is forced to 1,
//!   whatever the command line says), and nothing here starts a thread, so a test may fork
//!   (`procs::fork_child` checks that the process has one thread);
//! * every test states a bound: a watchdog (`alarm(2)`, so no thread) ends the whole
//!   process with a message naming the test and its bound if the test runs past it, so a
//!   test that blocks on the heap lock, a futex, a child or a pipe fails instead of hanging.
//!   Forked children get SIGKILL when the process dies (`PR_SET_PDEATHSIG`), so none outlives
//!   it;
//! * standard output carries only libtest's protocol (nextest parses `--list`); a binary's
//!   header (seed, scale) and the figures a test reports (`note`) go to standard error.

#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::time::Duration;

use mapheap::watchdog::CHILD_ENV;

use libtest_mimic::{Arguments, Failed, Trial};

/// A test's outcome: `Err` says what was wrong.
pub type TestResult = Result<(), String>;

/// Exit status of a process whose watchdog fired, the same as the lib tests' watchdog.
pub use mapheap::watchdog::WATCHDOG_EXIT;

/// Fails the test with a message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!("{} ({}:{})", format!($($fmt)+), file!(), line!()));
        }
    };
}

/// Turns any displayable error into a test failure.
pub trait Context<T> {
    /// Adds `what` to the error.
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// One test: its name (as `--list` prints it), its bound, its body.
pub struct Case {
    name: &'static str,
    bound: Duration,
    body: Box<dyn FnOnce() -> TestResult + Send>,
}

/// A test named `name` that must finish within `bound_secs` seconds.
pub fn case(
    name: &'static str,
    bound_secs: u64,
    body: impl FnOnce() -> TestResult + Send + 'static,
) -> Case {
    Case {
        name,
        bound: Duration::from_secs(bound_secs),
        body: Box::new(body),
    }
}

thread_local! {
    static NOTES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A line printed (to stderr) after the test's body: figures worth seeing in a passing run.
pub fn note(line: String) {
    NOTES.with(|n| n.borrow_mut().push(line));
}

/// Runs `cases` as libtest would, one at a time on this thread, each under its watchdog.
/// `header` (the seed and scale of a run) goes to stderr before the first test, and into
/// every watchdog message.
pub fn run(binary: &'static str, header: Option<String>, cases: Vec<Case>) -> ExitCode {
    let mut args = Arguments::from_args();
    if args.test_threads.is_some_and(|n| n != 1) {
        eprintln!("{binary}: ignoring --test-threads: these tests fork, so they run one at a time");
    }
    args.test_threads = Some(1);
    if std::env::var_os(CHILD_ENV).is_some() {
        // Run again by `mapheap::watchdog::run_test`: the mutant is on for the process.
        mapheap::mutant::init_from_env();
    }
    if !args.list {
        if let Some(h) = &header {
            eprintln!("{binary}: {h}");
        }
        install_watchdog();
    }
    let trials = cases
        .into_iter()
        .map(|c| {
            let header = header.clone();
            Trial::test(c.name, move || {
                let armed = Armed::arm(binary, c.name, c.bound, header.as_deref());
                let r = catch_unwind(AssertUnwindSafe(c.body)).unwrap_or_else(|p| {
                    Err(format!(
                        "panicked: {}",
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    ))
                });
                drop(armed);
                let notes = NOTES.with(|n| std::mem::take(&mut *n.borrow_mut()));
                if !notes.is_empty() {
                    eprintln!();
                    for n in notes {
                        eprintln!("    {n}");
                    }
                }
                r.map_err(Failed::from)
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

// ---- the watchdog -----------------------------------------------------------------------

/// The message the watchdog writes: set before `alarm` is armed, read by the handler.
static MESSAGE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static MESSAGE_LEN: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_alarm(_: libc::c_int) {
    let (p, n) = (
        MESSAGE.load(Ordering::SeqCst),
        MESSAGE_LEN.load(Ordering::SeqCst),
    );
    if !p.is_null() {
        // SAFETY: `p` points to `n` bytes leaked by `Armed::arm` and never freed; write(2)
        // is async-signal-safe.
        unsafe { libc::write(2, p.cast(), n) };
    }
    // SAFETY: _exit is async-signal-safe; the process ends here, its forked children with
    // it (they carry PR_SET_PDEATHSIG = SIGKILL).
    unsafe { libc::_exit(WATCHDOG_EXIT) }
}

fn install_watchdog() {
    // SAFETY: a zeroed sigaction with a handler and an empty mask is valid; the handler
    // does only async-signal-safe work (an atomic load, write, _exit).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut()) != 0 {
            panic!("sigaction(SIGALRM): {}", std::io::Error::last_os_error());
        }
    }
}

/// The armed watchdog of one test; disarmed when dropped.
struct Armed;

impl Armed {
    fn arm(binary: &str, test: &str, bound: Duration, header: Option<&str>) -> Armed {
        let secs = bound.as_secs().max(1);
        let msg = format!(
            "\n{binary}: watchdog: test {test} did not finish within its bound of {secs} s; \
             ending the test process{}\n",
            header.map(|h| format!(" ({h})")).unwrap_or_default()
        );
        // One short message per test, leaked: the handler may read it at any moment.
        let msg: &'static mut [u8] = Box::leak(msg.into_bytes().into_boxed_slice());
        MESSAGE_LEN.store(msg.len(), Ordering::SeqCst);
        MESSAGE.store(msg.as_mut_ptr(), Ordering::SeqCst);
        // SAFETY: alarm has no preconditions; this process runs one test at a time on one
        // thread, so no other user of SIGALRM is affected.
        unsafe { libc::alarm(secs.min(u64::from(u32::MAX)) as u32) };
        Armed
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        // SAFETY: as in `arm`.
        unsafe { libc::alarm(0) };
    }
}
