//! One transaction run against the heap and the model together (`Run`): each step is made
//! through the guard, its outcome compared with the model's prediction, the model updated,
//! and then the guard's whole view compared with the transaction's view.
//!
//! Invariant: `Run` lives outside the closure that may die (a crash unwinds out of a
//! store), so after a death it still says what the transaction had done (`t`), what was
//! committed (`c`), and whether the death came inside a commit (`committing`: the store
//! count when the commit began; its first store is the commit store, T2).

use mapheap::alloc::AllocError;
use mapheap::fault;
use mapheap::txn::TxnError;
use mapheap::{Error, Heap, HeapGuard, Offset};
use proptest::test_runner::TestCaseError;

use super::model::{Full, Txn, View, ENTRY};
use super::reference::{How, Op, NAMES};
use super::tally;
use super::verify::verify_view;
use crate::common::fail;

/// How a transaction run ends (a crash is a run that ends by dropping the guard, with a
/// death armed).
#[derive(Clone, Copy, Debug)]
pub enum End {
    Commit(How),
    Abort,
    Panic,
}

/// The payload of the panic a `Panic` step raises inside the guard.
pub struct Boom;

/// One transaction's run: the committed state, the transaction, the pattern seed.
pub struct Run {
    pub c: View,
    pub t: Txn,
    /// `fault::stores()` when a commit (drop, `commit`, `checkpoint`) began; `None` outside.
    pub committing: Option<u64>,
    pub seed: u64,
    pub log_cap: u64,
    pub log_block: u64,
    /// Whether its counts go to the run's report (not in a dry run, which repeats it).
    pub counting: bool,
}

type Res = Result<(), TestCaseError>;

/// Whether an outcome is the `LogFull` the model predicts.
pub(super) fn is_full(r: &mapheap::Result<impl Sized>, want: &Full) -> bool {
    matches!(r, Err(Error::Txn(TxnError::LogFull { needed, free, cap }))
        if *needed == want.needed && *cap == want.cap && free < needed)
}

impl Run {
    /// Counts for the run's report (not in a dry run, which repeats the real one).
    pub(super) fn count(&self, c: &tally::Counter) {
        if self.counting {
            tally::add(c);
        }
    }

    pub(super) fn next_seed(&mut self) -> u64 {
        self.seed += 1;
        self.seed
    }

    /// The transaction committed: its view is the committed state, and a new one begins.
    fn committed(&mut self) {
        self.c = self.t.p.clone();
        self.reset();
    }

    /// A new transaction over the committed state.
    pub fn reset(&mut self) {
        self.t = Txn::new(&self.c, self.log_cap);
        self.committing = None;
    }

    /// Runs `body` (steps with their index in the sequence) then `end`, under one guard.
    /// `verify`: compare the guard's view after every step (off in a dry run). A `Panic`
    /// end unwinds with [`Boom`].
    pub fn txn(&mut self, heap: &Heap, body: &[(usize, Op)], end: End, verify: bool) -> Res {
        let mut g = heap.lock().map_err(|e| fail(format!("lock: {e}")))?;
        if let Some(r) = g.recovered() {
            return Err(fail(format!("a clean heap's lock recovered: {r:?}")));
        }
        let r = self.body(&mut g, body, verify);
        if let Err(e) = r {
            // The guard commits on its way out: no armed death may fire there.
            fault::arm_store_unwind(None);
            drop(g);
            return Err(e);
        }
        match end {
            End::Commit(how) => {
                self.committing = Some(fault::stores());
                match how {
                    How::Drop => drop(g),
                    How::Commit => g.commit().map_err(|e| fail(format!("commit: {e}")))?,
                }
                self.committed();
                self.count(&tally::COMMITS);
            }
            End::Abort => {
                let u = g.abort().map_err(|e| fail(format!("abort: {e}")))?;
                let got = (u.bytes_restored, u.blocks_freed, u.entries);
                let want = self.t.undo();
                if got != want {
                    return Err(fail(format!(
                        "abort undid (bytes restored, blocks freed, entries) {got:?}, model {want:?}"
                    )));
                }
                self.reset();
                self.count(&tally::ABORTS);
            }
            End::Panic => std::panic::resume_unwind(Box::new(Boom)),
        }
        Ok(())
    }

