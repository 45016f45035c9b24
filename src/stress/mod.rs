//! `mapheap stress` (being written).
use std::process::ExitCode;

/// Options of `mapheap stress`.
#[derive(Debug, clap::Args)]
pub struct StressArgs {}

/// Runs the stress job.
pub fn run(_args: &StressArgs) -> crate::Result<ExitCode> {
    Ok(ExitCode::FAILURE)
}
