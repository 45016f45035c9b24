//! The public `Heap`: one attachment of this process to a heap file.
//!
//! Invariants:
//! * H1 a handle owns one attachment slot, claimed through its own open file description.
//!   Threads sharing the handle are ordered by the process-shared lock itself: its word
//!   names the handle, a CAS from 0 admits one thread, and a thread that finds its own
//!   handle's id in the word waits like any other waiter (never takes over: its own
//!   process is alive). The handle's mapping state (`Local`) is touched only by the thread
//!   that holds that lock, which is what makes `Heap: Sync` sound.
//! * H2 a handle is used only by the process that opened it: a fork child gets
//!   `Error::Forked` (the child shares the parent's open file description and with it the
//!   slot's OFD lock, so it must attach afresh).
//! * H3 before a guard is handed out, the mapping covers the heap's current capacity
//!   (remapped if another process grew it) and, if the previous owner died or a guard was
//!   dropped by a panic, the heap has been repaired.

mod access;
mod bare;
mod guard;
mod inspect;
mod roots;
mod space;

pub use bare::{format_in, leftovers, recover_arena};
pub use guard::{BlockInfo, HeapGuard, Recovery, Stats};
pub use roots::{entry_fault, RootInfo};
pub use space::{block_for, search_size};

use std::cell::UnsafeCell;
use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::format::{
    self, FormatError, Identity, HEADER_SIZE, LOCK_OFFSET, MAX_CAPACITY, MIN_CAPACITY,
    SLOTS_OFFSET, SLOT_COUNT,
};
use crate::map::{self, Mapping};
use crate::sync::{self, Futex, OwnerId, SlotRecord, Slots, Waiting, DEFAULT_PROBE_INTERVAL};

/// How to create a heap file.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// Capacity in bytes (rounded up to the page size; the header takes 16 KiB of it).
    pub size: u64,
    /// File mode (default 0o600).
    pub mode: u32,
    /// Replace an existing file at the path instead of failing with `Error::Exists`.
    pub overwrite: bool,
    /// Bytes of undo log (rounded up to 8, at least 256): what one transaction can save
    /// before it chains extension segments (at most 8, docs/limits.md). `None`: [`crate::txn::default_log_capacity`] of the size (an eighth of
    /// the arena, from 256 bytes to 1 MiB).
    pub log_capacity: Option<u64>,
    /// Options for the attachment made after creation.
    pub open: OpenOptions,
}

impl CreateOptions {
    /// A heap of `size` bytes with the defaults.
    pub fn new(size: u64) -> CreateOptions {
        CreateOptions {
            size,
            mode: 0o600,
            overwrite: false,
            log_capacity: None,
            open: OpenOptions::default(),
        }
    }
}

/// How to attach to a heap file.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// How long a waiter sleeps before probing whether the lock's owner is alive.
    pub probe_interval: Duration,
    /// Map the file at this address with MAP_FIXED (the caller must own the range, e.g. a
    /// PROT_NONE reservation of at least the file's length). Growth later maps anywhere.
    pub map_at: Option<NonNull<u8>>,
    /// If set, an allocation that finds no room grows the heap (doubling its capacity, or
    /// more if the request needs it) up to this many bytes before it reports `OutOfSpace`.
    /// `None` (the default): allocations never grow the heap; call `HeapGuard::grow`.
    pub grow_limit: Option<u64>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            probe_interval: DEFAULT_PROBE_INTERVAL,
            map_at: None,
            grow_limit: None,
        }
    }
}

// SAFETY: the raw address is only a placement request passed to mmap, never dereferenced.
unsafe impl Send for OpenOptions {}
// SAFETY: as above.
unsafe impl Sync for OpenOptions {}

struct Local {
    map: Mapping,
    generation: u64,
    /// The transaction of the guard that holds the lock (empty between guards).
    tx: crate::txn::Tx,
    /// What the lock of the guard alive now recovered, if it did (cleared when that guard
    /// is dropped).
    recovery: Option<Recovery>,
}

