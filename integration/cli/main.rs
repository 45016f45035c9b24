//! The `mapheap` command line, run as a user runs it (a process of its own, within a bound:
//! [`run`]).
//!
//! * here: `mapheap bench` with tiny bounds (every figure group checks its own results and
//!   prints every key scripts/bench-vs-anchors.sh reads, as `key<TAB>value<TAB>unit`);
//!   `check` after a takeover inside open; a heap named without a directory;
//! * [`json`]: `stat`, `check` and `dump --json` against the library's own figures;
//! * [`grow`]: `mapheap grow` under the lock, its no-op and its errors;
//! * [`stress`], [`bench`], [`create`]: every flag changes what the command does;
//! * [`progress`]: bars on a terminal (a pseudo-terminal), nothing on a pipe;
//! * [`flags`]: fails when a subcommand has a flag no test names.

mod bench;
mod create;
mod flags;
mod grow;
mod json;
mod progress;
mod run;
mod stress;

use mapheap::Heap;
use run::ok as mapheap;

#[test]
fn check_reports_a_takeover_done_inside_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    let heap = Heap::create(&path, 256 << 10).unwrap();
    // A forgotten guard and a detached handle: an owner that died holding the lock.
    std::mem::forget(heap.lock().unwrap());
    drop(heap);
    let stdout = mapheap(dir.path(), &["check", "h.heap"]);
    assert!(
        stdout.contains("recovered from a dead lock owner"),
        "the takeover went unreported:\n{stdout}"
    );
    assert!(stdout.contains("0 violations"), "{stdout}");
}

#[test]
fn a_short_run_of_every_figure_passes_its_own_checks_and_prints_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = mapheap(
        dir.path(),
        &[
            "bench",
            "--dir",
            ".",
            "--lock-iters",
            "1000",
            "--lock-cont-iters",
            "2000",
            "--alloc-ops",
            "20000",
            "--alloc-live",
            "1000",
            "--remap-objects",
            "1000",
            "--remap-cycles",
            "2",
        ],
    );
    let keys: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "not key<TAB>value<TAB>unit: {l:?}");
            let v: f64 = f[1].parse().unwrap_or_else(|_| panic!("value of {l:?}"));
            assert!(v.is_finite() && v >= 0.0, "{l:?}");
            f[0]
        })
        .collect();
    for want in [
        "lock.uncontended.mapheap",
        "lock.uncontended.mapheap_guard",
        "lock.contended2p.mapheap",
        "lock.contended2p.mapheap.handoffs_per_kop",
        "lock.contended2p.mapheap_guard",
        "lock.contended2p.mapheap_guard.handoffs_per_kop",
        "alloc.1p.mapheap",
        "alloc.1p.mapheap_onelock",
        "alloc.2p.mapheap",
        "map64M.tmp.remap.mapheap_0obj",
        "map64M.tmp.remap.mapheap_1000obj",
    ] {
        assert!(keys.contains(&want), "no {want} in\n{stdout}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "bench left files behind"
    );
}

/// A bare file name (no directory part) creates the heap in the working directory, and the
/// temporary file it is built in goes there too and is renamed away.
#[test]
fn create_and_check_a_heap_named_without_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    mapheap(dir.path(), &["create", "h.heap", "--size", "1M"]);
    assert!(dir.path().join("h.heap").is_file());
    assert!(mapheap(dir.path(), &["check", "h.heap"]).contains("0 violations"));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["h.heap"], "a temporary file was left behind");
}

/// The bound of every run fires: a `check` blocked on a lock this test holds is killed at
/// its limit and fails the test with a message, instead of hanging the suite.
#[test]
fn a_run_past_its_limit_is_killed_and_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let heap = Heap::create(dir.path().join("h.heap"), 256 << 10).unwrap();
    let guard = heap.lock().unwrap();
    let args = ["check", "h.heap"];
    let child = run::command(dir.path(), &args).spawn().unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let t0 = std::time::Instant::now();
    let failed = std::panic::catch_unwind(|| {
        run::finish(child, &args, std::time::Duration::from_millis(500))
    });
    let msg = match failed {
        Ok(r) => panic!("a blocked check finished: {r}"),
        Err(e) => e.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    assert!(msg.contains("did not finish within"), "{msg}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(
        nix::sys::signal::kill(pid, None),
        Err(nix::errno::Errno::ESRCH),
        "the child outlived its bound"
    );
    drop(guard);
}

/// A reader that stops early (`mapheap dump h | head`) ends `mapheap` as it ends any Unix
/// filter, by SIGPIPE, not by a panic about a broken pipe. The dump is far larger than a
/// pipe's buffer, so it meets the closed pipe however the child is scheduled.
#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let heap = Heap::create(dir.path().join("h.heap"), 4 << 20).unwrap();
    {
        let mut g = heap.lock().unwrap();
        for i in 0..5_000u64 {
            g.alloc(i).unwrap();
        }
    }
    drop(heap);
    let args = ["dump", "h.heap"];
    let mut child = run::command(dir.path(), &args)
        .spawn()
        .expect("spawn mapheap");
    drop(child.stdout.take());
    let r = run::finish(child, &args, run::LIMIT);
    assert!(
        !r.stderr.contains("panicked"),
        "mapheap dump panicked:\n{r}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        r.status.signal(),
        Some(libc::SIGPIPE),
        "not ended by SIGPIPE:\n{r}"
    );
}
