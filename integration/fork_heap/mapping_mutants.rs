//! Seeded bugs that only a second mapping shows: `AbsoluteAddress` (an address stored where
//! an offset belongs, F1) between two processes mapped at different addresses, and
//! `WrongBase` (offsets resolved against a stale base, G2) after growth moved a mapping.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mapheap::mutant::Mutant;
use mapheap::stress::graph::Graph;
use mapheap::stress::procs::Exit;
use mapheap::{CreateOptions, Heap};

use crate::ensure;
use crate::fork_support::*;

/// Two re-executed processes at different addresses: the first makes the graph (its root
/// stored by the first), the second finds it through the root.
fn two_mappings(
    m: Option<Mutant>,
) -> Result<(Exit, Exit, std::path::PathBuf, tempfile::TempDir), String> {
    let dir = tempfile::tempdir().ctx("tempdir")?;
    let path = dir.path().join("abs.heap");
    Heap::create_with(&path, &CreateOptions::new(1 << 20)).ctx("create")?;
    let mut env = vec![
        ("HEAP", path.display().to_string()),
        ("OPS", "200".to_string()),
        ("SEED", seeded(600).to_string()),
    ];
    if let Some(m) = m {
        env.push(("MAPHEAP_MUTANT", format!("{m:?}")));
    }
    let mut first = env.clone();
    first.push(("IDX", "0".into()));
    first.push(("CREATE", "1".into()));
    let (a, _) = wait_child(reexec("graph-worker", &first)?, deadline(60))?;
    let mut second = env;
    second.push(("IDX", "1".into()));
    let (b, _) = wait_child(reexec("graph-worker", &second)?, deadline(60))?;
    Ok((a, b, path, dir))
}

pub fn mutant_absolute_address() -> TestResult {
    let (a, b, path, _dir) = two_mappings(None)?;
    ensure!(a.ok() && b.ok(), "control run failed: {a:?} {b:?}");
    {
        let heap = Heap::open(&path).ctx("open")?;
        let g = heap.lock().ctx("lock")?;
        let v = Graph::open(&g)
            .ctx("graph")?
            .ok_or("no graph")?
            .verify(&g)
            .ctx("verify")?;
        ensure!(v.problems.is_empty(), "control graph: {:?}", v.problems);
    }
    let (a, b, _, _dir) = two_mappings(Some(Mutant::AbsoluteAddress))?;
    ensure!(
        a.ok(),
        "with the mutant the first process (which stored the root) failed: {a:?}"
    );
    ensure!(
        !b.ok(),
        "AbsoluteAddress not caught: a process mapped elsewhere used the root ({b:?})"
    );
    note(format!(
        "caught: the process at the other address ended with {b:?}"
    ));
    Ok(())
}

/// Re-executed child: maps the heap, publishes a block, waits for another process to grow
/// the heap (which moves this process's mapping), then verifies the block.
pub fn hold_through_growth() -> TestResult {
    let path = PathBuf::from(std::env::var("HEAP").ctx("HEAP")?);
    let heap = Heap::open_with(&path, &probe(3)).ctx("open")?;
    let (b, cap, base) = {
        let mut g = heap.lock().ctx("lock")?;
        let (_, c) = ctl(&g)?;
        let b = new_block(&mut g, 4000, 77).ctx("alloc")?;
        check_block(&g, b)?;
        publish(&mut g, &c, 0, 0, b).ctx("publish")?;
        (b, g.capacity(), g.base_address())
    };
    let start = Instant::now();
    loop {
        let g = heap.lock().ctx("lock")?;
        if g.capacity() != cap {
            ensure!(g.base_address() != base, "the mapping did not move");
            let h = check_block(&g, b)?;
            ensure!(h.seed == 77, "seed {}", h.seed);
            return Ok(());
        }
        drop(g);
        ensure!(
            start.elapsed() < Duration::from_secs(30),
            "nobody grew the heap"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn growth_under(m: Option<Mutant>) -> Result<Exit, String> {
    let (_dir, path) = fresh_heap(256 << 10)?;
    let heap = Heap::open(&path).ctx("open")?;
    init_ctl(&mut heap.lock().ctx("lock")?, 1, 1).ctx("init")?;
    let mut env = vec![("HEAP", path.display().to_string())];
    if let Some(m) = m {
        env.push(("MAPHEAP_MUTANT", format!("{m:?}")));
    }
    let c = reexec("hold-through-growth", &env)?;
    let published = wait_until(Duration::from_secs(30), || {
        heap.lock()
            .ok()
            .and_then(|g| ctl(&g).ok().and_then(|(_, c)| table(&g, &c).ok()))
            .is_some_and(|t| t[0] != 0)
    });
    ensure!(published, "the child never published its block");
    heap.lock().ctx("lock")?.grow_by(4 << 20).ctx("grow")?;
    let (e, _) = wait_child(c, deadline(60))?;
    Ok(e)
}

pub fn mutant_wrong_base() -> TestResult {
    let e = growth_under(None)?;
    ensure!(e.ok(), "control run: {e:?}");
    let e = growth_under(Some(Mutant::WrongBase))?;
    ensure!(
        !e.ok(),
        "WrongBase not caught: the block read back intact after the remap"
    );
    note(format!("caught: the child ended with {e:?}"));
    Ok(())
}
