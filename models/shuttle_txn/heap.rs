//! The heap the transaction model's lock protects: a real heap (the production allocator,
//! undo log and `txn::Tx`) in a plain page-aligned buffer that the model threads share, and
//! the reference it must equal: the committed state, in which every transaction happened
//! wholly or not at all.
//!
//! The structure: a table block (four cells whose sum never changes, the head and length of
//! a list), a 256-byte record (every word the stamp of the last transaction that rewrote it:
//! its before-image does not fit the 256-byte log, so such a transaction chains an extension
//! segment), and the list's 16-byte nodes (`next`, `value`). Every block the heap holds is
//! one of these or the log's own block: anything else is a leak.
//!
//! Invariant: the buffer is touched only by the holder of the model lock (the world's
//! occupancy check fails first if two threads are inside), and only through an `Arena`.

use mapheap::alloc::Arena;
use mapheap::format::BLOCK_HEADER;
use mapheap::txn::{Tx, TxnError};

/// Bytes of the buffer: the 16 KiB header and an 8 KiB arena.
const SIZE: u64 = 24 << 10;
const PAGE: u64 = 4096;
/// The smallest log the library allows, so that the record's image needs an extension.
const LOG_CAP: u64 = mapheap::txn::MIN_LOG;
pub const CELLS: usize = 4;
const TABLE_BYTES: u64 = 8 * (CELLS as u64 + 2);
const HEAD: u64 = 8 * CELLS as u64;
const LEN: u64 = HEAD + 8;
pub const RECORD_WORDS: u64 = 32;
const NODE: u64 = 16;

/// A page-aligned, zeroed buffer holding a heap.
pub struct Buf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

// SAFETY: the buffer is a plain allocation owned by this value; the model threads reach it
// only through `arena`, whose caller holds the model lock (see the module's invariant).
unsafe impl Send for Buf {}
// SAFETY: as above: one thread at a time, ordered by the model lock.
unsafe impl Sync for Buf {}

impl Buf {
    fn new() -> Buf {
        let layout = std::alloc::Layout::from_size_align(SIZE as usize, PAGE as usize).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        Buf { ptr, layout }
    }

    /// The heap's arena. The caller holds the model lock for as long as it lives and keeps
    /// no other arena of the buffer alive meanwhile.
    pub fn arena(&self) -> Arena<'_> {
        // SAFETY: `ptr` is a page-aligned allocation of `SIZE` bytes that lives as long as
        // `self`; the caller holds the model lock, which stands in for the heap's lock.
        unsafe { Arena::new(self.ptr, SIZE, PAGE) }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// Where the structure's fixed blocks are (payload offsets).
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub table: u64,
    pub record: u64,
}

/// The committed state of the structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    pub cells: [u64; CELLS],
    /// The list's values, head first.
    pub list: Vec<u64>,
    pub stamp: u64,
}

/// One transaction's work. Each also moves `amount` from cell `from` to cell `to` first.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// Allocate a node holding `value` and link it at the head.
    Push(u64),
    /// Unlink the head node and free it (deferred to the commit).
    Pop,
    /// Both: the new node replaces the old head, which is freed.
    Replace(u64),
    /// Rewrite every word of the record with `value` (needs an extension segment).
    Stamp(u64),
}

/// A transaction: a transfer between two cells, then `op`.
#[derive(Clone, Copy, Debug)]
pub struct Txn {
    pub from: usize,
    pub to: usize,
    pub amount: u64,
    pub op: Op,
}

impl Model {
    /// The state after `t` committed.
    pub fn after(&self, t: &Txn) -> Model {
        let mut m = self.clone();
        let amount = t.amount.min(m.cells[t.from]);
        m.cells[t.from] -= amount;
        m.cells[t.to] += amount;
        match t.op {
            Op::Push(v) => m.list.insert(0, v),
            Op::Pop => {
                if !m.list.is_empty() {
                    m.list.remove(0);
                }
            }
            Op::Replace(v) => {
                if !m.list.is_empty() {
                    m.list.remove(0);
                }
                m.list.insert(0, v);
            }
            Op::Stamp(v) => m.stamp = v,
        }
        m
    }
}

/// A new heap with the structure in it (made outside any transaction: the heap exists
/// before the model threads start), and the model of it.
pub fn create() -> (Buf, Layout, Model) {
    let buf = Buf::new();
    // SAFETY: the buffer is fresh, zeroed, page-aligned, `SIZE` bytes, and ours alone.
    unsafe { mapheap::heap::format_in(buf.ptr, SIZE, PAGE, 1, LOG_CAP) }.unwrap();
    let mut a = buf.arena();
    let table = a.alloc(TABLE_BYTES, 8).unwrap();
    let record = a.alloc(8 * RECORD_WORDS, 8).unwrap();
    let model = Model {
        cells: [100; CELLS],
        list: vec![2, 1],
        stamp: 0,
    };
    for (i, &c) in model.cells.iter().enumerate() {
        a.store(table + 8 * i as u64, c).unwrap();
    }
    let mut head = 0;
    for &v in model.list.iter().rev() {
        let n = a.alloc(NODE, 8).unwrap();
        a.store(n, head).unwrap();
        a.store(n + 8, v).unwrap();
        head = n;
    }
    a.store(table + HEAD, head).unwrap();
    a.store(table + LEN, model.list.len() as u64).unwrap();
    (buf, Layout { table, record }, model)
}

