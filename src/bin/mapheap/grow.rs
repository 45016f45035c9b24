//! `mapheap grow PATH --size N`: `HeapGuard::grow` under the heap's lock, so processes
//! attached meanwhile remap on their next lock (docs/format.md, growth). A size not larger
//! than the capacity changes nothing and says so (exit 0): a heap never shrinks.

use std::path::Path;
use std::process::ExitCode;

use mapheap::{Heap, Result};

pub fn grow(path: &Path, size: u64) -> Result<ExitCode> {
    let heap = Heap::open(path)?;
    let mut g = heap.lock()?;
    let (old, gen0) = (g.capacity(), g.stats().generation);
    if size <= old {
        println!(
            "{}: capacity {old} bytes is already at least {size}; a heap never shrinks, nothing changed (generation {gen0})",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    g.grow(size)?;
    let (new, gen1) = (g.capacity(), g.stats().generation);
    println!(
        "{}: grew from {old} to {new} bytes{} (generation {gen0} -> {gen1})",
        path.display(),
        if new == size {
            String::new()
        } else {
            format!(", {size} rounded up to the page size")
        }
    );
    Ok(ExitCode::SUCCESS)
}
