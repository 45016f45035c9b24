//! Random offset graphs: generators, a model, and the code that builds, mutates and reads
//! them back through a heap.
//!
//! A node in the heap is one block from `alloc_bytes(16 + 8 * slots + payload_len, align)`:
//!
//! ```text
//! +0   NodeHeader { magic, payload_len, slots, align }   (Pod, 16 bytes)
//! +16  slots × Offset<NodeHeader>                        (0 = no edge)
//! +..  payload_len payload bytes
//! ```
//!
//! Edges are `Offset<NodeHeader>` values stored inside the nodes; roots are registered by
//! name (`set_root::<NodeHeader>`). The test keeps the model (nodes, edges, payloads, roots)
//! and the offset it allocated for each node; reading back walks the heap from its roots
//! in lockstep with the model and requires the same shape, the same payload bytes and the
//! very same offsets, whatever address the file is mapped at.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use bytemuck::{Pod, Zeroable};
use mapheap::alloc::AllocError;
use mapheap::{Error, HeapGuard, Offset};
use proptest::prelude::*;
use proptest::sample::Index;

use super::{boundary_block_sizes, pattern, BLOCK_HEADER};

/// "NODE", to tell a node header from anything else.
pub const NODE_MAGIC: u32 = 0x4e4f_4445;
/// Size of [`NodeHeader`].
pub const NODE_HDR: u64 = 16;
/// The heap has 32 root slots.
pub const MAX_ROOTS: usize = 32;

/// The fixed part of a node.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct NodeHeader {
    /// [`NODE_MAGIC`].
    pub magic: u32,
    /// Payload bytes after the slots.
    pub payload_len: u32,
    /// Number of edge slots.
    pub slots: u32,
    /// Alignment the node was allocated with.
    pub align: u32,
}

/// How big a node's payload is: a byte count, or a target block size (header, slots and
/// the allocator's 8-byte block header included) so that the block lands exactly on a
/// size-class boundary whatever the slot count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadSize {
    /// This many payload bytes.
    Bytes(u16),
    /// Whatever payload makes the block this many bytes (0 payload if it cannot).
    Block(u32),
}

impl PayloadSize {
    /// The payload length for a node with `slots` edge slots.
    pub fn resolve(self, slots: usize) -> u32 {
        match self {
            PayloadSize::Bytes(n) => u32::from(n),
            PayloadSize::Block(t) => {
                let overhead = NODE_HDR + 8 * slots as u64 + BLOCK_HEADER;
                u64::from(t).saturating_sub(overhead) as u32
            }
        }
    }
}

/// The family a generated graph comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Any directed graph: cycles, self-loops, null slots, several components.
    Digraph,
    /// A tree rooted at node 0 (a node's slots are its children).
    Tree,
    /// A singly linked list from node 0.
    List,
    /// A doubly linked list (next and prev slots).
    DoublyLinked,
    /// A DAG: edges only go to later nodes, so children are shared.
    Dag,
}

/// One generated node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GNode {
    /// Payload length.
    pub len: u32,
    /// Seed of the payload bytes.
    pub seed: u8,
    /// Allocation alignment.
    pub align: u64,
    /// Edge slots: the index of the target node, or `None` for a null slot.
    pub slots: Vec<Option<usize>>,
}

/// A generated graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    /// Its family.
    pub shape: Shape,
    /// Its nodes.
    pub nodes: Vec<GNode>,
    /// Nodes registered as named roots (node 0 always; repeats allowed).
    pub roots: Vec<usize>,
}

#[derive(Clone, Debug)]
struct RawNode {
    size: PayloadSize,
    seed: u8,
    align: u64,
    picks: Vec<Option<Index>>,
    parent: Index,
}

/// Payload sizes, biased toward size-class boundaries and small blocks.
pub fn payload_size() -> impl Strategy<Value = PayloadSize> {
    let boundaries: Vec<u32> = boundary_block_sizes(8192)
        .into_iter()
        .map(|s| s as u32)
        .collect();
    prop_oneof![
        4 => (0u16..64).prop_map(PayloadSize::Bytes),
        3 => proptest::sample::select(boundaries).prop_map(PayloadSize::Block),
        2 => (64u16..1024).prop_map(PayloadSize::Bytes),
        1 => (1024u16..6000).prop_map(PayloadSize::Bytes),
    ]
}

