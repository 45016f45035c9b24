//! Inspection: `check`, usage figures, the block map, and flushing to disk.

use super::guard::{BlockInfo, HeapGuard, Stats};
use super::io_err;
use crate::check::{self, Report};
use crate::error::Result;

impl HeapGuard<'_> {
    /// Checks every invariant of the heap (see [`crate::check`]).
    pub fn check(&self) -> Report {
        check::check(&self.arena())
    }

    /// Usage figures.
    pub fn stats(&self) -> Stats {
        let a = self.arena();
        let st = a.state();
        let mut s = Stats {
            capacity: st.capacity,
            generation: st.generation,
            used_bytes: st.used_bytes,
            used_blocks: st.used_blocks,
            free_bytes: st.free_bytes,
            free_blocks: st.free_blocks,
            largest_free: 0,
            free_histogram: vec![0; 64],
            log_block: st.log.block,
            log_capacity: st.log.cap,
        };
        let _ = a.walk(|b| {
            if b.header.is_free() {
                s.largest_free = s.largest_free.max(b.header.size);
                s.free_histogram[63 - b.header.size.leading_zeros() as usize] += 1;
            }
        });
        while s.free_histogram.last() == Some(&0) {
            s.free_histogram.pop();
        }
        s
    }

    /// Payload offsets of the blocks the heap itself owns: the undo log's block, and the
    /// log's extension segments while a transaction uses them. They are allocated blocks
    /// that no root reaches and no offset resolves to; a leak count leaves them out.
    pub fn own_blocks(&self) -> Vec<u64> {
        let a = self.arena();
        let log = a.state().log;
        std::iter::once(log.block)
            .chain(log.ext.iter().copied().take_while(|&x| x != 0))
            .collect()
    }

    /// Every block, in address order (stops at the first broken header).
    pub fn blocks(&self) -> Vec<BlockInfo> {
        let mut v = Vec::new();
        let _ = self.arena().walk(|b| {
            v.push(BlockInfo {
                offset: b.offset,
                size: b.header.size,
                free: b.header.is_free(),
            })
        });
        v
    }

    /// Writes dirty pages to the file (for durability across a machine crash; processes
    /// always see each other's writes without it).
    pub fn flush(&self) -> Result<()> {
        self.local
            .map
            .flush()
            .map_err(io_err("msync", &self.heap.path))
    }
}
