//! The generation side of the transaction model: the steps (`Op`) and the state that
//! biases their choice (`RefState`), as a proptest-state-machine `ReferenceStateMachine`.
//! Which block a step touches is resolved when it runs (an `Index` into the blocks the
//! model holds then), because where a block lands is the allocator's choice.
//!
//! Invariant: `RefState` only biases the choice of steps and never decides an outcome; a
//! step is valid in every state (outside a transaction an inner step opens one, a stray
//! terminator ends an empty one), so shrinking may drop any step.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest_state_machine::ReferenceStateMachine;

/// Root names: short ones, and one of exactly the longest allowed length (32 bytes).
pub const NAMES: [&str; 5] = ["a", "bb", "root-c", "d", "a-root-name-of-exactly-32-bytes!"];

/// How many bytes a write covers, from the block's start (the only place a typed write
/// or a view can start: an offset resolves only at a payload).
#[derive(Clone, Copy, Debug)]
pub enum Len {
    /// 1 to 24 bytes.
    Small(u8),
    /// Any length up to the block's usable size.
    Any(Index),
    /// This transaction's longest write to the block plus 1..=64 bytes: extends a range
    /// already written (the log saves only the new part).
    Extend(u8),
    /// At most this transaction's longest write to the block: overlaps a range already
    /// written (nothing more to save).
    Within(Index),
    /// The whole usable size.
    Whole,
}

/// Which accessor writes.
#[derive(Clone, Copy, Debug)]
pub enum Via {
    /// `HeapGuard::write` with a `[u8; N]` (N the largest supported size within the length).
    Write,
    /// `HeapGuard::get_mut` with a `[u8; N]`.
    GetMut,
    /// `HeapGuard::bytes_mut` with the exact length.
    BytesMut,
}

/// How many bytes an allocation asks for.
#[derive(Clone, Copy, Debug)]
pub enum Size {
    /// This many.
    Bytes(u64),
    /// Nearly all of the largest free block: what fits in it less `leave` bytes (leaves
    /// the heap nearly full, so a log extension cannot be allocated).
    AllBut(u16),
}

/// How a transaction is committed.
#[derive(Clone, Copy, Debug)]
pub enum How {
    /// Dropping the guard.
    Drop,
    /// `HeapGuard::commit`.
    Commit,
}

/// One step.
#[derive(Clone, Debug)]
pub enum Op {
    /// Take a guard (ends the open transaction first by dropping its guard, if there is one).
    Begin,
    /// Write to a block of the transaction's view (`fresh`: prefer one it allocated).
    Write {
        which: Index,
        fresh: bool,
        len: Len,
        via: Via,
    },
    /// Allocate.
    Alloc { size: Size, align: u64 },
    /// Free (deferred) a block no root names.
    Free { which: Index },
    /// Free again a block this transaction frees already: `DoubleFree`, nothing changes.
    FreeAgain { which: Index },
    /// Set root `NAMES[name]` to a block (`freeing`: to one this transaction frees, which
    /// must be refused).
    SetRoot {
        name: usize,
        which: Index,
        freeing: bool,
    },
    /// Remove root `NAMES[name]`.
    RemoveRoot { name: usize },
    /// `HeapGuard::checkpoint`: commit and go on under the same lock.
    Checkpoint,
    /// End the transaction: commit.
    Commit(How),
    /// End it: `HeapGuard::abort`.
    Abort,
    /// End it: a panic while the guard is held (the guard rolls back).
    Panic,
    /// End it by dying after a random store of the transaction, its commit included
    /// (`at` over the stores it makes); `second`: die again inside the recovery that the
    /// next opener runs, then open once more.
    Crash { at: Index, second: Option<Second> },
}

impl Op {
    /// Whether the step ends a transaction.
    pub fn ends(&self) -> bool {
        matches!(
            self,
            Op::Commit(_) | Op::Abort | Op::Panic | Op::Crash { .. }
        )
    }
}

/// Where a second death falls among the stores of a recovery.
#[derive(Clone, Copy, Debug)]
pub struct Second {
    /// Which store: of all of them, or (`txn`) of those after the allocator's repair,
    /// where the transaction is rolled back or finished (the repair before it makes dozens).
    pub at: Index,
    pub txn: bool,
}

/// How the heap is made.
#[derive(Clone, Debug)]
pub struct Init {
    /// Capacity in pages of 4 KiB.
    pub pages: u8,
    /// `CreateOptions::log_capacity` (`None`: the default).
    pub log_cap: Option<u64>,
    /// Blocks allocated (and filled) before the first step, committed.
    pub prefill: Vec<u16>,
    /// Then a block that leaves only this much of the largest free block.
    pub hog: Option<u16>,
}

/// The generation state: only what biases the choice of steps.
#[derive(Clone, Debug)]
pub struct RefState {
    pub init: Init,
    in_txn: bool,
    /// Blocks the transaction's view probably holds.
    blocks: usize,
    /// Blocks the transaction probably frees.
    freeing: usize,
    /// Steps since the transaction began.
    steps: usize,
}