/// Allocation alignments: mostly the default 8, sometimes less (rounded up to 8 by the
/// allocator), sometimes cache-line to page.
pub fn alignment() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => Just(8u64),
        1 => proptest::sample::select(vec![1u64, 2, 4]),
        2 => proptest::sample::select(vec![16u64, 32, 64]),
        1 => proptest::sample::select(vec![128u64, 256, 512, 4096]),
    ]
}

fn raw_node() -> impl Strategy<Value = RawNode> {
    (
        payload_size(),
        any::<u8>(),
        alignment(),
        prop::collection::vec(prop::option::weighted(0.85, any::<Index>()), 0..=3),
        any::<Index>(),
    )
        .prop_map(|(size, seed, align, picks, parent)| RawNode {
            size,
            seed,
            align,
            picks,
            parent,
        })
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        3 => Just(Shape::Digraph),
        2 => Just(Shape::Tree),
        1 => Just(Shape::List),
        1 => Just(Shape::DoublyLinked),
        2 => Just(Shape::Dag),
    ]
}

/// Graphs of 1 to `max_nodes` nodes. Shrinking removes nodes (edges are drawn as
/// `Index`es, so they follow), simplifies the shape toward `Digraph`, payloads toward
/// empty and alignments toward 8.
pub fn graph(max_nodes: usize) -> impl Strategy<Value = Graph> {
    (
        shape(),
        prop::collection::vec(raw_node(), 1..=max_nodes),
        prop::collection::vec(any::<Index>(), 0..=3),
    )
        .prop_map(|(shape, raw, root_picks)| resolve(shape, &raw, &root_picks))
}

fn resolve(shape: Shape, raw: &[RawNode], root_picks: &[Index]) -> Graph {
    let n = raw.len();
    let slots: Vec<Vec<Option<usize>>> = match shape {
        Shape::Digraph => raw
            .iter()
            .map(|r| r.picks.iter().map(|p| p.map(|x| x.index(n))).collect())
            .collect(),
        Shape::Tree => {
            let mut children = vec![Vec::new(); n];
            for (i, r) in raw.iter().enumerate().skip(1) {
                children[r.parent.index(i)].push(Some(i));
            }
            children
        }
        Shape::List => (0..n).map(|i| vec![(i + 1 < n).then_some(i + 1)]).collect(),
        Shape::DoublyLinked => (0..n)
            .map(|i| vec![(i + 1 < n).then_some(i + 1), i.checked_sub(1)])
            .collect(),
        Shape::Dag => raw
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.picks
                    .iter()
                    .map(|p| match p {
                        Some(x) if i + 1 < n => Some(i + 1 + x.index(n - i - 1)),
                        _ => None,
                    })
                    .collect()
            })
            .collect(),
    };
    let nodes = raw
        .iter()
        .zip(slots)
        .map(|(r, slots)| GNode {
            len: r.size.resolve(slots.len()),
            seed: r.seed,
            align: r.align,
            slots,
        })
        .collect();
    let mut roots = vec![0];
    roots.extend(root_picks.iter().map(|p| p.index(n)));
    Graph {
        shape,
        nodes,
        roots,
    }
}

/// A change to the graph between remaps. `Index`es pick among the nodes alive when the
/// mutation is applied (in id order).
#[derive(Clone, Debug)]
pub enum Mutation {
    /// A new node whose slots point at existing nodes, linked from slot `slot` of `from`
    /// (or made a root if `from` has no slots).
    AddNode {
        /// Payload size.
        size: PayloadSize,
        /// Payload seed.
        seed: u8,
        /// Alignment.
        align: u64,
        /// Its slots' targets among the live nodes.
        targets: Vec<Option<Index>>,
        /// The node that will point to it.
        from: Index,
        /// Which slot of `from`.
        slot: Index,
    },
    /// Point slot `slot` of `from` at `to` (or clear it).
    SetEdge {
        /// Source node.
        from: Index,
        /// Slot.
        slot: Index,
        /// New target, or null.
        to: Option<Index>,
    },
    /// Register a node under a new root name.
    AddRoot {
        /// The node.
        node: Index,
    },
    /// Remove one root (its nodes may become garbage).
    RemoveRoot {
        /// Which root, in name order.
        which: Index,
    },
    /// Overwrite a node's payload.
    Rewrite {
        /// The node.
        node: Index,
        /// New payload seed.
        seed: u8,
    },
    /// Free every node no root reaches, in ascending or descending address order (so
    /// physical neighbours are freed in both orders).
    Gc {
        /// Free from the highest address down.
        descending: bool,
    },
}