/// Runs `t` through `tx`: a before-image ahead of every write to a block older than the
/// transaction, allocations and frees through the log, then the commit. Just before the
/// commit, `committing` gets the store count (`fault::stores`): a death after a later
/// store came after the commit store (T2).
pub fn run(
    a: &mut Arena<'_>,
    tx: &mut Tx,
    l: Layout,
    t: &Txn,
    committing: &mut Option<u64>,
) -> Result<(), TxnError> {
    let (from, to) = (8 * t.from as u64, 8 * t.to as u64);
    let vf = a.word(l.table + from)?;
    let amount = t.amount.min(vf);
    tx.before_write(a, l.table, from + 8)?;
    a.store(l.table + from, vf - amount)?;
    let vt = a.word(l.table + to)?;
    tx.before_write(a, l.table, to + 8)?;
    a.store(l.table + to, vt + amount)?;
    let head = a.word(l.table + HEAD)?;
    let len = a.word(l.table + LEN)?;
    match t.op {
        Op::Push(v) => {
            let n = tx.alloc(a, NODE, 8)?;
            a.store(n, head)?;
            a.store(n + 8, v)?;
            tx.before_write(a, l.table, TABLE_BYTES)?;
            a.store(l.table + HEAD, n)?;
            a.store(l.table + LEN, len + 1)?;
        }
        Op::Pop if head != 0 => {
            tx.before_write(a, l.table, TABLE_BYTES)?;
            a.store(l.table + HEAD, a.word(head)?)?;
            a.store(l.table + LEN, len - 1)?;
            tx.free(a, head)?;
        }
        Op::Replace(v) if head != 0 => {
            let n = tx.alloc(a, NODE, 8)?;
            a.store(n, a.word(head)?)?;
            a.store(n + 8, v)?;
            tx.before_write(a, l.table, TABLE_BYTES)?;
            a.store(l.table + HEAD, n)?;
            tx.free(a, head)?;
        }
        Op::Replace(v) => {
            let n = tx.alloc(a, NODE, 8)?;
            a.store(n, 0)?;
            a.store(n + 8, v)?;
            tx.before_write(a, l.table, TABLE_BYTES)?;
            a.store(l.table + HEAD, n)?;
            a.store(l.table + LEN, 1)?;
        }
        Op::Pop => {}
        Op::Stamp(v) => {
            tx.before_write(a, l.record, 8 * RECORD_WORDS)?;
            for w in 0..RECORD_WORDS {
                a.store(l.record + 8 * w, v)?;
            }
        }
    }
    *committing = Some(mapheap::fault::stores());
    tx.commit(a)?;
    Ok(())
}

/// The heap, outside any transaction, equals `want`: `check` finds nothing, no operation
/// is in flight, the cells, the record and the list are the model's, and the heap holds no
/// block but the log's, the table, the record and the list's nodes. Panics with what
/// differs (`who` says when).
pub fn verify(a: &Arena<'_>, l: Layout, want: &Model, who: &str) {
    let report = mapheap::check::check(a);
    assert!(
        report.violations.is_empty(),
        "heap check failed {who}: {:?}",
        report.violations
    );
    let st = a.state();
    assert!(
        st.log.len == 0 && st.log.done == 0 && st.intent.op == 0 && st.flags == 0,
        "something in flight {who}: log {:?}, intent {:?}, flags {}",
        st.log,
        st.intent,
        st.flags
    );
    let word = |at: u64| {
        a.word(at)
            .unwrap_or_else(|e| panic!("{who}: word {at:#x}: {e}"))
    };
    let cells: Vec<u64> = (0..CELLS as u64).map(|i| word(l.table + 8 * i)).collect();
    let stamps: Vec<u64> = (0..RECORD_WORDS).map(|w| word(l.record + 8 * w)).collect();
    let mut list = Vec::new();
    let mut owned = vec![st.log.block, l.table, l.record];
    let mut node = word(l.table + HEAD);
    while node != 0 && list.len() <= want.list.len() {
        a.used_block(node)
            .unwrap_or_else(|e| panic!("{who}: list node {node:#x}: {e}"));
        owned.push(node);
        list.push(word(node + 8));
        node = word(node);
    }
    let got = Model {
        cells: cells.try_into().unwrap(),
        list,
        stamp: stamps[0],
    };
    assert!(
        got == *want && stamps.iter().all(|&s| s == want.stamp),
        "the heap is not the committed state {who} (a transaction torn, lost or \
         half-undone):\n  heap  {got:?} (record {stamps:?})\n  model {want:?}"
    );
    assert_eq!(
        word(l.table + LEN),
        want.list.len() as u64,
        "list length {who}"
    );
    owned.sort_unstable();
    let mut used = Vec::new();
    a.walk(|b| {
        if !b.header.is_free() && b.header.size != 0 {
            used.push(b.offset + BLOCK_HEADER);
        }
    })
    .unwrap_or_else(|e| panic!("{who}: walk: {e}"));
    assert_eq!(
        used, owned,
        "the heap's allocated blocks (left) are not the structure's (right) {who}: a \
         leaked or lost block"
    );
}
