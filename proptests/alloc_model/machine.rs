//! The generation side of the allocator model: the steps (`Op`) and the reference state
//! machine that chooses them (proptest-state-machine). The concrete model and the checks
//! after each step are in alloc_model.rs.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest_state_machine::ReferenceStateMachine;

use crate::common::{self, BLOCK_HEADER};

/// Growth stops here, to keep the per-step content checks cheap.
pub const MAX_CAP: u64 = 1 << 20;

/// One step.
#[derive(Clone, Debug)]
pub enum Op {
    /// Allocate `size` bytes aligned to `align`.
    Alloc { size: u64, align: u64 },
    /// Allocate exactly the payload of the model's `gap`-th free gap (an exact fit).
    ExactFit { gap: Index },
    /// Allocate around the largest gap: `largest - 8 + delta` bytes, less the alignment
    /// slack for `align > 8`, right at the success/failure bound.
    NearLargest { delta: i16, align: u64 },
    /// Free the `which`-th live block in allocation order.
    Free { which: Index },
    /// Free the `which`-th live block in address order and its physical successor (if
    /// live), in this order or the other.
    FreeNeighbours { which: Index, forward: bool },
    /// Free an offset freed before: a double free unless the block came back.
    FreeStale { which: Index },
    /// Free an offset inside a live block's payload.
    FreeInterior { which: Index, word: Index },
    /// Allocate with an invalid alignment.
    BadAlign { align: u64 },
    /// Grow by `pages` pages.
    Grow { pages: u8 },
    /// Drop the handle and open the file again (keeping the old one attached meanwhile).
    Reopen { keep_old: bool },
}

/// The generation side of the model: only what biases the choice of steps. The concrete
/// model (intervals, capacity) lives with the system under test, because where a block
/// lands is the allocator's choice; steps name blocks by index, resolved modulo the live
/// count when they run.
#[derive(Clone, Debug)]
pub struct RefState {
    pub pages: u8,
    pub live: usize,
    pub freed: usize,
}

pub struct AllocMachine;

fn size_strategy() -> BoxedStrategy<u64> {
    let boundaries = common::boundary_block_sizes(1 << 16);
    prop_oneof![
        3 => 0u64..=64,
        3 => (proptest::sample::select(boundaries), 0u64..8)
            .prop_map(|(b, k)| b.saturating_sub(BLOCK_HEADER + k)),
        2 => 65u64..=4096,
        1 => 4097u64..=65536,
    ]
    .boxed()
}

fn align_strategy() -> BoxedStrategy<u64> {
    prop_oneof![
        6 => Just(8u64),
        1 => proptest::sample::select(vec![1u64, 2, 4]),
        2 => proptest::sample::select(vec![16u64, 32, 64]),
        1 => proptest::sample::select(vec![128u64, 256, 1024, 4096]),
    ]
    .boxed()
}

impl ReferenceStateMachine for AllocMachine {
    type State = RefState;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<RefState> {
        (5u8..=32)
            .prop_map(|pages| RefState {
                pages,
                live: 0,
                freed: 0,
            })
            .boxed()
    }

    fn transitions(s: &RefState) -> BoxedStrategy<Op> {
        let alloc =
            (size_strategy(), align_strategy()).prop_map(|(size, align)| Op::Alloc { size, align });
        let exact = any::<Index>().prop_map(|gap| Op::ExactFit { gap });
        let near = (-24i16..=24, align_strategy())
            .prop_map(|(delta, align)| Op::NearLargest { delta, align });
        let free = any::<Index>().prop_map(|which| Op::Free { which });
        let neighbours = (any::<Index>(), any::<bool>())
            .prop_map(|(which, forward)| Op::FreeNeighbours { which, forward });
        let stale = any::<Index>().prop_map(|which| Op::FreeStale { which });
        let interior = (any::<Index>(), any::<Index>())
            .prop_map(|(which, word)| Op::FreeInterior { which, word });
        let bad = proptest::sample::select(vec![0u64, 3, 24, 8192, 1 << 20])
            .prop_map(|align| Op::BadAlign { align });
        let grow = (1u8..=16).prop_map(|pages| Op::Grow { pages });
        let reopen = any::<bool>().prop_map(|keep_old| Op::Reopen { keep_old });
        // Free more often once blocks pile up.
        let fw = if s.live == 0 {
            1
        } else {
            2 + s.live.min(8) as u32
        };
        prop_oneof![
            10 => alloc,
            2 => exact,
            2 => near,
            fw => free,
            fw / 2 + 1 => neighbours,
            if s.freed == 0 { 1 } else { 2 } => stale,
            1 => interior,
            1 => bad,
            1 => grow,
            1 => reopen,
        ]
        .boxed()
    }

    fn apply(mut s: RefState, op: &Op) -> RefState {
        match op {
            Op::Alloc { .. } | Op::ExactFit { .. } | Op::NearLargest { .. } => s.live += 1,
            Op::Free { .. } if s.live > 0 => {
                s.live -= 1;
                s.freed += 1;
            }
            Op::FreeNeighbours { .. } => {
                let n = s.live.min(2);
                s.live -= n;
                s.freed += n;
            }
            _ => {}
        }
        s
    }
}
