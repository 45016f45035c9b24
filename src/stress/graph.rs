//! The stress graph: nodes with checksummed payloads, linked by offsets, published in a
//! directory of slots. Used by `mapheap stress` and by the fork tests.
//!
//! Every operation is plain code inside one transaction ([`Graph::random_op`] commits it
//! before it returns): allocations, payload writes, directory stores and frees in whatever
//! order is natural. The heap's undo log makes each operation all-or-nothing, so a process
//! killed anywhere leaves the graph of the last committed operation, and these are checks
//! of that atomicity, not rules the code has to keep by hand:
//!
//! * S1 every committed node is the payload of an allocated block; its head (magic, id, len)
//!   fits the block, its payload is the pattern derived from its id and matches its checksum.
//! * S2 every edge (`next`) of a committed node is 0 or a committed node.
//! * S3 no offset is committed in two slots, and ids are unique.
//! * S4 no allocated block is unreachable ([`leaks`]): a death rolls back the allocations
//!   of its transaction and finishes the frees of a committed one.
//! * S5 no operation is torn: the directory stores of a dead worker's transaction are
//!   found all made or all undone (`board::Board::reconcile`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{compiler_fence, Ordering};

use bytemuck::{Pod, Zeroable};

use super::rng::{self, Rng};
use crate::alloc::AllocError;
use crate::{Error, HeapGuard, Offset, Result};

/// Name of the graph's root.
pub const ROOT_NAME: &str = "stress-graph";
/// Magic of the graph's root record.
pub const ROOT_MAGIC: u64 = u64::from_le_bytes(*b"mhgraphR");
/// Magic of a node head.
pub const NODE_MAGIC: u64 = u64::from_le_bytes(*b"mhgraphN");

/// The graph's root record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct GraphRoot {
    /// [`ROOT_MAGIC`].
    pub magic: u64,
    /// Slots in the directory.
    pub slots: u64,
    /// Offset of the directory: `slots` u64 offsets, 0 for an empty slot.
    pub dir: u64,
    /// The next node id.
    pub next_id: u64,
    /// Nodes inserted (statistics: not updated atomically with the commit).
    pub inserted: u64,
    /// Nodes deleted (statistics, likewise).
    pub deleted: u64,
}

/// The head of a node; `len` payload bytes follow it in the same block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct NodeHead {
    /// [`NODE_MAGIC`].
    pub magic: u64,
    /// Unique id; the payload is the pattern derived from it.
    pub id: u64,
    /// An edge: offset of a committed node, or 0.
    pub next: u64,
    /// Payload bytes.
    pub len: u64,
    /// `rng::checksum(id, payload)`.
    pub sum: u64,
}

/// Bytes of a node head.
pub const HEAD: u64 = size_of::<NodeHead>() as u64;

/// Observes every store to a directory slot and the commit of the transaction that made
/// it. `mapheap stress` journals them outside the heap to check that no committed store is
/// ever lost and no transaction is ever torn (S5).
pub trait Journal {
    /// Slot `slot` is about to change from `old` to `new`, inside the transaction.
    fn before_store(&mut self, _slot: u64, _old: u64, _new: u64) {}
    /// The transaction that made the stores since the last call has committed (called
    /// with the lock still held).
    fn committed(&mut self) {}
}

/// A journal that does nothing.
pub struct NoJournal;
impl Journal for NoJournal {}

/// What one random operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// Committed a new node.
    Insert,
    /// Cleared the edges to a node, uncommitted and freed it.
    Delete,
    /// Changed one edge.
    Rewire,
    /// Committed a copy of a node with a new payload, moved the edges to it, deleted the
    /// original.
    Replace,
    /// Verified one node (or found nothing to do).
    Read,
}

impl OpKind {
    /// Every kind, in the order of [`OpKind::index`].
    pub const ALL: [OpKind; 5] = [
        OpKind::Insert,
        OpKind::Delete,
        OpKind::Rewire,
        OpKind::Replace,
        OpKind::Read,
    ];

