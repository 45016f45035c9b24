//! Running `mapheap` as a child process, always within a bound.
//!
//! Every run is its own process group (stress and bench fork workers into it); a run that
//! outlives its limit has the whole group SIGKILLed and fails the test with what it printed
//! so far. Output is read by threads while the child runs, so a full pipe never stalls it.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// The bound of every run: far above what any test's run takes on a loaded 2-core machine,
/// far below a hung suite.
pub const LIMIT: Duration = Duration::from_secs(120);

/// A finished run.
pub struct Run {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The exit code (`None` if a signal ended it).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Fails the test unless the run failed with exit code `code` and a message on
    /// standard error containing `needle`, not a panic.
    pub fn assert_fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code(), Some(code), "mapheap {:?}:\n{self}", self.args);
        assert!(
            self.stderr.contains(needle) && !self.stderr.contains("panicked"),
            "mapheap {:?}: wanted a message with {needle:?}, not a panic:\n{self}",
            self.args
        );
    }

    /// Standard output as JSON; fails the test if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("mapheap {:?}: not JSON ({e}):\n{self}", self.args))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// `mapheap ARGS` in `cwd`, its own process group, standard input empty and both outputs
/// piped (a caller may replace standard error before spawning).
pub fn command(cwd: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mapheap"));
    c.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    c
}

/// Reads `src` to its end on a thread; the text arrives on the receiver.
fn reader(src: Option<impl Read + Send + 'static>) -> Option<Receiver<String>> {
    src.map(|mut s| {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
        });
        rx
    })
}

/// Waits for `child` (spawned from [`command`] with `args`) at most `limit`; past it, kills
/// the child's process group and fails the test.
pub fn finish(mut child: Child, args: &[&str], limit: Duration) -> Run {
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("waitpid on mapheap") {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // The child is gone; its workers die with it (PR_SET_PDEATHSIG) or were killed with
    // its group, closing the pipes. A writer left over would be a bug: bounded too.
    let join = |rx: Option<Receiver<String>>| {
        rx.map(|rx| {
            rx.recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("mapheap {args:?}: its output stayed open 10 s after it ended (a child left behind?)"))
        })
        .unwrap_or_default()
    };
    let (stdout, stderr) = (join(out), join(err));
    let Some(status) = status else {
        panic!(
            "mapheap {args:?} did not finish within {limit:?}: killed its process group\n--- stdout\n{stdout}--- stderr\n{stderr}"
        );
    };
    Run {
        args: args.iter().map(|a| a.to_string()).collect(),
        status,
        stdout,
        stderr,
    }
}

/// Runs `mapheap ARGS` in `cwd` within [`LIMIT`].
pub fn run(cwd: &Path, args: &[&str]) -> Run {
    let child = command(cwd, args).spawn().expect("spawn mapheap");
    finish(child, args, LIMIT)
}

/// Runs `mapheap ARGS` in `cwd` within [`LIMIT`] and returns its standard output; fails the
/// test, showing both outputs, unless it exits successfully.
pub fn ok(cwd: &Path, args: &[&str]) -> String {
    let r = run(cwd, args);
    assert!(r.status.success(), "mapheap {args:?}: {r}");
    r.stdout
}

/// Runs `mapheap ARGS --json` (ARGS carrying the flag) and returns the parsed output of a
/// successful run.
pub fn ok_json(cwd: &Path, args: &[&str]) -> serde_json::Value {
    let r = run(cwd, args);
    assert!(r.status.success(), "mapheap {args:?}: {r}");
    r.json()
}
