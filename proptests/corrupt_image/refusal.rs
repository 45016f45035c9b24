//! Property D1, refusal before damage: on a corrupt image, an operation either succeeds,
//! or fails with an error and leaves the file as it was: every byte outside the lock area
//! (64..128) and the attachment table (128..1152), which the lock protocol changes by
//! design, and the file's length.
//!
//! Each case builds a valid image and corrupts it as the corrupt-image property does
//! (`super::case`), then, in a child process, puts a fresh copy of it through each of a few
//! operations: `open` (and the recovery inside it), a second `lock`, an allocation, a free
//! followed by a checkpoint (frees are deferred to the commit, so the commit belongs to the
//! operation), a resolution (`get` or `bytes`), `set_root`, a growth, and `check`. The
//! file is read before the step that may fail and again after it failed (after the guard
//! and the handle are dropped, so their epilogues count too); `check` and resolution only
//! read, so they are compared whatever they return. A panic, fault or hang of the child
//! fails the case too, as in the corrupt-image property.

use std::path::Path;

use mapheap::{Error, Heap, Offset};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

use super::common::{self, run_child, ChildEnd};
use super::{build_image, corrupt, Case, Image};

const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/proptests/regressions/corrupt_image_refusal.txt"
);
/// The test whose body is the child's entry point.
pub const CHILD_TEST: &str = "refusal_holds_on_valid_images";
const IMAGE_ENV: &str = "MAPHEAP_REFUSAL_IMAGE";
const OPS_ENV: &str = "MAPHEAP_REFUSAL_OPS";
/// The lock area and the attachment table: runtime state the lock protocol rewrites.
const RUNTIME: std::ops::Range<usize> = 64..1152;

/// One operation, on a block of the valid image (by index) where it takes one.
#[derive(Clone, Debug)]
pub enum Op {
    Open,
    Lock,
    Alloc(u16, u64),
    FreeCommit(Index),
    Get(Index),
    Bytes(Index),
    SetRoot(Index, u8),
    Grow(u8),
    Check,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Open),
        1 => Just(Op::Lock),
        2 => (
            8u16..4000,
            prop_oneof![Just(8u64), Just(64u64), Just(4096u64)]
        )
            .prop_map(|(s, a)| Op::Alloc(s, a)),
        4 => any::<Index>().prop_map(Op::FreeCommit),
        1 => any::<Index>().prop_map(Op::Get),
        1 => any::<Index>().prop_map(Op::Bytes),
        2 => (any::<Index>(), 0u8..6).prop_map(|(b, n)| Op::SetRoot(b, n)),
        2 => (1u8..4).prop_map(Op::Grow),
        1 => Just(Op::Check),
    ]
}

/// A corrupt-image case and the operations each fresh copy of its image is put through.
#[derive(Clone, Debug)]
pub struct RefusalCase {
    case: Case,
    ops: Vec<Op>,
}

/// Cases of the property.
pub fn refusal_case() -> impl Strategy<Value = RefusalCase> {
    (super::case(), prop::collection::vec(op(), 1..=6))
        .prop_map(|(case, ops)| RefusalCase { case, ops })
}

/// An operation as the child reads it: the block indices resolved to payload offsets of
/// the valid image (a free block's, or the sentinel's, as readily as a used one's).
fn encode(op: &Op, img: &Image) -> String {
    let payload = |i: &Index| img.blocks[i.index(img.blocks.len())].0 + 8;
    match op {
        Op::Open => "open".into(),
        Op::Lock => "lock".into(),
        Op::Alloc(s, a) => format!("alloc {s} {a}"),
        Op::FreeCommit(b) => format!("free {}", payload(b)),
        Op::Get(b) => format!("get {}", payload(b)),
        Op::Bytes(b) => format!("bytes {}", payload(b)),
        Op::SetRoot(b, n) => format!("root {} {n}", payload(b)),
        Op::Grow(p) => format!("grow {p}"),
        Op::Check => "check".into(),
    }
}

/// Builds and corrupts the image, and runs the operations in a child process (with
/// `mutant` switched on there, if given).
pub fn refusal_case_holds(c: &RefusalCase, mutant: Option<&str>) -> Result<(), TestCaseError> {
    let dir = common::tempdir();
    let img = build_image(&c.case.recipe, &dir.path().join("valid.heap"))
        .map_err(|e| common::fail(format!("build: {e}")))?;
    let bytes = corrupt(&img, &c.case.corruptions);
    let path = dir.path().join("corrupt.image");
    std::fs::write(&path, &bytes).map_err(common::fail)?;
    let ops: Vec<String> = c.ops.iter().map(|o| encode(o, &img)).collect();
    let mut env = vec![
        (common::CHILD_ENV, "refusal".to_string()),
        (IMAGE_ENV, path.display().to_string()),
        (OPS_ENV, ops.join(";")),
    ];
    if let Some(m) = mutant {
        env.push(("MAPHEAP_MUTANT", m.to_string()));
    }
    let run = run_child(CHILD_TEST, &env, super::child_deadline());
    match run.end {
        ChildEnd::Exited(0) => Ok(()),
        _ => Err(common::fail(run.describe())),
    }
}

