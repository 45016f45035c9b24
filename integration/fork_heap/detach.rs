//! Detaching while a fork child still holds the handle's descriptor and mappings: the
//! OFD lock on the slot's byte lives as long as any reference to the open file
//! description, and a fork child (or a mapping it keeps) is one. `Heap`'s drop unlocks the
//! byte explicitly, so the slot is free for the next attachment at once, not when the
//! child exits (docs/lock-protocol.md, "Attaching and detaching").

use std::time::Duration;

use mapheap::stress::procs::{fork_child, kill9, reap};
use mapheap::Heap;

use crate::ensure;
use crate::fork_support::*;

pub fn dropped_handle_frees_its_slot_while_a_fork_child_lives() -> TestResult {
    let (_dir, path) = fresh_heap(1 << 20)?;
    let h = Heap::open(&path).ctx("open")?;
    let slot = h.owner().slot();
    // The child inherits the descriptor and the mappings, and keeps them until killed.
    let pid = fork_child(|| loop {
        std::thread::sleep(Duration::from_millis(50));
    })
    .ctx("fork")?;
    drop(h);
    let next = Heap::open(&path).ctx("reopen")?;
    let got = next.owner().slot();
    kill9(pid);
    let e = reap(pid, deadline(10)).ctx("reap")?;
    ensure!(e.killed(), "the child ended with {e:?}");
    ensure!(
        got == slot,
        "slot {slot} was still held after its handle was dropped (the next attachment got slot {got}): only the fork child's exit would free it"
    );
    note(format!(
        "slot {slot} free again at once, with the fork child alive"
    ));
    Ok(())
}
