//! Growth while others are attached: holders keep verifying and rewriting their blocks by
//! offset while another process grows the heap, which moves every holder's mapping (H3).

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use mapheap::Heap;

use crate::ensure;
use crate::fork_support::*;

#[repr(C)]
struct GrowBoard {
    grower_done: AtomicU32,
    final_capacity: AtomicU64,
    remaps: [AtomicU64; 16],
    rounds: [AtomicU64; 16],
}

const STEP: u64 = 64 << 10;
const HOLD: u64 = 8;

pub fn growth_while_attached() -> TestResult {
    let holders = (3 * scale()).min(15);
    let growths = 24 * scale();
    let initial = 256 << 10;
    let (_dir, path) = fresh_heap(initial)?;
    {
        let heap = Heap::open(&path).ctx("open")?;
        init_ctl(&mut heap.lock().ctx("lock")?, holders + 1, HOLD).ctx("init")?;
    }
    // SAFETY: GrowBoard is atomics only; all-zero is its initial state.
    let board: Shared<GrowBoard> = unsafe { Shared::zeroed() }.ctx("shm")?;
    let mut pids = Vec::new();
    for h in 0..holders {
        let (b, p) = (&*board, &path);
        pids.push(fork_child(|| child(|| hold(b, p, h))).ctx("fork")?);
    }
    let (b, p) = (&*board, &path);
    pids.push(fork_child(|| child(|| grow(b, p, holders, growths))).ctx("fork")?);
    let exits = reap_all(&pids, deadline(120)).ctx("reap")?;
    expect_all_ok("growth child", &exits)?;
    let heap = Heap::open(&path).ctx("open")?;
    let g = heap.lock().ctx("lock")?;
    let st = g.stats();
    ensure!(
        st.capacity == initial + growths * STEP,
        "capacity {} after {growths} growths of {STEP}, wanted {}",
        st.capacity,
        initial + growths * STEP
    );
    ensure!(
        st.generation == 1 + growths,
        "generation {}, wanted {}",
        st.generation,
        1 + growths
    );
    for h in 0..holders as usize {
        ensure!(
            board.remaps[h].load(SeqCst) >= 1,
            "holder {h} never remapped ({} rounds)",
            board.rounds[h].load(SeqCst)
        );
    }
    let report = g.check();
    ensure!(report.is_clean(), "check: {:?}", report.violations);
    let live = verify_table(&g)?;
    ensure!(
        leaks(&g, &live) == (0, 0),
        "unreachable blocks: {:?}",
        leaks(&g, &live)
    );
    Ok(())
}

/// Holds HOLD blocks by offset, and keeps verifying and rewriting them while the heap grows
/// (and moves) under it.
fn hold(board: &GrowBoard, path: &Path, me: u64) -> TestResult {
    let heap = Heap::open_with(path, &probe(3)).ctx("open")?;
    let mut rng = Rng::new(seeded(200 + me));
    let mut mine = Vec::new();
    let c = {
        let mut g = heap.lock().ctx("lock")?;
        let (_, c) = ctl(&g)?;
        for col in 0..HOLD {
            let seed = rng.next_u64();
            let b = new_block(&mut g, rng.range(1, 2000), seed).ctx("alloc")?;
            publish(&mut g, &c, me, col, b).ctx("publish")?;
            mine.push((b, seed));
        }
        c
    };
    let mut base = heap.lock().ctx("lock")?.base_address();
    let mut after_done = 0;
    let start = Instant::now();
    while after_done < 3 {
        if board.grower_done.load(SeqCst) != 0 {
            after_done += 1;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(100),
            "the grower never finished"
        );
        let mut g = heap.lock().ctx("lock")?;
        if g.base_address() != base {
            base = g.base_address();
            board.remaps[me as usize].fetch_add(1, SeqCst);
        }
        let mut m = mine.iter().map(|&(b, s)| Some((b, s))).collect::<Vec<_>>();
        verify_mine(&g, &c, me, &m)?;
        let k = rng.below(HOLD) as usize;
        let (b, _) = mine[k];
        let len = check_block(&g, b)?.len;
        let seed = rng.next_u64();
        write_block(&mut g, b, len, seed).ctx("rewrite")?;
        mine[k].1 = seed;
        m[k] = Some((b, seed));
        verify_mine(&g, &c, me, &m)?;
        drop(g);
        board.rounds[me as usize].fetch_add(1, SeqCst);
        std::thread::sleep(Duration::from_micros(300));
    }
    let g = heap.lock().ctx("lock")?;
    ensure!(
        g.capacity() == board.final_capacity.load(SeqCst),
        "holder sees capacity {}, the grower ended at {}",
        g.capacity(),
        board.final_capacity.load(SeqCst)
    );
    Ok(())
}

fn grow(board: &GrowBoard, path: &Path, row: u64, growths: u64) -> TestResult {
    let heap = Heap::open_with(path, &probe(3)).ctx("open")?;
    let mut rng = Rng::new(seeded(300));
    for k in 0..growths {
        let mut g = heap.lock().ctx("lock")?;
        let (_, c) = ctl(&g)?;
        let before = g.capacity();
        g.grow_by(STEP).ctx("grow")?;
        ensure!(g.capacity() == before + STEP, "grew to {}", g.capacity());
        // Use the new room: a block as big as most of a step, replacing an older one.
        let col = k % HOLD;
        let old = row_entry(&g, &c, row, col)?;
        if old != 0 {
            publish(&mut g, &c, row, col, 0).ctx("unpublish")?;
            g.free(mapheap::Offset::<u8>::from_raw(old)).ctx("free")?;
        }
        let b = new_block(&mut g, STEP / 2, rng.next_u64()).ctx("alloc")?;
        publish(&mut g, &c, row, col, b).ctx("publish")?;
        drop(g);
        std::thread::sleep(Duration::from_millis(2));
    }
    board
        .final_capacity
        .store(heap.lock().ctx("lock")?.capacity(), SeqCst);
    board.grower_done.store(1, SeqCst);
    Ok(())
}

fn row_entry(g: &mapheap::HeapGuard<'_>, c: &Ctl, r: u64, col: u64) -> Result<u64, String> {
    Ok(row(g, c, r)?[col as usize])
}
