//! Contention across processes: several processes take the lock over and over, run a
//! read-spin-write of shared counters and publish and free checksummed blocks; no update is
//! lost (L1), every block a process owns stays where it put it, and the heap ends exactly as
//! it began.

use std::path::Path;

use mapheap::stress::procs::spin;
use mapheap::{Error, Heap};

use crate::ensure;
use crate::fork_support::*;

const COLS: u64 = 16;

pub fn contention() -> TestResult {
    let n = (4 * scale()).min(32);
    let iters = 10_000 * scale();
    let (_dir, path) = fresh_heap(4 << 20)?;
    // The parent keeps its own attachment across the forks: the children must refuse it.
    let heap = Heap::open_with(&path, &probe(3)).ctx("open")?;
    init_ctl(&mut heap.lock().ctx("lock")?, n, COLS).ctx("init")?;
    let mut pids = Vec::new();
    for c in 0..n {
        let (heap, path) = (&heap, &path);
        pids.push(fork_child(|| child(|| contend(heap, path, c, iters))).ctx("fork")?);
    }
    let exits = reap_all(&pids, deadline(120)).ctx("reap")?;
    expect_all_ok("contending child", &exits)?;
    let g = heap.lock().ctx("lock")?;
    let (_, c) = ctl(&g)?;
    ensure!(
        c.counters[0] == n * iters,
        "shared counter is {}, wanted {} (lost updates: mutual exclusion broken)",
        c.counters[0],
        n * iters
    );
    for i in 0..n {
        ensure!(
            c.counters[1 + i as usize] == iters,
            "child {i} counted {}, wanted {iters}",
            c.counters[1 + i as usize]
        );
    }
    let report = g.check();
    ensure!(report.is_clean(), "check: {:?}", report.violations);
    ensure!(
        table(&g, &c)?.iter().all(|&o| o == 0),
        "a child left a published block"
    );
    let st = g.stats();
    ensure!(
        st.used_blocks == 3 && st.free_blocks == 1,
        "after every child freed its blocks: {} used, {} free blocks (wanted the undo log, the root, its table and one free block)",
        st.used_blocks,
        st.free_blocks
    );
    Ok(())
}

fn contend(inherited: &Heap, path: &Path, me: u64, iters: u64) -> TestResult {
    ensure!(
        matches!(inherited.lock(), Err(Error::Forked)),
        "the parent's handle must refuse use in a fork child"
    );
    let heap = Heap::open_with(path, &probe(3)).ctx("open")?;
    let mut rng = Rng::new(seeded(me));
    let mut mine: Vec<Option<(u64, u64)>> = vec![None; COLS as usize];
    for it in 0..iters {
        let mut g = heap.lock().ctx("lock")?;
        let (off, c) = ctl(&g)?;
        // A read-modify-write with a window: two holders at once lose an update.
        let total = c.counters[0];
        spin(rng.below(300) as u32);
        {
            let w = g.get_mut(off).ctx("ctl")?;
            w.counters[0] = total + 1;
            w.counters[1 + me as usize] += 1;
        }
        let col = rng.below(COLS);
        match (rng.below(3), mine[col as usize]) {
            (0, None) => {
                let seed = rng.next_u64();
                let b = new_block(&mut g, rng.below(2048), seed).ctx("alloc")?;
                publish(&mut g, &c, me, col, b).ctx("publish")?;
                mine[col as usize] = Some((b, seed));
            }
            (1, Some((b, seed))) => {
                let h = check_block(&g, b)?;
                ensure!(
                    h.seed == seed,
                    "block {b:#x} holds seed {}, wanted {seed}",
                    h.seed
                );
                publish(&mut g, &c, me, col, 0).ctx("unpublish")?;
                g.free(mapheap::Offset::<u8>::from_raw(b)).ctx("free")?;
                mine[col as usize] = None;
            }
            _ => {}
        }
        if it % 64 == 0 {
            verify_mine(&g, &c, me, &mine)?;
        }
    }
    let mut g = heap.lock().ctx("lock")?;
    let (_, c) = ctl(&g)?;
    verify_mine(&g, &c, me, &mine)?;
    for (col, m) in mine.iter().enumerate() {
        if let Some((b, _)) = m {
            publish(&mut g, &c, me, col as u64, 0).ctx("unpublish")?;
            g.free(mapheap::Offset::<u8>::from_raw(*b)).ctx("free")?;
        }
    }
    Ok(())
}
