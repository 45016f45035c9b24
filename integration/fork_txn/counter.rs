//! Invariant W3: a counter and the append-only record of its values agree: the record
//! holds exactly 1, 2, ..., counter, in order. The record is a chain of segments of random
//! capacity; an increment writes the counter, then appends the new value to the last
//! segment, allocating and linking a new one when it is full. At `LIMIT` an operation
//! frees the whole chain and sets the counter to 0 (one transaction with dozens of
//! deferred frees). Each is one guard: whatever instant a SIGKILL hits, counter and record
//! must agree, and every segment must be reachable from the root.

use std::collections::HashSet;

use bytemuck::{Pod, Zeroable};
use mapheap::{HeapGuard, Offset};

use crate::ensure;
use crate::fork_support::{Context, Rng, TestResult};
use crate::run::Workload;

const ROOT: &str = "counter";
/// The counter starts again from 0 (freeing the record) when it reaches this.
const LIMIT: u64 = 150;
const MAX_CAP: u64 = 64;
const HEAD: u64 = size_of::<SegHead>() as u64;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Counter {
    value: u64,
    first: Offset<SegHead>,
    last: Offset<SegHead>,
    segs: u64,
    resets: u64,
}

/// The start of a segment; `cap` values (u64) follow it, the first `len` of them in use.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct SegHead {
    next: Offset<SegHead>,
    len: u64,
    cap: u64,
}

/// The workload W3.
pub struct Record;

fn counter(g: &HeapGuard<'_>) -> Result<(Offset<Counter>, Counter), String> {
    let off = g
        .root::<Counter>(ROOT)
        .ctx("root")?
        .ok_or("no counter root")?;
    Ok((off, g.read(off).ctx("read the counter")?))
}

fn values(g: &HeapGuard<'_>, seg: Offset<SegHead>, len: u64) -> Result<Vec<u64>, String> {
    let b = g
        .bytes(seg.cast(), HEAD + 8 * len)
        .map_err(|e| format!("segment {:#x}: {e}", seg.raw()))?;
    Ok(b[HEAD as usize..]
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
        .collect())
}

impl Record {
    /// Frees every segment and starts again from 0.
    fn reset(
        g: &mut HeapGuard<'_>,
        co: Offset<Counter>,
        c: &Counter,
        pause: &dyn Fn(),
    ) -> TestResult {
        let mut at = c.first;
        while !at.is_null() {
            let next = g.read(at).ctx("walk")?.next;
            g.free(at).ctx("free a segment")?;
            at = next;
        }
        pause();
        g.write(
            co,
            Counter {
                value: 0,
                first: Offset::NULL,
                last: Offset::NULL,
                segs: 0,
                resets: c.resets + 1,
            },
        )
        .ctx("reset")
    }

    /// A new, empty last segment, linked.
    fn extend(
        g: &mut HeapGuard<'_>,
        co: Offset<Counter>,
        c: &Counter,
        rng: &mut Rng,
    ) -> Result<Offset<SegHead>, String> {
        let cap = rng.range(1, MAX_CAP);
        let seg = g
            .alloc_bytes(HEAD + 8 * cap, 8)
            .ctx("alloc a segment")?
            .cast::<SegHead>();
        g.write(
            seg,
            SegHead {
                next: Offset::NULL,
                len: 0,
                cap,
            },
        )
        .ctx("segment head")?;
        if c.last.is_null() {
            g.get_mut(co).ctx("counter")?.first = seg;
        } else {
            g.get_mut(c.last).ctx("link")?.next = seg;
        }
        let m = g.get_mut(co).ctx("counter")?;
        m.last = seg;
        m.segs += 1;
        Ok(seg)
    }
}

impl Workload for Record {
    fn init(&self, g: &mut HeapGuard<'_>) -> TestResult {
        let c = g
            .alloc(Counter {
                value: 0,
                first: Offset::NULL,
                last: Offset::NULL,
                segs: 0,
                resets: 0,
            })
            .ctx("alloc")?;
        g.set_root(ROOT, c).ctx("set_root")
    }

    fn op(&self, g: &mut HeapGuard<'_>, rng: &mut Rng, pause: &dyn Fn()) -> TestResult {
        let (co, c) = counter(g)?;
        if c.value >= LIMIT {
            return Self::reset(g, co, &c, pause);
        }
        let v = c.value + 1;
        g.get_mut(co).ctx("increment")?.value = v;
        pause();
        let full = c.last.is_null() || {
            let h = g.read(c.last).ctx("last segment")?;
            h.len == h.cap
        };
        let last = if full {
            Self::extend(g, co, &c, rng)?
        } else {
            c.last
        };
        pause();
        let len = g.read(last).ctx("last segment")?.len;
        let b = g
            .bytes_mut(last.cast(), HEAD + 8 * (len + 1))
            .ctx("append")?;
        b[(HEAD + 8 * len) as usize..].copy_from_slice(&v.to_ne_bytes());
        g.get_mut(last).ctx("append")?.len += 1;
        Ok(())
    }

    fn verify(&self, g: &HeapGuard<'_>) -> Result<(HashSet<u64>, String), String> {
        let (co, c) = counter(g)?;
        let mut live = HashSet::from([co.raw()]);
        let (mut at, mut last) = (c.first, Offset::NULL);
        let (mut segs, mut want) = (0u64, 1u64);
        while !at.is_null() {
            ensure!(
                segs < c.segs,
                "the record has more than the {} segments the counter says",
                c.segs
            );
            let h = g
                .read(at)
                .map_err(|e| format!("segment {segs} at {:#x}: {e}", at.raw()))?;
            ensure!(
                (1..=h.cap).contains(&h.len) && h.cap <= MAX_CAP,
                "segment {segs}: {} of {} values in use",
                h.len,
                h.cap
            );
            for v in values(g, at, h.len)? {
                ensure!(
                    v == want,
                    "the record holds {v} where {want} belongs (counter {})",
                    c.value
                );
                want += 1;
            }
            ensure!(live.insert(at.raw()), "segment {segs} is linked twice");
            segs += 1;
            (last, at) = (at, h.next);
        }
        ensure!(
            want - 1 == c.value,
            "the record holds 1..={}, the counter says {}",
            want - 1,
            c.value
        );
        ensure!(
            segs == c.segs && last == c.last,
            "{segs} segments ending at {:#x}; the counter says {} ending at {:#x}",
            last.raw(),
            c.segs,
            c.last.raw()
        );
        Ok((
            live,
            format!(
                "counter {} = its record ({} segments), after {} resets to 0",
                c.value, c.segs, c.resets
            ),
        ))
    }
}
