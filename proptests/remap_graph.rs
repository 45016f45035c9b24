//! Property: an offset graph built in a heap reads back identical (same shape, same payload
//! bytes, same offsets) through every other mapping of the file:
//!
//! (a) a second `Heap::open` of the same file while the first is still mapped (the address
//!     must differ, and does),
//! (b) mappings placed with `map_at` at chosen page offsets inside a `PROT_NONE`
//!     reservation,
//! (c) a copy of the file opened fresh (copied while the lock is held or not: a copy taken
//!     under the lock names a dead owner, so opening it recovers first), which then
//!     diverges from the original without touching it,
//! (d) after a growth by more than the whole current mapping, which remaps the growing
//!     handle at once and the other handle on its next lock.
//!
//! Between the remaps the graph is mutated (nodes and edges added and removed, payloads
//! rewritten, roots added and removed, unreachable nodes freed in both address orders).
//! See docs/properties.md.

#[macro_use]
mod common;

use std::time::Duration;

use common::graph::{self, Graph, Mutation, World};
use common::{assert_caught, assert_property, child_role, run_child, run_property};
use mapheap::mutant::{self, Mutant};
use mapheap::{CreateOptions, Heap, OpenOptions};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proptests/regressions/remap_graph.txt"
);

/// One case: a graph, four batches of mutations (one per remap scenario), and where the
/// scenarios put things.
#[derive(Clone, Debug)]
struct Case {
    graph: Graph,
    batches: [Vec<Mutation>; 4],
    /// Two distinct page offsets inside the reservation for (b).
    pages: (usize, usize),
    /// Copy the file while holding the original's lock in (c).
    copy_under_lock: bool,
    /// Extra pages grown in (d), beyond the current mapping's length.
    grow_pages: u8,
    /// The heap starts with room for `fill`/4 of the graph's estimated size (plus a page):
    /// below 4, building and mutating must grow it (and remap) on the way.
    fill: u64,
}

fn case(max_nodes: usize) -> impl Strategy<Value = Case> {
    let batch = || prop::collection::vec(graph::mutation(), 0..8);
    (
        graph::graph(max_nodes),
        [batch(), batch(), batch(), batch()],
        (0usize..24, 1usize..8),
        any::<bool>(),
        0u8..16,
        prop_oneof![Just(6u64), Just(4), Just(2), Just(1)],
    )
        .prop_map(
            |(graph, batches, (p, d), copy_under_lock, grow_pages, fill)| Case {
                graph,
                batches,
                pages: (p, p + d),
                copy_under_lock,
                grow_pages,
                fill,
            },
        )
}

fn opts() -> OpenOptions {
    OpenOptions {
        probe_interval: Duration::from_millis(1),
        ..OpenOptions::default()
    }
}

