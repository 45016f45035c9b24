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

/// The other side: a fork child that drops the handle it inherited must not free the
/// parent's slot (the open file description, and so the OFD lock, is the parent's too):
/// the parent still holds its slot, and the next attachment gets another one.
pub fn fork_child_dropping_an_inherited_handle_keeps_the_parents_slot() -> TestResult {
    let (_dir, path) = fresh_heap(1 << 20)?;
    let h = Heap::open(&path).ctx("open")?;
    let slot = h.owner().slot();
    let inherited = &h;
    let pid = fork_child(|| {
        // SAFETY: this child never uses the original `h` again (it leaves with `_exit` right
        // after), so the bitwise copy is the only value in its address space that is dropped.
        let copy = unsafe { std::ptr::read(inherited) };
        drop(copy);
        0
    })
    .ctx("fork")?;
    let e = reap(pid, deadline(10)).ctx("reap")?;
    ensure!(e.ok(), "the child ended with {e:?}");
    let next = Heap::open(&path).ctx("reopen")?;
    let got = next.owner().slot();
    ensure!(
        got != slot,
        "the fork child's drop freed the parent's slot {slot}: the next attachment got it"
    );
    drop(h);
    note(format!(
        "the parent kept slot {slot}; the next attachment got slot {got}"
    ));
    Ok(())
}
