//! The model world shared by the loom and shuttle models: a lock word, a futex emulated with
//! the checker's own Mutex and Condvar, a slot table that answers `owner_alive`, model threads
//! that die at crash points, and the checks run at the end of every execution.
//!
//! A model may give the lock real data to protect besides the payload counter: a
//! [`Section`] runs in every critical section (the shuttle transaction model's heap, which
//! can kill the thread inside it).
//!
//! The including crate provides a module `backend` with the checker's `AtomicBool`,
//! `AtomicU32`, `Mutex`, `Condvar`, `spawn`, a `Payload` (the data the lock protects) and
//! `chance(n)` (a replayable coin that comes up 1 time in `n`; loom never calls it).
//!
//! Futex emulation. `wait(expected)` takes the queue mutex, compares the word with
//! `expected` and enqueues itself while still holding it, as the kernel does under its hash
//! bucket lock; `wake(n)` dequeues up to `n` sleepers under the same mutex. A sleeper leaves
//! only when it was dequeued by a wake, or when it is granted a time-out (below). So a lost
//! wake-up is a sleeper nobody will ever dequeue.
//!
//! Time. A model has no clock, and time-outs are the only way to learn of a death, so the
//! model lets time pass only when nothing else can happen: when every live model thread
//! sleeps in the futex (quiescence). At that moment one time-out is granted (the sleepers
//! race for it) if, and only if, a death explains why nobody is left to wake them: the word
//! names a dead owner, or the word is free because an owner died between its releasing swap
//! and its wake (`CrashPoint::UnlockReleased` with WAITERS seen; one owed wake-up per such
//! death). Any other quiescence with sleepers is a lost wake-up and fails the model at once
//! with a message that says so. This is stricter than the kernel, where every waiter times
//! out sooner or later, on purpose: sleepers must never depend on a time-out while a live
//! thread could have woken them, which is how a takeover that drops the WAITERS bit
//! (`RecoveryDropsWaiters`) is caught. Time-outs at other moments are what the shuttle
//! models inject as spurious returns (`Scenario::spurious`).

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use mapheap::sync::{lock, unlock, Acquired, CrashPoint, OwnerId, Platform, WaitOutcome, WAITERS};

use crate::backend::{self as b, AtomicBool, AtomicU32, Condvar, Mutex, Payload};

/// The panic payload with which a model thread "dies" at a crash point. The thread body
/// catches it; `resume_unwind` does not run the panic hook, so a death prints nothing.
pub struct ModelDeath;

/// Data the lock protects beyond the payload counter, run in every critical section (the
/// shuttle transaction model, models/shuttle_txn/). Its own checks panic.
pub trait Section: Send + Sync {
    /// The critical section of model thread `me`, which took the lock as `got`. Returns
    /// `false` if the thread died in it: it then dies holding the lock, as
    /// `Fate::DieHolding` does (its slot's byte lock goes, the word keeps naming it).
    fn run(&self, me: OwnerId, got: Acquired) -> bool;
    /// The main thread's final critical section, once every model thread is done or dead.
    fn last(&self, me: OwnerId, got: Acquired);
}

/// What happens to a model thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Runs all its rounds.
    Survive,
    /// Dies the `n`-th time (from 1) it passes the crash point.
    DieAt(CrashPoint, u32),
    /// Takes the lock in round `round` (from 0), runs its critical section, and dies without
    /// unlocking.
    DieHolding {
        /// The round in which it dies.
        round: u32,
    },
}

/// One model thread: how many lock/unlock rounds it runs and how it ends.
#[derive(Clone, Copy, Debug)]
pub struct Actor {
    /// Lock, critical section, unlock; this many times.
    pub rounds: u32,
    /// How the thread ends.
    pub fate: Fate,
    /// Claims its slot itself once running (possibly a dead thread's slot), instead of
    /// having one claimed for it before the threads start.
    pub newcomer: bool,
}

impl Actor {
    /// A thread that locks and unlocks `rounds` times and survives.
    pub const fn rounds(rounds: u32) -> Actor {
        Actor {
            rounds,
            fate: Fate::Survive,
            newcomer: false,
        }
    }

    /// The same thread with another fate.
    pub const fn fate(self, fate: Fate) -> Actor {
        Actor { fate, ..self }
    }

    /// The same thread, claiming its slot itself.
    pub const fn newcomer(self) -> Actor {
        Actor {
            newcomer: true,
            ..self
        }
    }
}

