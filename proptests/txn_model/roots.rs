//! Root changes inside a transaction: `set_root` and `remove_root` against the model's
//! slot-by-slot table.
//!
//! Invariant: a root entry is saved in the log once per transaction, before its first
//! change (T5), whichever root's change it is; a root may not name a block the
//! transaction frees.

use mapheap::{Error, HeapGuard, Offset};
use proptest::sample::Index;

use super::model::{Full, Log, ENTRY, ROOT_ENTRY};
use super::steps::{is_full, Run};
use super::tally;

impl Run {
    /// Logs a root slot's entry once per transaction; `None` if it was saved already.
    fn root_room(&self, slot: usize, largest: u64) -> (Log, Option<Result<bool, Full>>) {
        let mut log = self.t.log.clone();
        let room =
            (!self.t.roots_imaged.contains(&slot)).then(|| log.room(ENTRY + ROOT_ENTRY, largest));
        (log, room)
    }

    fn logged_root(&mut self, mut log: Log, slot: usize, imaged: bool) {
        if imaged {
            log.push(ENTRY + ROOT_ENTRY);
            log.images += ROOT_ENTRY;
            self.t.roots_imaged.insert(slot);
        }
        self.t.log = log;
    }

    pub(super) fn set_root(
        &mut self,
        g: &mut HeapGuard<'_>,
        name: &str,
        which: Index,
        freeing: bool,
        largest: u64,
    ) -> Result<(), String> {
        if freeing && !self.t.freeing.is_empty() {
            let cands: Vec<u64> = self.t.freeing.iter().copied().collect();
            let off = cands[which.index(cands.len())];
            return match g.set_root(name, Offset::<u64>::from_raw(off)) {
                Err(Error::BadOffset { .. }) => Ok(()),
                r => Err(format!(
                    "root {name:?} to {off:#x}, which the transaction frees: {r:?}"
                )),
            };
        }
        let cands: Vec<u64> = self.t.p.blocks.keys().copied().collect();
        let Some(&off) = cands.get(which.index(cands.len().max(1))) else {
            return Ok(());
        };
        let slot = self.t.p.slot_for(name).expect("5 names fit 32 slots");
        let (log, room) = self.root_room(slot, largest);
        let r = g.set_root(name, Offset::<u64>::from_raw(off));
        match (&room, &r) {
            (None | Some(Ok(_)), Ok(())) => {
                self.t.p.roots[slot] = Some((name.to_string(), off));
                self.logged_root(log, slot, room.is_some());
                self.count(&tally::ROOTS);
            }
            (Some(Err(full)), _) if is_full(&r, full) => {
                self.t.log = log;
                self.count(&tally::LOG_FULL);
            }
            _ => {
                return Err(format!(
                    "root {name:?} to {off:#x}: {r:?}, model: room {room:?}"
                ))
            }
        }
        Ok(())
    }

    pub(super) fn remove_root(
        &mut self,
        g: &mut HeapGuard<'_>,
        name: &str,
        largest: u64,
    ) -> Result<(), String> {
        let Some(slot) = self.t.p.slot_of(name) else {
            return match g.remove_root(name) {
                Ok(None) => Ok(()),
                r => Err(format!("removing the absent root {name:?}: {r:?}")),
            };
        };
        let off = self.t.p.roots[slot].as_ref().expect("slot").1;
        let (log, room) = self.root_room(slot, largest);
        let r = g.remove_root(name);
        match (&room, &r) {
            (None | Some(Ok(_)), Ok(Some(o))) if *o == off => {
                self.t.p.roots[slot] = None;
                self.logged_root(log, slot, room.is_some());
                self.count(&tally::ROOTS);
            }
            (Some(Err(full)), _) if is_full(&r, full) => {
                self.t.log = log;
                self.count(&tally::LOG_FULL);
            }
            _ => {
                return Err(format!(
                    "removing root {name:?} ({off:#x}): {r:?}, model: room {room:?}"
                ))
            }
        }
        Ok(())
    }
}
