//! The command line's definition: every subcommand and flag, apart from what each does, so
//! the tests can walk it (integration/cli/flags.rs includes this file and fails when a
//! flag has no test). docs/cli.md documents each one.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use mapheap::bench::BenchArgs;
use mapheap::size::parse_size;
use mapheap::stress::StressArgs;

/// The command line.
#[derive(Parser)]
#[command(
    name = "mapheap",
    version,
    about = "A heap in a memory-mapped file, shared by processes"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Cmd {
    /// Create a heap file.
    Create {
        /// Where to create it.
        path: PathBuf,
        /// Capacity, e.g. 64M, 1G, 65536.
        #[arg(long, default_value = "64M", value_parser = parse_size)]
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
    /// Grow a heap (under its lock; attached processes remap on their next lock).
    Grow {
        /// The heap file.
        path: PathBuf,
        /// The new capacity, e.g. 128M (rounded up to the page size). A size not larger
        /// than the current capacity changes nothing: a heap never shrinks.
        #[arg(long, value_parser = parse_size)]
        size: u64,
    },
    /// Check every invariant; exit status 1 if any is broken.
    Check {
        /// The heap file.
        path: PathBuf,
        /// Print the report as JSON (docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Usage, block counts, attachments and a histogram of free block sizes.
    Stat {
        /// The heap file.
        path: PathBuf,
        /// Print the figures as JSON (docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// The block map: one line per block.
    Dump {
        /// The heap file.
        path: PathBuf,
        /// Print at most this many blocks.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        /// Print the block map as JSON (docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Fork workers that hammer one heap and get SIGKILLed; then verify it.
    Stress {
        /// The run's options.
        #[command(flatten)]
        args: StressArgs,
        /// Print the summary as JSON (docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Run the benchmark workloads of ../shared/anchors; print key<TAB>value<TAB>unit.
    Bench(BenchArgs),
}
