//! Progress bars for the long commands (`mapheap stress`, `bench`, `check` of a large heap).
//!
//! Invariant: a bar draws only when standard error is a terminal; otherwise it is hidden
//! and writes nothing, so logs, pipes and tests see only the command's own output. Bars
//! never start indicatif's ticker thread unless asked ([`spinner`]), because `stress` and
//! `bench` fork and must stay single-threaded while they do.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Whether bars are drawn: standard error is a terminal.
pub fn enabled() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar of `len` steps drawn with `template` (indicatif's syntax), or a hidden one when
/// standard error is not a terminal.
pub fn bar(len: u64, template: &str) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// A spinner saying `msg`, ticking on its own thread: only for work that never forks.
/// Hidden when standard error is not a terminal.
pub fn spinner(msg: String) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}