    /// Position in [`OpKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Insert => "insert",
            OpKind::Delete => "delete",
            OpKind::Rewire => "rewire",
            OpKind::Replace => "replace",
            OpKind::Read => "read",
        }
    }
}

/// The outcome of [`Graph::random_op`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    /// What was done.
    pub kind: OpKind,
    /// Whether the heap had to grow.
    pub grew: bool,
    /// A broken node found on the way (a violation of S1 or S2).
    pub problem: Option<String>,
}

/// A handle on the graph in a heap (offsets only: valid across processes and remaps).
#[derive(Clone, Copy, Debug)]
pub struct Graph {
    root: Offset<GraphRoot>,
    dir: u64,
    slots: u64,
}

/// What [`Graph::verify`] found.
#[derive(Clone, Debug, Default)]
pub struct GraphReport {
    /// Directory slots.
    pub slots: u64,
    /// Committed nodes.
    pub nodes: u64,
    /// Their payload bytes.
    pub payload_bytes: u64,
    /// The largest payload of a committed node, in bytes.
    pub largest_payload: u64,
    /// Every violation of S1-S3.
    pub problems: Vec<String>,
    /// Payload offsets of every block the graph reaches (root, directory, nodes).
    pub live: HashSet<u64>,
    /// The directory as read.
    pub dir: Vec<u64>,
}

/// Allocates `size` bytes, growing the heap by half (at least `2 * size`) if it is full.
/// Returns the offset and whether the heap grew.
pub fn alloc_grow(g: &mut HeapGuard<'_>, size: u64) -> Result<(Offset<u8>, bool)> {
    match g.alloc_bytes(size, 8) {
        Err(Error::Alloc(AllocError::OutOfSpace { .. })) => {
            let cap = g.capacity();
            g.grow(cap + (cap / 2).max(size * 2 + 4096))?;
            Ok((g.alloc_bytes(size, 8)?, true))
        }
        r => Ok((r?, false)),
    }
}

fn bad(offset: u64, why: &str) -> Error {
    Error::BadOffset {
        offset,
        ty: "stress graph",
        why: why.to_string(),
    }
}

impl Graph {
    /// Makes an empty graph with `slots` directory slots and registers its root.
    pub fn create(g: &mut HeapGuard<'_>, slots: u64) -> Result<Graph> {
        let (dir, _) = alloc_grow(g, slots.max(1) * 8)?;
        g.bytes_mut(dir, slots.max(1) * 8)?.fill(0);
        let root = g.alloc(GraphRoot {
            magic: ROOT_MAGIC,
            slots,
            dir: dir.raw(),
            next_id: 1,
            inserted: 0,
            deleted: 0,
        })?;
        g.set_root(ROOT_NAME, root)?;
        Ok(Graph {
            root,
            dir: dir.raw(),
            slots,
        })
    }

    /// The graph registered in this heap, if any.
    pub fn open(g: &HeapGuard<'_>) -> Result<Option<Graph>> {
        let Some(root) = g.root::<GraphRoot>(ROOT_NAME)? else {
            return Ok(None);
        };
        let r = g.read(root)?;
        if r.magic != ROOT_MAGIC {
            return Err(bad(root.raw(), "graph root has a bad magic"));
        }
        let graph = Graph {
            root,
            dir: r.dir,
            slots: r.slots,
        };
        graph.dir(g)?;
        Ok(Some(graph))
    }

    /// Directory slots.
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// Offset of the root record.
    pub fn root_offset(&self) -> u64 {
        self.root.raw()
    }

    /// Offset of the directory.
    pub fn dir_offset(&self) -> u64 {
        self.dir
    }

    /// The root record.
    pub fn root(&self, g: &HeapGuard<'_>) -> Result<GraphRoot> {
        g.read(self.root)
    }

    /// The directory.
    pub fn dir<'g>(&self, g: &'g HeapGuard<'_>) -> Result<&'g [u64]> {
        let b = g.bytes(Offset::from_raw(self.dir), self.slots * 8)?;
        bytemuck::try_cast_slice(b).map_err(|_| bad(self.dir, "directory misaligned"))
    }