/// Mutations, weighted toward adding nodes and moving edges.
pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (
            payload_size(),
            any::<u8>(),
            alignment(),
            prop::collection::vec(prop::option::weighted(0.8, any::<Index>()), 0..=3),
            any::<Index>(),
            any::<Index>(),
        )
            .prop_map(|(size, seed, align, targets, from, slot)| Mutation::AddNode {
                size,
                seed,
                align,
                targets,
                from,
                slot,
            }),
        4 => (any::<Index>(), any::<Index>(), prop::option::weighted(0.7, any::<Index>()))
            .prop_map(|(from, slot, to)| Mutation::SetEdge { from, slot, to }),
        1 => any::<Index>().prop_map(|node| Mutation::AddRoot { node }),
        1 => any::<Index>().prop_map(|which| Mutation::RemoveRoot { which }),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(node, seed)| Mutation::Rewrite { node, seed }),
        2 => any::<bool>().prop_map(|descending| Mutation::Gc { descending }),
    ]
}

/// A node of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MNode {
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Alignment it was allocated with.
    pub align: u64,
    /// Edge slots (node ids).
    pub slots: Vec<Option<usize>>,
}

/// The model of one heap's graph, and the offset the heap gave each node.
#[derive(Clone, Debug, Default)]
pub struct World {
    /// Nodes by id; `None` once freed.
    pub nodes: Vec<Option<MNode>>,
    /// Offset of each node's payload (meaningful while the node lives).
    pub offs: Vec<u64>,
    /// Roots by name.
    pub roots: BTreeMap<String, usize>,
    /// Next root number to name a root with.
    pub next_root: u32,
}

type R<T> = Result<T, String>;

thread_local! {
    static RUN_CHECK: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Runs `f` with `verify`'s final `check()` switched off on this thread, to show that the
/// read-back alone catches a bug (and not only the invariant walker).
pub fn without_check<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            RUN_CHECK.with(|c| c.set(true));
        }
    }
    RUN_CHECK.with(|c| c.set(false));
    let _reset = Reset;
    f()
}

/// What the runs built, printed after the default run (so a generator that stopped
/// reaching a case shows).
pub mod tally {
    use std::sync::atomic::{AtomicU64, Ordering};
    /// Nodes allocated (built or added).
    pub static NODES: AtomicU64 = AtomicU64::new(0);
    /// Nodes freed as garbage.
    pub static FREED: AtomicU64 = AtomicU64::new(0);
    /// Growths forced by a full heap during building or mutation.
    pub static GROWN: AtomicU64 = AtomicU64::new(0);
    /// Edges written.
    pub static EDGES: AtomicU64 = AtomicU64::new(0);
    /// Nodes read back through some mapping.
    pub static READ: AtomicU64 = AtomicU64::new(0);
    /// Adds one to `c`.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    /// One line for the log.
    pub fn report() -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} nodes allocated, {} freed as garbage, {} edges written, {} growths \
             forced by a full heap, {} node reads through some mapping",
            g(&NODES),
            g(&FREED),
            g(&EDGES),
            g(&GROWN),
            g(&READ)
        )
    }
}

fn e(what: &str) -> impl Fn(Error) -> String + '_ {
    move |err| format!("{what}: {err}")
}

impl World {
    /// Ids of the live nodes, ascending.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_some())
            .collect()
    }

    /// Ids reachable from the roots.
    pub fn reachable(&self) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = self.roots.values().copied().collect();
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            if let Some(n) = &self.nodes[i] {
                stack.extend(n.slots.iter().flatten().copied());
            }
        }
        seen
    }

    fn node(&self, id: usize) -> &MNode {
        self.nodes[id].as_ref().expect("live node")
    }

    fn add_root(&mut self, id: usize) -> Option<String> {
        if self.roots.len() >= MAX_ROOTS {
            return None;
        }
        let name = format!("r{}", self.next_root);
        self.next_root += 1;
        self.roots.insert(name.clone(), id);
        Some(name)
    }
}

/// Heap bytes a graph needs at most (blocks, alignment slack), for sizing the heap.
pub fn estimate(g: &Graph) -> u64 {
    g.nodes
        .iter()
        .map(|n| {
            let len = NODE_HDR + 8 * n.slots.len() as u64 + u64::from(n.len);
            let block = (len.max(24) + 15) & !7;
            block + if n.align > 8 { n.align + 32 } else { 0 }
        })
        .sum()
}

