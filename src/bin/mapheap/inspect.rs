//! `open`, `check`, `stat` and `dump`: read a heap under its lock and print what was found,
//! as text or (`--json`) as one JSON object.

use std::path::Path;
use std::process::ExitCode;

use mapheap::format::{BLOCK_HEADER, HEADER_SIZE};
use mapheap::{Heap, Result};

use crate::json;

/// Heaps from this size up get a spinner while `check` walks them (on a terminal).
const CHECK_SPINNER_FROM: u64 = 64 << 20;

pub fn open(path: &Path) -> Result<ExitCode> {
    let heap = Heap::open(path)?;
    let g = heap.lock()?;
    let s = g.stats();
    println!(
        "{}: capacity {} generation {} used {} in {} blocks, free {} in {} blocks",
        path.display(),
        s.capacity,
        s.generation,
        s.used_bytes,
        s.used_blocks,
        s.free_bytes,
        s.free_blocks
    );
    for r in g.roots() {
        println!(
            "root {:?} at {:#x} ({} bytes, align {})",
            r.name, r.offset, r.size, r.align
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn check(path: &Path, as_json: bool) -> Result<ExitCode> {
    let heap = Heap::open(path)?;
    let g = heap.lock()?;
    // The takeover usually happens inside open, which took the lock first.
    let recovered = match (heap.recovered_at_open(), g.recovered()) {
        (Some(r), _) => Some((r, true)),
        (None, Some(r)) => Some((r, false)),
        (None, None) => None,
    };
    let spinner = (g.capacity() >= CHECK_SPINNER_FROM).then(|| {
        mapheap::progress::spinner(format!(
            "checking {} ({} bytes)",
            path.display(),
            g.capacity()
        ))
    });
    let report = g.check();
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    if as_json {
        let j = json::Check::new(
            path.display().to_string(),
            recovered.map(|(r, at_open)| json::Recovered::new(r, at_open)),
            &report,
        );
        println!("{}", json::to_string(&j));
    } else {
        if let Some((r, _)) = recovered {
            println!("recovered from a dead lock owner: {r:?}");
        }
        for v in &report.violations {
            println!("violation: {v}");
        }
        println!(
            "{}: {} blocks ({} free), {} violations",
            path.display(),
            report.blocks,
            report.free_blocks,
            report.violations.len()
        );
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn stat(path: &Path, as_json: bool) -> Result<ExitCode> {
    let heap = Heap::open(path)?;
    let g = heap.lock()?;
    let s = g.stats();
    let roots = g.roots();
    drop(g);
    let attachments = heap.attachments();
    if as_json {
        let j = json::Stat {
            path: path.display().to_string(),
            stats: &s,
            roots,
            attachments: attachments.into_iter().map(json::Attachment::new).collect(),
        };
        println!("{}", json::to_string(&j));
        return Ok(ExitCode::SUCCESS);
    }
    let pct = |x: u64| 100.0 * x as f64 / s.capacity.max(1) as f64;
    println!("capacity      {:>14} bytes", s.capacity);
    println!("generation    {:>14}", s.generation);
    println!(
        "used          {:>14} bytes ({:5.1}%) in {} blocks",
        s.used_bytes,
        pct(s.used_bytes),
        s.used_blocks
    );
    println!(
        "free          {:>14} bytes ({:5.1}%) in {} blocks",
        s.free_bytes,
        pct(s.free_bytes),
        s.free_blocks
    );
    println!("largest free  {:>14} bytes", s.largest_free);
    println!("roots         {:>14}", roots.len());
    for (slot, rec) in attachments {
        println!(
            "slot {slot:>3}: incarnation {} last pid {}",
            rec.incarnation, rec.pid
        );
    }
    println!("free block sizes:");
    for (i, n) in s.free_histogram.iter().enumerate().filter(|(_, n)| **n > 0) {
        println!("  [{:>12}, {:>12}) {n}", 1u64 << i, 1u64 << (i + 1));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn dump(path: &Path, limit: usize, as_json: bool) -> Result<ExitCode> {
    let heap = Heap::open(path)?;
    let g = heap.lock()?;
    let blocks = g.blocks();
    let shown = &blocks[..blocks.len().min(limit)];
    if as_json {
        let j = json::Dump {
            path: path.display().to_string(),
            capacity: g.capacity(),
            arena_start: HEADER_SIZE,
            arena_end: g.capacity() - BLOCK_HEADER,
            total_blocks: blocks.len(),
            truncated: shown.len() < blocks.len(),
            blocks: shown,
            roots: g.roots(),
        };
        println!("{}", json::to_string(&j));
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:>14} {:>12} state", "offset", "size");
    for b in shown {
        println!(
            "{:#14x} {:>12} {}",
            b.offset,
            b.size,
            if b.free { "free" } else { "used" }
        );
    }
    if blocks.len() > shown.len() {
        println!("... {} more blocks", blocks.len() - shown.len());
    }
    for r in g.roots() {
        println!("root {:?} -> {:#x}", r.name, r.offset);
    }
    Ok(ExitCode::SUCCESS)
}
