//! Processes that map the heap at different, chosen addresses share one offset graph (F1),
//! and keep sharing it while growth remaps each of them elsewhere. The graph workers are
//! re-executed children (`MAPHEAP_FORK_ROLE=graph-worker`) that map the file themselves.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mapheap::stress::graph::{Graph, NoJournal, OpKind};
use mapheap::{CreateOptions, Heap, OpenOptions};

use crate::ensure;
use crate::fork_support::*;

/// Where the `i`-th process maps the heap: 4 GiB apart, far from anything the loader or the
/// allocator uses.
fn hint(i: u64) -> usize {
    0x2000_0000_0000 + (i as usize) * 0x1_0000_0000
}

/// Reserves `[hint(i), +len)` with a PROT_NONE mapping that refuses to replace anything
/// (MAP_FIXED_NOREPLACE), so the heap can be mapped there with MAP_FIXED.
fn reserve(i: u64, len: usize) -> Result<std::ptr::NonNull<u8>, String> {
    let at = hint(i);
    // SAFETY: a new private PROT_NONE reservation; MAP_FIXED_NOREPLACE fails rather than
    // replace an existing mapping; the result is checked.
    let p = unsafe {
        libc::mmap(
            at as *mut libc::c_void,
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_NORESERVE
                | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED || p as usize != at {
        return Err(format!(
            "cannot reserve {len} bytes at {at:#x}: {}",
            std::io::Error::last_os_error()
        ));
    }
    std::ptr::NonNull::new(p.cast()).ok_or_else(|| "null reservation".to_string())
}

/// Opens `path` mapped at `hint(i)` (the reservation leaves room for growth).
fn open_at(path: &Path, i: u64) -> Result<Heap, String> {
    let len = std::fs::metadata(path).ctx("stat")?.len() as usize + (64 << 20);
    let at = reserve(i, len)?;
    let opts = OpenOptions {
        probe_interval: Duration::from_millis(3),
        map_at: Some(at),
        ..OpenOptions::default()
    };
    Heap::open_with(path, &opts).ctx("open at a chosen address")
}

/// Re-executed child: maps the heap at `hint(IDX)`, runs OPS random graph operations, prints
/// what it did.
pub fn graph_worker() -> TestResult {
    let path = PathBuf::from(std::env::var("HEAP").ctx("HEAP")?);
    let idx: u64 = std::env::var("IDX").ctx("IDX")?.parse().ctx("IDX")?;
    let ops: u64 = std::env::var("OPS").ctx("OPS")?.parse().ctx("OPS")?;
    let seed: u64 = std::env::var("SEED").ctx("SEED")?.parse().ctx("SEED")?;
    let create = std::env::var("CREATE").is_ok();
    let heap = open_at(&path, idx)?;
    // Read the base before anyone may grow the heap: once every worker has arrived, the
    // first to grow it moves every mapping, possibly before a slower worker looks.
    let base = heap.lock().ctx("lock")?.base_address();
    if let Ok(n) = std::env::var("BARRIER") {
        // Nobody grows the heap (which remaps it anywhere) before everyone has mapped it at
        // its chosen address.
        let n: u64 = n.parse().ctx("BARRIER")?;
        {
            let mut g = heap.lock().ctx("lock")?;
            let c = g.find_or_init("arrived", || 0u64).ctx("root")?;
            *g.get_mut(c).ctx("arrived")? += 1;
        }
        let start = Instant::now();
        loop {
            let g = heap.lock().ctx("lock")?;
            let c = g.root::<u64>("arrived").ctx("root")?.ok_or("no root")?;
            if g.read(c).ctx("arrived")? >= n {
                break;
            }
            drop(g);
            ensure!(
                start.elapsed() < Duration::from_secs(60),
                "the others never arrived"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    ensure!(
        base == hint(idx),
        "mapped at {base:#x}, asked for {:#x}",
        hint(idx)
    );
    let graph = {
        let mut g = heap.lock().ctx("lock")?;
        match Graph::open(&g).ctx("find the graph")? {
            Some(gr) => gr,
            None if create => Graph::create(&mut g, 256).ctx("create graph")?,
            None => return Err("no graph".into()),
        }
    };
    let mut rng = Rng::new(seed);
    let (mut ins, mut del, mut grew, mut moved) = (0u64, 0u64, 0u64, 0u64);
    for k in 0..ops {
        let mut g = heap.lock().ctx("lock")?;
        if g.base_address() != base {
            moved += 1;
        }
        let d = graph
            .random_op(&mut g, &mut rng, 512, &mut NoJournal)
            .ctx("graph op")?;
        if let Some(p) = d.problem {
            return Err(p);
        }
        match d.kind {
            OpKind::Insert => ins += 1,
            OpKind::Delete => del += 1,
            OpKind::Replace => {
                ins += 1;
                del += 1
            }
            _ => {}
        }
        grew += u64::from(d.grew);
        if k % 100 == 0 {
            let v = graph.verify(&g).ctx("verify")?;
            ensure!(v.problems.is_empty(), "graph: {:?}", v.problems);
        }
    }
    let last = heap.lock().ctx("lock")?.base_address();
    println!(
        "base={base:#x} last={last:#x} inserted={ins} deleted={del} grew={grew} moved={}",
        u64::from(moved > 0)
    );
    Ok(())
}

pub fn different_addresses() -> TestResult {
    let n = (4 * scale()).min(16);
    let ops = 2000 * scale();
    let dir = tempfile::tempdir().ctx("tempdir")?;
    let path = dir.path().join("graph.heap");
    // Small, so the graph outgrows it and every process also remaps while the others work.
    Heap::create_with(&path, &CreateOptions::new(64 << 10)).ctx("create")?;
    // The parent maps it at its own address too, and keeps that mapping for the whole test.
    let parent = open_at(&path, n)?;
    {
        let mut g = parent.lock().ctx("lock")?;
        Graph::create(&mut g, 256).ctx("graph")?;
    }
    let parent_base = hint(n);
    let mut children = Vec::new();
    for i in 0..n {
        children.push(reexec(
            "graph-worker",
            &[
                ("HEAP", path.display().to_string()),
                ("IDX", i.to_string()),
                ("BARRIER", n.to_string()),
                ("OPS", ops.to_string()),
                ("SEED", seeded(100 + i).to_string()),
            ],
        )?);
    }
    let end = deadline(120);
    let mut bases = HashSet::from([parent_base as u64]);
    let (mut ins, mut del, mut grew) = (0, 0, 0);
    for (i, c) in children.into_iter().enumerate() {
        let (exit, out) = wait_child(c, end)?;
        ensure!(exit.ok(), "graph worker {i} ended with {exit:?}");
        let base = field(&out, "base").ok_or(format!("worker {i} printed {out:?}"))?;
        ensure!(
            bases.insert(base),
            "worker {i} mapped at {base:#x} like another process"
        );
        ins += field(&out, "inserted").unwrap_or(0);
        del += field(&out, "deleted").unwrap_or(0);
        grew += field(&out, "grew").unwrap_or(0);
    }
    ensure!(
        bases.len() as u64 == n + 1,
        "wanted {} distinct base addresses",
        n + 1
    );
    let g = parent.lock().ctx("lock")?;
    let graph = Graph::open(&g).ctx("graph")?.ok_or("graph gone")?;
    let root = graph.root(&g).ctx("root")?;
    ensure!(
        root.inserted == ins && root.deleted == del,
        "the heap counted {} inserts and {} deletes, the workers {ins} and {del}",
        root.inserted,
        root.deleted
    );
    let v = graph.verify(&g).ctx("verify")?;
    ensure!(v.problems.is_empty(), "graph: {:?}", v.problems);
    ensure!(
        v.nodes == ins - del,
        "{} committed nodes, wanted {}",
        v.nodes,
        ins - del
    );
    let report = g.check();
    ensure!(report.is_clean(), "check: {:?}", report.violations);
    let mut live = v.live.clone();
    live.extend(g.root::<u64>("arrived").ctx("root")?.map(|a| a.raw()));
    ensure!(
        leaks(&g, &live) == (0, 0),
        "unreachable blocks without any death: {:?}",
        leaks(&g, &live)
    );
    ensure!(
        grew > 0,
        "the graph never outgrew the heap: growth was not exercised"
    );
    note(format!(
        "{} processes at distinct base addresses, {} committed nodes, the heap grew {grew} times",
        n + 1,
        v.nodes
    ));
    Ok(())
}