    fn body(&mut self, g: &mut HeapGuard<'_>, body: &[(usize, Op)], verify: bool) -> Res {
        if verify {
            self.verify_txn(g)
                .map_err(|e| fail(format!("at the transaction's start: {e}")))?;
        }
        for (i, op) in body {
            self.count(&tally::STEPS);
            self.step(g, op)
                .and_then(|()| self.sync_log(g))
                .and_then(|()| if verify { self.verify_txn(g) } else { Ok(()) })
                .map_err(|e| fail(format!("step {i} {op:?}: {e}")))?;
        }
        Ok(())
    }

    /// Learns the sizes of the log's extension segments (the allocator's choice) and
    /// checks that the heap has exactly the segments the model made.
    fn sync_log(&mut self, g: &HeapGuard<'_>) -> Result<(), String> {
        let own = g.own_blocks();
        let segs = &mut self.t.log.segs;
        if own.len() != segs.len() || own[0] != self.log_block {
            return Err(format!(
                "the heap's own blocks are {own:x?}; the model's log has {} segments",
                segs.len()
            ));
        }
        for (i, &x) in own.iter().enumerate().skip(1) {
            let usable = g
                .usable_size(Offset::<u8>::from_raw(x))
                .map_err(|e| e.to_string())?;
            let cap = usable & !7;
            if cap < segs[i].1 {
                return Err(format!(
                    "extension {i} holds {cap} bytes, {} asked",
                    segs[i].1
                ));
            }
            segs[i].1 = cap;
        }
        Ok(())
    }

    fn verify_txn(&self, g: &HeapGuard<'_>) -> Result<(), String> {
        let used = g.log_usage().0;
        if used != self.t.log.len {
            return Err(format!("log usage {used} bytes, model {}", self.t.log.len));
        }
        verify_view(g, &self.t.p, &self.t.freeing)
    }

    fn step(&mut self, g: &mut HeapGuard<'_>, op: &Op) -> Result<(), String> {
        let largest = g.stats().largest_free;
        match *op {
            Op::Write {
                which,
                fresh,
                len,
                via,
            } => self.write(g, which, fresh, len, via, largest),
            Op::Alloc { size, align } => self.alloc(g, size, align, largest),
            Op::Free { which } => {
                let t = &self.t;
                let cands: Vec<u64> =
                    t.p.blocks
                        .keys()
                        .copied()
                        .filter(|&b| !t.p.rooted(b))
                        .collect();
                let Some(&off) = cands.get(which.index(cands.len().max(1))) else {
                    return Ok(());
                };
                let mut log = t.log.clone();
                let room = log.room(ENTRY, largest);
                let r = g.free(Offset::<u8>::from_raw(off));
                match (&room, &r) {
                    (Ok(_), Ok(())) => {
                        log.push(ENTRY);
                        self.t.p.blocks.remove(&off);
                        self.t.freeing.insert(off);
                        self.count(&tally::FREES);
                    }
                    (Err(full), _) if is_full(&r, full) => self.count(&tally::LOG_FULL),
                    _ => return Err(format!("free of {off:#x}: {r:?}, model: room {room:?}")),
                }
                self.t.log = log;
                Ok(())
            }
            Op::FreeAgain { which } => {
                let cands: Vec<u64> = self.t.freeing.iter().copied().collect();
                let Some(&off) = cands.get(which.index(cands.len().max(1))) else {
                    return Ok(());
                };
                match g.free(Offset::<u8>::from_raw(off)) {
                    Err(Error::Alloc(AllocError::DoubleFree { offset })) if offset == off => Ok(()),
                    r => Err(format!(
                        "second free of {off:#x}: {r:?}, expected DoubleFree"
                    )),
                }
            }
            Op::SetRoot {
                name,
                which,
                freeing,
            } => self.set_root(g, NAMES[name], which, freeing, largest),
            Op::RemoveRoot { name } => self.remove_root(g, NAMES[name], largest),
            Op::Checkpoint => {
                self.committing = Some(fault::stores());
                g.checkpoint().map_err(|e| format!("checkpoint: {e}"))?;
                self.committed();
                self.count(&tally::CHECKPOINTS);
                Ok(())
            }
            Op::Begin | Op::Commit(_) | Op::Abort | Op::Panic | Op::Crash { .. } => {
                unreachable!("{op:?} is not a step inside a transaction")
            }
        }
    }
}
