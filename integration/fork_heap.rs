//! Fork tests on real file mappings, without deaths: contention across processes, processes
//! that map the heap at different addresses sharing one offset graph, growth while others
//! are attached, and opening a heap while another process (re)creates it.
//!
//! `harness = false`: this binary owns `main` and stays single-threaded, so forking is safe;
//! children attach afresh and leave through `_exit`; the parent reaps every child with a
//! deadline and SIGKILLs stragglers. Re-executed children (`MAPHEAP_FORK_ROLE`) map the
//! file by themselves at addresses the test chooses. `MAPHEAP_FORK_SCALE=N` makes runs
//! longer. Prints `N passed, M failed`; exits non-zero on any failure. See docs/fork-tests.md.

mod fork_support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use fork_support::*;
use mapheap::mutant::{self, Mutant};
use mapheap::stress::graph::{Graph, NoJournal, OpKind};
use mapheap::stress::procs::spin;
use mapheap::stress::procs::Exit;
use mapheap::{CreateOptions, Error, Heap, OpenOptions};

fn main() -> ExitCode {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        return child_role(&role);
    }
    let mut s = Suite::new("fork_heap");
    s.run("contention_counters_and_blocks_are_exact", contention);
    s.run(
        "different_addresses_share_one_offset_graph",
        different_addresses,
    );
    s.run(
        "growth_while_attached_keeps_every_offset",
        growth_while_attached,
    );
    s.run(
        "open_while_creating_never_sees_a_half_made_file",
        create_vs_open,
    );
    s.run("no_lost_wakeup_with_a_30s_probe", no_lost_wakeup);
    s.run("mutant_futex_private_is_caught_by_a_stalled_waiter", || {
        mutant_storm(Mutant::FutexPrivate)
    });
    s.run(
        "mutant_unlock_without_wake_is_caught_by_a_stalled_waiter",
        || mutant_storm(Mutant::UnlockWithoutWake),
    );
    s.run(
        "mutant_absolute_address_is_caught_across_mappings",
        mutant_absolute_address,
    );
    s.run(
        "mutant_wrong_base_is_caught_after_growth_moves_the_mapping",
        mutant_wrong_base,
    );
    s.run(
        "mutant_create_in_place_is_caught_by_concurrent_openers",
        mutant_create_in_place,
    );
    s.finish()
}

fn child_role(role: &str) -> ExitCode {
    mapheap::mutant::init_from_env();
    let code = match role {
        "graph-worker" => graph_worker(),
        "hold-through-growth" => hold_through_growth(),
        other => Err(format!("unknown role {other}")),
    };
    match code {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("child {role} (pid {}): {e}", std::process::id());
            ExitCode::from(1)
        }
    }
}

/// A forked child's body: `Err` is printed and becomes exit status 1.
fn child(f: impl FnOnce() -> TestResult) -> i32 {
    match f() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("child {}: {e}", std::process::id());
            1
        }
    }
}

// ---- contention -------------------------------------------------------------------------

const COLS: u64 = 16;

