//! The header-byte sweep (issue 11): each of the 16,384 header bytes of a populated heap,
//! flipped alone (xor 0xFF), is refused by `open`, recovered by the lock `open` takes, or
//! reported by `check`, unless docs/format.md documents it as free ("Which bytes are
//! checked"). The test holds the code and that table together: the set of bytes whose flip
//! goes unreported equals the set the table calls free, and every refusal kind, recovery
//! and rule seen for a verified byte is named in its row. A second sweep does the same for
//! the blocks: every byte of a block header, of a free block's links and of its footer is
//! reported; a used block's payload and a free block's interior are free.
//!
//! What one byte is put through is what `mapheap check` does: `Heap::open` with a 1 ms
//! probe (a lock word naming a dead owner is taken over at once), then `Heap::check`. A
//! recovery counts as noticing the flip only if it rewrote the flipped byte (a takeover
//! clears the lock word; recovery clears a leftover intent, log count or repair flag): a
//! recovery that a flip merely set off, leaving it in place, reports nothing.
//!
//! Bytes are probed in child processes (this binary re-executed), so a byte that makes the
//! library panic, fault or hang fails the sweep naming the byte, within the child's bound
//! (`probe::child_deadline`: 30 s plus 20 ms a byte; a sweep of every byte takes under a
//! second on two cores).
//! `MAPHEAP_SWEEP=all` probes every header byte (scripts/deep.sh); by default a sample:
//! every 17th byte and every byte of the fields that matter (identity, lock word and the
//! zero ranges' edges, the state's scalar fields and bitmaps, a used and an unused root
//! entry, the first and last free-list heads). See docs/testing.md.

#[macro_use]
#[allow(unused_macros)]
mod common;
#[path = "header_sweep/image.rs"]
mod image;
#[path = "header_sweep/probe.rs"]
mod probe;
#[path = "header_sweep/table.rs"]
mod table;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use image::{root_at, Image, List};
use mapheap::check::RootFault;
use mapheap::{Error, Heap, OpenOptions};
use probe::Outcome;
use table::Row;

const HEADER_SIZE: u64 = 16384;
const STATE_OFFSET: u64 = 2048;
/// Child processes per sweep.
const JOBS: usize = 2;

/// Options that take a dead owner's lock over after one 1 ms probe.
fn quick() -> OpenOptions {
    OpenOptions {
        probe_interval: Duration::from_millis(1),
        ..OpenOptions::default()
    }
}

/// In a probing child, probe and exit; otherwise return.
fn child_dispatch() {
    if common::child_role().as_deref() == Some(probe::ROLE) {
        probe::child_main();
    }
}

/// A fresh image, and a file holding it for the children.
fn image_file() -> (tempfile::TempDir, Image, PathBuf) {
    let dir = common::tempdir();
    let img = image::build(&dir.path().join("valid.heap"));
    let path = dir.path().join("image");
    std::fs::write(&path, &img.bytes).expect("write the image");
    (dir, img, path)
}

/// Whether to probe every byte (`MAPHEAP_SWEEP=all`) rather than the sample.
fn sweep_all() -> bool {
    match std::env::var("MAPHEAP_SWEEP").as_deref() {
        Ok("all") => true,
        Ok("sample") | Err(_) => false,
        Ok(v) => panic!("MAPHEAP_SWEEP={v:?}: expected `all` or `sample`"),
    }
}

/// The header bytes to probe: all of them, or the sample (see the module doc).
fn header_bytes(img: &Image) -> Vec<u64> {
    if sweep_all() {
        return (0..HEADER_SIZE).collect();
    }
    let st = STATE_OFFSET;
    let list = root_at(img.list_root) as u64;
    let last_root = root_at(mapheap::format::ROOT_COUNT - 1) as u64;
    let heads = st + std::mem::offset_of!(mapheap::format::State, heads) as u64;
    let state_end = st + mapheap::format::STATE_SIZE as u64;
    let mut v: BTreeSet<u64> = (0..HEADER_SIZE).step_by(17).collect();
    for r in [
        0..72,
        120..136,
        1144..1160,
        st - 8..st + 336,
        list..list + 64,
        last_root..last_root + 64,
        heads..heads + 16,
        state_end - 16..state_end + 16,
        HEADER_SIZE - 16..HEADER_SIZE,
    ] {
        v.extend(r);
    }
    v.into_iter().collect()
}

fn bound(bytes: usize) -> u64 {
    probe::child_deadline(bytes.div_ceil(JOBS)).as_secs() + 60
}

/// A byte whose outcome disagrees with its row of the table.
#[derive(Debug)]
struct Problem {
    at: u64,
    what: String,
}

