//! Opening a heap while another process (re)creates it: an opener sees a whole heap or no
//! file, never a half-made one (M1); `CreateInPlace` shows the check can fail.

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

use mapheap::mutant::{self, Mutant};
use mapheap::stress::procs::Exit;
use mapheap::{CreateOptions, Error, Heap};

use crate::ensure;
use crate::fork_support::*;

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
    /// How the openers that failed otherwise ended (an error, or a panic: under
    /// `CreateInPlace` the creator can zero the lock word of a heap an opener holds, and the
    /// opener's unlock then finds it does not own the lock).
    failed: Vec<Exit>,
    /// How the creator ended: under `CreateInPlace` it can itself meet the damage an
    /// opener's attach did to the half-made file, which is the mutant caught too.
    creator: Exit,
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
    let creator = reap(creator, end).ctx("reap")?;
    board.creator_done.store(1, SeqCst);
    let exits = reap_all(&pids, end).ctx("reap")?;
    let died = exits
        .iter()
        .filter(|e| matches!(e, Exit::Signaled(_)))
        .count();
    let failed: Vec<Exit> = exits
        .iter()
        .filter(|e| !e.ok() && !matches!(e, Exit::Signaled(_)))
        .cloned()
        .collect();
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
        failed,
        creator,
        leftovers,
    })
}

pub fn create_vs_open() -> TestResult {
    let r = race(None)?;
    let openers = (3 * scale()).min(16);
    ensure!(r.creator.ok(), "the creator ended with {:?}", r.creator);
    ensure!(r.failed.is_empty(), "openers failed: {:?}", r.failed);
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

/// A race sees the mutant only when an opener looks at the wrong moment, so it gets up to
/// three races (the deterministic check is `heap::mutant_tests::
/// mutant_create_in_place_is_caught_by_a_death_after_every_store`).
pub fn mutant_create_in_place() -> TestResult {
    let mut clean_opens = Vec::new();
    for attempt in 1..=3 {
        let r = race(Some(Mutant::CreateInPlace))?;
        ensure!(
            r.creator != Exit::TimedOut,
            "the creator hung under CreateInPlace (a hang is not a catch)"
        );
        if r.format > 0 || r.died > 0 || !r.failed.is_empty() || !r.creator.ok() {
            note(format!(
                "caught in race {attempt}: {} opens saw a half-made file, {} openers died of a signal, {} failed ({:?}), the creator ended with {:?}",
                r.format, r.died, r.failed.len(), r.failed, r.creator
            ));
            return Ok(());
        }
        clean_opens.push(r.ok);
    }
    Err(format!(
        "CreateInPlace not caught in 3 races: {clean_opens:?} clean opens, no Format error, no opener died or failed, the creator ended well"
    ))
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
            Ok(h) => match h.check() {
                Ok(report) if report.is_clean() => {
                    board.ok.fetch_add(1, SeqCst);
                }
                Ok(report) => {
                    eprintln!(
                        "opener saw a heap that is not clean: {:?}",
                        report.violations
                    );
                    board.format.fetch_add(1, SeqCst);
                }
                // A heap that opened but cannot even be checked (its lock or its log
                // refused) is a half-made file too: counted, not the opener's failure (the
                // mutant's race once failed so instead of being caught, under load).
                Err(e) => {
                    eprintln!("opener could not check the heap it opened: {e}");
                    board.format.fetch_add(1, SeqCst);
                }
            },
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
