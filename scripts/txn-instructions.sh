#!/usr/bin/env bash
# Instructions per operation (callgrind: deterministic, unlike timings on a shared machine)
# of the three transaction figures of benches/txn.rs, on this tree and on the last
# version-1 commit (the worktree scripts/bench-txn-vs-v1.sh makes):
#
#   empty   Heap::lock + drop, nothing written
#   write   a guard that adds 1 to a u64 that existed before it (logged in version 2)
#   link    a guard that allocates a 24-byte node and links it after a list head (two
#           logged writes of 24 bytes in version 2)
#   fresh   inside one guard, adds 1 to a u64 in a block that guard allocated (no image:
#           what version 2 adds to it is the lookup that says so)
#
#   scripts/txn-instructions.sh        # ITERS=20000
#
# Needs valgrind. The program is built twice in target/txn-instructions/{v1,v2}, against
# each tree (every call it makes exists in both versions).
set -euo pipefail
cd "$(dirname "$0")/.."
V1=${V1:-4c71678}
ITERS=${ITERS:-20000}
root=$PWD
if [ ! -e target/v1-tree/.git ]; then
    git worktree add -q --detach target/v1-tree "$V1"
fi
for side in v1 v2; do
    dir=target/txn-instructions/$side
    mkdir -p "$dir/src"
    src=$root
    [ "$side" = v1 ] && src=$root/target/v1-tree
    cat >"$dir/Cargo.toml" <<EOF
[package]
name = "txn-instructions-$side"
version = "0.1.0"
edition = "2021"
publish = false
[workspace]
[dependencies]
mapheap = { path = "$src" }
bytemuck = { version = "1", features = ["derive"] }
tempfile = "3"
[profile.release]
debug = true
EOF
    cat >"$dir/src/main.rs" <<'EOF'
use bytemuck::{Pod, Zeroable};
use mapheap::{Heap, Offset};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Node {
    value: u64,
    next: Offset<Node>,
    prev: Offset<Node>,
}

#[inline(never)]
fn empty_round(heap: &Heap, n: u64) {
    for _ in 0..n {
        drop(std::hint::black_box(heap.lock().unwrap()));
    }
}

#[inline(never)]
fn write_round(heap: &Heap, cell: Offset<u64>, n: u64) {
    for _ in 0..n {
        let mut g = heap.lock().unwrap();
        *g.get_mut(cell).unwrap() += 1;
    }
}

#[inline(never)]
fn fresh_round(g: &mut mapheap::HeapGuard<'_>, cell: Offset<u64>, n: u64) {
    for _ in 0..n {
        *g.get_mut(std::hint::black_box(cell)).unwrap() += 1;
    }
}
#[inline(never)]
fn link_round(heap: &Heap, head: Offset<Node>, n: u64) {
    for _ in 0..n {
        let mut g = heap.lock().unwrap();
        let first = g.read(head).unwrap().next;
        let node = g.alloc(Node { value: 7, next: first, prev: head }).unwrap();
        g.get_mut(head).unwrap().next = node;
        g.get_mut(first).unwrap().prev = node;
    }
}

fn main() {
    let mode = std::env::args().nth(1).expect("empty, write or link");
    let n: u64 = std::env::args().nth(2).expect("iterations").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let heap = Heap::create(dir.path().join("h"), 64 << 20).unwrap();
    let null = Offset::from_raw(0);
    let (head, cell) = {
        let mut g = heap.lock().unwrap();
        let first = g.alloc(Node { value: 1, next: null, prev: null }).unwrap();
        let head = g.alloc(Node { value: 0, next: first, prev: null }).unwrap();
        g.get_mut(first).unwrap().prev = head;
        (head, g.alloc(0u64).unwrap())
    };
    match mode.as_str() {
        "empty" => empty_round(&heap, n),
        "write" => {
            write_round(&heap, cell, n);
            assert_eq!(heap.lock().unwrap().read(cell).unwrap(), n);
        }
        "fresh" => {
            let mut g = heap.lock().unwrap();
            let cell = g.alloc(0u64).unwrap();
            fresh_round(&mut g, cell, n);
            assert_eq!(g.read(cell).unwrap(), n);
        }
        "link" => {
            link_round(&heap, head, n);
            let g = heap.lock().unwrap();
            let (mut at, mut k) = (g.read(head).unwrap().next, 0);
            while g.read(at).unwrap().value == 7 {
                at = g.read(at).unwrap().next;
                k += 1;
            }
            assert_eq!(k, n, "every node is linked");
        }
        m => panic!("unknown mode {m}"),
    }
}
EOF
    (cd "$dir" && cargo build --release -q)
done
. "$root/scripts/instructions-table.sh"
instructions_table txn-instructions v1 v2 "$ITERS" empty write link fresh
