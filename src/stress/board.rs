//! The scoreboard of a stress run, in shared memory (see [`super::shm`]): what the parent
//! and every worker tell each other without taking the heap's lock.
//!
//! * `reg[s]`: who holds heap attachment slot `s` (worker serial and owner id, one word),
//!   so a worker that takes over a dead owner's lock can say whom it recovered from.
//! * `killed_ns[serial % KILL_RING]`: when the parent sent SIGKILL to a worker (written
//!   before the kill), for the takeover latency.
//! * `pending[s]` and `mirror`: the journal of directory stores. A worker records each
//!   store of its transaction in `pending[s]` (slot, old, new) just before it makes it, and
//!   once the transaction has committed, still under the lock, writes every `new` to
//!   `mirror` and clears its records. So under the lock no other live worker has pending
//!   records, and a lock holder that sees some knows their writer died inside its
//!   transaction and settles them: the directory must hold every `old` (rolled back) or
//!   every `new` (committed), never a mix (a torn transaction, S5), and the mirror takes
//!   what it holds. Outside such records, mirror and directory must always agree; a store
//!   lost, undone after its commit, or made by two holders at once breaks that.
//! * `first_ops`: the kinds of the first [`FIRST_OPS`] operations of worker 0, so a run can
//!   show which operations its seed chose (with one worker and no kills, the same seed
//!   chooses the same ones).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::*};

use super::graph::{Done, Graph, Journal, OpKind};
use super::procs::mono_ns;
use crate::heap::Recovery;
use crate::sync::OwnerId;
use crate::{HeapGuard, Result};

/// Heap attachment slots the board tracks (the heap's `SLOT_COUNT`).
pub const SLOTS: usize = crate::format::SLOT_COUNT as usize;
/// Most directory slots a run may use.
pub const MAX_DIR: usize = 1 << 14;
/// Takeover latency samples kept (the newest ones).
pub const LAT_CAP: usize = 1 << 16;
/// Kill times kept, by worker serial.
pub const KILL_RING: usize = 1 << 16;
/// Operations of worker 0 whose kinds are recorded.
pub const FIRST_OPS: usize = 64;
const MSGS: usize = 8;
const MSG_LEN: usize = 240;

/// Directory stores one transaction may make (a replace makes two).
pub const TX_STORES: usize = 4;

/// A journal record of one directory store of a transaction not yet committed.
#[repr(C)]
pub struct Rec {
    slot: AtomicU64,
    old: AtomicU64,
    new: AtomicU64,
}

/// A worker's records of its transaction's directory stores.
#[repr(C)]
pub struct Pending {
    n: AtomicU64,
    recs: [Rec; TX_STORES],
}

/// The shared scoreboard.
#[repr(C)]
pub struct Board {
    /// Set by the parent at the end: workers finish their operation and exit 0.
    pub stop: AtomicU32,
    ops: [AtomicU64; 5],
    grows: AtomicU64,
    recoveries: AtomicU64,
    recoveries_at_open: AtomicU64,
    unattributed: AtomicU64,
    reconciled: AtomicU64,
    torn: AtomicU64,
    violations: AtomicU64,
    panics: AtomicU64,
    msg_next: AtomicU32,
    msgs: [[AtomicU8; MSG_LEN]; MSGS],
    lat_n: AtomicU64,
    lat: [AtomicU64; LAT_CAP],
    killed_ns: [AtomicU64; KILL_RING],
    reg: [AtomicU64; SLOTS],
    pending: [Pending; SLOTS],
    mirror: [AtomicU64; MAX_DIR],
    first_n: AtomicU32,
    first_ops: [AtomicU8; FIRST_OPS],
}

/// Counters read at the end.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Operations by kind, in [`OpKind::ALL`] order.
    pub ops: [u64; 5],
    /// Heap growths.
    pub grows: u64,
    /// Takeovers seen by a worker's guard.
    pub recoveries: u64,
    /// Takeovers done inside `Heap::open`.
    pub recoveries_at_open: u64,
    /// Takeovers from an owner that had not registered yet (killed inside `open`).
    pub unattributed: u64,
    /// Transactions of dead workers settled (their directory stores checked).
    pub reconciled: u64,
    /// Of those, transactions found torn: some stores made, some not (S5; must be 0).
    pub torn: u64,
    /// Violations counted.
    pub violations: u64,
    /// The first few violation messages.
    pub messages: Vec<String>,
    /// Takeover latencies in ns (the newest [`LAT_CAP`]).
    pub latencies: Vec<u64>,
    /// The kinds of worker 0's first operations (at most [`FIRST_OPS`]).
    pub first_ops: Vec<OpKind>,
}