    fn dir_mut<'g>(&self, g: &'g mut HeapGuard<'_>) -> Result<&'g mut [u64]> {
        let b = g.bytes_mut(Offset::from_raw(self.dir), self.slots * 8)?;
        bytemuck::try_cast_slice_mut(b).map_err(|_| bad(self.dir, "directory misaligned"))
    }

    /// What slot `i` holds.
    pub fn get(&self, g: &HeapGuard<'_>, i: u64) -> Result<u64> {
        self.dir(g)?
            .get(i as usize)
            .copied()
            .ok_or_else(|| bad(i, "no such slot"))
    }

    /// Committed nodes.
    pub fn count(&self, g: &HeapGuard<'_>) -> Result<u64> {
        Ok(self.dir(g)?.iter().filter(|&&o| o != 0).count() as u64)
    }

    /// A directory store (one of possibly several of the operation's transaction).
    fn store(&self, g: &mut HeapGuard<'_>, i: u64, new: u64, j: &mut dyn Journal) -> Result<()> {
        let old = self.get(g, i)?;
        j.before_store(i, old, new);
        compiler_fence(Ordering::SeqCst);
        self.dir_mut(g)?[i as usize] = new;
        Ok(())
    }

    /// A random committed node: `(slot, offset)`.
    pub fn pick(&self, g: &HeapGuard<'_>, rng: &mut Rng) -> Result<Option<(u64, u64)>> {
        let d = self.dir(g)?;
        let n = d.len() as u64;
        let start = rng.below(n);
        Ok((0..n)
            .map(|k| (start + k) % n)
            .find(|&i| d[i as usize] != 0)
            .map(|i| (i, d[i as usize])))
    }

    fn free_slot(&self, g: &HeapGuard<'_>, rng: &mut Rng) -> Result<Option<u64>> {
        let d = self.dir(g)?;
        let n = d.len() as u64;
        let start = rng.below(n);
        Ok((0..n)
            .map(|k| (start + k) % n)
            .find(|&i| d[i as usize] == 0))
    }

    /// Allocates and fills a node (not committed yet). Returns its offset and whether the
    /// heap grew.
    fn new_node(
        &self,
        g: &mut HeapGuard<'_>,
        rng: &mut Rng,
        max_len: u64,
        next: u64,
    ) -> Result<(u64, bool)> {
        let id = {
            let r = g.get_mut(self.root)?;
            r.next_id += 1;
            r.next_id - 1
        };
        let len = rng.payload_len(max_len);
        let (off, grew) = alloc_grow(g, HEAD + len)?;
        let bytes = g.bytes_mut(off, HEAD + len)?;
        let (head, payload) = bytes.split_at_mut(HEAD as usize);
        rng::fill(id, payload);
        let sum = rng::checksum(id, payload);
        head.copy_from_slice(bytemuck::bytes_of(&NodeHead {
            magic: NODE_MAGIC,
            id,
            next,
            len,
            sum,
        }));
        Ok((off.raw(), grew))
    }

    /// Commits a new node with a random payload of at most `max_len` bytes and an edge to a
    /// random committed node. `None` if the directory is full.
    pub fn insert(
        &self,
        g: &mut HeapGuard<'_>,
        rng: &mut Rng,
        max_len: u64,
        j: &mut dyn Journal,
    ) -> Result<Option<(u64, u64, bool)>> {
        let Some(i) = self.free_slot(g, rng)? else {
            return Ok(None);
        };
        let next = match self.pick(g, rng)? {
            Some((_, o)) if !rng.one_in(8) => o,
            _ => 0,
        };
        let (node, grew) = self.new_node(g, rng, max_len, next)?;
        self.store(g, i, node, j)?;
        g.get_mut(self.root)?.inserted += 1;
        Ok(Some((i, node, grew)))
    }

    /// Points every edge to `from` at `to` (writing, and so logging, only the heads that
    /// change).
    fn redirect(&self, g: &mut HeapGuard<'_>, from: u64, to: u64) -> Result<()> {
        let nodes: Vec<u64> = self.dir(g)?.iter().copied().filter(|&o| o != 0).collect();
        for y in nodes {
            let at = Offset::<NodeHead>::from_raw(y);
            if g.read(at)?.next == from {
                g.get_mut(at)?.next = to;
            }
        }
        Ok(())
    }