/// The handle's view of the heap: mutable only by the holder of the process-shared lock.
struct LocalCell(UnsafeCell<Local>);

/// An attachment of this process to a heap file. Share it between threads by reference
/// (it is `Sync`); call [`Heap::lock`] to use the heap.
pub struct Heap {
    file: File,
    path: PathBuf,
    owner: OwnerId,
    fork_epoch: u64,
    page_size: u32,
    probe: Duration,
    grow_limit: Option<u64>,
    /// The header page, mapped once for the handle's life: the lock word and the
    /// attachment table stay at one address however often the arena is remapped, so
    /// threads can wait on the word while the holder remaps.
    header: Mapping,
    local: LocalCell,
    /// What the lock taken inside `attach` recovered, if its owner had died holding it.
    recovered_at_open: Option<Recovery>,
}

// SAFETY: `Local` is only reached through `HeapGuard` (whose existence means this thread
// holds the heap's process-shared lock, which admits one thread of all processes at a
// time) or through `&mut Heap` (drop). Its `Mapping` is an owned address range that may be
// used from any thread.
unsafe impl Sync for LocalCell {}

static FORK_EPOCH: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();
/// The base of the first mapping this process made (only the `WrongBase` mutant uses it).
static FIRST_BASE: AtomicUsize = AtomicUsize::new(0);

extern "C" fn child_after_fork() {
    FORK_EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// The fork epoch, registering the atfork handler first if this process has none yet
/// (every handle is made through `attach`, which calls this).
fn fork_epoch_registered() -> u64 {
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only does an atomic add (async-signal-safe).
        unsafe {
            libc::pthread_atfork(None, None, Some(child_after_fork));
        }
    });
    FORK_EPOCH.load(Ordering::Relaxed)
}

/// The fork epoch, on the lock's fast path: one load (the handler was registered when the
/// handle was made, before any fork it must see).
#[inline(always)]
fn fork_epoch() -> u64 {
    FORK_EPOCH.load(Ordering::Relaxed)
}

/// Wraps an I/O error with what was being done to which file.
pub(crate) fn io_err<'p>(
    what: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> Error + 'p {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn format_err(path: &Path) -> impl FnOnce(FormatError) -> Error + '_ {
    move |source| Error::Format {
        path: path.to_path_buf(),
        source,
    }
}

impl Heap {
    /// Creates a heap file of `size` bytes at `path` (mode 0600; fails if it exists).
    pub fn create(path: impl AsRef<Path>, size: u64) -> Result<Heap> {
        Heap::create_with(path, &CreateOptions::new(size))
    }

