//! A full disk is an error at growth, never a SIGBUS later (invariant M2).
//!
//! Each case runs in a forked child (libtest's protocol through `harness/`, which runs the
//! tests one at a time on the main thread, so the process is single-threaded when it forks)
//! that enters a private mount namespace, mounts a 1 MiB tmpfs, creates a heap on it and
//! grows the heap past what the file system holds. The parent reaps the child with a
//! deadline; each test's watchdog bounds the rest.
//! * correct code: `grow` returns `Error::NoSpace`, the heap is unchanged and clean;
//! * `Mutant::GrowWithoutReserve` (sparse `set_len`): `grow` "succeeds" and the first write
//!   into the new space dies of SIGBUS, which the parent sees as the mutant being caught.

use std::path::Path;
use std::time::{Duration, Instant};

use mapheap::mutant::{set_process, Mutant};
use mapheap::stress::procs::{self, Exit};
use mapheap::{Error, Heap};

mod harness;

use harness::{case, TestResult};

fn enter_small_fs(dir: &Path) -> Result<(), String> {
    use std::ffi::CString;
    // SAFETY: unshare and mount take only the C strings built here; this process is a
    // single-threaded fork child, as unshare(CLONE_NEWNS) requires.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0
            && libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0
        {
            return Err(format!("unshare: {}", std::io::Error::last_os_error()));
        }
        let root = CString::new("/").unwrap();
        let none = CString::new("none").unwrap();
        if libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(format!(
                "make / private: {}",
                std::io::Error::last_os_error()
            ));
        }
        let target = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        let fstype = CString::new("tmpfs").unwrap();
        let opts = CString::new("size=1m,mode=0700").unwrap();
        if libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            opts.as_ptr().cast(),
        ) != 0
        {
            return Err(format!("mount tmpfs: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// The child's work: exit 0 if growth failed cleanly with NoSpace and the heap is intact.
fn child(dir: &Path) -> i32 {
    if let Err(e) = enter_small_fs(dir) {
        eprintln!("disk_full child: {e}");
        return 3;
    }
    let heap = match Heap::create(dir.join("h.heap"), 256 << 10) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("disk_full child: create: {e}");
            return 4;
        }
    };
    let mut g = heap.lock().unwrap();
    let keep = g.alloc_bytes(1000, 8).unwrap();
    g.bytes_mut(keep, 1000).unwrap().fill(0x5a);
    match g.grow(8 << 20) {
        Err(Error::NoSpace { .. }) => {}
        Err(e) => {
            eprintln!("disk_full child: unexpected error {e}");
            return 5;
        }
        Ok(()) => {
            // Only a sparse growth gets here: touch the new space as a user would.
            let big = g.alloc_bytes(6 << 20, 8).unwrap();
            g.bytes_mut(big, 6 << 20).unwrap().fill(1);
            eprintln!("disk_full child: grew past a full disk without error");
            return 6;
        }
    }
    let ok = g.capacity() == 256 << 10
        && g.bytes(keep, 1000).unwrap().iter().all(|&b| b == 0x5a)
        && g.check().is_clean();
    if ok {
        0
    } else {
        7
    }
}

/// Runs `child` in a fork (SIGKILLed if this process dies) and reaps it within 60 s.
fn run(mutant: Option<Mutant>) -> Result<Exit, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let pid = procs::fork_child(|| {
        set_process(mutant);
        child(dir.path())
    })
    .map_err(|e| format!("fork: {e}"))?;
    procs::reap(pid, Instant::now() + Duration::from_secs(60)).map_err(|e| format!("reap: {e}"))
}

fn main() -> std::process::ExitCode {
    harness::run(
        "disk_full",
        None,
        vec![
            case("full_disk_is_an_error_at_growth", 90, || -> TestResult {
                match run(None)? {
                    Exit::Code(0) => Ok(()),
                    e => Err(format!(
                        "the child ended with {e:?} (3 unshare or mount, 4 create, 5 another \
                         error than NoSpace, 6 grew past a full disk, 7 heap changed)"
                    )),
                }
            }),
            case(
                "mutant_grow_without_reserve_is_caught_by_full_disk",
                90,
                || -> TestResult {
                    match run(Some(Mutant::GrowWithoutReserve))? {
                        Exit::Signaled(libc::SIGBUS) | Exit::Code(6) => Ok(()),
                        e => Err(format!(
                            "the child ended with {e:?}: a sparse growth went unnoticed"
                        )),
                    }
                },
            ),
        ],
    )
}
