//! The transaction model's critical section: what each model thread does holding the lock,
//! and how it dies.
//!
//! Holding the lock, a thread first recovers if it took the lock over from a dead owner or
//! finds leftovers (`heap::leftovers`, the condition `HeapGuard::new` uses), with
//! `heap::recover_arena`, the sequence `HeapGuard` runs; checks that the heap equals the
//! committed model; then runs one transaction through `txn::Tx`.
//!
//! Deaths: every store of the heap passes `fault::stored`, whose thread-locals all model
//! threads share (shuttle runs them as coroutines on one OS thread), so arming
//! `fault::arm_store_unwind(Some(k))` kills whichever thread makes the k-th store from now,
//! counted across threads. `k` is drawn from shuttle's random source (part of the schedule:
//! a replay dies at the same store). After a death the next `k` is drawn again, half the time
//! small enough to fall in the recovery that follows, so a recoverer dies in the rollback of
//! a transaction another thread died in. A dying thread unwinds with `fault::Crashed`, is
//! caught here, and dies holding the lock as the world's deaths do.
//!
//! Invariant (the reference): a transaction that committed alive, or died after its commit
//! store (the store count at death past the count just before `Tx::commit`, T2), is in the
//! model; one that died before it is not; every recovery's `Undone::committed` agrees.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use mapheap::alloc::Arena;
use mapheap::fault::{self, Crashed};
use mapheap::heap::{leftovers, recover_arena};
use mapheap::sync::{Acquired, OwnerId};
use mapheap::txn::{Tx, LOG_COMMITTED, LOG_LEN_MASK};
use shuttle::rand::Rng;

use super::heap::{self, Buf, Layout, Model, Op, Txn, CELLS};
use crate::world::Section;

/// The first death falls in the first `SPAN` stores of an execution (a transaction makes
/// about 15 to 65 stores, ten transactions about 400), so most executions see one, and
/// some none.
const SPAN: u64 = 600;
/// Half the later deaths fall in this range of stores after the last death: in the
/// recovery of it, past most of its allocator repair (about 40 stores), inside its
/// rollback (5 to 40).
const RECOVERY_SPAN: (u64, u64) = (30, 90);
/// Deaths per execution at most.
const MAX_DEATHS: u32 = 3;

/// What the executions did, summed up.
#[derive(Clone, Copy, Debug, Default)]
pub struct TxnStats {
    pub executions: u64,
    /// Transactions that committed alive.
    pub committed: u64,
    /// Threads that died inside a transaction.
    pub died_in_txn: u64,
    /// Of those, after the commit store (the recovery finishes them).
    pub died_after_commit: u64,
    /// Recoverers that died inside a rollback (after it had lowered `log.len`).
    pub died_in_rollback: u64,
    /// Recoverers that died elsewhere in a recovery (the allocator's repair, the rollback
    /// before its first `log.len` store, the finishing of a committed transaction).
    pub died_in_recovery: u64,
    /// Recoveries that rolled a transaction back.
    pub rolled_back: u64,
    /// Recoveries that finished a committed transaction.
    pub finished: u64,
    /// Transactions that chained an extension segment and committed alive.
    pub extended: u64,
    /// Newcomers that claimed a dead thread's slot (the world's count).
    pub newcomers: u64,
}

impl TxnStats {
    pub fn add(&mut self, o: &TxnStats) {
        self.executions += o.executions;
        self.committed += o.committed;
        self.died_in_txn += o.died_in_txn;
        self.died_after_commit += o.died_after_commit;
        self.died_in_rollback += o.died_in_rollback;
        self.died_in_recovery += o.died_in_recovery;
        self.rolled_back += o.rolled_back;
        self.finished += o.finished;
        self.extended += o.extended;
        self.newcomers += o.newcomers;
    }
}

/// One execution's bookkeeping (std types: no schedule points; never held across a store
/// of the heap, which may unwind).
struct Exec {
    /// The committed state.
    model: Model,
    /// A transaction died and no recovery has completed since: whether its commit store was
    /// made.
    pending: Option<bool>,
    deaths: u32,
    /// Transactions started (for unique values).
    started: u64,
    stats: TxnStats,
}

/// The heap of one execution, and what its threads do with it.
pub struct HeapSection {
    buf: Buf,
    layout: Layout,
    exec: Mutex<Exec>,
}

/// A number in `lo..=hi` from shuttle's random source.
fn draw((lo, hi): (u64, u64)) -> u64 {
    shuttle::rand::thread_rng().gen_range(lo..=hi)
}

/// The `Crashed` a simulated death unwinds with; any other panic goes on.
fn crashed(p: Box<dyn std::any::Any + Send>) -> Box<Crashed> {
    p.downcast::<Crashed>()
        .unwrap_or_else(|p| panic::resume_unwind(p))
}

