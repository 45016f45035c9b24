//! Multi-process smoke test of the lock on a real file mapping: the production platform
//! (`mapheap::sync::Futex`: std atomics on a `MAP_SHARED` mapping, `SYS_futex` without
//! FUTEX_PRIVATE_FLAG, OFD byte locks for liveness) across forked processes that each open
//! and map the file themselves, at addresses other than the parent's.
//!
//! `harness = false` with libtest's protocol (`harness/`): one test at a time on the main
//! thread, which never starts another, so forking is safe. Each test states a bound past
//! which a watchdog ends the process with a message; the parent reaps every child with a
//! deadline and SIGKILLs stragglers.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use memmap2::{MmapMut, MmapOptions};

mod harness;

use harness::{case, note, TestResult, WATCHDOG_EXIT};

use mapheap::fault;
use mapheap::mutant::{self, Mutant};
use mapheap::stress::procs::{self, Exit, Pid};
use mapheap::sync::{
    lock, unlock, Acquired, CrashPoint, Futex, OwnerId, SlotRecord, Slots, Waiting,
};

/// File layout of this test (not the heap's format): the lock word, a plain counter, the
/// id of the process that is going to die, a start flag, a count of lock calls that found
/// the lock held, then the slot table. Slot `i`'s OFD byte lock is
/// at `LOCK_BASE + i`, past everything else.
const WORD_AT: usize = 0;
const COUNTER_AT: usize = 8;
const VICTIM_AT: usize = 16;
const GO_AT: usize = 20;
const BUSY_AT: usize = 24;
const SLOTS_AT: usize = 64;
const NSLOTS: u32 = 16;
const FILE_LEN: u64 = 4096;
const LOCK_BASE: u64 = 2048;
const PROBE: Duration = Duration::from_millis(10);
/// Bound of `contended_increments` and of the death case (each takes well under a second):
/// past it the watchdog ends the process with a message naming the test.
const BOUND_SECS: u64 = 10;
/// How long the parent waits for its children: past the bound, so that a hang, of the
/// parent or of a child, is always reported the same way, by the watchdog.
const DEADLINE: Duration = Duration::from_secs(2 * BOUND_SECS);

/// One process's attachment: its own open file description (hence its own OFD locks), its
/// own mapping, its own slot.
struct Attached {
    file: File,
    _map: MmapMut,
    base: *mut u8,
    me: OwnerId,
}

impl Waiting for Attached {
    fn slots(&self) -> Slots<'_> {
        Attached::slots(self)
    }

    fn probe(&self) -> Duration {
        PROBE
    }
}

impl Attached {
    fn open(path: &Path) -> Attached {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open the test file");
        // SAFETY: the file is ours for the whole test and never shrinks; every process
        // touches the mapped bytes only atomically (word, slots) or under the lock (counter).
        let mut map = unsafe { MmapOptions::new().len(FILE_LEN as usize).map_mut(&file) }
            .expect("map the test file");
        let base = map.as_mut_ptr();
        let mut a = Attached {
            file,
            _map: map,
            base,
            me: OwnerId::new(0, 0),
        };
        a.me = a.slots().claim(std::process::id()).expect("claim a slot");
        a
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: WORD_AT is 4-aligned inside the live mapping, and every process accesses
        // the word only atomically.
        unsafe { AtomicU32::from_ptr(self.base.add(WORD_AT).cast()) }
    }

    /// One of the test's own atomic fields.
    fn field(&self, at: usize) -> &AtomicU32 {
        // SAFETY: as for `word`: every field is 4-aligned inside the mapping and only ever
        // accessed atomically.
        unsafe { AtomicU32::from_ptr(self.base.add(at).cast()) }
    }

    fn victim(&self) -> &AtomicU32 {
        self.field(VICTIM_AT)
    }