fn node_len(n: &MNode) -> u64 {
    NODE_HDR + 8 * n.slots.len() as u64 + n.payload.len() as u64
}

/// Allocates `len` bytes aligned to `align`, growing the heap once if it is full.
fn alloc_growing(g: &mut HeapGuard<'_>, len: u64, align: u64) -> R<u64> {
    match g.alloc_bytes(len, align) {
        Ok(o) => Ok(o.raw()),
        Err(Error::Alloc(AllocError::OutOfSpace { .. })) => {
            tally::add(&tally::GROWN, 1);
            g.grow_by(len + align + (64 << 10))
                .map_err(e("grow after OutOfSpace"))?;
            g.alloc_bytes(len, align)
                .map(|o| o.raw())
                .map_err(e("alloc after growth"))
        }
        Err(err) => Err(format!("alloc_bytes({len}, {align}): {err}")),
    }
}

fn write_node(g: &mut HeapGuard<'_>, w: &World, id: usize) -> R<()> {
    let n = w.node(id);
    let off = w.offs[id];
    let total = node_len(n);
    let header = NodeHeader {
        magic: NODE_MAGIC,
        payload_len: n.payload.len() as u32,
        slots: n.slots.len() as u32,
        align: n.align as u32,
    };
    let buf = g
        .bytes_mut(Offset::from_raw(off), total)
        .map_err(e("bytes_mut of a node"))?;
    buf[..NODE_HDR as usize].copy_from_slice(bytemuck::bytes_of(&header));
    for (k, s) in n.slots.iter().enumerate() {
        let edge: Offset<NodeHeader> = s.map_or(Offset::NULL, |t| Offset::from_raw(w.offs[t]));
        let at = NODE_HDR as usize + 8 * k;
        buf[at..at + 8].copy_from_slice(bytemuck::bytes_of(&edge));
    }
    let p = NODE_HDR as usize + 8 * n.slots.len();
    buf[p..].copy_from_slice(&n.payload);
    Ok(())
}

fn write_edge(g: &mut HeapGuard<'_>, w: &World, id: usize, slot: usize) -> R<()> {
    let target = w.node(id).slots[slot];
    let edge: Offset<NodeHeader> = target.map_or(Offset::NULL, |t| Offset::from_raw(w.offs[t]));
    let at = NODE_HDR as usize + 8 * slot;
    let buf = g
        .bytes_mut(Offset::from_raw(w.offs[id]), at as u64 + 8)
        .map_err(e("bytes_mut of an edge"))?;
    buf[at..at + 8].copy_from_slice(bytemuck::bytes_of(&edge));
    Ok(())
}

fn new_node(g: &mut HeapGuard<'_>, w: &mut World, node: MNode) -> R<usize> {
    let id = w.nodes.len();
    let off = alloc_growing(g, node_len(&node), node.align)?;
    tally::add(&tally::NODES, 1);
    tally::add(&tally::EDGES, node.slots.iter().flatten().count() as u64);
    w.nodes.push(Some(node));
    w.offs.push(off);
    Ok(id)
}

fn payload_of(id: usize, seed: u8, len: u32) -> Vec<u8> {
    pattern(((id as u64) << 8) | u64::from(seed), len as usize)
}

/// Builds `graph` in the heap (allocating every node, then writing them, then the roots)
/// and frees what no root reaches. Returns the model.
pub fn build(g: &mut HeapGuard<'_>, graph: &Graph) -> R<World> {
    let mut w = World::default();
    for (id, n) in graph.nodes.iter().enumerate() {
        let node = MNode {
            payload: payload_of(id, n.seed, n.len),
            align: n.align,
            slots: n.slots.clone(),
        };
        new_node(g, &mut w, node)?;
    }
    for id in 0..w.nodes.len() {
        write_node(g, &w, id)?;
    }
    for &r in &graph.roots {
        if let Some(name) = w.add_root(r) {
            g.set_root::<NodeHeader>(&name, Offset::from_raw(w.offs[r]))
                .map_err(e("set_root"))?;
        }
    }
    gc(g, &mut w, false)?;
    Ok(w)
}

