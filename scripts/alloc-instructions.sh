#!/usr/bin/env bash
# Instructions per operation (callgrind: deterministic, unlike timings on a shared machine)
# of two allocator figures, on this tree and on another commit (REF, default main):
#
#   mixed   the anchors' seeded allocator workload (sizes 16 to 1024 bytes, 10,000 live
#           blocks, then a random one freed per allocation), one guard per operation
#   pair    a 40-byte allocation and its free, each in its own guard (per pair)
#
#   scripts/alloc-instructions.sh            # REF=main ITERS=100000
#   TIME=1 scripts/alloc-instructions.sh     # also wall time per operation (7 runs each)
#
# Needs valgrind. The program is built twice in target/alloc-instructions/{ref,tree},
# against each tree (REF is checked out in target/alloc-ref-tree, a detached worktree).
set -euo pipefail
cd "$(dirname "$0")/.."
REF=${REF:-main}
ITERS=${ITERS:-100000}
root=$PWD
if [ ! -e target/alloc-ref-tree/.git ]; then
    git worktree add -q --detach target/alloc-ref-tree "$REF"
else
    git -C target/alloc-ref-tree checkout -q --detach "$REF"
fi
for side in ref tree; do
    dir=target/alloc-instructions/$side
    mkdir -p "$dir/src"
    src=$root
    [ "$side" = ref ] && src=$root/target/alloc-ref-tree
    cat >"$dir/Cargo.toml" <<EOF
[package]
name = "alloc-instructions-$side"
version = "0.1.0"
edition = "2021"
publish = false
[workspace]
[dependencies]
mapheap = { path = "$src" }
tempfile = "3"
[profile.release]
debug = true
EOF
    cat >"$dir/src/main.rs" <<'EOF'
use mapheap::{Heap, Offset};

fn splitmix64(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E3779B97F4A7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^ (z >> 31)
}

#[inline(never)]
fn warm(heap: &Heap, live: &mut Vec<Offset<u8>>, s: &mut u64) {
    while live.len() < 10_000 {
        let mut g = heap.lock().unwrap();
        let r = splitmix64(s);
        live.push(g.alloc_bytes(16 + r % 1009, 8).unwrap());
    }
}

#[inline(never)]
fn mixed_round(heap: &Heap, live: &mut Vec<Offset<u8>>, s: &mut u64, n: u64) {
    for _ in 0..n {
        let mut g = heap.lock().unwrap();
        let r = splitmix64(s);
        if live.len() < 10_000 {
            let p = g.alloc_bytes(16 + r % 1009, 8).unwrap();
            *g.get_mut(p.cast::<u64>()).unwrap() = r;
            live.push(p);
        } else {
            let p = live.swap_remove((r % live.len() as u64) as usize);
            g.free(p).unwrap();
        }
    }
}

#[inline(never)]
fn pair_round(heap: &Heap, n: u64) {
    for _ in 0..n {
        let p = heap.lock().unwrap().alloc_bytes(40, 8).unwrap();
        heap.lock().unwrap().free(p).unwrap();
    }
}

fn main() {
    let mode = std::env::args().nth(1).expect("mixed or pair");
    let n: u64 = std::env::args().nth(2).expect("iterations").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let heap = Heap::create(dir.path().join("h"), 64 << 20).unwrap();
    let t = match mode.as_str() {
        "mixed" => {
            let (mut live, mut s) = (Vec::new(), 42u64);
            warm(&heap, &mut live, &mut s);
            let t = std::time::Instant::now();
            mixed_round(&heap, &mut live, &mut s, n);
            t.elapsed()
        }
        "pair" => {
            let t = std::time::Instant::now();
            pair_round(&heap, n);
            t.elapsed()
        }
        m => panic!("unknown mode {m}"),
    };
    println!("{:.1}", t.as_nanos() as f64 / n as f64);
    assert!(heap.check().unwrap().is_clean());
}
EOF
    (cd "$dir" && cargo build --release -q)
done
. "$root/scripts/instructions-table.sh"
instructions_table alloc-instructions ref tree "$ITERS" mixed pair
if [ -n "${TIME:-}" ]; then
    for m in mixed pair; do
        for side in ref tree; do
            bin=target/alloc-instructions/$side/target/release/alloc-instructions-$side
            ns=$(for _ in 1 2 3 4 5 6 7; do "$bin" "$m" 1000000; done | sort -n | tr '\n' ' ')
            echo "$m $side ns per operation, sorted: $ns"
        done
    done
fi
