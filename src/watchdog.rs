//! Test support: a bound on every test that can block (on the heap lock, a futex, a child
//! process, a pipe), and a way to run one test again in a child process. Compiled only with
//! the test-only `mutants` feature, like the seeded bugs it is used to catch.
//!
//! Invariant: a test that holds a [`watchdog!`](crate::watchdog) either finishes within the
//! bound it states or ends its whole test process with a message that names the test and
//! the bound, so `cargo test` fails instead of hanging. A thread cannot be killed, so the
//! watchdog ends the process; under nextest that is one test's process, under `cargo test`
//! the whole target. (The `harness = false` targets in integration/ fork, so they must not
//! start a thread: they use an `alarm(2)` watchdog of their own, integration/harness/.)

use std::io::{Read, Seek, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::mutant::Mutant;

/// Exit status of a test process whose watchdog fired (as `timeout(1)` uses).
pub const WATCHDOG_EXIT: i32 = 124;

/// Set in a test binary run again by [`run_test`]: a test's [`Watchdog`] (or the
/// integration harness) switches `MAPHEAP_MUTANT` on for the whole process first.
pub const CHILD_ENV: &str = "MAPHEAP_TEST_CHILD";

/// Starts a watchdog of `secs` seconds for the calling test: keep the returned
/// [`Watchdog`] in a named binding (`let _watchdog = watchdog!(10);`, not `let _ = …`) for
/// the whole test. If the test is still running after `secs` seconds, the watchdog writes
/// `watchdog: test NAME did not finish within its bound of N s` to stderr and ends the test
/// process with [`WATCHDOG_EXIT`]. NAME is the test's name as libtest prints it.
#[macro_export]
macro_rules! watchdog {
    ($secs:expr) => {{
        fn here() {}
        $crate::watchdog::Watchdog::start(::std::any::type_name_of_val(&here), $secs)
    }};
}

/// The libtest name of the test whose body holds the `fn here` named `here_path`
/// (`mapheap::heap::tests::x::here` is `heap::tests::x`: crate and `here` dropped).
pub fn test_name(here_path: &str) -> &str {
    let p = here_path.strip_suffix("::here").unwrap_or(here_path);
    p.split_once("::").map_or(p, |(_, rest)| rest)
}

/// A running watchdog (see [`watchdog!`](crate::watchdog)); dropping it, when the test
/// returns or unwinds, stops it.
#[must_use = "the watchdog stops when this is dropped: bind it to a named variable"]
pub struct Watchdog {
    _done: mpsc::Sender<()>,
}

impl Watchdog {
    /// What [`watchdog!`](crate::watchdog) expands to: a thread that waits at most `secs`
    /// seconds for this value to be dropped. In a test binary run again by [`run_test`], it
    /// first switches `MAPHEAP_MUTANT` on for the whole process.
    pub fn start(here_path: &'static str, secs: u64) -> Watchdog {
        let name = test_name(here_path);
        if std::env::var_os(CHILD_ENV).is_some() {
            crate::mutant::init_from_env();
        }
        let message = format!(
            "\nwatchdog: test {name} did not finish within its bound of {secs} s; \
             ending the test process\n"
        );
        let (done, watch) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name(format!("watchdog {name}"))
            .spawn(move || {
                if let Err(RecvTimeoutError::Timeout) =
                    watch.recv_timeout(Duration::from_secs(secs))
                {
                    // Straight to fd 2: libtest captures what the print macros write.
                    let _ = std::io::stderr().write_all(message.as_bytes());
                    std::process::exit(WATCHDOG_EXIT);
                }
            })
            .expect("start the watchdog thread");
        Watchdog { _done: done }
    }
}

/// How a test run in a child process ended.
#[derive(Debug)]
pub struct TestRun {
    /// Its exit status; `None` if a signal ended it or it was killed at the deadline.
    pub code: Option<i32>,
    /// Whether it was still running at the deadline (and was killed).
    pub timed_out: bool,
    /// Its stdout and stderr, interleaved.
    pub output: String,
    /// How long it ran.
    pub elapsed: Duration,
}

/// Runs test `name` of this test binary again in a child process (`--exact`, one thread),
/// with `mutant` switched on there (`MAPHEAP_MUTANT`, read by [`Watchdog::start`] or the
/// integration harness) and `env` set, and waits for it at most `deadline`, killing it
/// after. The child's output goes to a temporary file, so no thread drains a pipe and a
/// process that must not start threads can call this.
pub fn run_test(
    name: &str,
    mutant: Option<Mutant>,
    env: &[(&str, &str)],
    deadline: Duration,
) -> TestRun {
    let exe = std::env::current_exe().expect("current_exe");
    let out = tempfile::tempfile().expect("a temporary file for the child's output");
    let mut c = Command::new(exe);
    c.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env_remove("MAPHEAP_MUTANT")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out.try_clone().expect("dup"));
    if let Some(m) = mutant {
        c.env("MAPHEAP_MUTANT", format!("{m:?}"));
    }
    c.envs(env.iter().copied());
    let t0 = Instant::now();
    let mut child = c.spawn().expect("spawn the test binary");
    let (code, timed_out) = loop {
        match child.try_wait().expect("wait for the child") {
            Some(st) => break (st.code(), false),
            None if t0.elapsed() >= deadline => {
                // Our own child, by its handle.
                let _ = child.kill();
                let _ = child.wait();
                break (None, true);
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let elapsed = t0.elapsed();
    let mut output = String::new();
    let mut f = out;
    let _ = f.rewind();
    let _ = f.read_to_string(&mut output);
    TestRun {
        code,
        timed_out,
        output,
        elapsed,
    }
}

#[cfg(test)]
mod tests {
    /// `watchdog!` names the test by the path of a `fn here` it defines in the test's body
    /// (a block adds no segment to that path).
    #[test]
    fn the_watchdog_names_the_test_as_libtest_does() {
        let _watchdog = crate::watchdog!(5);
        let here = {
            fn here() {}
            std::any::type_name_of_val(&here)
        };
        assert_eq!(
            super::test_name(here),
            "watchdog::tests::the_watchdog_names_the_test_as_libtest_does"
        );
        assert_eq!(super::test_name("cli::bench_runs::here"), "bench_runs");
    }
}