/// Frees every node that no root reaches, in address order (or reverse).
pub fn gc(g: &mut HeapGuard<'_>, w: &mut World, descending: bool) -> R<()> {
    let reach = w.reachable();
    let mut dead: Vec<usize> = w
        .live()
        .into_iter()
        .filter(|i| !reach.contains(i))
        .collect();
    dead.sort_by_key(|&i| w.offs[i]);
    if descending {
        dead.reverse();
    }
    for id in dead {
        g.free(Offset::<u8>::from_raw(w.offs[id]))
            .map_err(|err| format!("free of unreachable node {id} at {:#x}: {err}", w.offs[id]))?;
        w.nodes[id] = None;
        tally::add(&tally::FREED, 1);
    }
    Ok(())
}

/// Applies one mutation to the heap and the model.
pub fn apply(g: &mut HeapGuard<'_>, w: &mut World, m: &Mutation) -> R<()> {
    let live = w.live();
    match m {
        Mutation::AddNode {
            size,
            seed,
            align,
            targets,
            from,
            slot,
        } => {
            let slots: Vec<Option<usize>> = targets
                .iter()
                .map(|t| match t {
                    Some(x) if !live.is_empty() => Some(live[x.index(live.len())]),
                    _ => None,
                })
                .collect();
            let len = size.resolve(slots.len());
            let id = w.nodes.len();
            let node = MNode {
                payload: payload_of(id, *seed, len),
                align: *align,
                slots,
            };
            let id = new_node(g, w, node)?;
            write_node(g, w, id)?;
            let src = (!live.is_empty()).then(|| live[from.index(live.len())]);
            match src {
                Some(s) if !w.node(s).slots.is_empty() => {
                    let k = slot.index(w.node(s).slots.len());
                    w.nodes[s].as_mut().expect("live").slots[k] = Some(id);
                    write_edge(g, w, s, k)?;
                }
                _ => {
                    if let Some(name) = w.add_root(id) {
                        g.set_root::<NodeHeader>(&name, Offset::from_raw(w.offs[id]))
                            .map_err(e("set_root of a new node"))?;
                    }
                }
            }
        }
        Mutation::SetEdge { from, slot, to } => {
            if live.is_empty() {
                return Ok(());
            }
            let s = live[from.index(live.len())];
            if w.node(s).slots.is_empty() {
                return Ok(());
            }
            let k = slot.index(w.node(s).slots.len());
            let t = to.map(|x| live[x.index(live.len())]);
            w.nodes[s].as_mut().expect("live").slots[k] = t;
            write_edge(g, w, s, k)?;
        }
        Mutation::AddRoot { node } => {
            if live.is_empty() {
                return Ok(());
            }
            let id = live[node.index(live.len())];
            if let Some(name) = w.add_root(id) {
                g.set_root::<NodeHeader>(&name, Offset::from_raw(w.offs[id]))
                    .map_err(e("set_root"))?;
            }
        }
        Mutation::RemoveRoot { which } => {
            if w.roots.is_empty() {
                return Ok(());
            }
            let name = w
                .roots
                .keys()
                .nth(which.index(w.roots.len()))
                .expect("in range")
                .clone();
            let id = w.roots.remove(&name).expect("present");
            let got = g.remove_root(&name).map_err(e("remove_root"))?;
            if got != Some(w.offs[id]) {
                return Err(format!(
                    "remove_root({name}) returned {got:x?}, expected Some({:#x})",
                    w.offs[id]
                ));
            }
        }
        Mutation::Rewrite { node, seed } => {
            if live.is_empty() {
                return Ok(());
            }
            let id = live[node.index(live.len())];
            let len = w.node(id).payload.len() as u32;
            w.nodes[id].as_mut().expect("live").payload = payload_of(id, *seed, len);
            write_node(g, w, id)?;
        }
        Mutation::Gc { descending } => gc(g, w, *descending)?,
    }
    Ok(())
}

/// Applies a batch of mutations, then collects garbage (so that every live node is
/// reachable again).
pub fn apply_all(g: &mut HeapGuard<'_>, w: &mut World, ms: &[Mutation]) -> R<()> {
    for (i, m) in ms.iter().enumerate() {
        apply(g, w, m).map_err(|err| format!("mutation {i} {m:?}: {err}"))?;
    }
    gc(g, w, false)
}

