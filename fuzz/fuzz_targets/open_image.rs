//! Fuzz target: a heap image, patched by the fuzzer's input, put through the same entry
//! points as the corrupt-image property (`proptests/common/entry.rs`): open, lock, check,
//! stats, blocks, every root read in full, alloc, free, growth and a reopen. A panic, an
//! abort, a fault, a hang (libFuzzer's -timeout) or a broken guarantee (`exercise` returns
//! `Err`, turned into a panic here) is a crash.
//!
//! Input: the first byte picks a base image (an empty heap; one with allocations of
//! several sizes and alignments, some freed, with named roots; the same copied while its
//! lock was held, so it names a dead owner; the same grown); 0xff instead means "the rest
//! of the input is the whole file". The rest is a list of patches, each an opcode byte and
//! its operands (little-endian):
//!
//! ```text
//! 0 off:u16 val:u64   write a u64 at 8 * off (the 16 KiB header area: every field)
//! 1 off:u32 val:u64   write a u64 at 8 * off, anywhere in the file
//! 2 off:u16 val:u32   write a u32 at 4 * off in the header area
//! 3 off:u32 bit:u8    flip one bit anywhere
//! 4 blk:u8 size:u32 flags:u8
//!                     rewrite the header of block blk (mod the block count) with a valid
//!                     tag: size * 8 (masked to 48 bits), flags & 3
//! 5 len:u32           truncate to len (mod the length + 1)
//! 6 n:u16             extend by n zero bytes
//! ```
//!
//! Run: `cargo +nightly fuzz run open_image` in `fuzz/` (see docs/properties.md).

#![no_main]

#[path = "../../proptests/common/entry.rs"]
mod entry;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mapheap::format::block;
use mapheap::{CreateOptions, Heap};

const HEADER_SIZE: usize = 16384;

struct Base {
    bytes: Vec<u8>,
    /// Block offsets, the sentinel last.
    blocks: Vec<u64>,
}

fn build(kind: u8) -> Base {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("base.heap");
    let create = CreateOptions {
        open: entry::options(),
        ..CreateOptions::new(96 << 10)
    };
    let heap = Heap::create_with(&path, &create).expect("create");
    let mut g = heap.lock().expect("lock");
    if kind > 0 {
        let mut offs = Vec::new();
        for (i, (size, align)) in [
            (8u64, 8u64),
            (100, 64),
            (3000, 8),
            (40, 4096),
            (24_000, 8),
            (16, 8),
        ]
        .into_iter()
        .enumerate()
        {
            let o = g.alloc_bytes(size, align).expect("alloc");
            g.bytes_mut(o, size).expect("bytes").fill(i as u8 | 4);
            offs.push(o);
        }
        g.set_root::<u64>("first", offs[0].cast()).expect("root");
        g.set_root::<u64>("big", offs[4].cast()).expect("root");
        g.free(offs[1]).expect("free");
        g.free(offs[3]).expect("free");
        if kind == 3 {
            g.grow_by(8192).expect("grow");
        }
    }
    let mut blocks: Vec<u64> = g.blocks().iter().map(|b| b.offset).collect();
    blocks.push(g.capacity() - 8);
    let bytes = if kind == 2 {
        std::fs::read(&path).expect("read under lock")
    } else {
        drop(g);
        drop(heap);
        std::fs::read(&path).expect("read")
    };
    Base { bytes, blocks }
}

fn bases() -> &'static [Base] {
    static BASES: OnceLock<Vec<Base>> = OnceLock::new();
    BASES.get_or_init(|| (0..4).map(build).collect())
}

fn take<const N: usize>(data: &mut &[u8]) -> Option<[u8; N]> {
    if data.len() < N {
        return None;
    }
    let (a, b) = data.split_at(N);
    *data = b;
    a.try_into().ok()
}

fn put(bytes: &mut [u8], at: usize, v: &[u8]) {
    if let Some(dst) = at
        .checked_add(v.len())
        .and_then(|end| bytes.get_mut(at..end))
    {
        dst.copy_from_slice(v);
    }
}

fn image(mut data: &[u8]) -> Vec<u8> {
    let Some([kind]) = take::<1>(&mut data) else {
        return bases()[0].bytes.clone();
    };
    if kind == 0xff {
        return data.to_vec();
    }
    let base = &bases()[usize::from(kind) % bases().len()];
    let mut bytes = base.bytes.clone();
    while let Some([op]) = take::<1>(&mut data) {
        match op % 7 {
            0 => {
                let (Some(off), Some(v)) = (take::<2>(&mut data), take::<8>(&mut data)) else {
                    break;
                };
                let at = 8 * usize::from(u16::from_le_bytes(off)) % HEADER_SIZE;
                put(&mut bytes, at, &v);
            }
            1 => {
                let (Some(off), Some(v)) = (take::<4>(&mut data), take::<8>(&mut data)) else {
                    break;
                };
                let at = (8 * u32::from_le_bytes(off) as usize) % bytes.len().max(1);
                put(&mut bytes, at, &v);
            }
            2 => {
                let (Some(off), Some(v)) = (take::<2>(&mut data), take::<4>(&mut data)) else {
                    break;
                };
                let at = 4 * usize::from(u16::from_le_bytes(off)) % HEADER_SIZE;
                put(&mut bytes, at, &v);
            }
            3 => {
                let (Some(off), Some([bit])) = (take::<4>(&mut data), take::<1>(&mut data)) else {
                    break;
                };
                if !bytes.is_empty() {
                    let at = u32::from_le_bytes(off) as usize % bytes.len();
                    bytes[at] ^= 1 << (bit % 8);
                }
            }
            4 => {
                let (Some([b]), Some(size), Some([flags])) = (
                    take::<1>(&mut data),
                    take::<4>(&mut data),
                    take::<1>(&mut data),
                ) else {
                    break;
                };
                let o = base.blocks[usize::from(b) % base.blocks.len()];
                let size = (u64::from(u32::from_le_bytes(size)) * 8) & ((1 << 48) - 8);
                let w = block::encode(o, size, u64::from(flags & 3));
                put(&mut bytes, o as usize, &w.to_le_bytes());
            }
            5 => {
                let Some(len) = take::<4>(&mut data) else {
                    break;
                };
                let to = u32::from_le_bytes(len) as usize % (bytes.len() + 1);
                bytes.truncate(to);
            }
            _ => {
                let Some(n) = take::<2>(&mut data) else {
                    break;
                };
                bytes.resize(bytes.len() + usize::from(u16::from_le_bytes(n)), 0);
            }
        }
    }
    bytes
}

fuzz_target!(|data: &[u8]| {
    static GUARD: std::sync::Once = std::sync::Once::new();
    GUARD.call_once(entry::guard_reservation);
    let bytes = image(data);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fuzz.heap");
    std::fs::write(&path, &bytes).expect("write image");
    if let Err(broken) = entry::exercise(&path) {
        panic!("broken guarantee: {broken}");
    }
});
