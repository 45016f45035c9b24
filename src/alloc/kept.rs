//! A free checked when it is asked for and made, from the same steps, at the commit.
//!
//! A transaction checks each free when it is asked for (D1: checked whole, nothing
//! written) and makes it after its commit store. The steps of a transaction's first free
//! ([`FreeSteps`], the direct free's) are kept, with every word of the file they were
//! checked from. At the commit they are made as they are only if each of those words, the
//! capacity and the mapping's length are as they were: the steps are a function of what
//! they read, so they are then exactly the steps that checking again would give (the same
//! stores, in the same order, with the same crash point). If anything changed (another
//! allocation or free of the transaction, a growth, a log extension), the free is checked
//! again, as it would be without kept steps.

use super::direct_free::FreeSteps;
use super::{Arena, Result};

/// A transaction's kept free: the payload and its steps.
#[derive(Default)]
pub struct KeptFree {
    payload: u64,
    steps: FreeSteps,
}

impl KeptFree {
    /// The payload whose free is kept (0: none).
    pub fn payload(&self) -> u64 {
        self.payload
    }
}

impl Arena<'_> {
    /// [`Arena::check_free`], keeping the free's steps in `kept` if the direct free takes
    /// it (on a sound heap it takes every free of an allocated block; otherwise the
    /// planned check decides, and nothing is kept).
    pub fn check_free_keeping(&mut self, payload: u64, kept: &mut KeptFree) -> Result<()> {
        kept.payload = 0;
        if self.free_steps(payload, &mut kept.steps) {
            kept.payload = payload;
            return Ok(());
        }
        self.check_free(payload)
    }

    /// Frees `payload` from the steps kept for it if nothing they read has changed since;
    /// `false` (nothing written) if there are no such steps or they are stale.
    pub fn free_kept(&mut self, payload: u64, kept: &mut KeptFree) -> bool {
        let fresh = payload != 0 && kept.payload == payload && kept.steps.unchanged(self);
        kept.payload = 0;
        if fresh {
            self.apply_steps(&kept.steps);
        }
        fresh
    }
}
