//! `mapheap stress` at tiny bounds: each flag shows in what the run did, read from its
//! `--json` summary (docs/cli.md): workers forked, kills sent, the heap's capacity and
//! graph, the operations the seed chose, how long it ran.

use std::path::Path;

use serde_json::Value;

use crate::run::{ok, ok_json, run};

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no unsigned {key:?} in {v:#}"))
}

/// A passing run's JSON summary (ARGS carry `--json`).
fn stress(cwd: &Path, args: &[&str]) -> Value {
    let mut all = vec!["stress"];
    all.extend_from_slice(args);
    let j = ok_json(cwd, &all);
    assert_eq!(j["pass"], true, "{j:#}");
    assert_eq!(j["violations"], serde_json::json!([]), "{j:#}");
    j
}

#[test]
fn stress_json_shows_the_workers_size_nodes_payload_and_probe_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let j = stress(
        dir.path(),
        &[
            "s.heap",
            "--json",
            "--duration",
            "0.3",
            "--workers",
            "3",
            "--kill-rate",
            "0",
            "--size",
            "256K",
            "--nodes",
            "100",
            "--max-payload",
            "64",
            "--probe-ms",
            "7",
            "--seed",
            "5",
        ],
    );
    // Every default differs from what is asked here (2 workers per CPU, 4M, 512 nodes,
    // 2048-byte payloads, 5 ms), so each figure shows its flag took effect.
    assert_eq!(u(&j, "workers"), 3);
    assert_eq!(u(&j, "workers_started"), 3, "no kills: 3 forks");
    assert_eq!(u(&j, "kills"), 0);
    assert_eq!(u(&j["capacity_bytes"], "initial"), 256 << 10);
    assert_eq!(u(&j["graph"], "slots"), 100);
    assert!(u(&j["graph"], "nodes") > 0, "{j:#}");
    let largest = u(&j["graph"], "largest_payload_bytes");
    assert!(largest > 0 && largest <= 64, "{j:#}");
    assert_eq!(u(&j, "probe_ms"), 7);
    assert_eq!(u(&j, "seed"), 5);
    assert!(u(&j["operations"], "total") > 0);
    assert_eq!(j["check"]["clean"], true);
    // PATH is kept, and is a clean heap with the graph's root.
    assert_eq!(j["temporary"], false);
    assert!(j["path"].as_str().unwrap().ends_with("s.heap"));
    let out = ok(dir.path(), &["check", "s.heap"]);
    assert!(out.contains("0 violations"), "{out}");
}

#[test]
fn stress_seed_makes_two_runs_choose_the_same_operations() {
    let dir = tempfile::tempdir().unwrap();
    // One worker and no kills: the seed alone decides the operations.
    let first_ops = |seed: &str| {
        let j = stress(
            dir.path(),
            &[
                "--json",
                "--duration",
                "0.4",
                "--workers",
                "1",
                "--kill-rate",
                "0",
                "--seed",
                seed,
            ],
        );
        assert_eq!(j["temporary"], true, "no PATH: a temporary heap");
        assert!(
            !Path::new(j["path"].as_str().unwrap()).exists(),
            "the temporary heap was left behind"
        );
        // The default payload limit (2048) shows beside --max-payload's 64 above.
        assert!(u(&j["graph"], "largest_payload_bytes") > 64, "{j:#}");
        j["first_ops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (a, b, c) = (first_ops("11"), first_ops("11"), first_ops("12"));
    let n = a.len().min(b.len()).min(c.len());
    assert!(
        n >= 16,
        "too few operations recorded to compare: {a:?} {b:?} {c:?}"
    );
    assert_eq!(
        a[..n],
        b[..n],
        "seed 11 chose different operations in two runs"
    );
    assert_ne!(a[..n], c[..n], "seeds 11 and 12 chose the same operations");
}

#[test]
fn stress_duration_bounds_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let elapsed = |d: &str| {
        let j = stress(
            dir.path(),
            &[
                "--json",
                "--duration",
                d,
                "--workers",
                "1",
                "--kill-rate",
                "0",
            ],
        );
        j["elapsed_s"].as_f64().unwrap()
    };
    let short = elapsed("0.2");
    let long = elapsed("1.2");
    assert!((0.2..1.2).contains(&short), "--duration 0.2 ran {short} s");
    assert!((1.2..6.0).contains(&long), "--duration 1.2 ran {long} s");
}

#[test]
fn stress_kill_rate_kills_workers_and_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let j = stress(
        dir.path(),
        &[
            "--json",
            "--duration",
            "0.6",
            "--workers",
            "2",
            "--kill-rate",
            "40",
            "--size",
            "256K",
        ],
    );
    let kills = u(&j, "kills");
    assert!(kills > 0, "40 kills/s for 0.6 s sent none: {j:#}");
    assert_eq!(u(&j, "workers_started"), 2 + kills, "each kill is replaced");
}

#[test]
fn stress_overwrite_replaces_path_and_without_it_stress_refuses() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["create", "s.heap", "--size", "1M"]);
    let args = [
        "s.heap",
        "--duration",
        "0.1",
        "--workers",
        "1",
        "--kill-rate",
        "0",
    ];
    let mut refused = vec!["stress"];
    refused.extend_from_slice(&args);
    run(dir.path(), &refused).assert_fails(2, "already exists");
    let mut with = args.to_vec();
    with.extend(["--overwrite", "--json"]);
    let j = stress(dir.path(), &with);
    assert_eq!(
        u(&j["capacity_bytes"], "initial"),
        4 << 20,
        "not the new heap"
    );
}
