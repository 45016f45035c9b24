//! A linked list kept in a heap file across processes.
//!
//! ```sh
//! cargo run --example list -- /tmp/list.heap push 1 2 3   # creates the heap if needed
//! cargo run --example list -- /tmp/list.heap show         # another process reads it back
//! cargo run --example list -- /tmp/list.heap grow 8M      # grows it; others remap
//! mapheap check /tmp/list.heap
//! ```

use bytemuck::{Pod, Zeroable};
use mapheap::{Heap, Offset};

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, cmd, rest) = match args.as_slice() {
        [path, cmd, rest @ ..] => (path, cmd.as_str(), rest),
        _ => return Err("usage: list PATH push N... | show | grow SIZE_BYTES_OR_M".into()),
    };
    let heap = if std::path::Path::new(path).exists() {
        Heap::open(path)?
    } else {
        Heap::create(path, 1 << 20)?
    };
    let mut g = heap.lock()?;
    if let Some(r) = g.recovered() {
        eprintln!("the previous lock owner died; the heap was repaired: {r:?}");
    }
    let list = g.find_or_init("list", || List {
        head: Offset::NULL,
        len: 0,
    })?;
    match cmd {
        "push" => {
            for v in rest {
                let head = g.read(list)?.head;
                let node = g.alloc(Node {
                    value: v.parse()?,
                    next: head,
                })?;
                // One 8-byte store publishes the node.
                let l = g.get_mut(list)?;
                l.head = node;
                l.len += 1;
            }
            println!("pushed {} values", rest.len());
        }
        "show" => {
            let mut at = g.read(list)?.head;
            let mut values = Vec::new();
            while !at.is_null() {
                let n = g.get(at)?;
                values.push(n.value);
                at = n.next;
            }
            println!(
                "{} values at base {:#x}: {values:?}",
                values.len(),
                g.base_address()
            );
        }
        "grow" => {
            let s = rest.first().ok_or("grow needs a size")?;
            let bytes: u64 = match s.strip_suffix('M') {
                Some(m) => m.parse::<u64>()? << 20,
                None => s.parse()?,
            };
            g.grow(bytes)?;
            println!("capacity now {}", g.capacity());
        }
        other => return Err(format!("unknown command {other}").into()),
    }
    Ok(())
}
