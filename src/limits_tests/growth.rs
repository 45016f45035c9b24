//! The growth sizing rule (H5) at every TLSF class edge: an allocation that must grow the
//! heap grows it only if the request is then certain to fit, i.e. to the capacity plus the
//! least block of the class TLSF searches for the request, page-rounded up, and only if
//! `OpenOptions::grow_limit` (page-rounded down) allows that much; otherwise it fails with
//! `OutOfSpace` and leaves capacity and file length unchanged.

use std::collections::BTreeSet;
use std::path::Path;

use super::fill;
use crate::alloc::tlsf::{class_min, mapping_search};
use crate::alloc::AllocError;
use crate::error::Error;
use crate::format::{page_size, FL_COUNT, HEADER_SIZE, SL_COUNT};
use crate::heap::{search_size, Heap, OpenOptions};
use crate::mutant::{with, Mutant};

/// Request sizes at every class edge up to `top` bytes, and 8 bytes either side.
fn edge_sizes(top: u64) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for fl in 0..FL_COUNT {
        for sl in 0..SL_COUNT {
            let m = class_min(fl, sl);
            if m <= top {
                out.extend([m.saturating_sub(8), m, m + 8]);
            }
        }
    }
    out
}

/// The capacity a heap of capacity `cap` with no free space must grow to for `len` bytes
/// aligned to `align`, by the rule: the least block of the class a search for the request
/// looks in, added to `cap`, page-rounded up. Computed here from the TLSF mapping alone.
fn needed(cap: u64, len: u64, align: u64) -> u64 {
    let (fl, sl) = mapping_search(search_size(len, align).unwrap());
    (cap + class_min(fl, sl)).next_multiple_of(u64::from(page_size()))
}

/// A one-page heap with no free space left, as a template.
fn full_heap(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("full.heap");
    let heap = Heap::create(&path, HEADER_SIZE + u64::from(page_size())).unwrap();
    fill(&mut heap.lock().unwrap());
    path
}

/// What one allocation of `len` at `align` through a handle with `grow_limit: limit` did:
/// whether it succeeded (its payload checked), the capacity and file length after it, and
/// whether the heap's figures are as before it.
fn attempt(path: &Path, limit: u64, len: u64, align: u64) -> (bool, u64, u64, bool) {
    let opts = OpenOptions {
        grow_limit: Some(limit),
        ..OpenOptions::default()
    };
    let heap = Heap::open_with(path, &opts).unwrap();
    let mut g = heap.lock().unwrap();
    let before = g.stats();
    let ok = match g.alloc_bytes(len, align) {
        Ok(p) => {
            assert!(p.raw().is_multiple_of(align) && g.usable_size(p).unwrap() >= len);
            true
        }
        Err(Error::Alloc(AllocError::OutOfSpace { .. })) => false,
        Err(e) => panic!("{len} at {align}: {e}"),
    };
    let file_len = std::fs::metadata(path).unwrap().len();
    (ok, g.capacity(), file_len, g.stats() == before)
}

/// Runs the rule over `sizes` at `aligns`; returns every case that broke it. With
/// `rounding`, also a limit one byte below the needed capacity (rounded down: refused) and
/// one byte below the next page (rounded down to exactly what is needed: granted).
fn sweep(sizes: &BTreeSet<u64>, aligns: &[u64], rounding: bool) -> Vec<String> {
    // Thousands of files grown to megabytes and reset: on a tmpfs where there is one (a
    // disk mounted with `discard` takes many times longer to free their blocks).
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    let template = full_heap(dir.path());
    let cap = std::fs::metadata(&template).unwrap().len();
    let page = u64::from(page_size());
    let case = dir.path().join("case.heap");
    let mut broken = Vec::new();
    for &align in aligns {
        for &len in sizes {
            let need = needed(cap, len, align);
            let mut refused = vec![need - page];
            let mut granted = vec![need];
            if rounding {
                refused.push(need - 1);
                granted.push(need + page - 1);
            }
            // The refused attempts leave the copy as it was (or are reported), so the
            // first granted one starts from it too.
            std::fs::copy(&template, &case).unwrap();
            for limit in refused {
                let got = attempt(&case, limit, len, align);
                if got != (false, cap, cap, true) {
                    broken.push(format!(
                        "{len} at {align}, limit {limit}: {got:?}, needed {need}"
                    ));
                }
            }
            for (k, limit) in granted.into_iter().enumerate() {
                if k > 0 {
                    std::fs::copy(&template, &case).unwrap();
                }
                let got = attempt(&case, limit, len, align);
                if (got.0, got.1, got.2) != (true, need, need) {
                    broken.push(format!(
                        "{len} at {align}, limit {limit}: {got:?}, needed {need}"
                    ));
                }
            }
        }
    }
    broken
}

#[test]
fn growth_sizing_rule_at_every_class_edge() {
    let _watchdog = crate::watchdog!(240);
    let sizes = edge_sizes(4 << 20);
    assert!(sizes.len() > 1000, "{}", sizes.len());
    let mut broken = sweep(&sizes, &[8, 64, 4096], false);
    broken.extend(sweep(&edge_sizes(64 << 10), &[8, 4096], true));
    assert!(
        broken.is_empty(),
        "{} cases broke the growth sizing rule (len at align, limit: (allocated, capacity, \
         file length)), first: {:#?}",
        broken.len(),
        &broken[..broken.len().min(10)]
    );
}

/// `GrowTooLittle` grows by the search size rather than the least block of the class
/// searched: above 256 KiB a class is wider than a page, so the heap grows and the
/// allocation still fails. The sweep over those edges sees it; without it, they pass.
#[test]
fn mutant_grow_too_little_is_caught_by_the_sizing_rule() {
    let _watchdog = crate::watchdog!(120);
    let sizes: BTreeSet<u64> = edge_sizes(2 << 20)
        .into_iter()
        .filter(|&s| s >= 1 << 20)
        .collect();
    assert!(sweep(&sizes, &[8], false).is_empty());
    let broken = with(Mutant::GrowTooLittle, || sweep(&sizes, &[8], false));
    assert!(
        !broken.is_empty(),
        "GrowTooLittle not caught by the sizing rule"
    );
}