    /// Clears the edges to the node in slot `i`, uncommits it and frees it. `false` if the
    /// slot is empty.
    pub fn delete(&self, g: &mut HeapGuard<'_>, i: u64, j: &mut dyn Journal) -> Result<bool> {
        let x = self.get(g, i)?;
        if x == 0 {
            return Ok(false);
        }
        self.redirect(g, x, 0)?;
        self.store(g, i, 0, j)?;
        g.free(Offset::<u8>::from_raw(x))?;
        g.get_mut(self.root)?.deleted += 1;
        Ok(true)
    }

    /// Points a random node's edge at another random node (or at nothing).
    pub fn rewire(&self, g: &mut HeapGuard<'_>, rng: &mut Rng) -> Result<bool> {
        let Some((_, x)) = self.pick(g, rng)? else {
            return Ok(false);
        };
        let y = match self.pick(g, rng)? {
            Some((_, y)) if !rng.one_in(8) => y,
            _ => 0,
        };
        g.get_mut(Offset::<NodeHead>::from_raw(x))?.next = y;
        Ok(true)
    }

    /// Replaces the node in a random slot by a copy with a new id and payload: commit the
    /// copy in a free slot, move every edge to it, delete the original. `None` if the graph
    /// is empty or the directory full.
    pub fn replace(
        &self,
        g: &mut HeapGuard<'_>,
        rng: &mut Rng,
        max_len: u64,
        j: &mut dyn Journal,
    ) -> Result<Option<bool>> {
        let Some((i, x)) = self.pick(g, rng)? else {
            return Ok(None);
        };
        let Some(k) = self.free_slot(g, rng)? else {
            return Ok(None);
        };
        let next = g.read(Offset::<NodeHead>::from_raw(x))?.next;
        let (y, grew) = self.new_node(g, rng, max_len, next)?;
        self.store(g, k, y, j)?;
        g.get_mut(self.root)?.inserted += 1;
        self.redirect(g, x, y)?;
        self.delete(g, i, j)?;
        Ok(Some(grew))
    }

    /// Checks one node against S1; `Err` describes what is broken.
    pub fn verify_node(
        &self,
        g: &HeapGuard<'_>,
        off: u64,
    ) -> std::result::Result<NodeHead, String> {
        let h = g
            .read(Offset::<NodeHead>::from_raw(off))
            .map_err(|e| format!("node {off:#x}: {e}"))?;
        if h.magic != NODE_MAGIC {
            return Err(format!("node {off:#x}: bad magic {:#x}", h.magic));
        }
        let total = h
            .len
            .checked_add(HEAD)
            .ok_or_else(|| format!("node {off:#x}: length {} overflows", h.len))?;
        let bytes = g
            .bytes(Offset::from_raw(off), total)
            .map_err(|e| format!("node {off:#x} (id {}, len {}): {e}", h.id, h.len))?;
        let payload = &bytes[HEAD as usize..];
        if rng::checksum(h.id, payload) != h.sum {
            return Err(format!(
                "node {off:#x} (id {}): payload checksum mismatch",
                h.id
            ));
        }
        if !rng::matches(h.id, payload) {
            return Err(format!(
                "node {off:#x} (id {}): payload is not the pattern of its id",
                h.id
            ));
        }
        Ok(h)
    }

    /// One random operation, as one transaction committed before this returns (with the
    /// lock still held, so that the journal hears of the commit under it): mostly inserts
    /// while the directory is sparse, mostly deletes while it is nearly full.
    pub fn random_op(
        &self,
        g: &mut HeapGuard<'_>,
        rng: &mut Rng,
        max_len: u64,
        j: &mut dyn Journal,
    ) -> Result<Done> {
        let done = self.random_op_uncommitted(g, rng, max_len, j)?;
        g.checkpoint()?;
        j.committed();
        Ok(done)
    }

