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
//!
//! This file holds the generated graphs and mutations; `graph/world.rs` the model of what
//! one heap holds and the code that builds, mutates and reads a graph through a heap.

use bytemuck::{Pod, Zeroable};
use proptest::prelude::*;
use proptest::sample::Index;

use super::{boundary_block_sizes, BLOCK_HEADER};

mod world;

// Not every target that includes common/ uses the graphs.
#[allow(unused_imports)]
pub use world::*;

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
