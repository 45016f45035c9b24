//! The lock's limits: `SLOT_COUNT` (128) attachments; the word's 8-bit slot field (slot + 1,
//! so at most `MAX_SLOTS` = 255 slots); the 23-bit incarnation of an owner id, which wraps,
//! and the slot record's 32-bit claim counter, which wraps too.

use super::{heap_file, peek, poke, quick};
use crate::error::Error;
use crate::format::{LOCK_OFFSET, SLOTS_OFFSET, SLOT_COUNT};
use crate::heap::Heap;
use crate::sync::word::{OwnerId, INCARNATION_BITS, INCARNATION_MASK, MAX_SLOTS, SLOT_BITS};
use crate::sync::{LockError, WAITERS};
use std::path::Path;

fn set_incarnation(path: &Path, slot: u32, inc: u32) {
    poke(
        path,
        SLOTS_OFFSET as u64 + 8 * u64::from(slot),
        &inc.to_le_bytes(),
    );
}

fn incarnation(path: &Path, slot: u32) -> u32 {
    u32::from_le_bytes(peek(path, SLOTS_OFFSET as u64 + 8 * u64::from(slot)))
}

fn set_word(path: &Path, word: u32) {
    poke(path, LOCK_OFFSET as u64, &word.to_le_bytes());
}

/// An owner that dies holding the lock: a forgotten guard, then a detached handle (its
/// slot's OFD lock goes, as a killed process's would).
fn die_holding_the_lock(h: Heap) -> OwnerId {
    let id = h.owner();
    std::mem::forget(h.lock().unwrap());
    drop(h);
    id
}

/// Opens `path` with a short probe and requires that the open took the lock over from
/// `dead` and left a clean heap.
fn open_taking_over_from(path: &Path, dead: OwnerId) -> Heap {
    let h = Heap::open_with(path, &quick()).unwrap();
    let r = h
        .recovered_at_open()
        .expect("the open took a dead owner's lock over");
    assert_eq!(r.dead, Some(dead));
    assert!(h.check().unwrap().is_clean());
    h
}

#[test]
fn the_table_holds_128_attachments_and_refuses_the_129th() {
    let _watchdog = crate::watchdog!(60);
    let (_d, path) = heap_file(64 << 10);
    let mut handles: Vec<Heap> = (0..SLOT_COUNT)
        .map(|_| Heap::open(&path).unwrap())
        .collect();
    let mut slots: Vec<u32> = handles.iter().map(|h| h.owner().slot()).collect();
    slots.sort_unstable();
    assert_eq!(slots, (0..SLOT_COUNT).collect::<Vec<_>>());
    match Heap::open(&path) {
        Err(Error::Lock(LockError::NoFreeSlot { slots })) => assert_eq!(slots, SLOT_COUNT),
        Err(e) => panic!("the 129th attachment failed otherwise: {e}"),
        Ok(h) => panic!("a 129th attachment got slot {}", h.owner().slot()),
    }
    // The last slot's id works in the word, and its slot is free for a newcomer once gone.
    let last = handles.pop().unwrap();
    assert_eq!(last.owner().slot(), SLOT_COUNT - 1);
    last.lock().unwrap().alloc(1u64).unwrap();
    drop(last);
    let again = Heap::open(&path).unwrap();
    assert_eq!(again.owner().slot(), SLOT_COUNT - 1);
    assert_eq!(again.attachments().len(), SLOT_COUNT as usize);
}

