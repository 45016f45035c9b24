//! Seeded bugs ("mutants") for the checkers' own tests.
//!
//! Invariant: in a build without the `mutants` feature, [`active`] is the constant `false`,
//! so every mutant branch in the real code is dead code the optimiser removes; a normal
//! build pays nothing. Test, bench and example targets get the feature through the crate's
//! dev-dependency on itself.
//!
//! A mutant is chosen for the current OS thread ([`set_thread`]) or for the whole process
//! ([`set_process`], or the `MAPHEAP_MUTANT` environment variable read by
//! [`init_from_env`], for re-executed child processes). loom and shuttle run every model
//! thread as a coroutine on the thread that called `model`/`check_*`, so a thread-local choice
//! made by the test thread reaches all of its model threads and no other test.

/// Every seeded bug, named for what it breaks. docs/invariants.md lists which check
/// catches each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum Mutant {
    /// Unlock swaps 0 but never calls `wake`.
    UnlockWithoutWake = 1,
    /// Unlock wakes a waiter before the releasing swap.
    WakeBeforeRelease,
    /// A waiter that has slept takes the free lock without the WAITERS bit.
    WokenTakesWithoutWaiters,
    /// The acquiring CAS uses `Relaxed` instead of `Acquire`.
    RelaxedAcquire,
    /// The releasing swap uses `Relaxed` instead of `Release`.
    RelaxedRelease,
    /// A dead owner's lock is taken over by a plain store instead of a CAS.
    TakeoverByStore,
    /// The takeover CAS installs the new owner without the WAITERS bit.
    RecoveryDropsWaiters,
    /// A return from `wait` is taken to mean the lock is now ours.
    WaitMeansOwnership,
    /// Futex wait and wake use FUTEX_PRIVATE_FLAG (never wakes another process).
    FutexPrivate,
    /// The owner-liveness probe trusts `kill(pid, 0)` (a zombie looks alive).
    ProbeByKill,
    /// Recovery after an owner's death skips the repair of the heap.
    SkipRepair,
    /// Stores an absolute address instead of an offset where the heap writes an offset.
    AbsoluteAddress,
    /// Resolves offsets against the base of the first mapping ever made, not the current one.
    WrongBase,
    /// `free` does not coalesce with free neighbours.
    FreeWithoutCoalesce,
    /// The bounds check on a resolved offset is off by one block.
    BoundsOffByOne,
    /// Allocation does not round the payload start up to the requested alignment.
    NoAlignRounding,
    /// `open` trusts the header's capacity without comparing it to the file size.
    TrustCapacity,
    /// A slot claimed from a dead process keeps its old incarnation.
    SlotKeepsIncarnation,
    /// A split writes the tail block's header 8 bytes past where the tail starts.
    SplitTailMisplaced,
    /// Removing the last block of a free list leaves the list's bitmap bit set.
    KeepEmptyListBit,
    /// A list that an operation fills from empty gets no bitmap bit (the deferred bitmap
    /// step, `Editor::flush_lists`, skips the filling side).
    FillWithoutListBit,
    /// `free` does not write the free block's footer.
    NoFooter,
    /// `alloc` does not count the block it hands out.
    CounterDrift,
    /// `create` writes the file in place instead of renaming a finished temporary file.
    CreateInPlace,
    /// Growth extends the file with `set_len` (sparse) instead of reserving its blocks.
    GrowWithoutReserve,
    /// A reservation that fails half-way keeps the space the file system gave it.
    KeepFailedReserve,
    /// The direct allocation path stores the shrinking header that commits a split before
    /// the tail's header exists (the planned path's `SplitCommitFirst`, in the other path).
    DirectCommitFirst,
    /// The direct free stores the header that merges a free next block into the freed one
    /// before that block leaves its list (its commit first).
    DirectFreeCommitFirst,
    /// `open` accepts an identity block without checking magic, version and checksum.
    SkipIdentityCheck,
    /// `lock` does not notice that it runs in a fork child of the handle's process.
    IgnoreFork,
    /// `lock` keeps the old mapping after another process grew the heap.
    StaleMapping,
    /// A free block is filed under the class a search would use, not its own.
    WrongClass,
    /// A root is handed out whatever type it was registered with.
    IgnoreRootType,
    /// Block headers are decoded without checking their tag.
    SkipHeaderTag,
    /// An allocation grows the heap past `OpenOptions::grow_limit`.
    GrowPastLimit,
    /// A waiter goes back to sleep on the value it saw before it slept, without reading
    /// the word again: once the word has moved on it never takes the lock (it spins).
    StaleWordAfterWait,
    /// An allocation that must grow the heap grows it by the request's search size, not by
    /// the least block of the class TLSF searches (it may grow and still fail).
    GrowTooLittle,
    /// A root name of exactly the longest allowed length is refused.
    RootNameOffByOne,
    /// Root entries are trusted without their checksum.
    IgnoreRootChecksum,
    /// `create` ignores `CreateOptions::mode` (the file gets 0600).
    IgnoreMode,
    /// `check` does not look at the header's bytes that must be zero.
    SkipZeroCheck,
    /// `check` does not look at the unknown bits of the state's flags.
    SkipFlagsCheck,
    /// The transaction is marked committed by every log append (before the log is whole).
    CommitBeforeLog,
    /// `write` stores the new value before saving the before-image.
    ImageAfterWrite,
    /// A rollback does not free the blocks its transaction allocated.
    RollbackKeepsAllocs,
    /// A deferred free is carried out at once, before the commit.
    FreeBeforeCommit,
    /// A rollback clears the log before it restores (a second death loses the rest).
    ClearLogFirst,
    /// A write the undo log has no room for is made without a before-image.
    OverflowSkipsLog,
    /// A guard dropped by a panic commits instead of rolling back.
    PanicCommits,
    /// A free (or a split) writes before it has checked everything it will touch.
    WriteBeforeCheck,
    /// A split stores the shrunk header before the tail's header (its commit first).
    SplitCommitFirst,
    /// A locker spins on a held word without a bound (never sleeps, never probes).
    UnboundedSpin,
    /// A handle's first lock validates the capacity only when the generation differs from
    /// the 0 a new handle starts from (a file whose generation is 0 skips the check).
    TrustCapacityAtOpen,
    /// A transaction's first free is made at its commit from the plan kept at its check
    /// without looking whether the words that plan read have changed since.
    KeptPlanUnchecked,
}