/// One model configuration.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// A short name for messages.
    pub name: &'static str,
    /// The threads, started in this order by the model's main thread. After joining them the
    /// main thread takes the lock once more (recovering what the last death left) and checks.
    pub actors: Vec<Actor>,
    /// Spurious returns from `wait`: each wait returns `Woken` early with probability 1/n and
    /// `TimedOut` early with probability 1/n (0 = never). Only the shuttle models use it.
    pub spurious: u32,
}

impl Scenario {
    /// A configuration without spurious returns.
    pub fn new(name: &'static str, actors: &[Actor]) -> Scenario {
        Scenario {
            name,
            actors: actors.to_vec(),
            spurious: 0,
        }
    }

    /// The same configuration with spurious returns, 1 in `n` of each kind.
    pub fn spurious(mut self, n: u32) -> Scenario {
        self.spurious = n;
        self
    }
}

struct Slot {
    /// The slot's byte lock is held (the real table's OFD lock).
    held: AtomicBool,
    /// How many times the slot was claimed.
    incarnation: AtomicU32,
}

struct Queue {
    /// Waiter ids asleep on the word, in arrival order.
    sleepers: VecDeque<usize>,
    /// Waiter ids dequeued by a wake that have not returned yet.
    woken: Vec<usize>,
    /// Model threads not asleep in the futex and not finished (the main thread, while it
    /// only joins, does not count).
    running: u32,
    /// Granted time-outs not yet taken.
    timeouts: u32,
    /// Wake-ups that owners who died between release and wake still owe.
    owed_wakes: u32,
}

/// What happened in the executions of a configuration, summed up: shows the models do reach
/// the states they are meant to test.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Executions run.
    pub executions: u64,
    /// Model threads that died.
    pub deaths: u64,
    /// Takeovers of a dead owner's lock.
    pub recoveries: u64,
    /// Time-outs granted at quiescence.
    pub timeouts: u64,
    /// Returns from `wait` that a `wake` caused.
    pub wakes: u64,
    /// Spurious returns from `wait` injected.
    pub spurious: u64,
    /// Newcomers that claimed a slot a dead thread held before.
    pub slot_reuses: u64,
}

impl Stats {
    /// Adds `o` to `self`.
    pub fn add(&mut self, o: &Stats) {
        self.executions += o.executions;
        self.deaths += o.deaths;
        self.recoveries += o.recoveries;
        self.timeouts += o.timeouts;
        self.wakes += o.wakes;
        self.spurious += o.spurious;
        self.slot_reuses += o.slot_reuses;
    }
}

#[derive(Default)]
struct Log {
    /// Every death: who, and whether it held the lock.
    deaths: Vec<(OwnerId, bool)>,
    /// Every takeover: (recoverer, dead owner).
    recoveries: Vec<(OwnerId, OwnerId)>,
    /// Critical sections that ran to the end.
    completed: u64,
    stats: Stats,
}

/// Everything the threads of one execution share.
pub struct World {
    word: AtomicU32,
    queue: Mutex<Queue>,
    cv: Condvar,
    slots: Vec<Slot>,
    payload: Payload,
    section: Option<Arc<dyn Section>>,
    spurious: u32,
    /// Model bookkeeping the protocol never sees (std types: no schedule points).
    log: StdMutex<Log>,
    /// How many threads are inside the critical section right now.
    inside: StdAtomicUsize,
}

impl World {
    fn new(s: &Scenario, section: Option<Arc<dyn Section>>) -> World {
        // One slot per actor plus one for the main thread's final lock: every thread finds a
        // slot, and a newcomer takes a dead thread's slot if one is free by then.
        let slots = (0..=s.actors.len())
            .map(|_| Slot {
                held: AtomicBool::new(false),
                incarnation: AtomicU32::new(0),
            })
            .collect();
        World {
            word: AtomicU32::new(0),
            queue: Mutex::new(Queue {
                sleepers: VecDeque::new(),
                woken: Vec::new(),
                running: s.actors.len() as u32,
                timeouts: 0,
                owed_wakes: 0,
            }),
            cv: Condvar::new(),
            slots,
            payload: Payload::new(),
            section,
            spurious: s.spurious,
            log: StdMutex::new(Log::default()),
            inside: StdAtomicUsize::new(0),
        }
    }

