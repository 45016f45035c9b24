//! Property: whatever a heap file holds, `Heap::open` and then lock, check, stats, blocks,
//! walking the roots, allocation, free, growth and a reopen return errors or a report;
//! they never panic, abort, hang or fault, and a clean report is honest (see
//! `common/entry.rs`).
//!
//! Each case builds a valid heap (allocations of several sizes and alignments, some freed,
//! named roots, maybe grown, maybe copied while its lock is held so the image names a dead
//! owner), then corrupts the image: header fields (identity, with or without a fixed-up
//! checksum; lock word; attachment slots; every field of the allocator state: capacity,
//! generation, intent, counters, flags, bitmaps, roots, free-list heads), block headers
//! (with valid tags and boundary sizes, so the corruption gets past the tag check),
//! free-list links and footers, single bits anywhere, truncation and extension; values are
//! drawn from boundaries (0, 1, all ones, the capacity, the file length, the maximum
//! capacity, block offsets, ...) and at random.
//!
//! Every case runs in a child process (this test binary re-executed with
//! `MAPHEAP_PROP_CHILD=corrupt`), so a panic, an abort, a signal or a hang (killed at a
//! deadline) is a failing case that proptest shrinks like any other.
//! A second property over the same cases, refusal before damage (D1, in
//! `corrupt_image/refusal.rs`): an operation on a corrupt image either succeeds or fails
//! with the file as it was, outside the lock area and the attachment table.
//!
//! See docs/properties.md.

#[macro_use]
mod common;
#[path = "corrupt_image/corruption.rs"]
mod corruption;
#[path = "corrupt_image/refusal.rs"]
mod refusal;

use corruption::*;

use std::mem::offset_of;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{assert_caught, assert_property, child_role, run_child, run_property, ChildEnd};
use mapheap::format::{block, Identity, Intent, LogState, Root, State, MAX_CAPACITY, MIN_CAPACITY};
use mapheap::mutant;
use mapheap::{CreateOptions, Heap, Offset};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proptests/regressions/corrupt_image.txt"
);
const CHILD_TEST: &str = "valid_images_pass_every_entry_point";
const IMAGE_ENV: &str = "MAPHEAP_CORRUPT_IMAGE";

const HEADER_SIZE: u64 = 16384;
const LOCK_OFFSET: u64 = 64;
const SLOTS_OFFSET: u64 = 128;
const STATE_OFFSET: u64 = 2048;
const PAGE: u64 = 4096;

// ---- the valid image ------------------------------------------------------------------

/// How to build the valid heap a case corrupts.
#[derive(Clone, Debug)]
struct Recipe {
    pages: u8,
    allocs: Vec<(u16, u64)>,
    big: bool,
    frees: Vec<Index>,
    roots: Vec<Index>,
    grow: Option<u8>,
    held: bool,
}

fn recipe() -> impl Strategy<Value = Recipe> {
    (
        5u8..20,
        prop::collection::vec(
            (
                8u16..3000,
                prop_oneof![4 => Just(8u64), 1 => Just(64u64), 1 => Just(4096u64)],
            ),
            0..16,
        ),
        any::<bool>(),
        prop::collection::vec(any::<Index>(), 0..6),
        prop::collection::vec(any::<Index>(), 0..4),
        prop::option::of(1u8..8),
        any::<bool>(),
    )
        .prop_map(|(pages, allocs, big, frees, roots, grow, held)| Recipe {
            pages,
            allocs,
            big,
            frees,
            roots,
            grow,
            held,
        })
}

/// A valid image and what the corruptions aim at.
struct Image {
    bytes: Vec<u8>,
    capacity: u64,
    /// (offset, size) of every block, then the sentinel (size 0).
    blocks: Vec<(u64, u64)>,
}

