//! Two accounts in a heap file, and transfers between them that survive `kill -9`.
//!
//! A transfer is one guard, so one transaction: both balances change, or neither. A
//! process killed at any instant inside it leaves the file half-written, and the next
//! process to lock the heap rolls the half-made transfer back before it gets its guard.
//!
//! ```sh
//! cargo run --example transfer -- /tmp/bank.heap init 100     # alice and bob, 100 each
//! cargo run --example transfer -- /tmp/bank.heap move alice bob 30
//! target/debug/examples/transfer /tmp/bank.heap loop 100000000 & sleep 1; kill -9 $!
//! cargo run --example transfer -- /tmp/bank.heap show         # the total is still 200
//! ```
//!
//! `cargo test --test fork_txn transfer_example` runs this code and kills it at every store
//! a transfer makes to the file, then at random instants of `loop`, and checks the total;
//! `readme_transfer_snippet_is_the_examples_code` keeps README.md's copy of `transfer` true.

use bytemuck::{Pod, Zeroable};
use mapheap::Heap;

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Account {
    pub balance: u64,
}

/// The two account names.
pub const NAMES: [&str; 2] = ["alice", "bob"];

/// Moves `amount` from `from` to `to`: one transaction, all or nothing.
pub fn transfer(
    heap: &Heap,
    from: &str,
    to: &str,
    amount: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut g = heap.lock()?; // a dead owner's half-made transfer is undone here
    let a = g.root::<Account>(from)?.ok_or("no such account")?;
    let b = g.root::<Account>(to)?.ok_or("no such account")?;
    if g.read(a)?.balance < amount {
        return Err("insufficient funds".into()); // nothing written: nothing to undo
    }
    g.get_mut(a)?.balance -= amount; // the before-image goes to the undo log first
    g.get_mut(b)?.balance += amount;
    drop(g); // commits (one 8-byte store makes it final); `g.abort()` would undo
    Ok(())
}

/// The balances, in the order of [`NAMES`].
pub fn balances(heap: &Heap) -> Result<[u64; 2], Box<dyn std::error::Error>> {
    let g = heap.lock()?;
    if let Some(r) = g.recovered() {
        eprintln!("a process died holding the lock; recovered: {r:?}");
    }
    let mut out = [0; 2];
    for (o, name) in out.iter_mut().zip(NAMES) {
        let a = g.root::<Account>(name)?.ok_or("no such account")?;
        *o = g.read(a)?.balance;
    }
    Ok(out)
}

/// The command line, after the program name: `PATH init N | move FROM TO N | loop N | show`.
pub fn run(args: &[String]) -> Result<String, Box<dyn std::error::Error>> {
    let usage = "usage: transfer PATH init N | move FROM TO N | loop N | show";
    let [path, cmd, rest @ ..] = args else {
        return Err(usage.into());
    };
    let num = |s: Option<&String>| -> Result<u64, Box<dyn std::error::Error>> {
        Ok(s.ok_or(usage)?.parse()?)
    };
    if cmd == "init" {
        let heap = Heap::create(path, 1 << 20)?;
        let mut g = heap.lock()?;
        let each = num(rest.first())?;
        for name in NAMES {
            let a = g.alloc(Account { balance: each })?;
            g.set_root(name, a)?;
        }
        return Ok(format!("{} and {} hold {each} each", NAMES[0], NAMES[1]));
    }
    let heap = Heap::open(path)?;
    match cmd.as_str() {
        "move" => {
            let [from, to, n] = rest else {
                return Err(usage.into());
            };
            transfer(&heap, from, to, n.parse()?)?;
        }
        "loop" => {
            // Back and forth, amounts 1..=50, until killed (or `N` transfers are tried); a
            // transfer the payer cannot afford changes nothing.
            for i in 0..num(rest.first())? {
                let (from, to) = if i % 2 == 0 { (0, 1) } else { (1, 0) };
                let amount = i * 7919 % 50 + 1;
                match transfer(&heap, NAMES[from], NAMES[to], amount) {
                    Err(e) if e.to_string() == "insufficient funds" => {}
                    r => r?,
                }
            }
        }
        "show" => {}
        _ => return Err(usage.into()),
    }
    let [a, b] = balances(&heap)?;
    Ok(format!(
        "{}: {a}, {}: {b}, total {}",
        NAMES[0],
        NAMES[1],
        a + b
    ))
}

#[allow(dead_code)] // the test target includes this file as a module and calls `run`
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("transfer: {e}");
            std::process::exit(1);
        }
    }
}
