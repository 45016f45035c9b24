//! `mapheap`: create, inspect, grow, check, stress and benchmark heap files.
//! docs/cli.md documents every command, flag and JSON schema.

mod cli;
mod grow;
mod inspect;
mod json;

use std::process::ExitCode;

use clap::Parser;
use mapheap::{CreateOptions, Heap};

use cli::{Cli, Cmd};

fn run(cli: Cli) -> mapheap::Result<ExitCode> {
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
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Open { path } => inspect::open(&path),
        Cmd::Grow { path, size } => grow::grow(&path, size),
        Cmd::Check { path, json } => inspect::check(&path, json),
        Cmd::Stat { path, json } => inspect::stat(&path, json),
        Cmd::Dump { path, limit, json } => inspect::dump(&path, limit, json),
        Cmd::Stress { args, json } => mapheap::stress::run(&args, json),
        Cmd::Bench(args) => mapheap::bench::run(&args).map(|()| ExitCode::SUCCESS),
    }
}

fn main() -> ExitCode {
    // Rust starts every program with SIGPIPE ignored, so a write to a reader that has gone
    // (`mapheap dump h | head`) fails and `println!` panics. A Unix filter ends quietly by
    // the signal instead.
    // SAFETY: no other thread exists yet, and SIG_DFL installs no handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mapheap: {e}");
            ExitCode::from(2)
        }
    }
}