impl Mutant {
    /// Every mutant, for listing and for parsing `MAPHEAP_MUTANT`.
    pub const ALL: &'static [Mutant] = &[
        Mutant::UnlockWithoutWake,
        Mutant::WakeBeforeRelease,
        Mutant::WokenTakesWithoutWaiters,
        Mutant::RelaxedAcquire,
        Mutant::RelaxedRelease,
        Mutant::TakeoverByStore,
        Mutant::RecoveryDropsWaiters,
        Mutant::WaitMeansOwnership,
        Mutant::FutexPrivate,
        Mutant::ProbeByKill,
        Mutant::SkipRepair,
        Mutant::AbsoluteAddress,
        Mutant::WrongBase,
        Mutant::FreeWithoutCoalesce,
        Mutant::BoundsOffByOne,
        Mutant::NoAlignRounding,
        Mutant::TrustCapacity,
        Mutant::SlotKeepsIncarnation,
        Mutant::SplitTailMisplaced,
        Mutant::KeepEmptyListBit,
        Mutant::FillWithoutListBit,
        Mutant::NoFooter,
        Mutant::CounterDrift,
        Mutant::CreateInPlace,
        Mutant::GrowWithoutReserve,
        Mutant::KeepFailedReserve,
        Mutant::DirectCommitFirst,
        Mutant::DirectFreeCommitFirst,
        Mutant::SkipIdentityCheck,
        Mutant::IgnoreFork,
        Mutant::StaleMapping,
        Mutant::WrongClass,
        Mutant::IgnoreRootType,
        Mutant::SkipHeaderTag,
        Mutant::GrowPastLimit,
        Mutant::StaleWordAfterWait,
        Mutant::GrowTooLittle,
        Mutant::RootNameOffByOne,
        Mutant::IgnoreRootChecksum,
        Mutant::IgnoreMode,
        Mutant::SkipZeroCheck,
        Mutant::SkipFlagsCheck,
        Mutant::CommitBeforeLog,
        Mutant::ImageAfterWrite,
        Mutant::RollbackKeepsAllocs,
        Mutant::FreeBeforeCommit,
        Mutant::ClearLogFirst,
        Mutant::OverflowSkipsLog,
        Mutant::PanicCommits,
        Mutant::WriteBeforeCheck,
        Mutant::SplitCommitFirst,
        Mutant::UnboundedSpin,
        Mutant::TrustCapacityAtOpen,
        Mutant::KeptPlanUnchecked,
    ];

    /// The mutant whose `Debug` name is `name`.
    pub fn parse(name: &str) -> Option<Mutant> {
        Self::ALL.iter().copied().find(|m| format!("{m:?}") == name)
    }
}

