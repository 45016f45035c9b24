//! `mapheap bench`, run as a user runs it (a process of its own, since its figures fork),
//! with tiny bounds: every figure group checks its own results (exact counters, the
//! anchors' workload sequence, payload tags, a clean heap afterwards) and prints every key
//! scripts/bench-vs-anchors.sh reads, in the anchors' `key<TAB>value<TAB>unit` format.

use std::process::Command;

#[test]
fn a_short_run_of_every_figure_passes_its_own_checks_and_prints_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mapheap"))
        .args(["bench", "--dir"])
        .arg(dir.path())
        .args([
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
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
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
