//! `mapheap stress --json`: the summary as one JSON object (schema in docs/cli.md).
//!
//! Every figure of the text summary is here, under a name that carries its unit where it
//! is not a count (`_s`, `_ms`, `_ns`, `_bytes`); nothing is rounded.

use std::collections::BTreeMap;

use serde::Serialize;

use super::graph::OpKind;
use super::report::{percentile, Summary};

#[derive(Serialize)]
struct Json<'a> {
    path: &'a str,
    temporary: bool,
    seed: u64,
    workers: usize,
    probe_ms: u128,
    elapsed_s: f64,
    capacity_bytes: Capacity,
    operations: Operations,
    first_ops: Vec<&'static str>,
    grows: u64,
    kills: u64,
    workers_started: u64,
    recoveries: Recoveries,
    takeover_ns: Latency,
    journal_settled: u64,
    torn: u64,
    check: Check,
    graph: Graph,
    leaked: Leaked,
    violations: &'a [String],
    pass: bool,
}

#[derive(Serialize)]
struct Capacity {
    initial: u64,
    #[serde(rename = "final")]
    last: u64,
}

#[derive(Serialize)]
struct Operations {
    total: u64,
    by_kind: BTreeMap<&'static str, u64>,
}

#[derive(Serialize)]
struct Recoveries {
    total: u64,
    by_guard: u64,
    at_open: u64,
    by_final_open: u64,
    unattributed: u64,
}

#[derive(Serialize)]
struct Latency {
    samples: usize,
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
}

#[derive(Serialize)]
struct Check {
    clean: bool,
    blocks: u64,
    free_blocks: u64,
}

#[derive(Serialize)]
struct Graph {
    slots: u64,
    nodes: u64,
    payload_bytes: u64,
    largest_payload_bytes: u64,
}

#[derive(Serialize)]
struct Leaked {
    blocks: u64,
    bytes: u64,
}

impl Summary {
    /// The summary as a JSON object (pretty-printed).
    pub fn json(&self) -> String {
        let t = &self.tally;
        let mut lat = t.latencies.clone();
        lat.sort_unstable();
        let j = Json {
            path: &self.path,
            temporary: self.temporary,
            seed: self.seed,
            workers: self.workers,
            probe_ms: self.probe.as_millis(),
            elapsed_s: self.elapsed.as_secs_f64(),
            capacity_bytes: Capacity {
                initial: self.capacity.0,
                last: self.capacity.1,
            },
            operations: Operations {
                total: t.ops.iter().sum(),
                by_kind: OpKind::ALL
                    .iter()
                    .map(|k| (k.name(), t.ops[k.index()]))
                    .collect(),
            },
            first_ops: t.first_ops.iter().map(|k| k.name()).collect(),
            grows: t.grows,
            kills: self.kills,
            workers_started: self.spawned,
            recoveries: Recoveries {
                total: t.recoveries + t.recoveries_at_open + self.final_recoveries,
                by_guard: t.recoveries,
                at_open: t.recoveries_at_open,
                by_final_open: self.final_recoveries,
                unattributed: t.unattributed,
            },
            takeover_ns: Latency {
                samples: lat.len(),
                p50: percentile(&lat, 50.0),
                p90: percentile(&lat, 90.0),
                p99: percentile(&lat, 99.0),
                max: lat.last().copied().unwrap_or(0),
            },
            journal_settled: t.reconciled,
            torn: t.torn,
            check: Check {
                clean: !self.violations.iter().any(|v| v.starts_with("check:")),
                blocks: self.check_blocks.0,
                free_blocks: self.check_blocks.1,
            },
            graph: Graph {
                slots: self.graph.0,
                nodes: self.graph.1,
                payload_bytes: self.graph.2,
                largest_payload_bytes: self.largest_payload,
            },
            leaked: Leaked {
                blocks: self.leaked.0,
                bytes: self.leaked.1,
            },
            violations: &self.violations,
            pass: self.violations.is_empty(),
        };
        // Serializing plain structs, strings and integers into a String cannot fail.
        serde_json::to_string_pretty(&j).expect("the summary serializes")
    }
}