    /// Claims the first slot whose byte lock is free, as `Slots::claim` does: take the byte
    /// lock first, then bump the incarnation.
    fn claim(&self) -> OwnerId {
        for (i, slot) in self.slots.iter().enumerate() {
            if slot
                .held
                .compare_exchange(false, true, SeqCst, SeqCst)
                .is_ok()
            {
                let inc = slot.incarnation.fetch_add(1, SeqCst).wrapping_add(1);
                return OwnerId::new(i as u32, inc);
            }
        }
        panic!("model has no free slot");
    }

    fn died(&self, who: OwnerId) -> bool {
        self.log
            .lock()
            .unwrap()
            .deaths
            .iter()
            .any(|&(o, _)| o == who)
    }

    /// Called under the queue's lock whenever a thread stops running. At quiescence (no
    /// thread running, some asleep), lets time pass if a death justifies it, or fails.
    /// Returns whether it granted a time-out.
    fn quiesce(&self, q: &mut Queue) -> bool {
        if q.running > 0 || q.sleepers.is_empty() || q.timeouts > 0 {
            return false;
        }
        let word = self.word.load(SeqCst);
        let justified = match OwnerId::from_word(word) {
            Some(owner) => self.died(owner),
            None if q.owed_wakes > 0 => {
                q.owed_wakes -= 1;
                true
            }
            None => false,
        };
        assert!(
            justified,
            "lost wake-up: {} thread(s) sleep on the lock word {word:#010x} and no live \
             thread is left to wake them (no death explains it)",
            q.sleepers.len()
        );
        q.timeouts += 1;
        self.log.lock().unwrap().stats.timeouts += 1;
        self.cv.notify_all();
        true
    }

    /// A model thread is done (finished, or dead).
    fn leave(&self) {
        let mut q = self.queue.lock().unwrap();
        q.running -= 1;
        self.quiesce(&mut q);
    }

    /// Returns whether the thread survived it (a [`Section`] may kill it; the counter is
    /// bumped either way, a dead thread is no longer inside).
    fn critical_section(&self, me: OwnerId, got: Acquired, last: bool) -> bool {
        let before = self.inside.fetch_add(1, Relaxed);
        assert_eq!(
            before, 0,
            "mutual exclusion violated: another thread is inside the critical section"
        );
        let alive = match &self.section {
            Some(s) if last => {
                s.last(me, got);
                true
            }
            Some(s) => s.run(me, got),
            None => true,
        };
        self.payload.bump();
        self.inside.fetch_sub(1, Relaxed);
        self.log.lock().unwrap().completed += 1;
        alive
    }
}

/// One thread's view of the world: the platform the protocol runs on.
pub struct ModelPlatform<'w> {
    world: &'w World,
    me: OwnerId,
    waiter: usize,
    die_at: std::cell::Cell<Option<(CrashPoint, u32)>>,
    /// The value of the last `wait`: a takeover that follows is from this word.
    last_wait: std::cell::Cell<u32>,
    /// The value the last `swap` saw (the word unlock released).
    last_swap: std::cell::Cell<u32>,
}

impl<'w> ModelPlatform<'w> {
    fn new(world: &'w World, me: OwnerId, waiter: usize, fate: Fate) -> Self {
        let die_at = match fate {
            Fate::DieAt(at, n) => Some((at, n.max(1))),
            _ => None,
        };
        ModelPlatform {
            world,
            me,
            waiter,
            die_at: std::cell::Cell::new(die_at),
            last_wait: std::cell::Cell::new(0),
            last_swap: std::cell::Cell::new(0),
        }
    }

    /// This thread dies: its slot's byte lock goes away, as the kernel drops a dead
    /// process's OFD lock. `at` is where: `None` for a death holding the lock outside the
    /// protocol.
    fn die(&self, at: Option<CrashPoint>) {
        let w = self.world;
        let holding = at != Some(CrashPoint::UnlockReleased);
        // Log first: shuttle may switch threads right after the swap below, and a recoverer
        // checks the log.
        w.log.lock().unwrap().deaths.push((self.me, holding));
        // A swap, not a store: loom mishandles a plain store racing an RMW (loom issue 254).
        w.slots[self.me.slot() as usize].held.swap(false, SeqCst);
        if !holding && self.last_swap.get() & WAITERS != 0 {
            // Released with sleepers announced, died before the wake.
            w.queue.lock().unwrap().owed_wakes += 1;
        }
    }

    fn leave_queue(&self, q: &mut Queue) {
        q.sleepers.retain(|&s| s != self.waiter);
    }
}