    /// Creates a heap file with options. The file is built under a temporary name in the
    /// same directory and renamed into place complete, so no process sees it half-made.
    pub fn create_with(path: impl AsRef<Path>, opts: &CreateOptions) -> Result<Heap> {
        let path = path.as_ref();
        let page = u64::from(format::page_size());
        let size = opts.size.checked_next_multiple_of(page).unwrap_or(u64::MAX);
        if size < MIN_CAPACITY {
            return Err(Error::BadSize {
                size: opts.size,
                why: "smaller than the 16 KiB header plus one block",
            });
        }
        if size > MAX_CAPACITY {
            return Err(Error::BadSize {
                size: opts.size,
                why: "larger than the 64 TiB a heap can address",
            });
        }
        // A bare name's parent is "", which every call below reads as the working directory.
        let dir = path.parent().unwrap_or(Path::new("."));
        if crate::mutant::active(crate::mutant::Mutant::CreateInPlace) {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .map_err(io_err("create", path))?;
            format_new(&file, path, size, page, opts)?;
            return Heap::attach(file, path, &opts.open);
        }
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::Builder::new()
            .prefix(".mapheap-")
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(opts.mode))
            .tempfile_in(dir)
            .map_err(io_err("create temporary file in", dir))?;
        // The mode exactly as asked, whatever the umask (a heap shared between users needs
        // its group bits).
        let mode = if crate::mutant::active(crate::mutant::Mutant::IgnoreMode) {
            0o600
        } else {
            opts.mode
        };
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_err("set the mode of", dir))?;
        // Nobody else knows the temporary name, so nobody sees the file half-made.
        format_new(tmp.as_file(), path, size, page, opts)?;
        let file = if opts.overwrite {
            tmp.persist(path)
        } else {
            tmp.persist_noclobber(path)
        };
        let file = file.map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists(path.to_path_buf())
            } else {
                Error::Io {
                    what: "rename into place",
                    path: path.to_path_buf(),
                    source: e.error,
                }
            }
        })?;
        Heap::attach(file, path, &opts.open)
    }

    /// Opens an existing heap file, validating it before trusting anything in it.
    pub fn open(path: impl AsRef<Path>) -> Result<Heap> {
        Heap::open_with(path, &OpenOptions::default())
    }

    /// Opens an existing heap file with options.
    pub fn open_with(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Heap> {
        let path = path.as_ref();
        let file = map::open_file(path).map_err(io_err("open", path))?;
        Heap::attach(file, path, opts)
    }

    fn attach(file: File, path: &Path, opts: &OpenOptions) -> Result<Heap> {
        let epoch = fork_epoch_registered();
        let len = file.metadata().map_err(io_err("stat", path))?.len();
        if len < MIN_CAPACITY {
            return Err(format_err(path)(FormatError::Truncated {
                needed: MIN_CAPACITY,
                found: len,
            }));
        }
        let page = format::page_size();
        let map = Mapping::new(&file, len, opts.map_at).map_err(io_err("map", path))?;
        let _ = FIRST_BASE.compare_exchange(
            0,
            map.base() as usize,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        // SAFETY: len >= MIN_CAPACITY > size_of::<Identity>(); the identity never changes
        // after the file was renamed into place, so a plain copy reads no racing write.
        let id: Identity = unsafe { std::ptr::read(map.base().cast::<Identity>()) };
        id.validate(page).map_err(format_err(path))?;
        let header = Mapping::new(&file, HEADER_SIZE, None).map_err(io_err("map", path))?;
        let slots = slots_of(&header, &file);
        let mut owner = slots.claim(std::process::id())?;
        // SAFETY: as in `Heap::futex`: an aligned u32 inside the live header mapping,
        // accessed only atomically.
        let word = unsafe { AtomicU32::from_ptr(header.base().add(LOCK_OFFSET).cast()) };
        if OwnerId::from_word(word.load(Ordering::Relaxed)) == Some(owner) {
            // The word names the id just claimed, so it is stale (a corrupt slot table, or
            // an incarnation that wrapped): we never locked. Waiting on it would wait for
            // ourselves forever; claim the slot again so the word names a dead owner.
            slots.release(owner)?;
            owner = slots.claim(std::process::id())?;
        }
        let mut heap = Heap {
            file,
            path: path.to_path_buf(),
            owner,
            fork_epoch: epoch,
            page_size: page,
            probe: opts.probe_interval,
            grow_limit: opts.grow_limit,
            header,
            local: LocalCell(UnsafeCell::new(Local {
                map,
                generation: 0,
                tx: crate::txn::Tx::default(),
                recovery: None,
            })),
            recovered_at_open: None,
        };
        // Validate capacity and state, and repair a dead owner's leftovers, before anyone
        // gets a guard.
        let recovered = heap.lock_first(true)?.recovered().cloned();
        heap.recovered_at_open = recovered;
        Ok(heap)
    }

    /// Takes the heap's process-shared lock. Blocks while another thread or process holds
    /// it; if the holder died, takes it over and repairs the heap first
    /// ([`HeapGuard::recovered`] says so).
    #[inline]
    pub fn lock(&self) -> Result<HeapGuard<'_>> {
        if fork_epoch() != self.fork_epoch
            && !crate::mutant::active(crate::mutant::Mutant::IgnoreFork)
        {
            return Err(Error::Forked);
        }
        self.lock_first(false)
    }

    /// Takes the lock; `first`: this is the handle's first lock, which validates the
    /// capacity against the file whatever the generation says. (`lock` validates only when
    /// the generation moved; a file whose generation is the 0 a new handle starts from must
    /// not skip the check, F3.)
    #[inline]
    fn lock_first(&self, first: bool) -> Result<HeapGuard<'_>> {
        let acquired = sync::lock(&self.futex(), self.owner);
        // SAFETY: `sync::lock` just took the process-shared lock through this handle.
        unsafe { self.guard_for(acquired, first) }
    }

    /// The guard of a lock just taken through this handle (`acquired` says how): it
    /// repairs the heap if needed and releases the lock when dropped.
    ///
    /// # Safety
    /// The caller holds the process-shared lock, taken with this handle's owner id.
    #[inline]
    unsafe fn guard_for(&self, acquired: sync::Acquired, first: bool) -> Result<HeapGuard<'_>> {
        // SAFETY: the caller holds the process-shared lock, so no other thread of any
        // process holds a guard of this handle; the `&mut Local` lives in the guard, which
        // releases the lock only after giving it up.
        let local = unsafe { &mut *self.local.0.get() };
        HeapGuard::new(self, local, acquired, first)
    }

    #[inline]
    fn futex(&self) -> Futex<'_> {
        // SAFETY: the lock word is an aligned u32 at LOCK_OFFSET inside the header mapping,
        // which lives as long as `self`; every process accesses it only atomically.
        let word = unsafe { AtomicU32::from_ptr(self.header.base().add(LOCK_OFFSET).cast()) };
        Futex::new(word, self)
    }

    /// The file this handle is attached to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Some` if the lock taken inside `open`/`create` found its owner dead and repaired
    /// the heap (that guard never reaches the caller, so this is the only way to learn it).
    pub fn recovered_at_open(&self) -> Option<&Recovery> {
        self.recovered_at_open.as_ref()
    }

    /// This attachment's owner id (slot and incarnation).
    pub fn owner(&self) -> OwnerId {
        self.owner
    }

    /// The attachment table as last seen: (slot, incarnation, pid) of every slot ever used.
    pub fn attachments(&self) -> Vec<(u32, SlotRecord)> {
        let slots = slots_of(&self.header, &self.file);
        (0..slots.count())
            .map(|i| (i, slots.record(i)))
            // A claim sets the pid: a slot whose counter wrapped to 0 is still a used one.
            .filter(|(_, r)| r.incarnation != 0 || r.pid != 0)
            .collect()
    }

    /// Locks the heap and checks every invariant (see [`crate::check`]).
    pub fn check(&self) -> Result<crate::check::Report> {
        Ok(self.lock()?.check())
    }
}

