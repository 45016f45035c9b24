//! `mapheap grow`: grows under the heap's lock while another process is attached, says what
//! it did, changes nothing for a size not larger than the capacity, and fails with a
//! message (never a panic) on a bad size, a file that is not a heap, or a full disk.

use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use mapheap::Heap;

use crate::run::{command, finish, ok, run, LIMIT};

#[test]
fn grow_size_waits_for_the_lock_and_an_attached_process_sees_the_new_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    let heap = Heap::create(&path, 1 << 20).unwrap();
    let (value, gen0) = {
        let mut g = heap.lock().unwrap();
        (g.alloc(0x5eed_u64).unwrap(), g.stats().generation)
    };
    let guard = heap.lock().unwrap();
    let args = ["grow", "h.heap", "--size", "3M"];
    let mut child = command(dir.path(), &args).spawn().unwrap();
    // While this process holds the lock, grow must not finish (std keeps the status of a
    // child reaped here for `finish`).
    let held = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let early = child.try_wait().unwrap();
    assert!(
        early.is_none(),
        "grow ended while another process held the lock ({early:?} after {:?})",
        held.elapsed()
    );
    drop(guard);
    let r = finish(child, &args, LIMIT);
    assert!(r.status.success(), "{r}");
    let g = heap.lock().unwrap();
    assert_eq!(g.capacity(), 3 << 20, "this attachment did not remap");
    assert_eq!(g.read(value).unwrap(), 0x5eed, "the data moved or changed");
    assert!(g.check().is_clean());
    let gen1 = g.stats().generation;
    assert!(gen1 > gen0);
    let want = format!(
        "grew from {} to {} bytes (generation {gen0} -> {gen1})",
        1 << 20,
        3 << 20
    );
    assert!(r.stdout.contains(&want), "wanted {want:?}:\n{r}");
}

#[test]
fn grow_size_rounds_up_to_the_page_and_a_smaller_size_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    drop(Heap::create(&path, 1 << 20).unwrap());
    let page = mapheap::format::page_size() as u64;
    let size = ((2 << 20) + 1).to_string();
    let out = ok(dir.path(), &["grow", "h.heap", "--size", &size]);
    let cap = Heap::open(&path).unwrap().lock().unwrap().capacity();
    assert_eq!(cap, (2 << 20) + page, "{out}");
    assert!(out.contains("rounded up to the page size"), "{out}");
    for smaller in ["1M", &cap.to_string()] {
        let out = ok(dir.path(), &["grow", "h.heap", "--size", smaller]);
        assert!(out.contains("nothing changed"), "{out}");
        let g = Heap::open(&path).unwrap();
        assert_eq!(
            g.lock().unwrap().capacity(),
            cap,
            "--size {smaller} changed it"
        );
    }
}

#[test]
fn grow_errors_are_messages_with_a_nonzero_exit_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    drop(Heap::create(&path, 1 << 20).unwrap());
    run(dir.path(), &["grow", "h.heap", "--size", "12Q"]).assert_fails(2, "unknown size suffix");
    run(dir.path(), &["grow", "h.heap", "--size", "100T"]).assert_fails(2, "64 TiB");
    run(dir.path(), &["grow", "h.heap"]).assert_fails(2, "--size");
    run(dir.path(), &["grow", "missing.heap", "--size", "2M"]).assert_fails(2, "missing.heap");
    std::fs::write(dir.path().join("text"), "not a heap\n").unwrap();
    run(dir.path(), &["grow", "text", "--size", "2M"]).assert_fails(2, "text");

    // A full disk, as the file-size limit makes it: EFBIG at the reservation.
    let args = ["grow", "h.heap", "--size", "64M"];
    let mut c = command(dir.path(), &args);
    // SAFETY: between fork and exec the closure calls only setrlimit and signal, both
    // async-signal-safe, and touches no memory of the parent's.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 4 << 20,
                rlim_max: 4 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Ignored, the write past the limit fails with EFBIG instead of killing.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let r = finish(c.spawn().unwrap(), &args, LIMIT);
    r.assert_fails(2, "no space to grow");
    let heap = Heap::open(&path).unwrap();
    let g = heap.lock().unwrap();
    assert_eq!(g.capacity(), 1 << 20, "a failed grow changed the capacity");
    assert!(g.check().is_clean());
}
