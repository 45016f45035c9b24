//! Processes: fork from a single-threaded parent, reap with a deadline, kill, and look at
//! zombies. Shared by `mapheap stress` and the fork tests (integration/).
//!
//! Invariant: [`fork_child`] forks only when this process has exactly one thread, so the
//! child is a complete copy of a consistent process (no lock held by a thread that does not
//! exist there) and may use the allocator, files and the heap freely; the child leaves only
//! through `_exit`, so it never runs the parent's destructors (a `TempDir` would delete the
//! heap) or exit handlers.

use std::io::{self, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// A process id.
pub type Pid = libc::pid_t;

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It called `exit`/`_exit` with this status.
    Code(i32),
    /// A signal killed it.
    Signaled(i32),
    /// It was still running at the deadline; it has been SIGKILLed and reaped.
    TimedOut,
}

impl Exit {
    /// Exit status 0.
    pub fn ok(self) -> bool {
        self == Exit::Code(0)
    }

    /// Killed by SIGKILL.
    pub fn killed(self) -> bool {
        self == Exit::Signaled(libc::SIGKILL)
    }
}

/// Exit status of a child that panicked.
pub const PANICKED: i32 = 101;

/// How many threads this process has (from /proc/self/task).
pub fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// Fails unless this process has exactly one thread.
pub fn ensure_single_threaded() -> io::Result<()> {
    match thread_count()? {
        1 => Ok(()),
        n => Err(io::Error::other(format!(
            "refusing to fork: the process has {n} threads (a child would inherit locks \
             held by threads that do not exist in it)"
        ))),
    }
}

/// Forks a child that runs `f` and `_exit`s with its result (101 if it panicked). The
/// child gets SIGKILL if the parent dies, so no child outlives a killed test or stress
/// run. Fails without forking unless the process is single-threaded.
pub fn fork_child<F: FnOnce() -> i32>(f: F) -> io::Result<Pid> {
    ensure_single_threaded()?;
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the process has exactly one thread (checked above, and only this thread
    // could start another), so the child is a consistent copy; it leaves only via `_exit`
    // below and never returns into the caller's frames.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of this process; getppid has
            // no preconditions. If the parent died before the prctl, we are already orphaned.
            let orphan = unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                libc::getppid() != parent
            };
            let code = if orphan {
                PANICKED
            } else {
                catch_unwind(AssertUnwindSafe(f)).unwrap_or(PANICKED)
            };
            let _ = io::stdout().flush();
            let _ = io::stderr().flush();
            // SAFETY: ends this process at once, skipping the parent's exit handlers and
            // destructors, which belong to the parent.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(pid),
    }
}

fn decode(status: libc::c_int) -> Exit {
    if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Exit::Signaled(libc::WTERMSIG(status))
    } else {
        Exit::Code(-1)
    }
}

/// Reaps `pid` if it has ended; `None` if it still runs.
pub fn try_reap(pid: Pid) -> io::Result<Option<Exit>> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid only writes the status through the valid pointer we pass.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        match r {
            0 => return Ok(None),
            -1 => {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e);
            }
            _ => return Ok(Some(decode(status))),
        }
    }
}

/// Waits for `pid` until `deadline`; past it, SIGKILLs and reaps it and says `TimedOut`.
pub fn reap(pid: Pid, deadline: Instant) -> io::Result<Exit> {
    loop {
        if let Some(e) = try_reap(pid)? {
            return Ok(e);
        }
        if Instant::now() >= deadline {
            kill9(pid);
            loop {
                if try_reap(pid)?.is_some() {
                    return Ok(Exit::TimedOut);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Reaps every child in `pids` against one deadline, in order.
pub fn reap_all(pids: &[Pid], deadline: Instant) -> io::Result<Vec<Exit>> {
    pids.iter().map(|&p| reap(p, deadline)).collect()
}

/// Sends SIGKILL (errors ignored: the process may be gone already).
pub fn kill9(pid: Pid) {
    // SAFETY: kill only sends a signal.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Whether `pid` has ended but not been reaped (`waitid` with `WNOWAIT` leaves it a zombie).
pub fn exited_unreaped(pid: Pid) -> io::Result<bool> {
    // SAFETY: all-zero is a valid siginfo_t.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes only `info`; WNOWAIT leaves the child waitable.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: waitid filled `info` (or left it zeroed, si_pid 0: still running).
    Ok(unsafe { info.si_pid() } == pid)
}

/// Whether /proc says `pid` is a zombie (state `Z`).
pub fn is_zombie(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .and_then(|i| s[i + 1..].split_whitespace().next().map(|t| t == "Z"))
        })
        .unwrap_or(false)
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the machine.
pub fn mono_ns() -> u64 {
    // SAFETY: all-zero is a valid timespec; clock_gettime writes only through our pointer.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Busy-waits about `n` iterations (widens a race window without a system call).
pub fn spin(n: u32) {
    for i in 0..n {
        std::hint::black_box(i);
        std::hint::spin_loop();
    }
}
