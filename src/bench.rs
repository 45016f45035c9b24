//! `mapheap bench` (being written).

/// Options of `mapheap bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

/// Runs the benchmarks.
pub fn run(_args: &BenchArgs) -> crate::Result<()> {
    Ok(())
}