/// Reads the graph back through `g` and compares it with the model: the same root names,
/// each resolving to the same offset; from the roots, every node reached has the same
/// header, payload and edges (as the same offsets) as its model node, and exactly the
/// model's reachable nodes are reached; the heap holds no other block; `check` is clean.
pub fn verify(g: &HeapGuard<'_>, w: &World) -> R<()> {
    let heap_roots: BTreeSet<String> = g.roots().into_iter().map(|r| r.name).collect();
    let model_roots: BTreeSet<String> = w.roots.keys().cloned().collect();
    if heap_roots != model_roots {
        return Err(format!(
            "root names differ: heap {heap_roots:?}, model {model_roots:?}"
        ));
    }
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut queue: VecDeque<(u64, usize)> = VecDeque::new();
    let mut visit = |off: u64, id: usize, queue: &mut VecDeque<(u64, usize)>| -> R<()> {
        match seen.get(&off) {
            Some(&other) if other != id => Err(format!(
                "offset {off:#x} reached as node {id} and as node {other}"
            )),
            Some(_) => Ok(()),
            None => {
                seen.insert(off, id);
                queue.push_back((off, id));
                Ok(())
            }
        }
    };
    for (name, &id) in &w.roots {
        let off = g
            .root::<NodeHeader>(name)
            .map_err(e("root lookup"))?
            .ok_or_else(|| format!("root {name} missing"))?;
        if off.raw() != w.offs[id] {
            return Err(format!(
                "root {name} resolves to {off:?}, but node {id} was allocated at {:#x}",
                w.offs[id]
            ));
        }
        visit(off.raw(), id, &mut queue)?;
    }
    while let Some((off, id)) = queue.pop_front() {
        let n = w.nodes[id]
            .as_ref()
            .ok_or_else(|| format!("node {id} reached at {off:#x} but freed in the model"))?;
        if off % n.align.max(8) != 0 {
            return Err(format!("node {id} at {off:#x} not aligned to {}", n.align));
        }
        let at: Offset<NodeHeader> = Offset::from_raw(off);
        let h = g
            .read(at)
            .map_err(|err| format!("node {id} header at {off:#x}: {err}"))?;
        tally::add(&tally::READ, 1);
        let want = NodeHeader {
            magic: NODE_MAGIC,
            payload_len: n.payload.len() as u32,
            slots: n.slots.len() as u32,
            align: n.align as u32,
        };
        if h != want {
            return Err(format!(
                "node {id} at {off:#x}: header {h:?}, expected {want:?}"
            ));
        }
        let total = node_len(n);
        let usable = g.usable_size(at).map_err(e("usable_size"))?;
        if usable < total {
            return Err(format!(
                "node {id} at {off:#x}: block holds {usable} bytes, node needs {total}"
            ));
        }
        let bytes = g
            .bytes(at.cast(), total)
            .map_err(|err| format!("node {id} bytes at {off:#x}: {err}"))?;
        for (k, s) in n.slots.iter().enumerate() {
            let p = NODE_HDR as usize + 8 * k;
            let edge: Offset<NodeHeader> = bytemuck::pod_read_unaligned(&bytes[p..p + 8]);
            match s {
                None if edge.is_null() => {}
                None => {
                    return Err(format!(
                        "node {id} slot {k}: {edge:?} where the model has no edge"
                    ))
                }
                Some(t) => {
                    if edge.raw() != w.offs[*t] {
                        return Err(format!(
                            "node {id} slot {k}: {edge:?}, expected node {t} at {:#x}",
                            w.offs[*t]
                        ));
                    }
                    visit(edge.raw(), *t, &mut queue)?;
                }
            }
        }
        let p = NODE_HDR as usize + 8 * n.slots.len();
        if bytes[p..] != n.payload[..] {
            let first = bytes[p..]
                .iter()
                .zip(&n.payload)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(format!(
                "node {id} at {off:#x}: payload differs from byte {first} of {}",
                n.payload.len()
            ));
        }
    }
    let reach = w.reachable();
    let reached: BTreeSet<usize> = seen.values().copied().collect();
    if reached != reach {
        return Err(format!(
            "reached nodes {reached:?}, model reaches {reach:?}"
        ));
    }
    let live = w.live().len() as u64;
    let st = g.stats();
    if st.used_blocks != live {
        return Err(format!(
            "heap has {} used blocks, the model {live} live nodes",
            st.used_blocks
        ));
    }
    if RUN_CHECK.with(|c| c.get()) {
        let report = g.check();
        if !report.is_clean() {
            return Err(format!("check: {:?}", report.violations));
        }
    }
    Ok(())
}