pub struct TxnMachine;

fn len_strategy() -> BoxedStrategy<Len> {
    prop_oneof![
        3 => (1u8..=24).prop_map(Len::Small),
        3 => any::<Index>().prop_map(Len::Any),
        3 => (1u8..=64).prop_map(Len::Extend),
        2 => any::<Index>().prop_map(Len::Within),
        2 => Just(Len::Whole),
    ]
    .boxed()
}

fn via_strategy() -> BoxedStrategy<Via> {
    prop_oneof![3 => Just(Via::Write), 1 => Just(Via::GetMut), 2 => Just(Via::BytesMut)].boxed()
}

fn size_strategy() -> BoxedStrategy<Size> {
    prop_oneof![
        4 => (1u64..=64).prop_map(Size::Bytes),
        4 => (65u64..=600).prop_map(Size::Bytes),
        1 => (601u64..=3000).prop_map(Size::Bytes),
        1 => (0u16..=700).prop_map(Size::AllBut),
    ]
    .boxed()
}

fn init_strategy() -> BoxedStrategy<Init> {
    let log_cap = prop_oneof![2 => Just(Some(256u64)), 1 => Just(Some(512)), 2 => Just(None)];
    let fill = prop_oneof![
        2 => Just((Vec::new(), None)),
        1 => (
            proptest::collection::vec(24u16..=1500, 1..=5),
            (0u16..=700).prop_map(Some)
        ),
    ];
    (6u8..=24, log_cap, fill)
        .prop_map(|(pages, log_cap, (prefill, hog))| Init {
            pages,
            log_cap,
            prefill,
            hog,
        })
        .boxed()
}

impl ReferenceStateMachine for TxnMachine {
    type State = RefState;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<RefState> {
        init_strategy()
            .prop_map(|init| RefState {
                blocks: init.prefill.len() + usize::from(init.hog.is_some()),
                init,
                in_txn: false,
                freeing: 0,
                steps: 0,
            })
            .boxed()
    }

    fn transitions(s: &RefState) -> BoxedStrategy<Op> {
        if !s.in_txn {
            return Just(Op::Begin).boxed();
        }
        let write = (
            any::<Index>(),
            any::<bool>(),
            len_strategy(),
            via_strategy(),
        )
            .prop_map(|(which, fresh, len, via)| Op::Write {
                which,
                fresh,
                len,
                via,
            });
        let align = prop_oneof![6 => Just(8u64), 1 => Just(16), 1 => Just(64)];
        let alloc = (size_strategy(), align).prop_map(|(size, align)| Op::Alloc { size, align });
        let free = any::<Index>().prop_map(|which| Op::Free { which });
        let again = any::<Index>().prop_map(|which| Op::FreeAgain { which });
        let set_root = (0..NAMES.len(), any::<Index>(), prop::bool::weighted(0.1)).prop_map(
            |(name, which, freeing)| Op::SetRoot {
                name,
                which,
                freeing,
            },
        );
        let remove_root = (0..NAMES.len()).prop_map(|name| Op::RemoveRoot { name });
        let how = prop_oneof![2 => Just(How::Drop), 1 => Just(How::Commit)];
        let second = (any::<Index>(), any::<bool>()).prop_map(|(at, txn)| Second { at, txn });
        let crash = (any::<Index>(), prop::option::weighted(0.4, second))
            .prop_map(|(at, second)| Op::Crash { at, second });
        // Few empty transactions: an end is rare before the first step.
        let e = if s.steps == 0 { 0 } else { 1 };
        let (ww, aw) = if s.blocks == 0 { (1, 8) } else { (10, 5) };
        let choices: Vec<(u32, BoxedStrategy<Op>)> = vec![
            (ww, write.boxed()),
            (aw, alloc.boxed()),
            (2, free.boxed()),
            (1, again.boxed()),
            (2, set_root.boxed()),
            (1, remove_root.boxed()),
            (1, Just(Op::Checkpoint).boxed()),
            (2 * e, how.prop_map(Op::Commit).boxed()),
            (2 * e, Just(Op::Abort).boxed()),
            (e, Just(Op::Panic).boxed()),
            (3 * e, crash.boxed()),
        ];
        proptest::strategy::Union::new_weighted(
            choices.into_iter().filter(|(w, _)| *w > 0).collect(),
        )
        .boxed()
    }

    fn apply(mut s: RefState, op: &Op) -> RefState {
        s.steps += 1;
        match op {
            Op::Begin => {
                s.in_txn = true;
                s.steps = 0;
            }
            Op::Alloc { .. } => s.blocks += 1,
            Op::Free { .. } if s.blocks > 0 => {
                s.blocks -= 1;
                s.freeing += 1;
            }
            Op::Checkpoint => s.freeing = 0,
            op if op.ends() => {
                s.in_txn = false;
                s.freeing = 0;
            }
            _ => {}
        }
        s
    }
}