fn build_image(r: &Recipe, path: &Path) -> Result<Image, String> {
    let cap = (u64::from(r.pages) + if r.big { 8 } else { 0 }) * PAGE;
    let create = CreateOptions {
        open: common::entry::options(),
        ..CreateOptions::new(cap)
    };
    let heap = Heap::create_with(path, &create).map_err(|e| format!("create: {e}"))?;
    let mut g = heap.lock().map_err(|e| format!("lock: {e}"))?;
    let mut offs = Vec::new();
    let mut sizes: Vec<(u64, u64)> = r.allocs.iter().map(|&(s, a)| (u64::from(s), a)).collect();
    if r.big {
        sizes.insert(sizes.len() / 2, (24_000, 8));
    }
    for (i, (size, align)) in sizes.into_iter().enumerate() {
        let Ok(o) = g.alloc_bytes(size, align) else {
            continue;
        };
        let bytes = g
            .bytes_mut(o, size)
            .map_err(|e| format!("bytes_mut: {e}"))?;
        bytes.copy_from_slice(&common::pattern(i as u64, size as usize));
        offs.push(o);
    }
    for (k, pick) in r.roots.iter().enumerate() {
        if offs.is_empty() {
            break;
        }
        let o = offs[pick.index(offs.len())];
        g.set_root::<u64>(&format!("root{k}"), o.cast())
            .map_err(|e| format!("set_root: {e}"))?;
    }
    let rooted: Vec<u64> = g.roots().iter().map(|r| r.offset).collect();
    for pick in &r.frees {
        let free: Vec<Offset<u8>> = offs
            .iter()
            .copied()
            .filter(|o| !rooted.contains(&o.raw()))
            .collect();
        if free.is_empty() {
            break;
        }
        let o = free[pick.index(free.len())];
        g.free(o).map_err(|e| format!("free: {e}"))?;
        offs.retain(|x| *x != o);
    }
    if let Some(p) = r.grow {
        g.grow_by(u64::from(p) * PAGE)
            .map_err(|e| format!("grow: {e}"))?;
    }
    let report = g.check();
    if !report.is_clean() {
        return Err(format!("the valid image is not clean: {report:?}"));
    }
    let capacity = g.capacity();
    let mut blocks: Vec<(u64, u64)> = g.blocks().iter().map(|b| (b.offset, b.size)).collect();
    blocks.push((capacity - 8, 0));
    let bytes = if r.held {
        // A snapshot taken under the lock: the lock word names an owner that, in the
        // copy, is dead.
        std::fs::read(path).map_err(|e| e.to_string())?
    } else {
        drop(g);
        drop(heap);
        std::fs::read(path).map_err(|e| e.to_string())?
    };
    Ok(Image {
        bytes,
        capacity,
        blocks,
    })
}

// ---- the property ---------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Case {
    recipe: Recipe,
    corruptions: Vec<Corruption>,
}

fn case() -> impl Strategy<Value = Case> {
    (recipe(), prop::collection::vec(corruption(), 1..=5)).prop_map(|(recipe, corruptions)| Case {
        recipe,
        corruptions,
    })
}

fn child_deadline() -> Duration {
    std::env::var(common::CHILD_TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(5), Duration::from_secs)
}

/// Builds the image, corrupts it, and puts it through the entry points in a child process
/// (with `mutant` switched on there, if given).
fn corrupt_case(c: &Case, mutant: Option<&str>) -> Result<(), TestCaseError> {
    let dir = common::tempdir();
    let base = dir.path().join("valid.heap");
    let img = build_image(&c.recipe, &base).map_err(|e| common::fail(format!("build: {e}")))?;
    let bytes = corrupt(&img, &c.corruptions);
    let path: PathBuf = dir.path().join("corrupt.heap");
    std::fs::write(&path, &bytes).map_err(common::fail)?;
    let mut env = vec![
        (common::CHILD_ENV, "corrupt".to_string()),
        (IMAGE_ENV, path.display().to_string()),
    ];
    if let Some(m) = mutant {
        env.push(("MAPHEAP_MUTANT", m.to_string()));
    }
    let run = run_child(CHILD_TEST, &env, child_deadline());
    match run.end {
        ChildEnd::Exited(0) => Ok(()),
        _ => Err(common::fail(run.describe())),
    }
}

#[test]
fn corrupt_image_property_open_and_check_never_crash() {
    let _watchdog = mapheap::watchdog!(common::bound_secs(2048, 40));
    assert_property(
        "corrupt_image",
        common::config(2048, REGRESSIONS),
        &case(),
        |c| corrupt_case(&c, None),
    );
}

