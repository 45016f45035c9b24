//! The model of one heap's graph (`World`) and the code that builds a generated graph in a
//! heap, applies mutations to both, and reads the heap back in lockstep with the model.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::super::pattern;
use super::{Graph, Mutation, NodeHeader, MAX_ROOTS, NODE_HDR, NODE_MAGIC};
use mapheap::alloc::AllocError;
use mapheap::{Error, HeapGuard, Offset};

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
    // Frees take effect at the commit; commit here, keeping the lock, so that what the
    // model says is gone is gone from the heap too.
    g.checkpoint().map_err(|e| format!("commit: {e}"))
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
/// reachable again). Each mutation is its own transaction (committed with the lock kept):
/// the properties here are about offsets and remaps, and a heap sized for its graph has
/// room for one mutation's before-images, not a whole batch's.
pub fn apply_all(g: &mut HeapGuard<'_>, w: &mut World, ms: &[Mutation]) -> R<()> {
    for (i, m) in ms.iter().enumerate() {
        apply(g, w, m).map_err(|err| format!("mutation {i} {m:?}: {err}"))?;
        g.checkpoint()
            .map_err(|err| format!("commit of mutation {i} {m:?}: {err}"))?;
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
    // One used block is the heap's own: the undo log.
    if st.used_blocks != live + 1 {
        return Err(format!(
            "heap has {} used blocks (the undo log's included), the model {live} live nodes",
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