fn contention() -> TestResult {
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
        st.used_blocks == 2 && st.free_blocks == 1,
        "after every child freed its blocks: {} used, {} free blocks (wanted the root, its table and one free block)",
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

/// Every block this process was told it owns is published where it put it and intact.
fn verify_mine(
    g: &mapheap::HeapGuard<'_>,
    c: &Ctl,
    me: u64,
    mine: &[Option<(u64, u64)>],
) -> TestResult {
    let r = row(g, c, me)?;
    for (col, m) in mine.iter().enumerate() {
        let want = m.map_or(0, |(b, _)| b);
        ensure!(
            r[col] == want,
            "row {me} col {col} holds {:#x}, wanted {want:#x}",
            r[col]
        );
        if let Some((b, seed)) = m {
            let h = check_block(g, *b)?;
            ensure!(h.seed == *seed, "block {b:#x}: seed {} != {seed}", h.seed);
        }
    }
    Ok(())
}

// ---- different addresses ----------------------------------------------------------------

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
fn graph_worker() -> TestResult {
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

fn different_addresses() -> TestResult {
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

// ---- growth while attached --------------------------------------------------------------

#[repr(C)]
struct GrowBoard {
    grower_done: AtomicU32,
    final_capacity: AtomicU64,
    remaps: [AtomicU64; 16],
    rounds: [AtomicU64; 16],
}

const STEP: u64 = 64 << 10;
const HOLD: u64 = 8;

fn growth_while_attached() -> TestResult {
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

// ---- create while others open -----------------------------------------------------------

#[repr(C)]
struct RaceBoard {
    creator_done: AtomicU32,
    ok: AtomicU64,
    not_found: AtomicU64,
    format: AtomicU64,
    other: AtomicU64,
}

struct Race {
    ok: u64,
    not_found: u64,
    format: u64,
    other: u64,
    /// Openers that died (a mapping shrunk under them is SIGBUS).
    died: usize,
    leftovers: Vec<String>,
}

/// One process re-creates the heap (overwrite) again and again while others open it.
fn race(mutant: Option<Mutant>) -> Result<Race, String> {
    let openers = (3 * scale()).min(16);
    let creations = 150 * scale();
    let dir = tempfile::tempdir().ctx("tempdir")?;
    let path = dir.path().join("race.heap");
    // SAFETY: RaceBoard is atomics only; all-zero is its initial state.
    let board: Shared<RaceBoard> = unsafe { Shared::zeroed() }.ctx("shm")?;
    let mut pids = Vec::new();
    for _ in 0..openers {
        let (b, p) = (&*board, &path);
        pids.push(fork_child(|| child(|| open_loop(b, p))).ctx("fork")?);
    }
    let (b, p) = (&*board, &path);
    let creator = fork_child(|| {
        mutant::set_process(mutant);
        child(|| create_loop(b, p, creations))
    })
    .ctx("fork")?;
    let end = deadline(120);
    let e = reap(creator, end).ctx("reap")?;
    ensure!(e.ok(), "the creator ended with {e:?}");
    board.creator_done.store(1, SeqCst);
    let exits = reap_all(&pids, end).ctx("reap")?;
    let died = exits
        .iter()
        .filter(|e| matches!(e, Exit::Signaled(_)))
        .count();
    ensure!(
        exits
            .iter()
            .all(|e| e.ok() || matches!(e, Exit::Signaled(_))),
        "an opener failed: {exits:?}"
    );
    let mut leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .ctx("readdir")?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    leftovers.retain(|n| n != "race.heap");
    Ok(Race {
        ok: board.ok.load(SeqCst),
        not_found: board.not_found.load(SeqCst),
        format: board.format.load(SeqCst),
        other: board.other.load(SeqCst),
        died,
        leftovers,
    })
}

fn create_vs_open() -> TestResult {
    let r = race(None)?;
    let openers = (3 * scale()).min(16);
    ensure!(
        r.format == 0,
        "{} opens saw a half-made file (Format error)",
        r.format
    );
    ensure!(r.other == 0, "{} opens failed otherwise", r.other);
    ensure!(r.died == 0, "{} openers died", r.died);
    ensure!(
        r.ok >= openers,
        "only {} clean opens ({} not found): each opener's last open must succeed",
        r.ok,
        r.not_found
    );
    ensure!(
        r.leftovers.is_empty(),
        "temporary files left behind: {:?}",
        r.leftovers
    );
    note(format!(
        "{} clean opens, {} before the first creation",
        r.ok, r.not_found
    ));
    Ok(())
}

fn mutant_create_in_place() -> TestResult {
    let r = race(Some(Mutant::CreateInPlace))?;
    ensure!(
        r.format > 0 || r.died > 0,
        "CreateInPlace not caught: {} clean opens, no Format error, no opener died",
        r.ok
    );
    note(format!(
        "caught: {} opens saw a half-made file, {} openers died of a signal",
        r.format, r.died
    ));
    Ok(())
}

fn create_loop(board: &RaceBoard, path: &Path, n: u64) -> TestResult {
    for i in 0..n {
        let mut o = CreateOptions::new((64 << 10) + (i % 4) * (16 << 10));
        o.overwrite = true;
        o.open = probe(3);
        let heap = Heap::create_with(path, &o).ctx("create")?;
        let mut g = heap.lock().ctx("lock")?;
        g.find_or_init("generation", || i).ctx("root")?;
    }
    board.creator_done.store(1, SeqCst);
    Ok(())
}

fn open_loop(board: &RaceBoard, path: &Path) -> TestResult {
    loop {
        let done = board.creator_done.load(SeqCst) != 0;
        match Heap::open_with(path, &probe(3)) {
            Ok(h) => {
                let report = h.check().ctx("check")?;
                if report.is_clean() {
                    board.ok.fetch_add(1, SeqCst);
                } else {
                    eprintln!(
                        "opener saw a heap that is not clean: {:?}",
                        report.violations
                    );
                    board.format.fetch_add(1, SeqCst);
                }
            }
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                board.not_found.fetch_add(1, SeqCst);
            }
            Err(Error::Format { .. }) => {
                board.format.fetch_add(1, SeqCst);
            }
            Err(e) => {
                eprintln!("opener saw: {e}");
                board.other.fetch_add(1, SeqCst);
            }
        }
        if done {
            return Ok(());
        }
    }
}

// ---- lost wake-ups ----------------------------------------------------------------------

#[repr(C)]
struct StormBoard {
    go: AtomicU32,
}

struct Storm {
    exits: Vec<Exit>,
    elapsed: Duration,
    counter: Option<u64>,
}

/// `n` processes take the lock `iters` times each with a 30 s probe interval: a waiter
/// whose wake-up is lost sleeps 30 s, far past `limit`.
fn storm(mutant: Option<Mutant>, n: u64, iters: u64, limit: Duration) -> Result<Storm, String> {
    let (_dir, path) = fresh_heap(1 << 20)?;
    {
        let heap = Heap::open(&path).ctx("open")?;
        init_ctl(&mut heap.lock().ctx("lock")?, 1, 1).ctx("init")?;
    }
    // SAFETY: StormBoard is atomics only; all-zero is its initial state.
    let board: Shared<StormBoard> = unsafe { Shared::zeroed() }.ctx("shm")?;
    let mut pids = Vec::new();
    for c in 0..n {
        let (b, p) = (&*board, &path);
        pids.push(
            fork_child(|| {
                mutant::set_process(mutant);
                child(|| {
                    let heap = attach(p, 30_000);
                    let mut rng = Rng::new(seeded(500 + c));
                    while b.go.load(SeqCst) == 0 {
                        std::hint::spin_loop();
                    }
                    for _ in 0..iters {
                        let mut g = heap.lock().ctx("lock")?;
                        let (off, c) = ctl(&g)?;
                        let v = c.counters[0];
                        spin(rng.below(200) as u32);
                        g.get_mut(off).ctx("ctl")?.counters[0] = v + 1;
                    }
                    Ok(())
                })
            })
            .ctx("fork")?,
        );
    }
    let t0 = Instant::now();
    board.go.store(1, SeqCst);
    let exits = reap_all(&pids, t0 + limit).ctx("reap")?;
    let elapsed = t0.elapsed();
    let counter = if exits.iter().all(|e| e.ok()) {
        let heap = Heap::open(&path).ctx("open")?;
        let g = heap.lock().ctx("lock")?;
        Some(ctl(&g)?.1.counters[0])
    } else {
        None
    };
    Ok(Storm {
        exits,
        elapsed,
        counter,
    })
}

const STORM_N: u64 = 4;
const STORM_ITERS: u64 = 4000;

fn no_lost_wakeup() -> TestResult {
    let s = storm(None, STORM_N, STORM_ITERS, Duration::from_secs(25))?;
    expect_all_ok("storm child", &s.exits)?;
    ensure!(
        s.counter == Some(STORM_N * STORM_ITERS),
        "counter {:?}, wanted {}",
        s.counter,
        STORM_N * STORM_ITERS
    );
    note(format!(
        "{} processes x {STORM_ITERS} locks with a 30 s probe: {:.2} s",
        STORM_N,
        s.elapsed.as_secs_f64()
    ));
    Ok(())
}

/// A lost cross-process wake-up leaves a waiter asleep for the whole 30 s probe interval:
/// the run cannot finish within 5 s (the correct code does it in well under a second).
fn mutant_storm(m: Mutant) -> TestResult {
    let limit = Duration::from_secs(5);
    let s = storm(Some(m), STORM_N, STORM_ITERS, limit)?;
    let stalled = s.exits.iter().filter(|e| **e == Exit::TimedOut).count();
    ensure!(
        stalled > 0,
        "{m:?} not caught: every process finished in {:.2} s ({:?})",
        s.elapsed.as_secs_f64(),
        s.exits
    );
    note(format!(
        "caught: {stalled} of {STORM_N} processes still asleep after {:.1} s",
        limit.as_secs_f64()
    ));
    Ok(())
}

// ---- mutants across mappings ------------------------------------------------------------

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

fn mutant_absolute_address() -> TestResult {
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
fn hold_through_growth() -> TestResult {
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

fn mutant_wrong_base() -> TestResult {
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