impl Platform for ModelPlatform<'_> {
    fn load(&self, order: Ordering) -> u32 {
        self.world.word.load(order)
    }

    fn compare_exchange(
        &self,
        current: u32,
        new: u32,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u32, u32> {
        self.world
            .word
            .compare_exchange(current, new, success, failure)
    }

    fn swap(&self, new: u32, order: Ordering) -> u32 {
        let prev = self.world.word.swap(new, order);
        self.last_swap.set(prev);
        prev
    }

    fn store(&self, new: u32, order: Ordering) {
        self.world.word.store(new, order)
    }

    fn wait(&self, expected: u32) -> WaitOutcome {
        let w = self.world;
        self.last_wait.set(expected);
        let mut q = w.queue.lock().unwrap();
        // The kernel's check, under the queue's lock. Relaxed: the futex gives no ordering of
        // its own beyond the queue lock, and the protocol must not lean on one.
        if w.word.load(Relaxed) != expected {
            return WaitOutcome::Woken;
        }
        if w.spurious > 0 {
            let outcome = if b::chance(w.spurious) {
                Some(WaitOutcome::Woken)
            } else if b::chance(w.spurious) {
                Some(WaitOutcome::TimedOut)
            } else {
                None
            };
            if let Some(outcome) = outcome {
                w.log.lock().unwrap().stats.spurious += 1;
                return outcome;
            }
        }
        q.sleepers.push_back(self.waiter);
        q.running -= 1;
        if w.quiesce(&mut q) {
            // We granted the time-out ourselves: let every sleeper race for it, not just us.
            drop(q);
            q = w.queue.lock().unwrap();
        }
        loop {
            if let Some(i) = q.woken.iter().position(|&s| s == self.waiter) {
                // `wake` counted us as running again.
                q.woken.swap_remove(i);
                w.log.lock().unwrap().stats.wakes += 1;
                return WaitOutcome::Woken;
            }
            if q.timeouts > 0 {
                q.timeouts -= 1;
                q.running += 1;
                self.leave_queue(&mut q);
                return WaitOutcome::TimedOut;
            }
            q = w.cv.wait(q).unwrap();
        }
    }

    fn wake(&self, n: u32) {
        let w = self.world;
        let mut q = w.queue.lock().unwrap();
        let mut any = false;
        for _ in 0..n {
            match q.sleepers.pop_front() {
                Some(s) => {
                    q.woken.push(s);
                    q.running += 1;
                    any = true;
                }
                None => break,
            }
        }
        if any {
            w.cv.notify_all();
        }
    }

    fn owner_alive(&self, owner: OwnerId) -> bool {
        let w = self.world;
        let Some(slot) = w.slots.get(owner.slot() as usize) else {
            return false;
        };
        // The real probe's order: compare the incarnation, then ask for the byte lock.
        if slot.incarnation.load(SeqCst) != owner.incarnation() {
            return false;
        }
        slot.held.load(SeqCst)
    }

    fn spin_limit(&self) -> u32 {
        b::SPIN_LIMIT
    }

    fn spin(&self) {
        b::yield_now()
    }

    fn crash_point(&self, at: CrashPoint) {
        if at == CrashPoint::TakeoverDone {
            let dead = OwnerId::from_word(self.last_wait.get())
                .expect("a takeover follows a wait on an owned word");
            self.world
                .log
                .lock()
                .unwrap()
                .recoveries
                .push((self.me, dead));
        }
        if let Some((point, n)) = self.die_at.get() {
            if point == at {
                if n > 1 {
                    self.die_at.set(Some((point, n - 1)));
                } else {
                    self.die_at.set(None);
                    self.die(Some(at));
                    panic::resume_unwind(Box::new(ModelDeath));
                }
            }
        }
    }
}

fn locked(p: &ModelPlatform<'_>) -> Acquired {
    let got = lock(p, p.me);
    if let Acquired::Recovered { dead } = got {
        let log = p.world.log.lock().unwrap();
        assert!(
            log.recoveries.contains(&(p.me, dead)),
            "Recovered names {dead:?}, not the owner of the word the takeover saw"
        );
        assert!(
            log.deaths.iter().any(|&(o, _)| o == dead),
            "recovered from {dead:?}, which is alive"
        );
    }
    got
}