    fn random_op_uncommitted(
        &self,
        g: &mut HeapGuard<'_>,
        rng: &mut Rng,
        max_len: u64,
        j: &mut dyn Journal,
    ) -> Result<Done> {
        let fill = self.count(g)? * 100 / self.slots.max(1);
        let roll = rng.below(100);
        let insert_pct = match fill {
            0..=20 => 70,
            21..=80 => 30,
            _ => 5,
        };
        let mut done = Done {
            kind: OpKind::Read,
            grew: false,
            problem: None,
        };
        if roll < insert_pct {
            done.kind = OpKind::Insert;
            if let Some((_, _, grew)) = self.insert(g, rng, max_len, j)? {
                done.grew = grew;
                return Ok(done);
            }
        }
        done.kind = OpKind::Read;
        match rng.below(4) {
            0 => {
                if let Some((i, _)) = self.pick(g, rng)? {
                    done.kind = OpKind::Delete;
                    self.delete(g, i, j)?;
                }
            }
            1 => {
                done.kind = OpKind::Rewire;
                self.rewire(g, rng)?;
            }
            2 => {
                if let Some(grew) = self.replace(g, rng, max_len, j)? {
                    done.kind = OpKind::Replace;
                    done.grew = grew;
                }
            }
            _ => {
                if let Some((_, x)) = self.pick(g, rng)? {
                    match self.verify_node(g, x) {
                        Err(e) => done.problem = Some(e),
                        Ok(h) if h.next != 0 => {
                            if let Err(e) = self.verify_node(g, h.next) {
                                done.problem = Some(format!("edge of node {x:#x}: {e}"));
                            }
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
        Ok(done)
    }

    /// Checks S1-S3 over the whole graph.
    pub fn verify(&self, g: &HeapGuard<'_>) -> Result<GraphReport> {
        let dir = self.dir(g)?.to_vec();
        let mut rep = GraphReport {
            slots: self.slots,
            ..GraphReport::default()
        };
        rep.live.insert(self.root.raw());
        rep.live.insert(self.dir);
        let mut at: HashMap<u64, u64> = HashMap::new();
        let mut ids: HashMap<u64, u64> = HashMap::new();
        let mut heads = Vec::new();
        for (i, &off) in dir.iter().enumerate() {
            if off == 0 {
                continue;
            }
            if let Some(j) = at.insert(off, i as u64) {
                rep.problems.push(format!(
                    "S3 node {off:#x} is committed in slots {j} and {i}"
                ));
                continue;
            }
            match self.verify_node(g, off) {
                Err(e) => rep.problems.push(format!("S1 slot {i}: {e}")),
                Ok(h) => {
                    if let Some(other) = ids.insert(h.id, off) {
                        rep.problems.push(format!(
                            "S3 id {} is carried by nodes {other:#x} and {off:#x}",
                            h.id
                        ));
                    }
                    rep.nodes += 1;
                    rep.payload_bytes += h.len;
                    rep.largest_payload = rep.largest_payload.max(h.len);
                    rep.live.insert(off);
                    heads.push((off, h));
                }
            }
        }
        for (off, h) in heads {
            if h.next != 0 && !at.contains_key(&h.next) {
                rep.problems.push(format!(
                    "S2 node {off:#x} (id {}) has an edge to {:#x}, which is not committed",
                    h.id, h.next
                ));
            }
        }
        rep.dir = dir;
        Ok(rep)
    }
}

/// Allocated blocks whose payload is not in `live` (nor one of the heap's own, its undo
/// log's): `(blocks, bytes)`, headers included. S4 wants `(0, 0)`.
pub fn leaks(g: &HeapGuard<'_>, live: &HashSet<u64>) -> (u64, u64) {
    let own = g.own_blocks();
    g.blocks()
        .iter()
        .filter(|b| !b.free)
        .map(|b| (b.offset + crate::format::BLOCK_HEADER, b.size))
        .filter(|(p, _)| !live.contains(p) && !own.contains(p))
        .fold((0, 0), |(n, bytes), (_, size)| (n + 1, bytes + size))
}