    fn slots(&self) -> Slots<'_> {
        // SAFETY: NSLOTS records of 8 bytes at SLOTS_AT lie inside the mapping (64 + 128 <
        // 4096), 4-aligned, live as long as `self`, and are only accessed atomically.
        unsafe {
            Slots::new(
                self.base.add(SLOTS_AT).cast::<SlotRecord>(),
                NSLOTS,
                self.file.as_fd(),
                LOCK_BASE,
            )
        }
    }

    fn futex(&self) -> Futex<'_> {
        Futex::new(self.word(), self)
    }

    /// The critical section: a non-atomic read-modify-write of the counter.
    fn bump(&self) {
        // SAFETY: COUNTER_AT is 8-aligned inside the mapping; called only under the lock,
        // whose Acquire/Release orders these plain accesses between processes.
        unsafe {
            let p = self.base.add(COUNTER_AT).cast::<u64>();
            let v = p.read_volatile();
            p.write_volatile(v + 1);
        }
    }

    fn counter(&self) -> u64 {
        // SAFETY: as in `bump`; called with no other process running.
        unsafe { self.base.add(COUNTER_AT).cast::<u64>().read_volatile() }
    }

    fn increments(&self, n: u32) -> Acquired {
        let fx = self.futex();
        let mut how = Acquired::Clean;
        let mut busy = 0;
        for i in 0..n {
            if self.word().load(Relaxed) != 0 {
                busy += 1;
            }
            let got = lock(&fx, self.me);
            if got.recovered() {
                how = got;
            }
            self.bump();
            if i % 64 == 0 {
                // Give up the CPU while holding the lock now and then, so that the others
                // find it held and sleep on the futex even on a machine with few cores.
                std::thread::yield_now();
            }
            unlock(&fx, self.me);
        }
        self.field(BUSY_AT).fetch_add(busy, Relaxed);
        how
    }

    /// Waits for the parent's start signal, so that all processes contend at once.
    fn wait_go(&self) {
        while self.field(GO_AT).load(SeqCst) == 0 {
            std::thread::yield_now();
        }
    }
}

fn make_file(dir: &Path) -> PathBuf {
    let path = dir.join("lock.smoke");
    let f = File::create(&path).expect("create the test file");
    f.set_len(FILE_LEN).expect("size the test file");
    path
}

/// Forks a child that runs `f` and `_exit`s with its return value (101 on a panic);
/// `stress::procs::fork_child` also refuses to fork a multi-threaded process.
fn fork_child(f: impl FnOnce() -> i32) -> Pid {
    procs::fork_child(f).expect("fork")
}

/// Reaps `pids` by `deadline`; children still running then are SIGKILLed and reported as
/// `Exit::TimedOut`.
fn reap_all(pids: &[Pid], deadline: Instant) -> Result<Vec<Exit>, String> {
    procs::reap_all(pids, deadline).map_err(|e| format!("waitpid: {e}"))
}