/// Each probed byte against its row: a free byte must go unreported; a verified one must
/// be noticed, by refusals, recoveries and rules its row names.
fn verify(out: &[Outcome], rows: &[Row]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for o in out {
        let row = table::row_of(rows, o.at);
        let what = if row.free {
            (!o.unreported())
                .then(|| format!("documented as free ({}), but {}", row.field, o.describe()))
        } else if o.unreported() {
            Some(format!(
                "unreported, but documented as verified ({}: {})",
                row.field, row.how
            ))
        } else {
            let missing: Vec<String> = o.tokens().into_iter().filter(|t| !row.names(t)).collect();
            (!missing.is_empty()).then(|| {
                format!(
                    "{}, which the row of {} does not name ({})",
                    missing.join(", "),
                    row.field,
                    o.describe()
                )
            })
        };
        if let Some(what) = what {
            problems.push(Problem { at: o.at, what });
        }
    }
    problems
}

/// Runs of adjacent bytes with the same text, as `a..=b: text` lines.
fn runs(items: &[(u64, String)]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        while j + 1 < items.len()
            && items[j + 1].0 == items[j].0 + 1
            && items[j + 1].1 == items[i].1
        {
            j += 1;
        }
        let (a, b) = (items[i].0, items[j].0);
        let at = if a == b {
            format!("{a}")
        } else {
            format!("{a}..={b}")
        };
        lines.push(format!("  {at}: {}", items[i].1));
        i = j + 1;
    }
    lines
}

fn report(problems: &[Problem]) -> String {
    let items: Vec<(u64, String)> = problems.iter().map(|p| (p.at, p.what.clone())).collect();
    runs(&items).join("\n")
}

/// Counts by kind, and the unreported bytes as ranges (printed for the record).
fn summary(out: &[Outcome]) -> String {
    use std::collections::BTreeMap;
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut unreported = Vec::new();
    for o in out {
        let k = match (&o.refused, o.recovered) {
            (Some((k, _)), _) => format!("refused {k}"),
            (None, true) => "recovered".to_string(),
            (None, false) if o.rules.is_empty() => {
                unreported.push(o.at);
                "unreported".to_string()
            }
            (None, false) => format!("reported {}", o.rules.join(" + ")),
        };
        *kinds.entry(k).or_default() += 1;
    }
    let mut ranges: Vec<String> = Vec::new();
    let mut i = 0;
    while i < unreported.len() {
        let mut j = i;
        while j + 1 < unreported.len() && unreported[j + 1] == unreported[j] + 1 {
            j += 1;
        }
        ranges.push(format!("{}..{}", unreported[i], unreported[j] + 1));
        i = j + 1;
    }
    let counts: Vec<String> = kinds.iter().map(|(k, n)| format!("  {n:6}  {k}")).collect();
    format!(
        "{}\n  unreported bytes: {}",
        counts.join("\n"),
        ranges.join(", ")
    )
}

/// Sweeps `bytes` of a fresh image in children of the test `name`, with `mutant` on there.
fn sweep(name: &str, bytes_of: impl Fn(&Image) -> Vec<u64>, mutant: Option<&str>) -> Vec<Outcome> {
    let (_dir, img, path) = image_file();
    let bytes = bytes_of(&img);
    let t = Instant::now();
    let out = probe::sweep(name, &path, &bytes, JOBS, mutant).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{name}: {} bytes probed in {:.1?} (mutant {mutant:?})",
        out.len(),
        t.elapsed()
    );
    out
}

#[test]
fn every_header_byte_is_checked_or_documented_free() {
    let _watchdog = mapheap::watchdog!(bound(HEADER_SIZE as usize));
    child_dispatch();
    let rows = table::rows(HEADER_SIZE);
    let name = "every_header_byte_is_checked_or_documented_free";
    let out = sweep(name, header_bytes, None);
    eprintln!("{}", summary(&out));
    let problems = verify(&out, &rows);
    assert!(
        problems.is_empty(),
        "{} header byte(s) disagree with {} (\"Which bytes are checked\"):\n{}",
        problems.len(),
        table::PAGE,
        report(&problems)
    );
}

/// The bytes of every block that the block sweep probes, and whether each must be noticed:
/// every header byte (the sentinel's too), a free block's links and footer, and from each
/// used payload and each free interior its first, middle and last byte, which must not.
fn block_bytes(img: &Image) -> Vec<(u64, bool)> {
    let mut v = Vec::new();
    for &(o, size, free) in &img.blocks {
        v.extend((o..o + 8).map(|b| (b, true)));
        let (body, end) = if free {
            v.extend((o + 8..o + 24).map(|b| (b, true)));
            v.extend((o + size - 8..o + size).map(|b| (b, true)));
            (o + 24, o + size - 8)
        } else {
            (o + 8, o + size)
        };
        if body < end {
            let mut picks = vec![body, body + (end - body) / 2, end - 1];
            picks.dedup();
            v.extend(picks.into_iter().map(|b| (b, false)));
        }
    }
    v.extend((img.sentinel..img.sentinel + 8).map(|b| (b, true)));
    v
}

