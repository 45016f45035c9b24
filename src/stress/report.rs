//! The summary `mapheap stress` prints at the end.

use std::fmt::Write as _;
use std::time::Duration;

use super::board::Tally;
use super::graph::OpKind;

/// Everything the summary shows.
pub struct Summary {
    /// The heap file.
    pub path: String,
    /// Whether the heap file was a temporary one (no PATH given), removed after the run.
    pub temporary: bool,
    /// Wall time of the run (workers running).
    pub elapsed: Duration,
    /// Workers kept running.
    pub workers: usize,
    /// Seed of the run.
    pub seed: u64,
    /// Probe interval.
    pub probe: Duration,
    /// Capacity at the start and at the end.
    pub capacity: (u64, u64),
    /// SIGKILLs sent.
    pub kills: u64,
    /// Workers started (initial and replacements).
    pub spawned: u64,
    /// What the workers counted.
    pub tally: Tally,
    /// Takeovers made by the final open (of the last workers' locks).
    pub final_recoveries: u64,
    /// Blocks and free blocks `check` walked.
    pub check_blocks: (u64, u64),
    /// Directory slots, committed nodes, their payload bytes.
    pub graph: (u64, u64, u64),
    /// The largest payload of a committed node, in bytes.
    pub largest_payload: u64,
    /// Leaked blocks and bytes.
    pub leaked: (u64, u64),
    /// Every violation found (by the workers, the parent and the final verification).
    pub violations: Vec<String>,
}

/// The `p`-th percentile (0..=100) of sorted `v`.
pub fn percentile(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn ms(ns: u64) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

impl Summary {
    /// The text block.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let t = &self.tally;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let total: u64 = t.ops.iter().sum();
        let by_kind = OpKind::ALL
            .iter()
            .map(|k| format!("{} {}", k.name(), t.ops[k.index()]))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            s,
            "mapheap stress: {:.1} s, {} workers, seed {}, probe {} ms, heap {}{}",
            secs,
            self.workers,
            self.seed,
            self.probe.as_millis(),
            self.path,
            if self.temporary { " (temporary)" } else { "" }
        );
        let _ = writeln!(
            s,
            "operations    {total} ({:.0}/s): {by_kind}",
            total as f64 / secs
        );
        let _ = writeln!(
            s,
            "growth        {} (capacity {} -> {} bytes)",
            t.grows, self.capacity.0, self.capacity.1
        );
        let _ = writeln!(
            s,
            "kills         {} SIGKILLs ({:.1}/s), {} workers started",
            self.kills,
            self.kills as f64 / secs,
            self.spawned
        );
        let _ = writeln!(
            s,
            "recoveries    {} (by a waiting guard {}, inside open {}, by the final open {}), {} from an owner killed before it registered",
            t.recoveries + t.recoveries_at_open + self.final_recoveries,
            t.recoveries,
            t.recoveries_at_open,
            self.final_recoveries,
            t.unattributed
        );
        let mut lat = t.latencies.clone();
        lat.sort_unstable();
        if lat.is_empty() {
            let _ = writeln!(s, "takeover      no samples");
        } else {
            let _ = writeln!(
                s,
                "takeover      p50 {}  p90 {}  p99 {}  max {}  ({} samples, kill -> guard reporting recovered)",
                ms(percentile(&lat, 50.0)),
                ms(percentile(&lat, 90.0)),
                ms(percentile(&lat, 99.0)),
                ms(*lat.last().unwrap_or(&0)),
                lat.len()
            );
        }
        let _ = writeln!(
            s,
            "journal       {} transactions of dead workers settled, torn {}",
            t.reconciled, t.torn
        );
        let _ = writeln!(
            s,
            "check         {} ({} blocks, {} free)",
            if self.violations.iter().any(|v| v.starts_with("check:")) {
                "VIOLATIONS"
            } else {
                "clean"
            },
            self.check_blocks.0,
            self.check_blocks.1
        );
        let _ = writeln!(
            s,
            "graph         {} committed nodes verified in {} slots ({} payload bytes, largest {})",
            self.graph.1, self.graph.0, self.graph.2, self.largest_payload
        );
        let _ = writeln!(
            s,
            "leaked        {} blocks, {} bytes (allocated, reached by nothing: must be 0)",
            self.leaked.0, self.leaked.1
        );
        let _ = writeln!(s, "violations    {}", self.violations.len());
        for v in self.violations.iter().take(20) {
            let _ = writeln!(s, "  {v}");
        }
        if self.violations.len() > 20 {
            let _ = writeln!(s, "  ... {} more", self.violations.len() - 20);
        }
        let _ = write!(
            s,
            "{}",
            if self.violations.is_empty() {
                "PASS"
            } else {
                "FAIL"
            }
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 90.0), 7);
        assert_eq!(percentile(&[], 90.0), 0);
    }
}