/// Cases in the default run (about 10 ms each on two idle cores).
pub const CASES: u32 = 1024;

/// The configuration of the property in the default run.
pub fn config() -> proptest::test_runner::Config {
    common::config(CASES, REGRESSIONS)
}

// ---- in the child ---------------------------------------------------------------------

/// The first byte outside the runtime range where `after` differs from `before`, or a
/// length change, in words.
fn damage(before: &[u8], after: &[u8]) -> Option<String> {
    if before.len() != after.len() {
        return Some(format!(
            "the file's length changed from {} to {}",
            before.len(),
            after.len()
        ));
    }
    let changed: Vec<usize> = (0..before.len())
        .filter(|i| !RUNTIME.contains(i) && before[*i] != after[*i])
        .collect();
    let first = *changed.first()?;
    Some(format!(
        "{} byte(s) changed, the first at {first} ({:#04x} -> {:#04x}), the last at {}",
        changed.len(),
        before[first],
        after[first],
        changed[changed.len() - 1]
    ))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read the heap file")
}

/// Puts a fresh copy of `image` at `path` through `op`. `Err` is a broken guarantee: an
/// operation that failed (or only reads) and changed the file. Returns what happened.
pub fn run_op(path: &Path, image: &[u8], op: &str) -> Result<String, String> {
    std::fs::write(path, image).expect("write the copy");
    let words: Vec<&str> = op.split(' ').collect();
    let num = |i: usize| -> u64 { words[i].parse().expect("a number") };
    let broken = |step: &str, e: &dyn std::fmt::Display, d: String| {
        format!("{op}: {step} failed ({e}) and changed the file: {d}")
    };
    let before = read(path);
    let heap = match Heap::open_with(path, &super::common::entry::options()) {
        Ok(h) => h,
        Err(e) => {
            return match damage(&before, &read(path)) {
                Some(d) => Err(broken("open", &e, d)),
                None => Ok(format!("open refused: {e}")),
            }
        }
    };
    if words[0] == "open" {
        return Ok("opened".into());
    }
    let mut before = read(path);
    let off = |i| Offset::<u64>::from_raw(num(i));
    let read_only = matches!(words[0], "check" | "get" | "bytes");
    let (step, r): (&str, Result<(), Error>) = match heap.lock() {
        Err(e) => ("lock", Err(e)),
        Ok(mut g) => {
            // The lock may have recovered leftovers: the operation starts from what it left.
            before = read(path);
            let r = match words[0] {
                "lock" => Ok(()),
                "check" => {
                    let _ = g.check();
                    Ok(())
                }
                "alloc" => g.alloc_bytes(num(1), num(2)).map(drop),
                "free" => g.free(off(1)).and_then(|()| g.checkpoint()),
                "get" => g.get(off(1)).map(drop),
                "bytes" => {
                    let o = off(1).cast::<u8>();
                    g.usable_size(o).and_then(|n| g.bytes(o, n).map(drop))
                }
                "root" => g.set_root(&format!("root{}", num(2)), off(1)),
                "grow" => g.grow_by(num(1) * 4096),
                other => panic!("unknown operation {other:?}"),
            };
            if r.is_ok() && !read_only {
                return Ok(format!("{op}: ok"));
            }
            (words[0], r)
        }
    };
    // The guard's and the handle's epilogues count: compare after both.
    drop(heap);
    match (damage(&before, &read(path)), r) {
        (Some(d), Err(e)) => Err(broken(step, &e, d)),
        (Some(d), Ok(())) => Err(format!("{op} only reads, but changed the file: {d}")),
        (None, Err(e)) => Ok(format!("{op}: {step} refused: {e}")),
        (None, Ok(())) => Ok(format!("{op}: ok")),
    }
}

/// The child's work (`MAPHEAP_PROP_CHILD=refusal`): every operation of
/// `MAPHEAP_REFUSAL_OPS` on its own fresh copy of the image `MAPHEAP_REFUSAL_IMAGE`. Exits
/// 0, or 1 on a broken guarantee (a panic exits 101).
pub fn child_main() -> ! {
    mapheap::mutant::init_from_env();
    let image_path = std::path::PathBuf::from(std::env::var(IMAGE_ENV).expect(IMAGE_ENV));
    let image = std::fs::read(&image_path).expect("image");
    let ops = std::env::var(OPS_ENV).expect(OPS_ENV);
    common::entry::guard_reservation();
    // The copies go beside the image, in the parent's temporary directory, which the
    // parent removes whatever becomes of this child (`process::exit` runs no destructor,
    // and a killed child none at all).
    for (k, op) in ops.split(';').enumerate() {
        match run_op(
            &image_path.with_file_name(format!("op{k}.heap")),
            &image,
            op,
        ) {
            Ok(what) => eprintln!("ok: {what}"),
            Err(v) => {
                eprintln!("VIOLATION: {v}");
                std::process::exit(1)
            }
        }
    }
    std::process::exit(0)
}