/// The enumeration behind the property: every scalar field of the allocator state, alone,
/// at every boundary value kind the property draws from (0, 1, all ones, the sign bit, the
/// largest aligned word, the first arena words, the capacity, the file length and the
/// largest capacity, each with its neighbours, and the offsets around the first, a middle
/// and the last block), each image put through every entry point in a child. The random
/// property meets a given field and value only by luck: it found an extension listed in
/// an empty log (a block's payload in `log.ext[0]`) that way, once in many runs.
#[test]
fn every_state_field_at_every_boundary_value_passes_the_entry_points() {
    let _watchdog = mapheap::watchdog!(300);
    let recipe = Recipe {
        pages: 8,
        allocs: vec![(40, 8), (100, 64), (3000, 8), (8, 8), (500, 4096)],
        big: true,
        frees: Vec::new(),
        roots: Vec::new(),
        grow: None,
        held: false,
    };
    let dir = common::tempdir();
    let img = build_image(&recipe, &dir.path().join("valid.heap")).expect("valid image");
    let near =
        |base: u64, lo: i64, hi: i64| (lo..=hi).map(move |d| base.wrapping_add((d * 8) as u64));
    let mut values = vec![0, 1, u64::MAX, 1 << 63, !7];
    values.extend(near(MAX_CAPACITY, -1, 1));
    values.extend(near(HEADER_SIZE, 0, 3));
    values.extend(near(img.capacity, -3, 3));
    values.extend(near(img.bytes.len() as u64, -3, 3));
    let n = img.blocks.len();
    for k in [0, n / 2, n - 2] {
        values.extend(near(img.blocks[k].0, -2, 3));
    }
    values.sort_unstable();
    values.dedup();
    let path = dir.path().join("corrupt.heap");
    let (mut runs, mut failures) = (0, Vec::new());
    for field in 0..15u8 {
        let (at, width) = locate(&Field::State(field), &img.bytes);
        for &v in &values {
            let mut bytes = img.bytes.clone();
            write_word(&mut bytes, at, width, v);
            std::fs::write(&path, &bytes).expect("write the image");
            let env = [
                (common::CHILD_ENV, "corrupt".to_string()),
                (IMAGE_ENV, path.display().to_string()),
            ];
            let run = run_child(CHILD_TEST, &env, child_deadline());
            runs += 1;
            if !matches!(run.end, ChildEnd::Exited(0)) {
                failures.push(format!("state word at {at} = {v:#x}: {}", run.describe()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} images broke a guarantee:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{runs} images: 15 state fields x {} values", values.len());
}

/// The child's entry point (`MAPHEAP_PROP_CHILD=corrupt`: put the image named by
/// `MAPHEAP_CORRUPT_IMAGE` through the entry points and exit 0, or 1 on a broken guarantee;
/// a panic exits 101). Run as a plain test, it checks that valid images, including a
/// snapshot taken under the lock, pass every entry point with a clean report.
#[test]
fn valid_images_pass_every_entry_point() {
    let _watchdog = mapheap::watchdog!(60);
    if child_role().as_deref() == Some("corrupt") {
        mutant::init_from_env();
        let path = std::env::var(IMAGE_ENV).expect("MAPHEAP_CORRUPT_IMAGE");
        common::entry::guard_reservation();
        match common::entry::exercise(Path::new(&path)) {
            Ok(x) => {
                eprintln!("ok: {x:?}");
                std::process::exit(0)
            }
            Err(v) => {
                eprintln!("VIOLATION: {v}");
                std::process::exit(1)
            }
        }
    }
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for k in 0..12 {
        let mut r = recipe().new_tree(&mut runner).expect("recipe").current();
        r.held = k % 2 == 1;
        let dir = common::tempdir();
        let path = dir.path().join("valid.heap");
        let img = build_image(&r, &path).expect("valid image");
        let copy = dir.path().join("copy.heap");
        std::fs::write(&copy, &img.bytes).unwrap();
        let x = common::entry::exercise(&copy)
            .unwrap_or_else(|v| panic!("broken guarantee on the valid image of {r:?}: {v}"));
        assert!(x.opened, "{r:?}: {x:?}");
        assert_eq!(x.clean, Some(true), "{r:?}: {x:?}");
        assert!(x.errors.is_empty(), "{r:?}: {x:?}");
    }
}

/// The isolation itself: a child that faults, aborts or hangs is a failing case, never a
/// dead test binary or a stuck run.
#[test]
fn child_isolation_turns_faults_and_hangs_into_failures() {
    let _watchdog = mapheap::watchdog!(120);
    match child_role().as_deref() {
        Some("segv") => {
            // A read of reserved, inaccessible address space: a real fault.
            let r = common::Reservation::new(4096);
            // SAFETY: deliberately faulting in this child process (the page is PROT_NONE).
            let b = unsafe { std::ptr::read_volatile(r.base() as *const u8) };
            std::process::exit(i32::from(b))
        }
        Some("bus") => {
            // A read of a mapped page past the end of its file: a real SIGBUS.
            let f = tempfile::tempfile().expect("temp file");
            f.set_len(4096).expect("size");
            use std::os::fd::AsRawFd;
            // SAFETY: maps two pages of a one-page file, then deliberately reads the second
            // page, which has no file behind it; this child process dies of it.
            let b = unsafe {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    8192,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    f.as_raw_fd(),
                    0,
                );
                assert_ne!(p, libc::MAP_FAILED);
                std::ptr::read_volatile(p.cast::<u8>().add(4096))
            };
            std::process::exit(i32::from(b))
        }
        Some("hang") => loop {
            std::thread::sleep(Duration::from_secs(1));
        },
        Some(_) => std::process::exit(0),
        None => {}
    }
    let name = "child_isolation_turns_faults_and_hangs_into_failures";
    let run = |role: &str, t: u64| {
        run_child(
            name,
            &[(common::CHILD_ENV, role.to_string())],
            Duration::from_secs(t),
        )
    };
    assert_eq!(run("segv", 20).end, ChildEnd::Signaled(libc::SIGSEGV));
    assert_eq!(run("bus", 20).end, ChildEnd::Signaled(libc::SIGBUS));
    assert_eq!(run("hang", 1).end, ChildEnd::TimedOut);
    assert_eq!(run("exit", 20).end, ChildEnd::Exited(0));
}

#[test]
fn mutant_trust_capacity_is_caught_by_corrupt_image_property() {
    let _watchdog = mapheap::watchdog!(180);
    const SEED: u64 = 0x5eed_0004;
    const CASES: u32 = 64;
    let out = run_property(common::mutant_config(CASES, SEED), &case(), |c| {
        corrupt_case(&c, Some("TrustCapacity"))
    });
    assert_caught("TrustCapacity", "corrupt_image", &out);
    let control = run_property(common::mutant_config(CASES, SEED), &case(), |c| {
        corrupt_case(&c, None)
    });
    assert!(
        control.result.is_ok(),
        "the same run without the mutant must pass: {:?}",
        control.result
    );
}

// ---- refusal before damage (D1): corrupt_image/refusal.rs ------------------------------

#[test]
fn refusal_property_failed_operations_leave_the_file_as_it_was() {
    let _watchdog = mapheap::watchdog!(common::bound_secs(refusal::CASES, 100));
    assert_property(
        "refusal",
        refusal::config(),
        &refusal::refusal_case(),
        |c| refusal::refusal_case_holds(&c, None),
    );
}

/// The refusal property's child entry point (`MAPHEAP_PROP_CHILD=refusal`). Run as a plain
/// test, it puts valid images through every operation: each succeeds, or fails (a double
/// free, a block that does not hold a `u64`, no room) with the file as it was.
#[test]
fn refusal_holds_on_valid_images() {
    let _watchdog = mapheap::watchdog!(60);
    if child_role().as_deref() == Some("refusal") {
        refusal::child_main();
    }
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for k in 0..8 {
        let mut r = recipe().new_tree(&mut runner).expect("recipe").current();
        r.held = k % 2 == 1;
        let dir = common::tempdir();
        let img = build_image(&r, &dir.path().join("valid.heap")).expect("valid image");
        let copy = dir.path().join("copy.heap");
        let mut ops = vec!["open".to_string(), "lock".into(), "check".into()];
        ops.push("alloc 100 64".into());
        ops.push("alloc 1000000 8".into());
        ops.push("grow 2".into());
        for &(o, _) in &img.blocks {
            ops.push(format!("free {}", o + 8));
            ops.push(format!("get {}", o + 8));
            ops.push(format!("bytes {}", o + 8));
            ops.push(format!("root {} 1", o + 8));
        }
        for op in &ops {
            refusal::run_op(&copy, &img.bytes, op)
                .unwrap_or_else(|v| panic!("broken guarantee on the valid image of {r:?}: {v}"));
        }
    }
}

#[test]
fn mutant_write_before_check_is_caught_by_refusal_property() {
    let _watchdog = mapheap::watchdog!(300);
    const SEED: u64 = 0x5eed_00d1;
    const CASES: u32 = 128;
    let out = run_property(
        common::mutant_config(CASES, SEED),
        &refusal::refusal_case(),
        |c| refusal::refusal_case_holds(&c, Some("WriteBeforeCheck")),
    );
    assert_caught("WriteBeforeCheck", "refusal", &out);
    let control = run_property(
        common::mutant_config(CASES, SEED),
        &refusal::refusal_case(),
        |c| refusal::refusal_case_holds(&c, None),
    );
    assert!(
        control.result.is_ok(),
        "the same run without the mutant must pass: {:?}",
        control.result
    );
}
