//! The populated heap every sweep flips bytes of: allocations of several sizes and
//! alignments with their payloads written, frees (one merging with a neighbour), two named
//! roots, a transaction large enough to chain an extension segment to the undo log
//! (committed, so the descriptor is back to no extension), and a growth. The heap is
//! closed when the image is taken: no lock held, no transaction, no operation in flight.

use std::path::Path;

use mapheap::format::{LOG_EXTENSIONS, ROOT_COUNT, STATE_OFFSET};
use mapheap::{CreateOptions, Heap, Offset};

/// The image and what the sweeps aim at.
pub struct Image {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Every block: (header offset, size, free), in address order.
    pub blocks: Vec<(u64, u64, bool)>,
    /// The sentinel's offset.
    pub sentinel: u64,
    /// Index of the root entry named "list" (a used entry).
    pub list_root: usize,
}

/// What the image holds under the root "list": a small array of offsets.
pub type List = [u64; 4];

const SIZE: u64 = 64 * 1024;
const GROW_TO: u64 = 80 * 1024;

/// Builds the heap at `path` and reads its image.
pub fn build(path: &Path) -> Image {
    let opts = CreateOptions {
        open: super::quick(),
        ..CreateOptions::new(SIZE)
    };
    let heap = Heap::create_with(path, &opts).expect("create");
    let mut g = heap.lock().expect("lock");
    let mut offs: Vec<Offset<u8>> = Vec::new();
    for (i, &(len, align)) in [
        (24u64, 8u64),
        (100, 8),
        (256, 64),
        (1000, 8),
        (40, 8),
        (3000, 8),
        (512, 4096),
        (64, 8),
        (7000, 8),
        (200, 16),
    ]
    .iter()
    .enumerate()
    {
        let o = g.alloc_bytes(len, align).expect("alloc");
        let b = g.bytes_mut(o, len).expect("bytes_mut");
        for (k, x) in b.iter_mut().enumerate() {
            *x = (i * 31 + k) as u8 | 4;
        }
        offs.push(o);
    }
    let list: Offset<List> = g
        .alloc([offs[0].raw(), offs[3].raw(), offs[5].raw(), 0])
        .expect("alloc list");
    g.set_root("list", list).expect("set_root list");
    g.set_root::<u64>("map", offs[7].cast())
        .expect("set_root map");
    g.checkpoint().expect("checkpoint");
    // Frees: two neighbours (they merge) and one alone.
    for i in [1, 2, 6] {
        g.free(offs[i]).expect("free");
    }
    g.checkpoint().expect("checkpoint");
    // A transaction that saves more than the log's own block holds: the log chains an
    // extension segment, which the commit frees again.
    let (_, cap) = g.log_usage();
    let big = offs[8];
    assert!(
        7000 > cap,
        "the log ({cap} bytes) must be too small for one image"
    );
    g.bytes_mut(big, 7000).expect("bytes_mut big").fill(0x5c);
    assert!(g.own_blocks().len() > 1, "the log chained no extension");
    g.checkpoint().expect("checkpoint");
    g.grow(GROW_TO).expect("grow");
    let after = g.alloc_bytes(2000, 8).expect("alloc after growth");
    g.bytes_mut(after, 2000).expect("bytes_mut").fill(0x77);
    g.free(offs[4]).expect("free");
    g.checkpoint().expect("checkpoint");
    let report = g.check();
    assert!(report.is_clean(), "the image is not clean: {report:?}");
    let capacity = g.capacity();
    let blocks = g
        .blocks()
        .iter()
        .map(|b| (b.offset, b.size, b.free))
        .collect();
    drop(g);
    drop(heap);
    let bytes = std::fs::read(path).expect("read image");
    assert_eq!(bytes.len() as u64, capacity);
    let list_root = (0..ROOT_COUNT)
        .find(|&i| bytes[root_at(i)..root_at(i) + 5] == *b"list\0")
        .expect("root entry \"list\"");
    let img = Image {
        bytes,
        blocks,
        sentinel: capacity - 8,
        list_root,
    };
    img.assert_quiet();
    img
}

/// The file offset of root entry `i`.
pub fn root_at(i: usize) -> usize {
    STATE_OFFSET + std::mem::offset_of!(mapheap::format::State, roots) + 64 * i
}

impl Image {
    fn word(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.bytes[at..at + 8].try_into().unwrap())
    }

    /// The image is what the sweep assumes: closed, nothing in flight, no extension listed.
    fn assert_quiet(&self) {
        let st = STATE_OFFSET;
        assert_eq!(
            u32::from_le_bytes(self.bytes[64..68].try_into().unwrap()),
            0
        );
        for (name, at) in [
            ("flags", 16),
            ("intent.op", 24),
            ("log.len", 40),
            ("log.done", 48),
        ] {
            assert_eq!(self.word(st + at), 0, "{name}");
        }
        for k in 0..LOG_EXTENSIONS {
            assert_eq!(self.word(st + 72 + 8 * k), 0, "log.ext[{k}]");
        }
    }
}
