//! The scoreboard of a run: shared memory outside the heap (`shm::Shared`), which the
//! parent reads without the heap's lock, so a hung lock cannot hang the parent. Workers
//! count operations, takeovers and what each recovery did to the transaction it found,
//! and the first worker to find the heap broken leaves its message here.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::SeqCst};

use mapheap::heap::Recovery;

/// The scoreboard, outside the heap.
#[repr(C)]
pub struct Board {
    pub stop: AtomicU32,
    pub ops: AtomicU64,
    pub takeovers: AtomicU64,
    pub rolled_back: AtomicU64,
    pub finished: AtomicU64,
    pub verified: AtomicU64,
    /// A base address per worker slot and generation (`slot * GENS + gen % GENS`).
    pub bases: [AtomicU64; MAX_WORKERS * GENS],
    failed: AtomicU32,
    err_len: AtomicU64,
    err: [AtomicU8; ERR_MAX],
}

/// Generations of a worker slot that map the heap at distinct addresses.
pub const GENS: usize = 16;
/// The most workers a run may have.
pub const MAX_WORKERS: usize = 4;
const ERR_MAX: usize = 600;

impl Board {
    pub fn record(&self, r: &Recovery) {
        if r.dead.is_some() {
            self.takeovers.fetch_add(1, SeqCst);
        }
        match r.undone {
            Some(u) if u.committed => self.finished.fetch_add(1, SeqCst),
            Some(_) => self.rolled_back.fetch_add(1, SeqCst),
            None => 0,
        };
    }

    /// Keeps the first failure's message (later ones are dropped).
    pub fn fail(&self, msg: &str) {
        if self.failed.swap(1, SeqCst) != 0 {
            return;
        }
        let b = msg.as_bytes();
        let n = b.len().min(ERR_MAX);
        for (slot, &byte) in self.err.iter().zip(&b[..n]) {
            slot.store(byte, SeqCst);
        }
        self.err_len.store(n as u64, SeqCst);
    }

    pub fn failure(&self) -> Option<String> {
        if self.failed.load(SeqCst) == 0 {
            return None;
        }
        // The writer stores the length last; a failure seen before it is still unnamed.
        let n = self.err_len.load(SeqCst) as usize;
        if n == 0 {
            return Some("a worker failed (its message is not written yet)".into());
        }
        let b: Vec<u8> = self.err[..n].iter().map(|c| c.load(SeqCst)).collect();
        Some(String::from_utf8_lossy(&b).into_owned())
    }
}