fn actor(world: Arc<World>, waiter: usize, a: Actor, me: Option<OwnerId>) {
    let me = me.unwrap_or_else(|| {
        let me = world.claim();
        if me.incarnation() > 1 {
            world.log.lock().unwrap().stats.slot_reuses += 1;
        }
        me
    });
    let p = ModelPlatform::new(&world, me, waiter, a.fate);
    let body = panic::catch_unwind(AssertUnwindSafe(|| {
        for round in 0..a.rounds {
            let got = locked(&p);
            let alive = world.critical_section(me, got, false);
            if !alive || a.fate == (Fate::DieHolding { round }) {
                p.die(None);
                return;
            }
            unlock(&p, me);
        }
    }));
    if let Err(e) = body {
        if !e.is::<ModelDeath>() {
            panic::resume_unwind(e);
        }
    }
    world.leave();
}

/// Runs one execution of `s`: the body of a `loom::model` or `shuttle::check_*` closure.
/// Returns what happened in it.
pub fn run(s: &Scenario) -> Stats {
    run_with(s, None)
}

/// [`run`], with `section` in every critical section.
pub fn run_with(s: &Scenario, section: Option<Arc<dyn Section>>) -> Stats {
    let world = Arc::new(World::new(s, section));
    let mut threads = Vec::new();
    for (i, &a) in s.actors.iter().enumerate() {
        // Slots of the first threads are claimed up front, in order, so the table is the same
        // in every execution; newcomers claim theirs while the others run.
        let me = (!a.newcomer).then(|| world.claim());
        let w = Arc::clone(&world);
        threads.push(b::spawn(move || actor(w, i, a, me)));
    }
    for t in threads {
        if let Err(e) = t.join() {
            panic::resume_unwind(e);
        }
    }
    finish(&world, s)
}

/// After every thread is done: take the lock once more (recovering a last dead owner), and
/// check the whole execution.
fn finish(w: &World, s: &Scenario) -> Stats {
    let me = w.claim();
    let p = ModelPlatform::new(w, me, s.actors.len(), Fate::Survive);
    w.queue.lock().unwrap().running += 1;
    let got = locked(&p);
    w.critical_section(me, got, true);
    unlock(&p, me);

    assert_eq!(
        w.word.load(SeqCst),
        0,
        "[{}] lock word not free at the end",
        s.name
    );
    {
        let q = w.queue.lock().unwrap();
        assert!(
            q.sleepers.is_empty() && q.woken.is_empty(),
            "[{}] futex queue not empty at the end",
            s.name
        );
    }
    let log = w.log.lock().unwrap();
    for &(dead, holding) in &log.deaths {
        let n = log.recoveries.iter().filter(|&&(_, d)| d == dead).count();
        let want = usize::from(holding);
        assert_eq!(
            n,
            want,
            "[{}] {dead:?} died {} the lock and was recovered {n} times (want {want})",
            s.name,
            if holding { "holding" } else { "not holding" },
        );
    }
    for &(by, dead) in &log.recoveries {
        assert!(
            log.deaths.iter().any(|&(o, _)| o == dead),
            "[{}] {by:?} recovered from {dead:?}, which never died",
            s.name
        );
    }
    assert_eq!(
        w.payload.get(),
        log.completed,
        "[{}] lost update on the protected counter",
        s.name
    );
    Stats {
        executions: 1,
        deaths: log.deaths.len() as u64,
        recoveries: log.recoveries.len() as u64,
        ..log.stats
    }
}

/// Asserts that the executions of `s` summed up in `st` reached the states `s` is meant to
/// test: a model that never sleeps, dies or recovers proves nothing about sleeping, dying or
/// recovering.
pub fn assert_reached(s: &Scenario, st: &Stats) {
    let why = |what: &str| format!("[{}] no execution {what}: {st:?}", s.name);
    if s.actors.len() > 1 {
        assert!(st.wakes > 0, "{}", why("woke a sleeper"));
    }
    if s.actors.iter().any(|a| a.fate != Fate::Survive) {
        assert!(st.deaths > 0, "{}", why("killed a thread"));
        assert!(st.timeouts > 0, "{}", why("needed a time-out"));
    }
    if s.actors.iter().any(|a| {
        !matches!(
            a.fate,
            Fate::Survive | Fate::DieAt(CrashPoint::UnlockReleased, _)
        )
    }) {
        assert!(
            st.recoveries > 0,
            "{}",
            why("recovered a dead owner's lock")
        );
    }
    if s.actors.iter().any(|a| a.newcomer) {
        assert!(st.slot_reuses > 0, "{}", why("reused a dead thread's slot"));
    }
    if s.spurious > 0 {
        assert!(st.spurious > 0, "{}", why("returned spuriously from wait"));
    }
}