impl HeapSection {
    /// A fresh heap with its structure, and the first death armed. Runs inside the
    /// execution (it draws from shuttle's random source).
    pub fn new() -> HeapSection {
        // Disarmed while the heap is made: an execution that failed may have left it armed.
        fault::arm_store_unwind(None);
        let (buf, layout, model) = heap::create();
        fault::arm_store_unwind(Some(draw((1, SPAN))));
        HeapSection {
            buf,
            layout,
            exec: Mutex::new(Exec {
                model,
                pending: None,
                deaths: 0,
                started: 0,
                stats: TxnStats {
                    executions: 1,
                    ..TxnStats::default()
                },
            }),
        }
    }

    fn exec(&self) -> MutexGuard<'_, Exec> {
        self.exec.lock().unwrap()
    }

    pub fn stats(&self) -> TxnStats {
        self.exec().stats
    }

    /// This thread died: ends the dying state, and arms the next death.
    fn died(&self) {
        fault::arm_store_unwind(None);
        let mut e = self.exec();
        e.deaths += 1;
        if e.deaths < MAX_DEATHS {
            let span = if draw((0, 1)) == 0 {
                RECOVERY_SPAN
            } else {
                (1, SPAN)
            };
            fault::arm_store_unwind(Some(draw(span)));
        }
    }

    /// Runs the production recovery. Returns `false` if the thread died in it.
    fn recover(&self, a: &mut Arena<'_>, got: Acquired) -> bool {
        let dead = match got {
            Acquired::Recovered { dead } => Some(dead),
            Acquired::Clean => None,
        };
        let log0 = a.state().log.len;
        match panic::catch_unwind(AssertUnwindSafe(|| recover_arena(a, dead))) {
            Ok(Ok(r)) => {
                let mut e = self.exec();
                if let (Some(committed), Some(u)) = (e.pending, r.undone) {
                    assert_eq!(
                        u.committed,
                        committed,
                        "the recovery says committed = {} of a transaction whose commit \
                         store was {}made: {u:?}",
                        u.committed,
                        if committed { "" } else { "not " }
                    );
                }
                match r.undone {
                    Some(u) if u.committed => e.stats.finished += 1,
                    Some(_) => e.stats.rolled_back += 1,
                    None => {}
                }
                e.pending = None;
                true
            }
            Ok(Err(err)) => panic!("the recovery failed: {err}"),
            Err(p) => {
                crashed(p);
                let now = a.state().log.len & LOG_LEN_MASK;
                let mut e = self.exec();
                if log0 & LOG_COMMITTED == 0 && now < log0 {
                    e.stats.died_in_rollback += 1;
                } else {
                    e.stats.died_in_recovery += 1;
                }
                drop(e);
                self.died();
                false
            }
        }
    }

    /// The transaction this thread runs: a transfer and one change of the structure.
    fn next_txn(&self) -> Txn {
        let mut r = shuttle::rand::thread_rng();
        let from = r.gen_range(0..CELLS);
        let to = (from + r.gen_range(1..CELLS)) % CELLS;
        let amount = r.gen_range(1..=40);
        let kind = r.gen_range(0..4);
        let mut e = self.exec();
        e.started += 1;
        let v = 1000 + e.started;
        let op = match kind {
            0 => Op::Push(v),
            1 => Op::Pop,
            2 => Op::Replace(v),
            _ => Op::Stamp(v),
        };
        Txn {
            from,
            to,
            amount,
            op,
        }
    }
}

impl Section for HeapSection {
    fn run(&self, _me: OwnerId, got: Acquired) -> bool {
        let mut a = self.buf.arena();
        if (got.recovered() || leftovers(&a)) && !self.recover(&mut a, got) {
            return false;
        }
        let model = self.exec().model.clone();
        heap::verify(&a, self.layout, &model, "when a thread took the lock");
        let t = self.next_txn();
        let after = model.after(&t);
        let mut committing = None;
        let mut tx = Tx::default();
        let r = panic::catch_unwind(AssertUnwindSafe(|| {
            heap::run(&mut a, &mut tx, self.layout, &t, &mut committing)
        }));
        match r {
            Ok(Ok(())) => {
                let mut e = self.exec();
                e.model = after;
                e.stats.committed += 1;
                e.stats.extended += u64::from(matches!(t.op, Op::Stamp(_)));
                true
            }
            Ok(Err(err)) => panic!("transaction {t:?} failed: {err}"),
            Err(p) => {
                let c = crashed(p);
                let committed = committing.is_some_and(|s0| c.store > s0);
                let mut e = self.exec();
                if committed {
                    e.model = after;
                    e.stats.died_after_commit += 1;
                }
                e.stats.died_in_txn += 1;
                e.pending = Some(committed);
                drop(e);
                self.died();
                false
            }
        }
    }

    fn last(&self, _me: OwnerId, got: Acquired) {
        fault::arm_store_unwind(None);
        let mut a = self.buf.arena();
        if got.recovered() || leftovers(&a) {
            assert!(
                self.recover(&mut a, got),
                "the final recovery died (disarmed)"
            );
        }
        let e = self.exec();
        assert_eq!(e.pending, None, "a dead transaction was never recovered");
        let model = e.model.clone();
        drop(e);
        heap::verify(&a, self.layout, &model, "at the end");
    }
}
