//! `mapheap`: create, inspect, check, stress and benchmark heap files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mapheap::{CreateOptions, Heap};

#[derive(Parser)]
#[command(
    name = "mapheap",
    version,
    about = "A heap in a memory-mapped file, shared by processes"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a heap file.
    Create {
        /// Where to create it.
        path: PathBuf,
        /// Capacity, e.g. 64M, 1G, 65536.
        #[arg(long, default_value = "64M", value_parser = mapheap::size::parse_size)]
        size: u64,
        /// Replace an existing file.
        #[arg(long)]
        overwrite: bool,
    },
    /// Open a heap (validating it, repairing a dead owner's leftovers) and print its summary.
    Open {
        /// The heap file.
        path: PathBuf,
    },
    /// Check every invariant; exit status 1 if any is broken.
    Check {
        /// The heap file.
        path: PathBuf,
    },
    /// Usage, block counts, attachments and a histogram of free block sizes.
    Stat {
        /// The heap file.
        path: PathBuf,
    },
    /// The block map: one line per block.
    Dump {
        /// The heap file.
        path: PathBuf,
        /// Print at most this many blocks.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
    },
    /// Fork workers that hammer one heap and get SIGKILLed; then verify it.
    Stress(mapheap::stress::StressArgs),
    /// Run the benchmark workloads of ../shared/anchors; print key<TAB>value<TAB>unit.
    Bench(mapheap::bench::BenchArgs),
}

fn run(cli: Cli) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match cli.cmd {
        Cmd::Create {
            path,
            size,
            overwrite,
        } => {
            let mut o = CreateOptions::new(size);
            o.overwrite = overwrite;
            let heap = Heap::create_with(&path, &o)?;
            let s = heap.lock()?.stats();
            println!(
                "created {} ({} bytes, {} free)",
                path.display(),
                s.capacity,
                s.free_bytes
            );
        }
        Cmd::Open { path } => {
            let heap = Heap::open(&path)?;
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
        }
        Cmd::Check { path } => {
            let heap = Heap::open(&path)?;
            let g = heap.lock()?;
            // The takeover usually happens inside open, which took the lock first.
            if let Some(r) = heap.recovered_at_open().or(g.recovered()) {
                println!("recovered from a dead lock owner: {r:?}");
            }
            let report = g.check();
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
            if !report.is_clean() {
                return Ok(ExitCode::from(1));
            }
        }
        Cmd::Stat { path } => {
            let heap = Heap::open(&path)?;
            let g = heap.lock()?;
            let s = g.stats();
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
            println!("roots         {:>14}", g.roots().len());
            drop(g);
            for (slot, rec) in heap.attachments() {
                println!(
                    "slot {slot:>3}: incarnation {} last pid {}",
                    rec.incarnation, rec.pid
                );
            }
            println!("free block sizes:");
            for (i, n) in s.free_histogram.iter().enumerate().filter(|(_, n)| **n > 0) {
                println!("  [{:>12}, {:>12}) {n}", 1u64 << i, 1u64 << (i + 1));
            }
        }
        Cmd::Dump { path, limit } => {
            let heap = Heap::open(&path)?;
            let g = heap.lock()?;
            let blocks = g.blocks();
            println!("{:>14} {:>12} state", "offset", "size");
            for b in blocks.iter().take(limit) {
                println!(
                    "{:#14x} {:>12} {}",
                    b.offset,
                    b.size,
                    if b.free { "free" } else { "used" }
                );
            }
            if blocks.len() > limit {
                println!("... {} more blocks", blocks.len() - limit);
            }
            for r in g.roots() {
                println!("root {:?} -> {:#x}", r.name, r.offset);
            }
        }
        Cmd::Stress(args) => return Ok(mapheap::stress::run(&args)?),
        Cmd::Bench(args) => mapheap::bench::run(&args)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mapheap: {e}");
            ExitCode::from(2)
        }
    }
}
