//! One case: a heap file, its handle, the committed model, and the ways a transaction run
//! on it ends: commit, abort, panic (`segment`), or a death after a chosen store (`crash`),
//! optionally followed by a second death inside the recovery of the next opener.
//!
//! Invariant: between transactions the heap (through a fresh guard, which must recover
//! nothing) equals the committed model exactly, its own blocks are the log's block alone,
//! and `check` is clean. After a death the recovered heap equals the committed state from
//! before the transaction if the death came before its commit store, and the transaction's
//! view if it came at or after it (T2): the two are compared and the wrong one is named.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use mapheap::alloc::AllocError;
use mapheap::fault::{self, Crashed};
use mapheap::format::{State, STATE_OFFSET};
use mapheap::{CreateOptions, Error, Heap, OpenOptions};
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

use super::model::{max_fit, Txn, View};
use super::reference::{How, Init, Op, Second};
use super::steps::{Boom, End, Run};
use super::tally;
use super::verify::verify_view;
use crate::common::{fail, pattern};

const PAGE: u64 = 4096;

/// Options for a handle that takes over from a simulated death quickly.
pub fn opts() -> OpenOptions {
    OpenOptions {
        probe_interval: Duration::from_millis(1),
        ..OpenOptions::default()
    }
}

pub struct Case {
    dir: tempfile::TempDir,
    path: PathBuf,
    /// `None` only between a death and the next open.
    heap: Option<Heap>,
    c: View,
    seed: u64,
    log_cap: u64,
    log_block: u64,
}

type Res = Result<(), TestCaseError>;

fn unwrap_crash(p: Box<dyn std::any::Any + Send>) -> Crashed {
    match p.downcast::<Crashed>() {
        Ok(c) => *c,
        Err(p) => std::panic::resume_unwind(p),
    }
}

impl Case {
    /// Creates the heap, then allocates and fills the prefill blocks and the hog (the first
    /// transaction, committed).
    pub fn new(init: &Init) -> Result<Case, TestCaseError> {
        let dir = crate::common::tempdir();
        let path = dir.path().join("txn.heap");
        let heap = Heap::create_with(
            &path,
            &CreateOptions {
                log_capacity: init.log_cap,
                open: opts(),
                ..CreateOptions::new(u64::from(init.pages) * PAGE)
            },
        )
        .map_err(|e| fail(format!("create: {e}")))?;
        let mut c = View::new();
        let mut seed = 0u64;
        let (log_block, log_cap) = {
            let mut g = heap.lock().map_err(fail)?;
            let st = g.stats();
            for i in 0..=init.prefill.len() {
                let size = match (init.prefill.get(i), init.hog) {
                    (Some(&s), _) => u64::from(s),
                    // The hog last, sized by what the prefill blocks left.
                    (None, Some(leave)) => {
                        let room = g.stats().largest_free.saturating_sub(u64::from(leave));
                        let Some(n) = max_fit(room) else { break };
                        n
                    }
                    (None, None) => break,
                };
                let o = match g.alloc_bytes(size, 8) {
                    Ok(o) => o,
                    Err(Error::Alloc(AllocError::OutOfSpace { .. })) => continue,
                    Err(e) => return Err(fail(format!("prefill alloc({size}): {e}"))),
                };
                let usable = g.usable_size(o).map_err(fail)?;
                seed += 1;
                let data = pattern(seed, usable as usize);
                g.bytes_mut(o, usable).map_err(fail)?.copy_from_slice(&data);
                c.blocks.insert(o.raw(), data);
            }
            (st.log_block, st.log_capacity)
        };
        if let Some(cap) = init.log_cap {
            if log_cap != cap {
                return Err(fail(format!("log capacity {log_cap}, asked for {cap}")));
            }
        }
        let case = Case {
            dir,
            path,
            heap: Some(heap),
            c,
            seed,
            log_cap,
            log_block,
        };
        case.verify_committed()?;
        Ok(case)
    }

    fn heap(&self) -> &Heap {
        self.heap.as_ref().expect("a live handle")
    }