impl Board {
    /// Records a violation (the first few with their message).
    pub fn violation(&self, msg: &str) {
        self.violations.fetch_add(1, SeqCst);
        let i = self.msg_next.fetch_add(1, SeqCst) as usize;
        if i < MSGS {
            let msg = msg.replace('\n', " ");
            let b = msg.as_bytes();
            for (k, cell) in self.msgs[i].iter().enumerate() {
                cell.store(b.get(k).copied().unwrap_or(0), Relaxed);
            }
        }
    }

    /// Counts a worker's panic; returns how many were counted before.
    pub fn panicked(&self) -> u64 {
        self.panics.fetch_add(1, SeqCst)
    }

    /// Whether the parent asked the workers to stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Acquire) != 0
    }

    /// Before spawning worker `serial`: clear its kill time.
    pub fn reset_serial(&self, serial: u64) {
        self.killed_ns[serial as usize % KILL_RING].store(0, SeqCst);
    }

    /// Just before the parent SIGKILLs worker `serial`.
    pub fn mark_killed(&self, serial: u64) {
        self.killed_ns[serial as usize % KILL_RING].store(mono_ns().max(1), SeqCst);
    }

    /// A worker says it is attachment `me`.
    pub fn register(&self, me: OwnerId, serial: u64) {
        self.reg[me.slot() as usize % SLOTS]
            .store(((serial + 1) << 32) | u64::from(me.raw()), SeqCst);
    }

    /// A guard (or `open`) reported a takeover.
    pub fn on_recovery(&self, r: &Recovery, at_open: bool) {
        let Some(dead) = r.dead else {
            return;
        };
        let now = mono_ns();
        if at_open {
            self.recoveries_at_open.fetch_add(1, SeqCst);
        } else {
            self.recoveries.fetch_add(1, SeqCst);
        }
        let v = self.reg[dead.slot() as usize % SLOTS].load(SeqCst);
        if v as u32 != dead.raw() {
            self.unattributed.fetch_add(1, SeqCst);
            return;
        }
        let serial = (v >> 32) - 1;
        let k = self.killed_ns[serial as usize % KILL_RING].load(SeqCst);
        if k == 0 {
            self.violation(&format!(
                "the lock of worker {serial} ({dead:?}) was taken over, but that worker was never killed"
            ));
            return;
        }
        let i = self.lat_n.fetch_add(1, SeqCst) as usize % LAT_CAP;
        self.lat[i].store(now.saturating_sub(k), SeqCst);
    }

    /// Counts an operation.
    pub fn count(&self, done: &Done) {
        self.ops[done.kind.index()].fetch_add(1, Relaxed);
        if done.grew {
            self.grows.fetch_add(1, Relaxed);
        }
        if let Some(p) = &done.problem {
            self.violation(p);
        }
    }

    /// Records the kind of worker 0's next operation (only worker 0 calls this, so the
    /// order is its own).
    pub fn first_op(&self, kind: OpKind) {
        let i = self.first_n.load(Relaxed) as usize;
        if i < FIRST_OPS {
            self.first_ops[i].store(kind.index() as u8, Relaxed);
            self.first_n.store(i as u32 + 1, Release);
        }
    }

    /// Operations so far.
    pub fn total_ops(&self) -> u64 {
        self.ops.iter().map(|o| o.load(Relaxed)).sum()
    }

    /// Takeovers so far.
    pub fn total_recoveries(&self) -> u64 {
        self.recoveries.load(Relaxed) + self.recoveries_at_open.load(Relaxed)
    }

    /// Violations so far.
    pub fn total_violations(&self) -> u64 {
        self.violations.load(Relaxed)
    }

    /// Settles the journal records of workers that died inside a transaction: each
    /// transaction's stores must be all there (it committed) or all gone (it was rolled
    /// back). Call holding the lock, before touching the directory.
    pub fn reconcile(&self, graph: &Graph, g: &HeapGuard<'_>) -> Result<()> {
        for p in &self.pending {
            let n = (p.n.load(Acquire) as usize).min(TX_STORES);
            if n == 0 {
                continue;
            }
            let recs: Vec<(u64, u64, u64)> = p.recs[..n]
                .iter()
                .map(|r| {
                    (
                        r.slot.load(Relaxed),
                        r.old.load(Relaxed),
                        r.new.load(Relaxed),
                    )
                })
                .collect();
            // A slot stored twice: its first `old` and its last `new` are what count.
            let mut first: Vec<(u64, u64, u64)> = Vec::new();
            for &(slot, old, new) in &recs {
                match first.iter_mut().find(|(s, _, _)| *s == slot) {
                    Some(f) => f.2 = new,
                    None => first.push((slot, old, new)),
                }
            }
            let mut cur = Vec::with_capacity(first.len());
            for &(slot, _, _) in &first {
                cur.push(graph.get(g, slot)?);
            }
            let all_new = first.iter().zip(&cur).all(|(r, &c)| c == r.2);
            let all_old = first.iter().zip(&cur).all(|(r, &c)| c == r.1);
            if !all_new && !all_old {
                self.torn.fetch_add(1, Relaxed);
                self.violation(&format!(
                    "S5 torn transaction: directory stores {first:x?} (slot, old, new) found as {cur:x?}"
                ));
            }
            for (r, &c) in first.iter().zip(&cur) {
                self.mirror[r.0 as usize % MAX_DIR].store(c, Relaxed);
            }
            p.n.store(0, Release);
            self.reconciled.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// Slots where the mirror and the directory `dir` disagree.
    pub fn mirror_mismatches(&self, dir: &[u64]) -> Vec<String> {
        dir.iter()
            .enumerate()
            .filter_map(|(i, &d)| {
                let m = self.mirror[i % MAX_DIR].load(SeqCst);
                (m != d).then(|| {
                    format!("slot {i}: the directory holds {d:#x}, the last committed store wrote {m:#x}")
                })
            })
            .collect()
    }

    /// The journal of the worker attached in heap slot `slot`.
    pub fn journal(&self, slot: u32) -> BoardJournal<'_> {
        BoardJournal {
            board: self,
            me: slot as usize % SLOTS,
        }
    }

    /// Everything counted.
    pub fn tally(&self) -> Tally {
        let n = self.lat_n.load(SeqCst) as usize;
        Tally {
            ops: std::array::from_fn(|i| self.ops[i].load(SeqCst)),
            grows: self.grows.load(SeqCst),
            recoveries: self.recoveries.load(SeqCst),
            recoveries_at_open: self.recoveries_at_open.load(SeqCst),
            unattributed: self.unattributed.load(SeqCst),
            reconciled: self.reconciled.load(SeqCst),
            torn: self.torn.load(SeqCst),
            violations: self.violations.load(SeqCst),
            messages: self.msgs[..(self.msg_next.load(SeqCst) as usize).min(MSGS)]
                .iter()
                .map(|m| {
                    let b: Vec<u8> = m
                        .iter()
                        .map(|c| c.load(Relaxed))
                        .take_while(|&c| c != 0)
                        .collect();
                    String::from_utf8_lossy(&b).into_owned()
                })
                .collect(),
            latencies: self.lat[..n.min(LAT_CAP)]
                .iter()
                .map(|l| l.load(SeqCst))
                .collect(),
            first_ops: self.first_ops[..self.first_n.load(Acquire) as usize]
                .iter()
                .map(|k| OpKind::ALL[k.load(Relaxed) as usize % OpKind::ALL.len()])
                .collect(),
        }
    }
}