/// Reserves `size` bytes for a new heap file and writes its header, its empty arena and its
/// undo log's block.
fn format_new(file: &File, path: &Path, size: u64, page: u64, opts: &CreateOptions) -> Result<()> {
    map::reserve(file, size).map_err(|source| Error::NoSpace {
        path: path.to_path_buf(),
        size,
        source,
    })?;
    let m = Mapping::new(file, size, None).map_err(io_err("map", path))?;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let cap = opts
        .log_capacity
        .unwrap_or_else(|| crate::txn::default_log_capacity(size))
        .checked_next_multiple_of(8)
        .unwrap_or(u64::MAX);
    if cap < crate::txn::MIN_LOG {
        return Err(Error::BadSize {
            size: cap,
            why: "an undo log smaller than 256 bytes",
        });
    }
    // SAFETY: the mapping is fresh, page-aligned and `size` (at least MIN_CAPACITY) bytes
    // long, zero as the file was reserved; the file is not yet visible under its final
    // name, so no other process maps it.
    unsafe { bare::format_in(m.base(), size, page, created, cap) }.map_err(|e| match e {
        // The size the caller asked for, not the page-rounded one.
        Error::BadSize { why, .. } => Error::BadSize {
            size: opts.size,
            why,
        },
        e => e,
    })
}

