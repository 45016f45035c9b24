//! A linked list kept in a heap file across processes.
//!
//! ```sh
//! cargo run --example list -- /tmp/list.heap push 1 2 3   # creates the heap if needed
//! cargo run --example list -- /tmp/list.heap show         # another process reads it back
//! cargo run --example list -- /tmp/list.heap pop 2        # removes (and frees) two nodes
//! cargo run --example list -- /tmp/list.heap grow 8M      # grows it; others remap
//! mapheap check /tmp/list.heap
//! ```
//!
//! Each command is one guard, so one transaction: `push 1 2 3` adds all three values or,
//! if the process dies half-way (`kill -9`), none of them; the next process to lock the
//! heap rolls the half-made change back. A `pop` frees its nodes only when it commits.

use bytemuck::{Pod, Zeroable};
use mapheap::{Heap, HeapGuard, Offset};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Node {
    value: u64,
    next: Offset<Node>,
}

/// The list's entry point, registered as the root "list".
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct List {
    head: Offset<Node>,
    len: u64,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn push(g: &mut HeapGuard<'_>, list: Offset<List>, values: &[String]) -> Res<String> {
    for v in values {
        let head = g.read(list)?.head;
        let node = g.alloc(Node {
            value: v.parse()?,
            next: head,
        })?;
        let l = g.get_mut(list)?; // its bytes go to the undo log first
        l.head = node;
        l.len += 1;
    }
    Ok(format!("pushed {} values", values.len()))
}

fn pop(g: &mut HeapGuard<'_>, list: Offset<List>, n: u64) -> Res<String> {
    let mut popped = Vec::new();
    for _ in 0..n {
        let l = g.read(list)?;
        if l.head.is_null() {
            break;
        }
        let node = g.read(l.head)?;
        g.free(l.head)?; // freed when the transaction commits, kept if it rolls back
        let l = g.get_mut(list)?;
        l.head = node.next;
        l.len -= 1;
        popped.push(node.value);
    }
    Ok(format!("popped {popped:?}"))
}

fn show(g: &HeapGuard<'_>, list: Offset<List>) -> Res<String> {
    let l = g.read(list)?;
    let mut at = l.head;
    let mut values = Vec::new();
    while !at.is_null() {
        let n = g.get(at)?;
        values.push(n.value);
        at = n.next;
    }
    if values.len() as u64 != l.len {
        return Err(format!(
            "the list holds {} values, its length says {}",
            values.len(),
            l.len
        )
        .into());
    }
    Ok(format!(
        "{} values at base {:#x}: {values:?}",
        values.len(),
        g.base_address()
    ))
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, cmd, rest) = match args.as_slice() {
        [path, cmd, rest @ ..] => (path, cmd.as_str(), rest),
        _ => {
            return Err("usage: list PATH push N... | pop [N] | show | grow SIZE_BYTES_OR_M".into())
        }
    };
    let heap = if std::path::Path::new(path).exists() {
        Heap::open(path)?
    } else {
        Heap::create(path, 1 << 20)?
    };
    let mut g = heap.lock()?;
    if let Some(r) = g.recovered() {
        eprintln!("the previous lock owner died; its change was undone: {r:?}");
    }
    let list = g.find_or_init("list", || List {
        head: Offset::NULL,
        len: 0,
    })?;
    let line = match run(&mut g, list, cmd, rest) {
        Ok(line) => line,
        Err(e) => {
            // Dropping a guard commits, so a failed command undoes what it did itself:
            // `push 1 2 x` pushes nothing.
            g.abort()?;
            return Err(e);
        }
    };
    g.commit()?; // what dropping it would do, with the error returned
    println!("{line}");
    Ok(())
}

fn run(g: &mut HeapGuard<'_>, list: Offset<List>, cmd: &str, rest: &[String]) -> Res<String> {
    match cmd {
        "push" => push(g, list, rest),
        "pop" => pop(g, list, rest.first().map_or(Ok(1), |s| s.parse())?),
        "show" => show(g, list),
        "grow" => {
            let s = rest.first().ok_or("grow needs a size")?;
            let bytes: u64 = match s.strip_suffix('M') {
                Some(m) => m.parse::<u64>()? << 20,
                None => s.parse()?,
            };
            g.grow(bytes)?; // not undone by a rollback: it changes no data
            Ok(format!("capacity now {}", g.capacity()))
        }
        other => Err(format!("unknown command {other}").into()),
    }
}