/// Serializes the tests of this binary that make mappings. Scenario (b) maps inside a
/// reservation with `MAP_FIXED`; dropping that heap unmaps its range and leaves a hole in
/// the reservation until the reservation itself is unmapped. A mapping another thread made
/// meanwhile could land in the hole (and then be unmapped with the reservation, or be
/// replaced by the next `MAP_FIXED`), so no other test of this process may map memory while
/// a case runs.
static MAPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    MAPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f`, labelling its error with the scenario.
fn at<T>(label: &str, r: Result<T, String>) -> Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(format!("{label}: {e}")))
}

fn lock<'h>(h: &'h Heap, label: &str) -> Result<mapheap::HeapGuard<'h>, TestCaseError> {
    h.lock()
        .map_err(|e| TestCaseError::fail(format!("{label}: lock: {e}")))
}

fn open(path: &std::path::Path, o: &OpenOptions, label: &str) -> Result<Heap, TestCaseError> {
    Heap::open_with(path, o).map_err(|e| TestCaseError::fail(format!("{label}: open: {e}")))
}

fn remap_case(c: &Case) -> Result<(), TestCaseError> {
    let dir = common::tempdir();
    let path = dir.path().join("graph.heap");
    let page = common::page_size() as u64;
    // A mutation is one transaction, whose rewrite of an existing node is logged: the log
    // gets room for the largest node a mutation can rewrite (a block of at most 8192 bytes,
    // `graph::payload_size`) and its entry, on top of the graph's own room.
    let log = 8192 + 64;
    let size = (common::HEADER_SIZE + graph::estimate(&c.graph) * c.fill / 4 + page + log)
        .next_multiple_of(page);
    let create = CreateOptions {
        open: opts(),
        log_capacity: Some(log),
        ..CreateOptions::new(size)
    };
    let h1 = Heap::create_with(&path, &create)
        .map_err(|e| TestCaseError::fail(format!("create: {e}")))?;
    let mut w: World = {
        let mut g = lock(&h1, "build")?;
        let w = at("build", graph::build(&mut g, &c.graph))?;
        at("build: read back in place", graph::verify(&g, &w))?;
        w
    };
    let base1 = lock(&h1, "base")?.base_address();

    // (a) A second attachment while the first mapping is alive.
    let h2 = open(&path, &opts(), "(a)")?;
    {
        let mut g = lock(&h2, "(a)")?;
        ensure!(
            g.base_address() != base1,
            "(a) second mapping at the same address {base1:#x}"
        );
        at("(a) read through the second mapping", graph::verify(&g, &w))?;
        at(
            "(a) mutate through the second mapping",
            graph::apply_all(&mut g, &mut w, &c.batches[0]),
        )?;
        at("(a) read back in place", graph::verify(&g, &w))?;
    }
    at(
        "(a) read through the first mapping",
        graph::verify(&lock(&h1, "(a)")?, &w),
    )?;

    // (b) Mappings at chosen page offsets inside a reservation. Each placement gets a
    // reservation sized for the file as it is then (the first placement's mutations may
    // have grown it): MAP_FIXED past the end of a reservation would replace whatever
    // mapping lies beyond it.
    for (k, &p) in [c.pages.0, c.pages.1].iter().enumerate() {
        let label = format!("(b) map_at page {p}");
        let len = common::file_len(&path) as usize;
        let res = common::Reservation::new((p + 1) * page as usize + len);
        let want = res.place(p, len);
        let h3 = open(
            &path,
            &OpenOptions {
                map_at: Some(want),
                ..opts()
            },
            &label,
        )?;
        {
            let mut g = lock(&h3, &label)?;
            ensure!(
                g.base_address() == want.as_ptr() as usize,
                "{label}: mapped at {:#x}, asked for {:#x}",
                g.base_address(),
                want.as_ptr() as usize
            );
            at(&format!("{label}: read"), graph::verify(&g, &w))?;
            if k == 0 {
                at(
                    &format!("{label}: mutate"),
                    graph::apply_all(&mut g, &mut w, &c.batches[1]),
                )?;
                at(&format!("{label}: read back"), graph::verify(&g, &w))?;
            }
        }
        // Every mapping inside the reservation goes before the reservation does.
        drop(h3);
        drop(res);
    }
    at(
        "(b) read through the first mapping",
        graph::verify(&lock(&h1, "(b)")?, &w),
    )?;
    at(
        "(b) read through the second mapping",
        graph::verify(&lock(&h2, "(b)")?, &w),
    )?;

    // (c) A copy of the file, opened fresh; it then diverges from the original.
    {
        let copy = common::sibling(&path, "copy.heap");
        if c.copy_under_lock {
            let _g = lock(&h1, "(c) copy under lock")?;
            std::fs::copy(&path, &copy).map_err(|e| TestCaseError::fail(format!("copy: {e}")))?;
        } else {
            std::fs::copy(&path, &copy).map_err(|e| TestCaseError::fail(format!("copy: {e}")))?;
        }
        let hc = open(&copy, &opts(), "(c)")?;
        let mut wc = w.clone();
        {
            let mut g = lock(&hc, "(c)")?;
            at("(c) read the copy", graph::verify(&g, &wc))?;
            at(
                "(c) mutate the copy",
                graph::apply_all(&mut g, &mut wc, &c.batches[2]),
            )?;
            at("(c) read the copy back", graph::verify(&g, &wc))?;
        }
        at(
            "(c) the original after the copy changed",
            graph::verify(&lock(&h1, "(c)")?, &w),
        )?;
        drop(hc);
        let hc = open(&copy, &opts(), "(c) reopen")?;
        at(
            "(c) reopen the copy",
            graph::verify(&lock(&hc, "(c)")?, &wc),
        )?;
    }

    // (d) Growth by more than the current mapping: both handles remap.
    {
        let base2 = lock(&h2, "(d)")?.base_address();
        let (old1, len) = {
            let g = lock(&h1, "(d)")?;
            (g.base_address(), common::file_len(&path))
        };
        let new_cap = {
            let mut g = lock(&h1, "(d) grow")?;
            let extra = len + (u64::from(c.grow_pages) + 1) * page;
            g.grow_by(extra)
                .map_err(|e| TestCaseError::fail(format!("(d) grow_by({extra}): {e}")))?;
            ensure!(
                g.base_address() != old1,
                "(d) the growing handle did not remap"
            );
            at("(d) read through the grown mapping", graph::verify(&g, &w))?;
            g.capacity()
        };
        ensure!(
            new_cap > 2 * len,
            "(d) capacity {new_cap} after growing a {len}-byte heap"
        );
        {
            let mut g = lock(&h2, "(d) other handle")?;
            ensure!(
                g.base_address() != base2,
                "(d) the other handle still maps at {base2:#x} after the growth"
            );
            ensure!(
                g.capacity() == new_cap,
                "(d) other handle sees capacity {}",
                g.capacity()
            );
            at(
                "(d) read through the remapped handle",
                graph::verify(&g, &w),
            )?;
            at(
                "(d) mutate after the remap",
                graph::apply_all(&mut g, &mut w, &c.batches[3]),
            )?;
        }
        at(
            "(d) read through the first handle",
            graph::verify(&lock(&h1, "(d)")?, &w),
        )?;
    }
    drop(h2);
    drop(h1);
    let h = open(&path, &opts(), "final reopen")?;
    at("final reopen", graph::verify(&lock(&h, "final")?, &w))?;
    Ok(())
}

#[test]
fn remap_property_graphs_read_back_identical_through_every_mapping() {
    let _serial = serial();
    let _watchdog = mapheap::watchdog!(common::bound_secs(1024, 20));
    assert_property(
        "remap_graph",
        common::config(1024, REGRESSIONS),
        &case(24),
        |c| remap_case(&c),
    );
    eprintln!("remap_graph exercised: {}", graph::tally::report());
}

const MUTANT_CASES: u32 = 24;
const MUTANT_SEED: u64 = 0x5eed_0001;

#[test]
fn mutant_absolute_address_is_caught_by_remap_property() {
    let _serial = serial();
    let _watchdog = mapheap::watchdog!(120);
    let run = || {
        run_property(
            common::mutant_config(MUTANT_CASES, MUTANT_SEED),
            &case(8),
            |c| remap_case(&c),
        )
    };
    let out = mutant::with(Mutant::AbsoluteAddress, run);
    assert_caught("AbsoluteAddress", "remap_graph", &out);
    // The invariant walker's root check (R1) sees the address at once; without it, the
    // read-back through the second mapping must catch it on its own.
    let out = graph::without_check(|| mutant::with(Mutant::AbsoluteAddress, run));
    let line = assert_caught("AbsoluteAddress", "remap_graph without check()", &out);
    assert!(
        line.contains("(a)")
            || line.contains("(b)")
            || line.contains("(c)")
            || line.contains("(d)"),
        "without check() the failure must come from a remap scenario: {line}"
    );
    let control = run();
    assert!(
        control.result.is_ok(),
        "the same run without the mutant must pass: {:?}",
        control.result
    );
}

/// `WrongBase` resolves offsets against the first mapping this process ever made, which a
/// later remap unmaps: reading through it may fault. So the property runs in a child
/// process (this test re-executed with `MAPHEAP_PROP_CHILD=remap`), where a fault is a
/// caught failure, and a control child without the mutant must pass the same run.
#[test]
fn mutant_wrong_base_is_caught_by_remap_property() {
    const NAME: &str = "mutant_wrong_base_is_caught_by_remap_property";
    if child_role().as_deref() == Some("remap") {
        let m = mutant::init_from_env();
        let out = run_property(
            common::mutant_config(MUTANT_CASES, MUTANT_SEED),
            &case(8),
            |c| {
                eprintln!("CASE");
                let r = remap_case(&c);
                if r.is_err() {
                    eprintln!("CASE FAILED");
                }
                r
            },
        );
        match out.result {
            Ok(()) => {
                eprintln!("PASSED {} cases with {m:?}", out.cases_run);
                std::process::exit(0)
            }
            Err(e) => {
                eprintln!("FAILED at case {} with {m:?}: {e}", out.cases_to_failure);
                std::process::exit(3)
            }
        }
    }
    let env = |m: Option<&str>| {
        let mut v = vec![(common::CHILD_ENV, "remap".to_string())];
        if let Some(m) = m {
            v.push(("MAPHEAP_MUTANT", m.to_string()));
        }
        v
    };
    let _serial = serial();
    // Started under `serial` (it maps a thread stack, see `MAPS`); the children have their
    // own deadlines, the parent waits for them.
    let _watchdog = mapheap::watchdog!(180);
    let run = run_child(NAME, &env(Some("WrongBase")), common::child_timeout() * 3);
    // Cases up to the first failure; a fault before any failure ends the count.
    let cases = run
        .stderr
        .lines()
        .take_while(|l| *l != "CASE FAILED")
        .filter(|l| *l == "CASE")
        .count();
    // Any end but a pass is a catch: a failed case (exit 3), a fault (the first mapping is
    // gone after the growth in (d)), an abort (writes through it landed in reused memory)
    // or even a hang (the same, in the allocator's own locks).
    if run.end == common::ChildEnd::Exited(0) {
        panic!(
            "mutant WrongBase survived the remap property: {}",
            run.describe()
        );
    }
    let first = run
        .stderr
        .lines()
        .find(|l| l.starts_with("FAILED"))
        .map(|l| l.chars().take(300).collect::<String>())
        .unwrap_or_else(|| format!("{:?}", run.end));
    eprintln!("mutant WrongBase caught by remap_graph at case {cases}: {first}");
    let control = run_child(NAME, &env(None), common::child_timeout() * 3);
    assert_eq!(
        control.end,
        common::ChildEnd::Exited(0),
        "the same run without the mutant must pass: {}",
        control.describe()
    );
}
