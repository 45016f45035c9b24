//! The README's example, examples/transfer.rs (included as a module: this is its code),
//! killed in the middle of transfers: at every store a `move` process makes to the file
//! (`fault::arm_store_kill`), and by the parent's SIGKILL at random instants of `loop`.
//! After each death a fresh handle takes the lock over: the total must be what it was,
//! and the balances those before or after the transfer the death interrupted.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use mapheap::fault;
use mapheap::stress::procs;
use mapheap::Heap;

use crate::ensure;
use crate::fork_support::*;
use crate::transfer_example as example;

const EACH: u64 = 100;

fn args(path: &Path, rest: &[&str]) -> Vec<String> {
    std::iter::once(path.display().to_string())
        .chain(rest.iter().map(|s| s.to_string()))
        .collect()
}

fn setup() -> Result<(tempfile::TempDir, std::path::PathBuf), String> {
    let dir = tempfile::tempdir().ctx("tempdir")?;
    let path = dir.path().join("bank.heap");
    example::run(&args(&path, &["init", &EACH.to_string()])).map_err(|e| format!("init: {e}"))?;
    Ok((dir, path))
}

/// After a death: a fresh handle takes over; returns the balances and whether the
/// recovery rolled back a transaction (`Some(true)`), finished one (`Some(false)`), or
/// found none (`None`). `check()` must be clean and the total intact.
fn after_death(path: &Path) -> Result<([u64; 2], Option<bool>), String> {
    let heap = Heap::open_with(path, &probe(1)).ctx("open after the kill")?;
    let undone = {
        let g = heap.lock().ctx("lock")?;
        let report = g.check();
        ensure!(report.is_clean(), "check: {:?}", report.violations);
        let r = heap.recovered_at_open().or(g.recovered());
        r.and_then(|r| r.undone).map(|u| !u.committed)
    };
    let bal = example::balances(&heap).map_err(|e| format!("balances: {e}"))?;
    ensure!(
        bal[0] + bal[1] == 2 * EACH,
        "after a kill the accounts hold {bal:?}: total {}, not {}",
        bal[0] + bal[1],
        2 * EACH
    );
    Ok((bal, undone))
}

/// `move alice bob 1`, killed right after its k-th store to the file, for every k.
pub fn kill_at_every_store() -> TestResult {
    let (_dir, path) = setup()?;
    let mv = args(&path, &["move", "alice", "bob", "1"]);
    // SAFETY: an AtomicU64 is sound to share between processes, and zero is a valid one.
    let stores: Shared<AtomicU64> = unsafe { Shared::zeroed() }.ctx("shm")?;
    let pid = fork_child(|| {
        fault::count_stores();
        let ok = example::run(&mv).is_ok();
        stores.store(fault::stores(), SeqCst);
        i32::from(!ok)
    })
    .ctx("fork")?;
    let e = reap(pid, deadline(10)).ctx("reap")?;
    ensure!(e.ok(), "the counting run ended with {e:?}");
    let n = stores.load(SeqCst);
    ensure!(n >= 4, "a whole `move` process made only {n} stores");
    let mut state = [EACH - 1, EACH + 1];
    let (mut rolled_back, mut finished, mut moved) = (0, 0, 0);
    for k in 1..=n {
        let pid = fork_child(|| {
            fault::arm_store_kill(Some(k));
            let _ = example::run(&mv);
            0
        })
        .ctx("fork")?;
        let e = reap(pid, deadline(10)).ctx("reap")?;
        ensure!(e.killed(), "killed at store {k} of {n}: ended with {e:?}");
        let (bal, undone) = after_death(&path).map_err(|e| format!("store {k} of {n}: {e}"))?;
        let after = [state[0] - 1, state[1] + 1];
        ensure!(
            bal == state || bal == after,
            "killed at store {k} of {n}: balances {bal:?}, wanted {state:?} or {after:?}"
        );
        match undone {
            Some(true) => rolled_back += 1,
            Some(false) => finished += 1,
            None => {}
        }
        moved += u64::from(bal == after);
        state = bal;
    }
    ensure!(
        rolled_back >= 1 && moved >= 1,
        "{n} kills: {rolled_back} transfers rolled back, {moved} made: the kills missed the \
         transaction"
    );
    note(format!(
        "{n} kills, one after each store of a `move` process: {rolled_back} left a \
         half-made transfer (rolled back), {finished} a committed one (finished by the \
         recoverer); the transfer was made in {moved} cases, not in {}; total {} every time",
        n - moved,
        2 * EACH
    ));
    Ok(())
}

/// `loop` SIGKILLed by the parent at random instants.
pub fn random_sigkills() -> TestResult {
    let (_dir, path) = setup()?;
    let lp = args(&path, &["loop", "1000000000000"]);
    let rounds = 300 * scale();
    let mut rng = Rng::new(seeded(0x7472));
    let (mut rolled_back, mut finished) = (0, 0);
    let mut prev = [EACH; 2];
    let mut changed = 0;
    for r in 0..rounds {
        let pid = fork_child(|| i32::from(example::run(&lp).is_err())).ctx("fork")?;
        std::thread::sleep(Duration::from_micros(rng.range(1_000, 6_000)));
        procs::kill9(pid);
        let e = reap(pid, deadline(10)).ctx("reap")?;
        ensure!(
            e.killed(),
            "round {r}: `loop` ended with {e:?} before the kill"
        );
        let (bal, undone) = after_death(&path).map_err(|e| format!("round {r}: {e}"))?;
        match undone {
            Some(true) => rolled_back += 1,
            Some(false) => finished += 1,
            None => {}
        }
        changed += u64::from(bal != prev);
        prev = bal;
    }
    ensure!(
        changed >= rounds / 2,
        "the balances changed in only {changed} of {rounds} rounds: `loop` hardly ran"
    );
    ensure!(
        rolled_back >= 1,
        "none of {rounds} kills landed inside a transfer ({finished} finished)"
    );
    note(format!(
        "{rounds} SIGKILLs of `loop`: {rolled_back} half-made transfers rolled back, \
         {finished} finished; total {} every time",
        2 * EACH
    ));
    Ok(())
}

/// The transfer README.md shows is `transfer` in examples/transfer.rs, line for line (code
/// and comments, indentation and comment alignment aside): what the tests above kill is
/// what the README promises.
pub fn readme_snippet_is_the_example() -> TestResult {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).ctx(p);
    let (readme, example) = (read("README.md")?, read("examples/transfer.rs")?);
    let norm = |l: &str| {
        let (code, comment) = l.split_once("//").unwrap_or((l, ""));
        (code.trim().to_string(), comment.trim().to_string())
    };
    let block = readme
        .split("```")
        .find(|b| b.starts_with("rust\n") && b.contains("balance += amount"))
        .ok_or("README.md has no rust block with a transfer")?;
    let snippet: Vec<_> = block.lines().skip(1).map(norm).collect();
    let code: Vec<_> = example.lines().map(norm).collect();
    ensure!(
        snippet.len() >= 8,
        "the README's transfer is {} lines",
        snippet.len()
    );
    ensure!(
        code.windows(snippet.len()).any(|w| w == snippet),
        "README.md's transfer ({} lines, from `{}`) is not a run of lines of \
         examples/transfer.rs: copy the body of `transfer` again",
        snippet.len(),
        snippet[0].0
    );
    Ok(())
}