#[test]
fn every_block_header_link_and_footer_byte_is_reported() {
    let _watchdog = mapheap::watchdog!(bound(1000));
    child_dispatch();
    let name = "every_block_header_link_and_footer_byte_is_reported";
    let (_dir, img, path) = image_file();
    let expect = block_bytes(&img);
    let bytes: Vec<u64> = expect.iter().map(|&(b, _)| b).collect();
    let t = Instant::now();
    let out = probe::sweep(name, &path, &bytes, JOBS, None).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{name}: {} bytes of {} blocks probed in {:.1?}\n{}",
        out.len(),
        img.blocks.len(),
        t.elapsed(),
        summary(&out)
    );
    let noticed: std::collections::HashMap<u64, bool> = expect.into_iter().collect();
    let mut bad: Vec<(u64, String)> = Vec::new();
    for o in &out {
        let want = noticed[&o.at];
        if want == o.unreported() {
            let what = if want {
                "a block header, free link or footer byte went unreported".to_string()
            } else {
                format!(
                    "a payload or free interior byte (documented free) was {}",
                    o.describe()
                )
            };
            bad.push((o.at, what));
        }
    }
    assert!(
        bad.is_empty(),
        "block bytes disagree with docs/format.md (\"Which bytes are checked\", blocks):\n{}",
        runs(&bad).join("\n")
    );
}

/// The harness itself: a probe that hangs fails the sweep naming its byte once the child's
/// bound is past, and one that panics names its byte too.
#[test]
fn a_byte_that_hangs_or_crashes_the_probe_fails_the_sweep_naming_it() {
    let _watchdog = mapheap::watchdog!(60);
    child_dispatch();
    let name = "a_byte_that_hangs_or_crashes_the_probe_fails_the_sweep_naming_it";
    let (_dir, _img, path) = image_file();
    let bytes = [100, 2064, 2100, 3000];
    for (fake, what) in [("hang:2100", "hung the library"), ("panic:2064", "crashed")] {
        let t = Instant::now();
        let extra = [(probe::FAKE_ENV, fake.to_string())];
        let r = probe::sweep_with(name, &path, &bytes, 1, &extra, |_| Duration::from_secs(2));
        let e = r.expect_err("the sweep must fail");
        let at = fake.split(':').nth(1).unwrap();
        assert!(
            e.contains(&format!("flipping byte {at} {what}")),
            "{fake}: {e}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{fake}: {:?}",
            t.elapsed()
        );
    }
}

// ---- seeded bugs: each makes bytes it guards go unreported ------------------------------

/// Sweeps `bytes` with `mutant` on and off: on, each of them must be a problem (unreported
/// though documented as verified); off, none may be.
fn assert_caught(name: &str, mutant: &str, bytes: impl Fn(&Image) -> Vec<u64>) {
    let rows = table::rows(HEADER_SIZE);
    let caught = verify(&sweep(name, &bytes, Some(mutant)), &rows);
    let (_dir, img, _) = image_file();
    for b in bytes(&img) {
        assert!(
            caught
                .iter()
                .any(|p| p.at == b && p.what.starts_with("unreported")),
            "mutant {mutant} survived the header sweep at byte {b}; problems found:\n{}",
            report(&caught)
        );
    }
    eprintln!(
        "mutant {mutant} caught by the header sweep:\n{}",
        report(&caught)
    );
    let control = verify(&sweep(name, &bytes, None), &rows);
    assert!(
        control.is_empty(),
        "the same bytes without the mutant must pass:\n{}",
        report(&control)
    );
}

#[test]
fn mutant_skip_zero_check_is_caught_by_header_sweep() {
    let _watchdog = mapheap::watchdog!(bound(100));
    child_dispatch();
    // The edges of the three zero ranges: lock padding, the gap, the tail.
    assert_caught(
        "mutant_skip_zero_check_is_caught_by_header_sweep",
        "SkipZeroCheck",
        |_| vec![68, 127, 1152, 2047, 14672, 16383],
    );
}

#[test]
fn mutant_skip_flags_check_is_caught_by_header_sweep() {
    let _watchdog = mapheap::watchdog!(bound(100));
    child_dispatch();
    // The flags' bytes above NEEDS_REPAIR's: only unknown bits.
    let flags = STATE_OFFSET + 16;
    assert_caught(
        "mutant_skip_flags_check_is_caught_by_header_sweep",
        "SkipFlagsCheck",
        move |_| (flags + 1..flags + 8).collect(),
    );
}

