//! Invariant W2: a doubly linked list whose forward and backward walks agree. Each node
//! owns a data block of random size filled with its id's pattern; an insert allocates
//! both and links the node after a random node (or at the head), a remove unlinks a
//! random node and frees both blocks. Each is one guard: whatever instant a SIGKILL hits,
//! the walks must agree, match the stored length, reach only allocated blocks holding
//! their pattern, and reach every block the list allocated.

use std::collections::HashSet;

use bytemuck::{Pod, Zeroable};
use mapheap::stress::rng;
use mapheap::{HeapGuard, Offset};

use crate::ensure;
use crate::fork_support::{Context, Rng, TestResult};
use crate::run::Workload;

const ROOT: &str = "dlist";
/// The list never holds more nodes than this (an insert then removes instead).
const MAX_LEN: u64 = 48;
/// Inserts and removes balance around this length.
const TARGET_LEN: u64 = 24;
/// Nodes `init` makes.
const INITIAL_LEN: u64 = 16;
const MAX_DATA: u64 = 700;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct ListRoot {
    head: Offset<Node>,
    tail: Offset<Node>,
    len: u64,
    next_id: u64,
    inserts: u64,
    removes: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Node {
    prev: Offset<Node>,
    next: Offset<Node>,
    id: u64,
    data: Offset<u8>,
    data_len: u64,
}

/// The workload W2.
pub struct DList;

fn pattern(id: u64) -> u64 {
    rng::mix(id ^ 0x6c69_7374)
}

fn root(g: &HeapGuard<'_>) -> Result<(Offset<ListRoot>, ListRoot), String> {
    let off = g
        .root::<ListRoot>(ROOT)
        .ctx("root")?
        .ok_or("no list root")?;
    Ok((off, g.read(off).ctx("read the list root")?))
}

/// The `k`-th node from the head.
fn nth(g: &HeapGuard<'_>, r: &ListRoot, k: u64) -> Result<Offset<Node>, String> {
    let mut at = r.head;
    for _ in 0..k {
        at = g.read(at).ctx("walk")?.next;
    }
    Ok(at)
}

impl DList {
    fn insert(
        g: &mut HeapGuard<'_>,
        ro: Offset<ListRoot>,
        r: &ListRoot,
        rng: &mut Rng,
        pause: &dyn Fn(),
    ) -> TestResult {
        let id = r.next_id;
        let data_len = rng.range(1, MAX_DATA);
        let data = g.alloc_bytes(data_len, 8).ctx("alloc data")?;
        rng::fill(pattern(id), g.bytes_mut(data, data_len).ctx("fill")?);
        // After a random node, or at the head.
        let k = rng.below(r.len + 1);
        let prev = if k == 0 {
            Offset::NULL
        } else {
            nth(g, r, k - 1)?
        };
        let next = if prev.is_null() {
            r.head
        } else {
            g.read(prev).ctx("read prev")?.next
        };
        let node = g
            .alloc(Node {
                prev,
                next,
                id,
                data,
                data_len,
            })
            .ctx("alloc node")?;
        pause();
        if next.is_null() {
            g.get_mut(ro).ctx("root")?.tail = node;
        } else {
            g.get_mut(next).ctx("next")?.prev = node;
        }
        pause();
        if prev.is_null() {
            g.get_mut(ro).ctx("root")?.head = node;
        } else {
            g.get_mut(prev).ctx("prev")?.next = node;
        }
        let m = g.get_mut(ro).ctx("root")?;
        m.len += 1;
        m.next_id += 1;
        m.inserts += 1;
        Ok(())
    }

    fn remove(
        g: &mut HeapGuard<'_>,
        ro: Offset<ListRoot>,
        r: &ListRoot,
        rng: &mut Rng,
        pause: &dyn Fn(),
    ) -> TestResult {
        let node = nth(g, r, rng.below(r.len))?;
        let n = g.read(node).ctx("read node")?;
        // Freed at the commit, whatever comes between: the blocks stop resolving now, and a
        // rollback keeps them.
        g.free(n.data).ctx("free data")?;
        g.free(node).ctx("free node")?;
        pause();
        if n.prev.is_null() {
            g.get_mut(ro).ctx("root")?.head = n.next;
        } else {
            g.get_mut(n.prev).ctx("prev")?.next = n.next;
        }
        pause();
        if n.next.is_null() {
            g.get_mut(ro).ctx("root")?.tail = n.prev;
        } else {
            g.get_mut(n.next).ctx("next")?.prev = n.prev;
        }
        let m = g.get_mut(ro).ctx("root")?;
        m.len -= 1;
        m.removes += 1;
        Ok(())
    }
}

impl Workload for DList {
    fn init(&self, g: &mut HeapGuard<'_>) -> TestResult {
        let ro = g
            .alloc(ListRoot {
                head: Offset::NULL,
                tail: Offset::NULL,
                len: 0,
                next_id: 1,
                inserts: 0,
                removes: 0,
            })
            .ctx("alloc")?;
        g.set_root(ROOT, ro).ctx("set_root")?;
        let mut rng = Rng::new(0x6c69_7374);
        for _ in 0..INITIAL_LEN {
            let r = g.read(ro).ctx("read the list root")?;
            Self::insert(g, ro, &r, &mut rng, &|| {})?;
        }
        Ok(())
    }

    fn op(&self, g: &mut HeapGuard<'_>, rng: &mut Rng, pause: &dyn Fn()) -> TestResult {
        let (ro, r) = root(g)?;
        // Drifts toward TARGET_LEN nodes; never empty, never past MAX_LEN.
        let grow = match r.len {
            0 => true,
            MAX_LEN.. => false,
            n => rng.below(2 * TARGET_LEN) >= n,
        };
        if grow {
            Self::insert(g, ro, &r, rng, pause)
        } else {
            Self::remove(g, ro, &r, rng, pause)
        }
    }

    fn verify(&self, g: &HeapGuard<'_>) -> Result<(HashSet<u64>, String), String> {
        let (ro, r) = root(g)?;
        let mut live = HashSet::from([ro.raw()]);
        let mut ids = HashSet::new();
        // Forward, each node's `prev` naming the one before; at most `len` steps.
        let mut forward = Vec::new();
        let (mut at, mut before) = (r.head, Offset::<Node>::NULL);
        while !at.is_null() {
            ensure!(
                (forward.len() as u64) < r.len,
                "the forward walk is longer than the stored length {}",
                r.len
            );
            let n = g
                .read(at)
                .map_err(|e| format!("node {} of the forward walk: {e}", forward.len()))?;
            ensure!(
                n.prev == before,
                "node {:#x} (id {}): prev {:#x}, but the walk came from {:#x}",
                at.raw(),
                n.id,
                n.prev.raw(),
                before.raw()
            );
            ensure!(ids.insert(n.id), "id {} is in the list twice", n.id);
            ensure!(n.id < r.next_id, "id {} was never handed out", n.id);
            let data = g
                .bytes(n.data, n.data_len)
                .map_err(|e| format!("data of node {}: {e}", n.id))?;
            ensure!(
                rng::matches(pattern(n.id), data),
                "data of node {} changed",
                n.id
            );
            ensure!(
                live.insert(at.raw()) && live.insert(n.data.raw()),
                "node {} shares a block",
                n.id
            );
            forward.push(at.raw());
            (before, at) = (at, n.next);
        }
        ensure!(
            forward.len() as u64 == r.len,
            "the forward walk has {} nodes, the stored length is {}",
            forward.len(),
            r.len
        );
        ensure!(
            r.tail == before,
            "tail {:#x}, but the forward walk ends at {:#x}",
            r.tail.raw(),
            before.raw()
        );
        // Backward, from the tail: the forward walk reversed.
        let mut back = Vec::new();
        let mut at = r.tail;
        while !at.is_null() && back.len() <= forward.len() {
            back.push(at.raw());
            at = g.read(at).ctx("backward walk")?.prev;
        }
        back.reverse();
        ensure!(
            back == forward,
            "the backward walk ({} nodes) is not the forward walk ({} nodes) reversed",
            back.len(),
            forward.len()
        );
        ensure!(
            r.inserts.checked_sub(r.removes) == Some(r.len),
            "{} inserts - {} removes != length {}",
            r.inserts,
            r.removes,
            r.len
        );
        Ok((
            live,
            format!(
                "{} nodes after {} inserts and {} removes, both walks agree",
                r.len, r.inserts, r.removes
            ),
        ))
    }
}