    fn run(&self, counting: bool) -> Run {
        Run {
            c: self.c.clone(),
            t: Txn::new(&self.c, self.log_cap),
            committing: None,
            seed: self.seed,
            log_cap: self.log_cap,
            log_block: self.log_block,
            counting,
        }
    }

    /// The heap through a fresh guard equals the committed model.
    pub fn verify_committed(&self) -> Res {
        let g = self.heap().lock().map_err(|e| fail(format!("lock: {e}")))?;
        if let Some(r) = g.recovered() {
            return Err(fail(format!(
                "a lock after a finished transaction recovered: {r:?}"
            )));
        }
        let own = g.own_blocks();
        if own != [self.log_block] {
            return Err(fail(format!(
                "between transactions the heap owns {own:x?}, not just its log {:#x}",
                self.log_block
            )));
        }
        verify_view(&g, &self.c, &BTreeSet::new()).map_err(fail)
    }

    /// Runs one transaction: `body`, then `end` (the step that ends it, with its index;
    /// `None`: the guard is dropped, which commits).
    pub fn segment(&mut self, body: &[(usize, Op)], end: Option<(usize, &Op)>) -> Res {
        let ctx = |e: TestCaseError| match end {
            Some((i, op)) => fail(format!("step {i} {op:?}: {e}")),
            None => e,
        };
        let how = match end.map(|e| e.1) {
            None | Some(Op::Commit(How::Drop)) => End::Commit(How::Drop),
            Some(Op::Commit(How::Commit)) => End::Commit(How::Commit),
            Some(Op::Abort) => End::Abort,
            Some(Op::Panic) => End::Panic,
            Some(&Op::Crash { at, second }) => return self.crash(body, at, second).map_err(ctx),
            Some(op) => unreachable!("{op:?} does not end a transaction"),
        };
        let mut run = self.run(true);
        let heap = self.heap.as_ref().expect("a live handle");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run.txn(heap, body, how, true)
        }));
        match r {
            Ok(r) => r.map_err(ctx)?,
            Err(p) if p.is::<Boom>() => {
                run.reset();
                tally::add(&tally::PANICS);
            }
            Err(p) => std::panic::resume_unwind(p),
        }
        self.c = run.c;
        self.seed = run.seed;
        self.verify_committed()
            .map_err(|e| ctx(fail(format!("after the transaction: {e}"))))
    }

    /// How many stores a handle opened on a copy of the file (as it is now, then changed
    /// by `edit`) makes in opening and in `f` (the count starts after the copy is made).
    fn stores_on_copy(
        &self,
        edit: impl FnOnce(&std::fs::File),
        f: impl FnOnce(Heap) -> Res,
    ) -> Result<u64, TestCaseError> {
        let copy = self.dir.path().join("dry.heap");
        std::fs::copy(&self.path, &copy).map_err(|e| fail(format!("copy: {e}")))?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .map_err(|e| fail(format!("copy: {e}")))?;
        edit(&file);
        drop(file);
        fault::count_stores();
        let r = Heap::open_with(&copy, &opts())
            .map_err(|e| fail(format!("open the copy: {e}")))
            .and_then(f);
        let n = fault::stores();
        let _ = std::fs::remove_file(&copy);
        r.map(|()| n)
    }

    /// Runs `body` and a commit with a death armed after the `at`-th of the stores it
    /// makes (counted by a dry run of the same steps on a copy of the file), takes the
    /// handle over with a fresh one, and compares the recovered heap with the model.
    fn crash(&mut self, body: &[(usize, Op)], at: Index, second: Option<Second>) -> Res {
        let mut dry = self.run(false);
        let total = self.stores_on_copy(
            |_| {},
            |h| {
                dry.txn(&h, body, End::Commit(How::Drop), false)
                    .map_err(|e| fail(format!("dry run on a copy: {e}")))
            },
        )?;
        if total == 0 {
            // Nothing to die at: the transaction logged nothing, and commits.
            tally::add(&tally::CRASH_NO_STORE);
            return self.segment(body, None);
        }
        let k = 1 + at.index(total as usize) as u64;
        let mut run = self.run(true);
        let heap = self.heap.as_ref().expect("a live handle");
        fault::arm_store_unwind(Some(k));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run.txn(heap, body, End::Commit(How::Drop), true)
        }));
        fault::arm_store_unwind(None);
        self.seed = run.seed;
        let died = match r {
            Ok(r) => {
                r?;
                // The file decides every store, so the copy's count is exact.
                return Err(fail(format!(
                    "armed to die after store {k} of the {total} the same steps made on a \
                     copy of the file, the transaction ended alive"
                )));
            }
            Err(p) => unwrap_crash(p),
        };
        // The commit store is the first store of a commit (T2): a death at or after it
        // leaves a committed transaction, one before it an uncommitted one.
        let committed = run.committing.is_some_and(|s0| died.store > s0);
        let (want, other) = if committed {
            (run.t.p.clone(), run.c.clone())
        } else {
            (run.c.clone(), run.t.p.clone())
        };
        tally::add(if committed {
            &tally::CRASH_COMMITTED
        } else {
            &tally::CRASH_UNDONE
        });
        // The dead handle goes (its slot's lock with it, as the kernel's would).
        drop(self.heap.take());
        let where_ = format!(
            "a death after store {} of {total} ({} the commit store)",
            died.store,
            if committed { "at or after" } else { "before" }
        );
        if let Some(i) = second {
            self.die_in_recovery(i)
                .map_err(|e| fail(format!("after {where_}: {e}")))?;
        }
        let heap = Heap::open_with(&self.path, &opts())
            .map_err(|e| fail(format!("open after {where_}: {e}")))?;
        let rec = heap.recovered_at_open().cloned();
        self.heap = Some(heap);
        let Some(rec) = rec else {
            return Err(fail(format!("open after {where_} recovered nothing")));
        };
        if let Some(u) = rec.undone {
            if u.committed != committed {
                return Err(fail(format!(
                    "after {where_} the recovery says committed = {}: {u:?}",
                    u.committed
                )));
            }
        }
        self.c = want;
        self.verify_committed().map_err(|e| {
            let g = self.heap().lock();
            let is_other = g.is_ok_and(|g| verify_view(&g, &other, &BTreeSet::new()).is_ok());
            let which = if is_other {
                "; the heap holds the other state instead"
            } else {
                ""
            };
            fail(format!("after {where_} and recovery: {e}{which}"))
        })
    }

    /// Dies again after a random store of the recovery a fresh handle makes, or (`txn`)
    /// of its part after the allocator's repair, where the transaction is rolled back or
    /// finished (both counted on copies of the file as the first death left it; the
    /// repair's part on a copy whose log is emptied, since the repair never reads it).
    fn die_in_recovery(&mut self, at: Second) -> Res {
        let opened = |h: Heap| {
            drop(h);
            Ok(())
        };
        let total = self.stores_on_copy(|_| {}, opened)?;
        let repair = self.stores_on_copy(
            |f| {
                use std::os::unix::fs::FileExt;
                let len = STATE_OFFSET + std::mem::offset_of!(State, log.len);
                assert_eq!(
                    std::mem::offset_of!(State, log.done),
                    std::mem::offset_of!(State, log.len) + 8
                );
                f.write_all_at(&[0; 16], len as u64)
                    .expect("empty the copy's log");
            },
            opened,
        )?;
        if total == 0 {
            return Ok(());
        }
        let k = if at.txn && total > repair {
            repair + 1 + at.at.index((total - repair) as usize) as u64
        } else {
            1 + at.at.index(total as usize) as u64
        };
        fault::arm_store_unwind(Some(k));
        let r = std::panic::catch_unwind(|| Heap::open_with(&self.path, &opts()));
        fault::arm_store_unwind(None);
        match r {
            Ok(Ok(_)) => Err(fail(format!(
                "armed to die after store {k} of the {total} an open of a copy made, the \
                 recovery ended alive"
            ))),
            Ok(Err(e)) => Err(fail(format!("open: {e}"))),
            Err(p) => {
                unwrap_crash(p);
                tally::add(&tally::SECOND_DEATHS);
                Ok(())
            }
        }
    }
}