impl Waiting for Heap {
    fn slots(&self) -> Slots<'_> {
        slots_of(&self.header, &self.file)
    }

    fn probe(&self) -> Duration {
        self.probe
    }
}

#[inline]
fn slots_of<'a>(map: &'a Mapping, file: &'a File) -> Slots<'a> {
    // SAFETY: SLOT_COUNT records at SLOTS_OFFSET lie inside the header of this live
    // mapping (asserted in `format`), 8-aligned, and every process accesses them only
    // atomically. The descriptor is `file`'s, borrowed for as long as `file` (`borrow_raw`
    // rather than `as_fd`, which std does not inline into the lock path).
    unsafe {
        Slots::new(
            map.base().add(SLOTS_OFFSET).cast::<SlotRecord>(),
            SLOT_COUNT,
            BorrowedFd::borrow_raw(file.as_raw_fd()),
            SLOTS_OFFSET as u64,
        )
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        // In a fork child the open file description is the parent's: unlocking the slot
        // through it would release the parent's claim.
        if fork_epoch() == self.fork_epoch {
            let _ = slots_of(&self.header, &self.file).release(self.owner);
        }
    }
}

/// Runs `iters` rounds of the bare protocol on this heap's word and slot (lock, `body`,
/// unlock) without the guard's work (fork check, mapping refresh, repair flag): the figure
/// `mapheap bench` sets beside the anchors' bare mutexes. `body`
/// runs while the lock is held. A round that takes the lock over from a dead owner goes
/// through a real guard, which repairs the heap first. Returns how many rounds did so.
#[doc(hidden)]
pub fn raw_lock_rounds(heap: &Heap, iters: u64, mut body: impl FnMut()) -> Result<u64> {
    let f = heap.futex();
    let mut recoveries = 0;
    for _ in 0..iters {
        let acquired = sync::lock(&f, heap.owner);
        if acquired.recovered() {
            // SAFETY: `sync::lock` just took the lock with this handle's owner id.
            let g = unsafe { heap.guard_for(acquired, false) }?;
            recoveries += u64::from(g.recovered().is_some());
            body();
            drop(g);
            continue;
        }
        body();
        sync::unlock(&f, heap.owner);
    }
    Ok(recoveries)
}

#[cfg(test)]
mod mutant_tests;
#[cfg(test)]
mod options_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_support {
    use super::{Heap, OpenOptions};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// A new heap of `size` bytes in a temporary directory.
    pub fn fresh(size: u64) -> (tempfile::TempDir, PathBuf, Heap) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.heap");
        let heap = Heap::create(&path, size).unwrap();
        (dir, path, heap)
    }

    /// Options for a handle that takes over from a simulated death quickly.
    pub fn quick() -> OpenOptions {
        OpenOptions {
            probe_interval: Duration::from_millis(1),
            ..OpenOptions::default()
        }
    }

    /// Runs `body` with a death armed (`crate::fault::arm_unwind` or `arm_store_unwind`,
    /// done by the caller). If it died, the dying guard left the lock and the file as a
    /// killed process would; the handle is dropped (its slot's OFD lock goes, as the
    /// kernel's would) and a fresh handle, which takes the lock over, is returned with
    /// `true`. Disarms either way.
    pub fn die_and_reopen(heap: Heap, path: &Path, body: impl FnOnce(&Heap)) -> (Heap, bool) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&heap)));
        crate::fault::arm_unwind(None, 0);
        crate::fault::arm_store_unwind(None);
        let died = match r {
            Ok(()) => false,
            Err(p) if p.downcast_ref::<crate::fault::Crashed>().is_some() => true,
            Err(p) => std::panic::resume_unwind(p),
        };
        if !died {
            return (heap, false);
        }
        drop(heap);
        (Heap::open_with(path, &quick()).unwrap(), true)
    }
}
