//! Adaptive spinning (L7) on a scripted platform: the holder lets go while a locker spins,
//! and the locker must stop looking and take the word at the look that sees it free (a
//! spinner that goes on looking at a free word wastes its whole bound, and with it the
//! point of spinning).

use std::cell::Cell;
use std::sync::atomic::Ordering;

use super::platform::{Platform, WaitOutcome};
use super::protocol::{lock, Acquired};
use super::word::OwnerId;

/// One word; the holder releases it at the `release_at`-th spin of the locker.
struct Scripted {
    word: Cell<u32>,
    spins: Cell<u32>,
    release_at: u32,
}

impl Platform for Scripted {
    fn load(&self, _: Ordering) -> u32 {
        self.word.get()
    }
    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        _: Ordering,
        _: Ordering,
    ) -> Result<u32, u32> {
        let w = self.word.get();
        if w == current {
            self.word.set(new);
            Ok(w)
        } else {
            Err(w)
        }
    }
    fn swap(&self, new: u32, _: Ordering) -> u32 {
        self.word.replace(new)
    }
    fn store(&self, new: u32, _: Ordering) {
        self.word.set(new);
    }
    fn wait(&self, expected: u32) -> WaitOutcome {
        panic!("slept on {expected:#x}: the word was freed while spinning");
    }
    fn wake(&self, _: u32) {}
    fn owner_alive(&self, _: OwnerId) -> bool {
        true
    }
    fn spin_limit(&self) -> u32 {
        100
    }
    fn spin(&self) {
        let n = self.spins.get() + 1;
        self.spins.set(n);
        if n == self.release_at {
            self.word.set(0);
        }
    }
}

#[test]
fn a_spinner_takes_the_word_at_the_look_that_sees_it_free() {
    let holder = OwnerId::new(1, 1);
    let me = OwnerId::new(2, 1);
    for release_at in [1, 2, 50, 100] {
        let p = Scripted {
            word: Cell::new(holder.raw()),
            spins: Cell::new(0),
            release_at,
        };
        assert!(matches!(lock(&p, me), Acquired::Clean));
        assert_eq!(p.word.get(), me.raw(), "released at spin {release_at}");
        assert_eq!(
            p.spins.get(),
            release_at,
            "went on spinning after the word was free"
        );
    }
}
