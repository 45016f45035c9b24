//! The `mapheap` command line, run as a user runs it (a process of its own).
//!
//! * `mapheap bench` with tiny bounds: every figure group checks its own results (exact
//!   counters, the anchors' workload sequence, payload tags, a clean heap afterwards) and
//!   prints every key scripts/bench-vs-anchors.sh reads, as `key<TAB>value<TAB>unit`.
//! * `mapheap check` on a heap whose lock owner died: it says it recovered, and exits 0.
//!
//! Each test waits for the binary, so each has a watchdog (`mapheap::watchdog!`): a run that
//! does not end fails the test process within the stated bound instead of hanging it.

use std::path::Path;
use std::process::Command;

use mapheap::Heap;

/// Runs `mapheap ARGS` in `cwd` and returns its standard output; fails the test, showing
/// both outputs, unless it exits successfully.
fn mapheap(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mapheap"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "mapheap {args:?}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn check_reports_a_takeover_done_inside_open() {
    let _watchdog = mapheap::watchdog!(120);
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
    let _watchdog = mapheap::watchdog!(120);
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
    let _watchdog = mapheap::watchdog!(120);
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