/// The journal a worker hands to the graph's operations.
pub struct BoardJournal<'b> {
    board: &'b Board,
    me: usize,
}

impl Journal for BoardJournal<'_> {
    fn before_store(&mut self, slot: u64, old: u64, new: u64) {
        let b = self.board;
        let p = &b.pending[self.me];
        let n = p.n.load(Relaxed) as usize;
        let seen = p.recs[..n.min(TX_STORES)]
            .iter()
            .any(|r| r.slot.load(Relaxed) == slot);
        if !seen {
            // The transaction's first store to this slot: until now mirror and directory
            // agree.
            let m = b.mirror[slot as usize % MAX_DIR].load(Relaxed);
            if m != old {
                b.violation(&format!(
                    "slot {slot}: about to store over {old:#x}, but the last committed store wrote {m:#x}"
                ));
            }
        }
        if n >= TX_STORES {
            b.violation("a transaction made more directory stores than the journal holds");
            return;
        }
        let r = &p.recs[n];
        r.slot.store(slot, Relaxed);
        r.old.store(old, Relaxed);
        r.new.store(new, Relaxed);
        p.n.store(n as u64 + 1, Release);
    }

    fn committed(&mut self) {
        let b = self.board;
        let p = &b.pending[self.me];
        let n = (p.n.load(Relaxed) as usize).min(TX_STORES);
        for r in &p.recs[..n] {
            let slot = r.slot.load(Relaxed) as usize;
            b.mirror[slot % MAX_DIR].store(r.new.load(Relaxed), Relaxed);
        }
        p.n.store(0, Release);
    }
}