#[test]
fn the_slot_field_holds_slots_below_255_and_a_word_naming_no_slot_is_dead() {
    let _watchdog = crate::watchdog!(20);
    const { assert!(MAX_SLOTS >= SLOT_COUNT && SLOT_BITS + INCARNATION_BITS + 1 == 32) };
    let top = OwnerId::new(MAX_SLOTS - 1, 9);
    assert_eq!((top.slot(), top.incarnation()), (MAX_SLOTS - 1, 9));
    assert_eq!(top.raw() & MAX_SLOTS, MAX_SLOTS, "slot + 1 fills the field");
    assert!(std::panic::catch_unwind(|| OwnerId::new(MAX_SLOTS, 0)).is_err());
    // Words a dead or corrupt owner may leave: the last slot of the table, the first past
    // it, the largest slot the field holds, and a zero slot field (no attachment writes
    // one). Each is taken over by the next open.
    let (_d, path) = heap_file(64 << 10);
    set_incarnation(&path, SLOT_COUNT - 1, 3);
    for word in [
        OwnerId::new(SLOT_COUNT - 1, 3).raw(),
        OwnerId::new(SLOT_COUNT, 3).raw() | WAITERS,
        OwnerId::new(MAX_SLOTS - 1, 3).raw(),
        3 << SLOT_BITS,
    ] {
        set_word(&path, word);
        let dead = OwnerId::from_word(word).unwrap();
        drop(open_taking_over_from(&path, dead));
    }
}

/// A slot's incarnation at 2^23 - 1 in the owner id: the next claim's id wraps to 0, and
/// takeovers go on working across the wrap, from the owner before it and the one after it.
#[test]
fn the_incarnation_wraps_at_2_pow_23_and_takeovers_go_on() {
    let _watchdog = crate::watchdog!(20);
    let (_d, path) = heap_file(64 << 10);
    set_incarnation(&path, 0, INCARNATION_MASK - 1);
    let a = Heap::open_with(&path, &quick()).unwrap();
    assert_eq!(
        (a.owner().slot(), a.owner().incarnation()),
        (0, INCARNATION_MASK)
    );
    drop(a.lock().unwrap());
    let a = die_holding_the_lock(a);
    let b = open_taking_over_from(&path, a);
    assert_eq!(
        (b.owner().slot(), b.owner().incarnation()),
        (0, 0),
        "wrapped"
    );
    assert_eq!(incarnation(&path, 0), 1 << INCARNATION_BITS);
    let b = die_holding_the_lock(b);
    let c = open_taking_over_from(&path, b);
    assert_eq!(c.owner().incarnation(), 1);
    c.lock().unwrap().alloc(1u64).unwrap();
}

/// A claim whose wrapped id equals the dead owner's word exactly (2^23 claims later): the
/// opener must not wait for itself; it claims again and takes the lock over.
#[test]
fn a_claim_that_wraps_onto_the_dead_owners_id_still_takes_over() {
    let _watchdog = crate::watchdog!(20);
    let (_d, path) = heap_file(64 << 10);
    let dead = OwnerId::new(0, 5);
    set_word(&path, dead.raw() | WAITERS);
    set_incarnation(&path, 0, 5 + INCARNATION_MASK);
    let h = open_taking_over_from(&path, dead);
    assert_eq!((h.owner().slot(), h.owner().incarnation()), (0, 6));
}

/// The record's own counter is 32 bits: at `u32::MAX` the next claim wraps it to 0, the id
/// (incarnation 0) works, and the slot is still listed as used.
#[test]
fn the_slot_records_claim_counter_wraps_at_2_pow_32() {
    let _watchdog = crate::watchdog!(20);
    let (_d, path) = heap_file(64 << 10);
    set_incarnation(&path, 0, u32::MAX - 1);
    let a = Heap::open_with(&path, &quick()).unwrap();
    assert_eq!(a.owner().incarnation(), INCARNATION_MASK);
    let a = die_holding_the_lock(a);
    let b = open_taking_over_from(&path, a);
    assert_eq!(incarnation(&path, 0), 0, "the counter wrapped");
    assert_eq!((b.owner().slot(), b.owner().incarnation()), (0, 0));
    let listed: Vec<u32> = b.attachments().iter().map(|(s, _)| *s).collect();
    assert_eq!(
        listed,
        [0],
        "a slot whose counter wrapped to 0 is still in use"
    );
}