#[test]
fn mutant_ignore_root_checksum_is_caught_by_header_sweep() {
    let _watchdog = mapheap::watchdog!(bound(100));
    child_dispatch();
    // A used entry's type hash and checksum: nothing but the checksum vouches for them.
    assert_caught(
        "mutant_ignore_root_checksum_is_caught_by_header_sweep",
        "IgnoreRootChecksum",
        |img| {
            let e = root_at(img.list_root) as u64;
            (e + 40..e + 48).chain(e + 56..e + 64).collect()
        },
    );
}

// ---- the two complaints ------------------------------------------------------

/// The image with the first byte of the "list" root's name xor `flip`, opened: `root` must
/// be an error naming the entry (not `None`), and `find_or_init` must refuse rather than
/// allocate a second structure and orphan the first. `Err` says how it went wrong.
fn damaged_name_is_refused(flip: u8) -> Result<(), String> {
    let (dir, img, _) = image_file();
    let mut bytes = img.bytes.clone();
    bytes[root_at(img.list_root)] ^= flip;
    let path = dir.path().join("damaged.heap");
    std::fs::write(&path, &bytes).map_err(|e| e.to_string())?;
    let heap = Heap::open_with(&path, &quick()).map_err(|e| format!("open: {e}"))?;
    let mut g = heap.lock().map_err(|e| format!("lock: {e}"))?;
    let used = g.stats().used_blocks;
    match g.root::<List>("list") {
        Err(Error::RootTable { index, fault }) if index == img.list_root => {
            if fault != RootFault::Checksum {
                return Err(format!("root: refused for {fault:?}, not its checksum"));
            }
        }
        other => {
            return Err(format!(
                "root(\"list\") gave {other:?}, not a RootTable error"
            ))
        }
    }
    match g.find_or_init::<List>("list", || [0; 4]) {
        Err(Error::RootTable { .. }) => {}
        other => {
            return Err(format!(
                "find_or_init gave {other:?}: the structure under the damaged name is orphaned"
            ))
        }
    }
    if g.stats().used_blocks != used {
        return Err("find_or_init allocated though it refused".into());
    }
    let rules = g.check().rules();
    if !rules.contains(&mapheap::check::Rule::Root(RootFault::Checksum)) {
        return Err(format!("check does not report the entry: {rules:?}"));
    }
    Ok(())
}

#[test]
fn a_damaged_root_name_is_an_error_and_find_or_init_refuses() {
    let _watchdog = mapheap::watchdog!(60);
    // 0xFF makes the name invalid UTF-8 as well; 0x20 turns "list" into "List", a valid
    // name that only the checksum tells from a real one.
    for flip in [0xFF, 0x20] {
        damaged_name_is_refused(flip).unwrap_or_else(|e| panic!("name byte xor {flip:#x}: {e}"));
    }
}

#[test]
fn mutant_ignore_root_checksum_is_caught_by_find_or_init() {
    let _watchdog = mapheap::watchdog!(60);
    let r = mapheap::mutant::with(mapheap::mutant::Mutant::IgnoreRootChecksum, || {
        damaged_name_is_refused(0x20)
    });
    let e = r.expect_err("mutant IgnoreRootChecksum survived: the damaged name was refused");
    eprintln!("mutant IgnoreRootChecksum caught by find_or_init: {e}");
    damaged_name_is_refused(0x20).expect("without the mutant the name is refused");
}

/// Regression: the repair flag (set by a guard that could not end its transaction) is a
/// state word, which the arena's store path for arena words refused, so recovery failed
/// half-way ("word outside the arena") instead of clearing it.
#[test]
fn the_repair_flag_is_cleared_by_the_next_lock() {
    let _watchdog = mapheap::watchdog!(60);
    let (dir, img, _) = image_file();
    let flags = (STATE_OFFSET + 16) as usize;
    let mut bytes = img.bytes.clone();
    bytes[flags] |= mapheap::format::FLAG_NEEDS_REPAIR as u8;
    let path = dir.path().join("flagged.heap");
    std::fs::write(&path, &bytes).unwrap();
    let heap = Heap::open_with(&path, &quick()).expect("open repairs a flagged heap");
    let r = heap
        .recovered_at_open()
        .expect("the lock inside open recovered");
    assert_eq!(r.dead, None);
    let report = heap.check().unwrap();
    assert!(report.is_clean(), "{report:?}");
    drop(heap);
    let now = std::fs::read(&path).unwrap();
    assert_eq!(now[flags], 0, "the flag is cleared");
}