#[cfg(feature = "mutants")]
mod imp {
    use super::Mutant;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    static PROCESS: AtomicU32 = AtomicU32::new(0);
    /// Set once any mutant was ever switched on in this process: until then `active` is one
    /// load of a global, so benches built with the feature measure the real code.
    static EVER: AtomicBool = AtomicBool::new(false);
    thread_local! {
        static THREAD: Cell<u32> = const { Cell::new(0) };
    }

    #[inline]
    pub fn active(m: Mutant) -> bool {
        if !EVER.load(Ordering::Relaxed) {
            return false;
        }
        let id = m as u32;
        THREAD.with(|t| t.get()) == id || PROCESS.load(Ordering::Relaxed) == id
    }

    #[inline]
    pub fn others_active(m: Mutant) -> bool {
        if !EVER.load(Ordering::Relaxed) {
            return false;
        }
        let (id, t, p) = (
            m as u32,
            THREAD.with(|t| t.get()),
            PROCESS.load(Ordering::Relaxed),
        );
        (t != 0 && t != id) || (p != 0 && p != id)
    }

    pub fn set_thread(m: Option<Mutant>) {
        if m.is_some() {
            EVER.store(true, Ordering::Relaxed);
        }
        THREAD.with(|t| t.set(m.map_or(0, |m| m as u32)));
    }

    pub fn set_process(m: Option<Mutant>) {
        if m.is_some() {
            EVER.store(true, Ordering::Relaxed);
        }
        PROCESS.store(m.map_or(0, |m| m as u32), Ordering::Relaxed);
    }
}

/// Whether the seeded bug `m` is switched on. Always `false` without the `mutants` feature.
#[cfg(feature = "mutants")]
#[inline]
pub fn active(m: Mutant) -> bool {
    imp::active(m)
}

/// Whether the seeded bug `m` is switched on. Always `false` without the `mutants` feature.
#[cfg(not(feature = "mutants"))]
#[inline(always)]
pub fn active(_m: Mutant) -> bool {
    false
}

/// Whether a seeded bug other than `m` is switched on (for a fast path that must leave
/// the other seeded bugs to the path they are in). Always `false` without the feature.
#[cfg(feature = "mutants")]
pub fn others_active(m: Mutant) -> bool {
    imp::others_active(m)
}

/// Whether a seeded bug other than `m` is switched on. Always `false` without the feature.
#[cfg(not(feature = "mutants"))]
#[inline(always)]
pub fn others_active(_m: Mutant) -> bool {
    false
}

/// Switches `m` on (or all off) for the calling OS thread and the model threads it runs.
#[cfg(feature = "mutants")]
pub fn set_thread(m: Option<Mutant>) {
    imp::set_thread(m)
}

/// Switches `m` on (or all off) for every thread of this process.
#[cfg(feature = "mutants")]
pub fn set_process(m: Option<Mutant>) {
    imp::set_process(m)
}

/// Reads `MAPHEAP_MUTANT` (a [`Mutant`] name) and switches it on for the process.
/// Returns the mutant found. Used by re-executed test children.
#[cfg(feature = "mutants")]
pub fn init_from_env() -> Option<Mutant> {
    let m = std::env::var("MAPHEAP_MUTANT")
        .ok()
        .and_then(|s| Mutant::parse(&s));
    set_process(m);
    m
}

/// Runs `f` with `m` switched on for this thread, then switches it off again.
#[cfg(feature = "mutants")]
pub fn with<R>(m: Mutant, f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            set_thread(None);
        }
    }
    set_thread(Some(m));
    let _reset = Reset;
    f()
}
