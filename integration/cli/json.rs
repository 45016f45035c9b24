//! `stat`, `check` and `dump --json` print what the library reports (docs/cli.md has the
//! schema): every figure is compared with `HeapGuard::stats`, `check` and `blocks` of the
//! same file, and the block map is checked to tile the arena.

use std::os::unix::fs::FileExt;
use std::path::Path;

use mapheap::{Heap, Offset};
use serde_json::Value;

use crate::run::{ok_json, run};

/// A heap with used and free blocks (not all free space in one block) and a root.
fn busy_heap(path: &Path) -> Vec<Offset<[u64; 8]>> {
    let heap = Heap::create(path, 1 << 20).unwrap();
    let mut g = heap.lock().unwrap();
    let blocks: Vec<_> = (0..8u64).map(|i| g.alloc([i; 8]).unwrap()).collect();
    for b in blocks.iter().step_by(2) {
        g.free(*b).unwrap();
    }
    g.set_root("third", blocks[3]).unwrap();
    blocks
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no unsigned {key:?} in {v:#}"))
}

#[test]
fn stat_json_figures_equal_the_librarys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    busy_heap(&path);
    // Attached while stat runs: it must list this process.
    let heap = Heap::open(&path).unwrap();
    let j = ok_json(dir.path(), &["stat", "h.heap", "--json"]);
    let g = heap.lock().unwrap();
    let s = g.stats();
    assert_eq!(j["path"], "h.heap");
    assert_eq!(u(&j, "capacity"), s.capacity);
    assert_eq!(u(&j, "generation"), s.generation);
    assert_eq!(u(&j, "used_bytes"), s.used_bytes);
    assert_eq!(u(&j, "used_blocks"), s.used_blocks);
    assert_eq!(u(&j, "free_bytes"), s.free_bytes);
    assert_eq!(u(&j, "free_blocks"), s.free_blocks);
    assert_eq!(u(&j, "largest_free"), s.largest_free);
    let hist: Vec<u64> = j["free_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(hist, s.free_histogram);
    assert!(
        s.free_blocks > 1,
        "the heap should have several free blocks"
    );
    let roots = j["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 1, "{j:#}");
    let r = &g.roots()[0];
    assert_eq!(roots[0]["name"], r.name.as_str());
    assert_eq!(u(&roots[0], "offset"), r.offset);
    assert_eq!(u(&roots[0], "size"), u64::from(r.size));
    let me = std::process::id();
    let mine: Vec<_> = j["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| u(a, "pid") == u64::from(me))
        .collect();
    assert_eq!(mine.len(), 1, "this process is attached: {j:#}");
    assert_eq!(u(mine[0], "slot"), u64::from(heap.owner().slot()));
}

#[test]
fn check_json_is_clean_on_a_clean_heap_and_names_a_broken_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    let blocks = busy_heap(&path);
    let j = ok_json(dir.path(), &["check", "h.heap", "--json"]);
    let report = Heap::open(&path).unwrap().check().unwrap();
    assert!(report.is_clean());
    assert_eq!(j["clean"], true);
    assert_eq!(j["violations"], serde_json::json!([]));
    assert_eq!(j["recovered"], Value::Null);
    assert_eq!(u(&j, "blocks"), report.blocks);
    assert_eq!(u(&j, "free_blocks"), report.free_blocks);

    // Break the header of the fourth block (in use): the chain no longer tiles the arena.
    let header = blocks[3].raw() - mapheap::format::BLOCK_HEADER;
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&0x0bad_0bad_0bad_0badu64.to_le_bytes(), header)
        .unwrap();
    drop(f);
    let r = run(dir.path(), &["check", "h.heap", "--json"]);
    assert_eq!(r.code(), Some(1), "a violation exits 1: {r}");
    let j = r.json();
    let report = Heap::open(&path).unwrap().check().unwrap();
    assert!(!report.is_clean());
    assert_eq!(j["clean"], false);
    let vs = j["violations"].as_array().unwrap();
    assert_eq!(vs.len(), report.violations.len(), "{j:#}");
    for (v, want) in vs.iter().zip(&report.violations) {
        assert_eq!(v["message"], want.to_string().as_str());
    }
    let chain = vs
        .iter()
        .find(|v| v["kind"] == "Chain")
        .unwrap_or_else(|| panic!("no Chain violation: {j:#}"));
    assert_eq!(u(chain, "offset"), header, "{chain:#}");
    assert!(chain["message"].as_str().unwrap().starts_with("A2 "));
}

#[test]
fn check_json_reports_a_takeover_and_whose() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    let heap = Heap::create(&path, 256 << 10).unwrap();
    let dead = heap.owner();
    std::mem::forget(heap.lock().unwrap());
    drop(heap);
    let j = ok_json(dir.path(), &["check", "h.heap", "--json"]);
    let rec = &j["recovered"];
    assert_eq!(rec["at_open"], true, "{j:#}");
    assert_eq!(u(&rec["dead_owner"], "slot"), u64::from(dead.slot()));
    assert_eq!(
        u(&rec["dead_owner"], "incarnation"),
        u64::from(dead.incarnation())
    );
    assert!(rec["repair"]["free_blocks"].is_u64(), "{j:#}");
    assert_eq!(j["clean"], true);
}

#[test]
fn dump_json_blocks_tile_the_arena_and_equal_the_librarys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    busy_heap(&path);
    let j = ok_json(dir.path(), &["dump", "h.heap", "--json"]);
    let heap = Heap::open(&path).unwrap();
    let g = heap.lock().unwrap();
    let (lib, s) = (g.blocks(), g.stats());
    let blocks = j["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), lib.len());
    assert_eq!(u(&j, "total_blocks"), lib.len() as u64);
    assert_eq!(j["truncated"], false);
    for (b, l) in blocks.iter().zip(&lib) {
        assert_eq!(
            (u(b, "offset"), u(b, "size"), b["free"].as_bool().unwrap()),
            (l.offset, l.size, l.free)
        );
    }
    // Tiling: from arena_start, each block ends where the next begins, the last at
    // arena_end, where the sentinel's header fills the capacity.
    let mut at = u(&j, "arena_start");
    for b in blocks {
        assert_eq!(u(b, "offset"), at, "a gap or overlap before {b}");
        at += u(b, "size");
    }
    assert_eq!(at, u(&j, "arena_end"));
    assert_eq!(
        u(&j, "arena_end") + mapheap::format::BLOCK_HEADER,
        u(&j, "capacity")
    );
    assert_eq!(u(&j, "capacity"), s.capacity);
    let sum: u64 = blocks.iter().map(|b| u(b, "size")).sum();
    assert_eq!(sum, s.used_bytes + s.free_bytes);
    assert_eq!(j["roots"][0]["name"], "third");
}

#[test]
fn dump_limit_prints_that_many_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    busy_heap(&path);
    let total = Heap::open(&path).unwrap().lock().unwrap().blocks().len();
    assert!(total > 3);
    let text = crate::run::ok(dir.path(), &["dump", "h.heap", "--limit", "3"]);
    let rows = text
        .lines()
        .filter(|l| l.trim_start().starts_with("0x"))
        .count();
    assert_eq!(rows, 3, "{text}");
    assert!(
        text.contains(&format!("... {} more blocks", total - 3)),
        "{text}"
    );
    let all = crate::run::ok(dir.path(), &["dump", "h.heap"]);
    let rows = all
        .lines()
        .filter(|l| l.trim_start().starts_with("0x"))
        .count();
    assert_eq!(rows, total, "{all}");
    let j = ok_json(dir.path(), &["dump", "h.heap", "--json", "--limit", "3"]);
    assert_eq!(j["blocks"].as_array().unwrap().len(), 3);
    assert_eq!(u(&j, "total_blocks"), total as u64);
    assert_eq!(j["truncated"], true);
}