/// Polls `cond` until it holds or `deadline` passes.
fn wait_for(what: &str, deadline: Instant, cond: impl Fn() -> bool) -> Result<(), String> {
    while !cond() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

// ---- cases -----------------------------------------------------------------------------

/// The parent and 4 children, each with its own open and mapping, increment a plain counter
/// under the lock; the total is exact.
fn contended_increments() -> Result<(), String> {
    const CHILDREN: u32 = 4;
    const EACH: u32 = 50_000;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = make_file(dir.path());
    let parent = Attached::open(&path);
    let parent_base = parent.base as usize;

    let mut pids = Vec::new();
    for _ in 0..CHILDREN {
        let path = path.clone();
        let inherited_fd = parent.file.as_raw_fd();
        pids.push(fork_child(move || {
            // A child attaches afresh: its own open file description, its own slot. The
            // inherited descriptor would keep the parent's slot lock alive; close it. The
            // inherited mapping stays mapped, so the new one must land elsewhere.
            // SAFETY: closing a descriptor this process inherited and will not use again
            // (the parent's `File` in this child is never used or dropped: we `_exit`).
            unsafe { libc::close(inherited_fd) };
            let me = Attached::open(&path);
            if me.base as usize == parent_base {
                return 2;
            }
            me.wait_go();
            me.increments(EACH);
            0
        }));
    }
    parent.field(GO_AT).store(1, SeqCst);
    parent.increments(EACH);
    let ends = reap_all(&pids, Instant::now() + DEADLINE)?;
    check(ends.iter().all(|e| *e == Exit::Code(0)), || {
        format!("children ended {ends:?} (2 = mapped at the parent's address)")
    })?;
    let want = u64::from(EACH) * u64::from(CHILDREN + 1);
    check(parent.counter() == want, || {
        format!(
            "counter {} after {want} locked increments",
            parent.counter()
        )
    })?;
    check(parent.word().load(SeqCst) == 0, || {
        "lock not free at the end".into()
    })?;
    let busy = parent.field(BUSY_AT).load(SeqCst);
    note(format!("{busy} of {want} lock calls found the lock held"));
    check(busy > 0, || {
        "no lock call ever found the lock held: no contention".into()
    })
}

/// A child dies (SIGKILL at `CrashPoint::LockAcquired`) holding the lock while others sleep
/// on it; its slot reads dead even while it is an unreaped zombie; exactly one waiter (or the
/// parent, last) takes the lock over and is told `Recovered`, naming the dead child.
fn owner_killed_holding_lock_is_recovered_once() -> Result<(), String> {
    const WAITERS: u32 = 3;
    const EACH: u32 = 200;
    let deadline = Instant::now() + DEADLINE;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = make_file(dir.path());
    let parent = Attached::open(&path);
    let pfx = parent.futex();
    if lock(&pfx, parent.me) != Acquired::Clean {
        return Err("first lock was not clean".into());
    }

    // The victim queues up behind the parent and dies the moment it gets the lock.
    let inherited_fd = parent.file.as_raw_fd();
    let victim_path = path.clone();
    let victim_pid = fork_child(move || {
        // SAFETY: as in `contended_increments`.
        unsafe { libc::close(inherited_fd) };
        let me = Attached::open(&victim_path);
        me.victim().store(me.me.raw(), SeqCst);
        fault::arm(Some(CrashPoint::LockAcquired), 1);
        lock(&me.futex(), me.me);
        3 // not reached: SIGKILL at LockAcquired
    });
    wait_for("the victim to sleep on the word", deadline, || {
        parent.victim().load(SeqCst) != 0 && parent.word().load(SeqCst) & (1 << 31) != 0
    })?;
    let victim = OwnerId::from_word(parent.victim().load(SeqCst)).expect("victim id");

    // Waiters that exit with 1 if they recovered the victim's lock, 0 if never recovering,
    // 4 if they recovered someone else's.
    let mut pids = Vec::new();
    for _ in 0..WAITERS {
        let path = path.clone();
        pids.push(fork_child(move || {
            // SAFETY: as in `contended_increments`.
            unsafe { libc::close(inherited_fd) };
            let me = Attached::open(&path);
            match me.increments(EACH) {
                Acquired::Clean => 0,
                Acquired::Recovered { dead } if dead == victim => 1,
                Acquired::Recovered { .. } => 4,
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(30));
    parent.bump();
    unlock(&pfx, parent.me);

    // The victim is SIGKILLed; look at its slot while it is still an unreaped zombie.
    let mut info: libc::siginfo_t = unsafe_zeroed_siginfo();
    loop {
        // SAFETY: `info` is a valid out-pointer; WNOWAIT leaves the child unreaped.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                victim_pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
            )
        };
        // SAFETY: reading the pid field of a siginfo filled by waitid.
        if r == 0 && unsafe { info.si_pid() } == victim_pid {
            break;
        }
        if Instant::now() > deadline {
            let _ = reap_all(&pids, Instant::now());
            let _ = reap_all(&[victim_pid], Instant::now());
            return Err("the victim never died".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let zombie_alive = parent.slots().alive(victim);
    let victim_end = reap_all(&[victim_pid], deadline)?;
    let ends = reap_all(&pids, deadline)?;
    check(!zombie_alive, || {
        "the zombie victim's slot still reads alive".into()
    })?;
    check(victim_end == [Exit::Signaled(libc::SIGKILL)], || {
        format!("victim ended {victim_end:?}, not by SIGKILL at the crash point")
    })?;
    check(
        ends.iter()
            .all(|e| matches!(e, Exit::Code(0) | Exit::Code(1))),
        || format!("waiters ended {ends:?} (4 = recovered from the wrong owner)"),
    )?;
    let mut recovered = ends.iter().filter(|e| **e == Exit::Code(1)).count();
    // If the victim got the lock last, nobody recovered it yet: the parent does now.
    match lock(&pfx, parent.me) {
        Acquired::Recovered { dead } if dead == victim => recovered += 1,
        Acquired::Recovered { dead } => return Err(format!("parent recovered from {dead:?}")),
        Acquired::Clean => {}
    }
    parent.bump();
    unlock(&pfx, parent.me);
    check(recovered == 1, || {
        format!("{recovered} processes recovered the victim's lock, want exactly 1")
    })?;
    // The victim died before its critical section: 2 parent bumps and every waiter's.
    let want = 2 + u64::from(WAITERS * EACH);
    check(parent.counter() == want, || {
        format!("counter {} want {want}", parent.counter())
    })
}

/// The death case again with the liveness probe replaced by `kill(pid, 0)`
/// (`Mutant::ProbeByKill`): a zombie answers that probe, so the check on the unreaped victim
/// must fail. Forked children inherit the switch with the parent's memory.
fn mutant_probe_by_kill_is_caught() -> Result<(), String> {
    match mutant::with(
        Mutant::ProbeByKill,
        owner_killed_holding_lock_is_recovered_once,
    ) {
        Err(e) if e.contains("zombie") => {
            note(format!("mutant ProbeByKill caught: {e}"));
            Ok(())
        }
        Err(e) => Err(format!(
            "ProbeByKill failed the case for another reason: {e}"
        )),
        Ok(()) => Err("mutant ProbeByKill survived the death case".into()),
    }
}

/// `StaleWordAfterWait`: a waiter goes back to sleep on the word it saw before it slept and
/// never reads it again, so once the word has moved on it spins for ever. Every process of
/// `contended_increments` that ever waits hangs, the parent among them; only the test's
/// watchdog can end it, and must, with its message, within the bound (plus the time to
/// start the process). The same run without the mutant passes. Run in a child process (this
/// binary again): the watchdog ends the whole process.
fn mutant_stale_word_after_wait_is_caught_by_the_watchdog() -> TestResult {
    let limit = Duration::from_secs(BOUND_SECS + 20);
    let ok = mapheap::watchdog::run_test("contended_increments", None, &[], limit);
    check(ok.code == Some(0), || {
        format!("the same run without the mutant must pass: {ok:?}")
    })?;
    let run = mapheap::watchdog::run_test(
        "contended_increments",
        Some(Mutant::StaleWordAfterWait),
        &[],
        limit,
    );
    let said = format!(
        "watchdog: test contended_increments did not finish within its bound of {BOUND_SECS} s"
    );
    check(
        run.code == Some(WATCHDOG_EXIT) && run.output.contains(&said),
        || {
            format!("StaleWordAfterWait not caught by the watchdog (wanted exit {WATCHDOG_EXIT} and {said:?}): {run:?}")
        },
    )?;
    check(run.elapsed >= Duration::from_secs(BOUND_SECS), || {
        format!(
            "the watchdog fired after {:?}, before the bound",
            run.elapsed
        )
    })?;
    note(format!(
        "caught: the watchdog ended the hung run after {:.1} s",
        run.elapsed.as_secs_f64()
    ));
    Ok(())
}

fn unsafe_zeroed_siginfo() -> libc::siginfo_t {
    // SAFETY: siginfo_t is a plain C struct for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

fn main() -> std::process::ExitCode {
    harness::run(
        "lock_smoke",
        None,
        vec![
            case("contended_increments", BOUND_SECS, contended_increments),
            case(
                "owner_killed_holding_lock_is_recovered_once",
                BOUND_SECS,
                owner_killed_holding_lock_is_recovered_once,
            ),
            case(
                "mutant_probe_by_kill_is_caught",
                BOUND_SECS,
                mutant_probe_by_kill_is_caught,
            ),
            case(
                "mutant_stale_word_after_wait_is_caught_by_the_watchdog",
                3 * BOUND_SECS + 45,
                mutant_stale_word_after_wait_is_caught_by_the_watchdog,
            ),
        ],
    )
}
