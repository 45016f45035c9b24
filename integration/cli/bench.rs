//! `mapheap bench` at tiny bounds: each flag shows in the keys it prints or in the `#`
//! lines that say what each figure ran (the contended counter read back from the heap, the
//! allocations and frees the loop made, the remaps averaged).

use crate::run::{ok, run};

/// The keys of the figure lines, in order.
fn keys(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').next().unwrap())
        .collect()
}

fn has_note(out: &str, note: &str) {
    assert!(
        out.lines().any(|l| l.starts_with('#') && l.contains(note)),
        "no '# ...{note}...' line in\n{out}"
    );
}

#[test]
fn bench_lock_flags_set_the_rounds_processes_repetitions_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let lock = |run: &str, runs: &str| {
        ok(
            dir.path(),
            &[
                "bench",
                "--dir",
                ".",
                "--only",
                "lock",
                "--lock-iters",
                "500",
                "--lock-cont-iters",
                "300",
                "--nproc",
                "3",
                "--run",
                run,
                "--runs",
                runs,
            ],
        )
    };
    let odd = lock("1", "2");
    let even = lock("2", "1");
    for out in [&odd, &even] {
        assert!(
            keys(out).iter().all(|k| k.starts_with("lock.")),
            "--only lock ran more:\n{out}"
        );
        has_note(out, "lock.uncontended: 500 timed rounds");
        has_note(
            out,
            "lock.contended3p.mapheap: counter 900 after 3 processes x 300 rounds",
        );
        has_note(
            out,
            "lock.contended3p.mapheap_guard: counter 900 after 3 processes x 300 rounds",
        );
    }
    let count = |out: &str, k: &str| keys(out).iter().filter(|x| **x == k).count();
    assert_eq!(
        count(&odd, "lock.uncontended.mapheap"),
        2,
        "--runs 2:\n{odd}"
    );
    assert_eq!(
        count(&even, "lock.uncontended.mapheap"),
        1,
        "--runs 1:\n{even}"
    );
    // The run index alternates which contended variant goes first, as the anchors do.
    let first = |out: &str| {
        keys(out)
            .into_iter()
            .find(|k| k.starts_with("lock.contended3p.mapheap"))
            .unwrap()
            .to_string()
    };
    assert_eq!(first(&odd), "lock.contended3p.mapheap", "--run 1:\n{odd}");
    assert_eq!(
        first(&even),
        "lock.contended3p.mapheap_guard",
        "--run 2:\n{even}"
    );
}

#[test]
fn bench_alloc_flags_set_the_seeded_workload() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(
        dir.path(),
        &[
            "bench",
            "--dir",
            ".",
            "--only",
            "alloc",
            "--alloc-ops",
            "3000",
            "--alloc-live",
            "200",
            "--nproc",
            "2",
        ],
    );
    let w = mapheap::bench::describe(42, 3000, 200);
    for key in ["alloc.1p.mapheap", "alloc.1p.mapheap_onelock"] {
        has_note(
            &out,
            &format!(
                "{key}: {} allocations, {} frees, {} bytes requested in 3000 operations (live target 200)",
                w.allocs, w.frees, w.bytes
            ),
        );
    }
    has_note(&out, "alloc.2p.mapheap: 2 processes x 3000 operations");
    assert!(keys(&out).contains(&"alloc.2p.mapheap"), "{out}");
    assert!(keys(&out).iter().all(|k| k.starts_with("alloc.")), "{out}");
}

#[test]
fn bench_remap_flags_set_the_objects_cycles_and_label() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(
        dir.path(),
        &[
            "bench",
            "--dir",
            ".",
            "--only",
            "remap",
            "--remap-objects",
            "50",
            "--remap-cycles",
            "3",
            "--remap-label",
            "lbl",
        ],
    );
    assert_eq!(
        keys(&out),
        [
            "map64M.lbl.remap.mapheap_0obj",
            "map64M.lbl.remap.mapheap_50obj"
        ],
        "{out}"
    );
    has_note(
        &out,
        "map64M.lbl.remap.mapheap_0obj: mean of 3 remaps, 0 objects",
    );
    has_note(
        &out,
        "map64M.lbl.remap.mapheap_50obj: mean of 3 remaps, 50 objects",
    );
}

#[test]
fn bench_dir_is_where_the_heap_files_go() {
    let dir = tempfile::tempdir().unwrap();
    let args = |d| {
        [
            "bench",
            "--dir",
            d,
            "--only",
            "lock",
            "--lock-iters",
            "10",
            "--lock-cont-iters",
            "10",
        ]
    };
    run(dir.path(), &args("nowhere")).assert_fails(2, "nowhere");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    ok(dir.path(), &args("sub"));
    assert_eq!(
        std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
        0,
        "bench left files in --dir"
    );
}
