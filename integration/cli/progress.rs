//! Progress bars: drawn on standard error when it is a terminal (a pseudo-terminal here),
//! nothing at all when it is not (a pipe, as in every other test).

use std::io::Read;
use std::path::Path;
use std::sync::mpsc::channel;
use std::time::Duration;

use crate::run::{command, finish, run, LIMIT};

const STRESS: [&str; 7] = [
    "stress",
    "--duration",
    "0.5",
    "--workers",
    "1",
    "--kill-rate",
    "0",
];
const BENCH: [&str; 9] = [
    "bench",
    "--dir",
    ".",
    "--only",
    "lock",
    "--lock-iters",
    "1000",
    "--lock-cont-iters",
    "1000",
];

/// Runs `mapheap ARGS` with standard error on a pseudo-terminal; returns what it drew there.
fn on_a_terminal(cwd: &Path, args: &[&str]) -> String {
    let ws = nix::pty::Winsize {
        ws_row: 24,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
    let mut c = command(cwd, args);
    c.stderr(pty.slave);
    let child = c.spawn().unwrap();
    // Our copy of the terminal's far end must close, or reading would never end.
    drop(c);
    let (tx, rx) = channel();
    let mut master = std::fs::File::from(pty.master);
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        // Ends with EIO once every process holding the terminal has exited.
        let _ = master.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    let r = finish(child, args, LIMIT);
    assert!(r.status.success(), "{r}");
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the terminal stayed open after mapheap ended")
}

#[test]
fn stress_bench_and_check_draw_progress_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let drawn = on_a_terminal(dir.path(), &STRESS);
    assert!(drawn.contains('%') && drawn.contains("ops "), "{drawn:?}");
    let drawn = on_a_terminal(dir.path(), &BENCH);
    assert!(drawn.contains("figure groups"), "{drawn:?}");
    drop(mapheap::Heap::create(dir.path().join("big.heap"), 64 << 20).unwrap());
    let drawn = on_a_terminal(dir.path(), &["check", "big.heap"]);
    assert!(drawn.contains("checking big.heap"), "{drawn:?}");
}

#[test]
fn nothing_but_the_output_when_standard_error_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // Large enough for check's spinner.
    drop(mapheap::Heap::create(dir.path().join("big.heap"), 64 << 20).unwrap());
    for args in [&STRESS[..], &BENCH[..], &["check", "big.heap"][..]] {
        let r = run(dir.path(), args);
        assert!(r.status.success(), "{r}");
        assert_eq!(
            r.stderr, "",
            "mapheap {args:?} wrote to a non-terminal stderr"
        );
        assert!(!r.stdout.contains('\r'), "a bar went to stdout: {r}");
    }
}
