//! The comparison of a guard's whole view with the model's.
//!
//! Invariant: nothing the heap shows is left out: the allocated blocks (the heap's own
//! aside) are exactly the model's, each with every usable byte; blocks being freed stay
//! allocated but do not resolve; the roots match slot order, name and offset; `check` is
//! clean.

use std::collections::BTreeSet;

use mapheap::{HeapGuard, Offset};

use super::model::View;
use crate::common::BLOCK_HEADER;

/// Compares what the guard shows with `view` (plus the blocks being freed, which stay
/// allocated but must not resolve); `check` must be clean.
pub fn verify_view(g: &HeapGuard<'_>, view: &View, freeing: &BTreeSet<u64>) -> Result<(), String> {
    let own = g.own_blocks();
    let used: BTreeSet<u64> = g
        .blocks()
        .iter()
        .filter(|b| !b.free)
        .map(|b| b.offset + BLOCK_HEADER)
        .filter(|p| !own.contains(p))
        .collect();
    let want: BTreeSet<u64> = view.blocks.keys().chain(freeing).copied().collect();
    if used != want {
        return Err(format!(
            "allocated blocks (the heap's own {own:x?} aside) {used:x?}, model {want:x?}"
        ));
    }
    for (&o, data) in &view.blocks {
        let off = Offset::<u8>::from_raw(o);
        let usable = g
            .usable_size(off)
            .map_err(|e| format!("block {o:#x}: {e}"))?;
        if usable != data.len() as u64 {
            return Err(format!(
                "block {o:#x}: {usable} usable bytes, model {}",
                data.len()
            ));
        }
        let got = g
            .bytes(off, usable)
            .map_err(|e| format!("block {o:#x}: {e}"))?;
        if let Some(at) = got.iter().zip(data).position(|(a, b)| a != b) {
            return Err(format!(
                "block {o:#x} ({usable} bytes) differs from the model from byte {at}"
            ));
        }
    }
    for &o in freeing {
        if g.bytes(Offset::from_raw(o), 1).is_ok() {
            return Err(format!(
                "block {o:#x}, freed by the transaction, still resolves"
            ));
        }
    }
    let roots: Vec<(String, u64)> = g.roots().into_iter().map(|r| (r.name, r.offset)).collect();
    if roots != view.root_list() {
        return Err(format!("roots {roots:?}, model {:?}", view.root_list()));
    }
    let report = g.check();
    if !report.is_clean() {
        return Err(format!("check: {:?}", report.violations));
    }
    Ok(())
}
