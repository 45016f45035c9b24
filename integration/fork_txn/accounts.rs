//! Invariant W1: the total of the accounts never changes. Sixteen accounts in four blocks;
//! a transfer reads two balances and writes both (`HeapGuard::write` of each account's
//! block, a pause between the debit and the credit), and now and then an operation moves
//! a block of accounts to a new allocation (allocate, copy, repoint, free the old one).
//! Each is one guard and nothing else: whatever instant a SIGKILL hits, the next owner's
//! recovery must leave every transfer made whole or not at all, every block reachable and
//! every freed block unreferenced.

use std::collections::HashSet;

use bytemuck::{Pod, Zeroable};
use mapheap::{HeapGuard, Offset};

use crate::ensure;
use crate::fork_support::{Context, Rng, TestResult};
use crate::run::Workload;

const BLOCKS: usize = 4;
const PER: usize = 4;
const START: u64 = 1_000;
/// The total every state must show.
pub const TOTAL: u64 = START * (BLOCKS * PER) as u64;
const ROOT: &str = "bank";

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Bank {
    blocks: [Offset<Accounts>; BLOCKS],
    transfers: u64,
    moves: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Accounts {
    /// Which block of the bank this is (a block found in the wrong place is an error).
    index: u64,
    balance: [u64; PER],
}

/// The workload W1.
pub struct Bank4x4;

fn bank(g: &HeapGuard<'_>) -> Result<(Offset<Bank>, Bank), String> {
    let off = g.root::<Bank>(ROOT).ctx("root")?.ok_or("no bank root")?;
    Ok((off, g.read(off).ctx("read the bank")?))
}

impl Bank4x4 {
    /// Moves `amount` (at most what `from` holds) from account `from` to account `to`.
    fn transfer(
        g: &mut HeapGuard<'_>,
        b: &Bank,
        from: usize,
        to: usize,
        rng: &mut Rng,
        pause: &dyn Fn(),
    ) -> TestResult {
        let (fb, fi) = (b.blocks[from / PER], from % PER);
        let (tb, ti) = (b.blocks[to / PER], to % PER);
        let mut src = g.read(fb).ctx("read the payer")?;
        let amount = rng.below(src.balance[fi] + 1);
        src.balance[fi] -= amount;
        g.write(fb, src).ctx("debit")?;
        pause();
        // Read after the debit: payer and payee may share a block.
        let mut dst = g.read(tb).ctx("read the payee")?;
        dst.balance[ti] += amount;
        g.write(tb, dst).ctx("credit")?;
        pause();
        Ok(())
    }

    /// Moves block `i` to a new allocation and frees the old one.
    fn move_block(
        g: &mut HeapGuard<'_>,
        root: Offset<Bank>,
        b: &Bank,
        i: usize,
        pause: &dyn Fn(),
    ) -> TestResult {
        let old = b.blocks[i];
        let copy = g.read(old).ctx("read the block")?;
        let new = g.alloc(copy).ctx("alloc")?;
        pause();
        g.get_mut(root).ctx("repoint")?.blocks[i] = new;
        pause();
        g.free(old).ctx("free the old block")?;
        g.get_mut(root).ctx("count")?.moves += 1;
        Ok(())
    }
}

impl Workload for Bank4x4 {
    fn init(&self, g: &mut HeapGuard<'_>) -> TestResult {
        let mut blocks = [Offset::NULL; BLOCKS];
        for (i, b) in blocks.iter_mut().enumerate() {
            *b = g
                .alloc(Accounts {
                    index: i as u64,
                    balance: [START; PER],
                })
                .ctx("alloc")?;
        }
        let root = g
            .alloc(Bank {
                blocks,
                transfers: 0,
                moves: 0,
            })
            .ctx("alloc")?;
        g.set_root(ROOT, root).ctx("set_root")
    }

    fn op(&self, g: &mut HeapGuard<'_>, rng: &mut Rng, pause: &dyn Fn()) -> TestResult {
        let (root, b) = bank(g)?;
        if rng.one_in(12) {
            return Self::move_block(g, root, &b, rng.below(BLOCKS as u64) as usize, pause);
        }
        let n = (BLOCKS * PER) as u64;
        let from = rng.below(n) as usize;
        let to = (from + 1 + rng.below(n - 1) as usize) % n as usize;
        Self::transfer(g, &b, from, to, rng, pause)?;
        g.get_mut(root).ctx("count")?.transfers += 1;
        Ok(())
    }

    fn verify(&self, g: &HeapGuard<'_>) -> Result<(HashSet<u64>, String), String> {
        let (root, b) = bank(g)?;
        let mut live = HashSet::from([root.raw()]);
        let mut total = 0u64;
        for (i, &blk) in b.blocks.iter().enumerate() {
            let a = g
                .read(blk)
                .map_err(|e| format!("account block {i} at {:#x}: {e}", blk.raw()))?;
            ensure!(
                a.index == i as u64,
                "block {i} at {:#x} says it is block {}",
                blk.raw(),
                a.index
            );
            ensure!(live.insert(blk.raw()), "block {i} is listed twice");
            total = a
                .balance
                .iter()
                .try_fold(total, |t, &x| t.checked_add(x))
                .ok_or("balances overflow")?;
        }
        ensure!(
            total == TOTAL,
            "the accounts total {total}, not {TOTAL} ({} transfers, {} moves)",
            b.transfers,
            b.moves
        );
        Ok((
            live,
            format!(
                "total {total} after {} transfers and {} block moves",
                b.transfers, b.moves
            ),
        ))
    }
}
