//! One flipped byte at a time: the image with that byte xor 0xFF, put through what
//! `mapheap check` does (`Heap::open` with a 1 ms probe, then `check`), and what came of it.
//! Probes run in child processes (this test binary re-executed), a list of bytes each, so
//! a byte that makes the library panic, fault or hang fails the sweep naming that byte,
//! within the child's deadline.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mapheap::txn::TxnError;
use mapheap::{Error, Heap};

use crate::common::{self, run_child, ChildEnd};

/// What one flip came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The byte flipped (a file offset).
    pub at: u64,
    /// `open` (or the lock `check` takes) refused the file: the error's kind (see
    /// [`kind`]) and its message.
    pub refused: Option<(String, String)>,
    /// `open` took the lock over or recovered leftovers, and the recovery rewrote the byte.
    pub recovered: bool,
    /// The rules `check` reported (`Rule`'s `Debug` form), in the order found.
    pub rules: Vec<String>,
}

impl Outcome {
    /// Nothing noticed the flip.
    pub fn unreported(&self) -> bool {
        self.refused.is_none() && !self.recovered && self.rules.is_empty()
    }

    /// What noticed the flip, one token each: the refusal's kind, `recovered`, and every
    /// rule `check` reported; what docs/format.md's table must name in the byte's row.
    pub fn tokens(&self) -> Vec<String> {
        let mut t: Vec<String> = self.refused.iter().map(|(k, _)| k.clone()).collect();
        if self.recovered {
            t.push("recovered".into());
        }
        t.extend(self.rules.iter().cloned());
        t
    }

    /// What came of it, in words (the refusal's message left out: it holds paths and
    /// values that differ from run to run).
    pub fn describe(&self) -> String {
        match (&self.refused, self.recovered) {
            (Some((k, _)), _) => format!("refused: {k}"),
            (None, true) if self.rules.is_empty() => "recovered".into(),
            (None, true) => format!("recovered, then reported {}", self.rules.join(", ")),
            (None, false) if self.rules.is_empty() => "unreported".into(),
            (None, false) => format!("reported {}", self.rules.join(", ")),
        }
    }

    fn to_line(&self) -> String {
        let clean = |s: &str| s.replace(['\t', '\n'], " ");
        let (kind, msg) = self.refused.clone().unwrap_or_default();
        format!(
            "{}\t{}\t{}\t{}\t{}",
            self.at,
            u8::from(self.recovered),
            self.rules.join(","),
            kind,
            clean(&msg)
        )
    }

    fn from_line(line: &str) -> Option<Outcome> {
        let mut f = line.splitn(5, '\t');
        let at = f.next()?.parse().ok()?;
        let recovered = f.next()? == "1";
        let rules = f.next()?;
        let kind = f.next()?;
        let msg = f.next()?;
        Some(Outcome {
            at,
            refused: (!kind.is_empty()).then(|| (kind.to_string(), msg.to_string())),
            recovered,
            rules: if rules.is_empty() {
                Vec::new()
            } else {
                rules.split(',').map(str::to_string).collect()
            },
        })
    }
}

/// Flips the byte at `at` of `image` into the file `heap` (open for writing at `path`),
/// opens and checks it, and says what came of it.
pub fn probe(heap: &File, path: &Path, image: &[u8], at: u64) -> Outcome {
    let flipped = image[at as usize] ^ 0xFF;
    heap.set_len(image.len() as u64)
        .expect("size the probe file");
    heap.write_all_at(image, 0).expect("write the image");
    heap.write_all_at(&[flipped], at).expect("flip the byte");
    let mut out = Outcome {
        at,
        refused: None,
        recovered: false,
        rules: Vec::new(),
    };
    let h = match Heap::open_with(path, &super::quick()) {
        Ok(h) => h,
        Err(e) => {
            out.refused = Some((kind(&e), format!("open: {e}")));
            return out;
        }
    };
    let recovery = h.recovered_at_open().cloned();
    match h.check() {
        Ok(report) => out.rules = report.rules().iter().map(|r| format!("{r:?}")).collect(),
        Err(e) => out.refused = Some((kind(&e), format!("lock: {e}"))),
    }
    drop(h);
    let mut now = [0u8];
    heap.read_exact_at(&mut now, at)
        .expect("read the byte back");
    // A recovery counts when it dealt with the flip: it put something else in the byte
    // (a dead owner's word, a leftover it cleared). A recovery that the flip set off but
    // that left the byte as it was (a lock reading unknown flag bits as leftovers) has not
    // reported it; `check` must.
    out.recovered = recovery.is_some() && now[0] != flipped;
    out
}

/// The kind of a refusal, as the table names it: the variant of the format error, or
/// `BadLog(fault)` for a damaged undo log, or the heap error's own variant.
pub fn kind(e: &Error) -> String {
    let variant = |debug: String| {
        debug
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_string()
    };
    match e {
        Error::Format { source, .. } => variant(format!("{source:?}")),
        Error::Txn(TxnError::BadLog { fault, .. }) => format!("BadLog({fault:?})"),
        other => variant(format!("{other:?}")),
    }
}

// ---- child processes ------------------------------------------------------------------

const BYTES_ENV: &str = "MAPHEAP_SWEEP_BYTES";
const OUT_ENV: &str = "MAPHEAP_SWEEP_OUT";
const IMAGE_ENV: &str = "MAPHEAP_SWEEP_IMAGE";
/// For the harness's own test: the child hangs (`hang:N`) or panics (`panic:N`) at byte N.
pub const FAKE_ENV: &str = "MAPHEAP_SWEEP_FAKE";
/// The child role of a probing child.
pub const ROLE: &str = "sweep";

/// In a probing child: probes the bytes listed in the file `MAPHEAP_SWEEP_BYTES`, writing
/// `begin AT` before each and its outcome after, flushed, to `MAPHEAP_SWEEP_OUT`.
pub fn child_main() -> ! {
    mapheap::mutant::init_from_env();
    let var = |k: &str| PathBuf::from(std::env::var(k).unwrap_or_else(|_| panic!("{k}")));
    let image = std::fs::read(var(IMAGE_ENV)).expect("read the image");
    let list = std::fs::read_to_string(var(BYTES_ENV)).expect("read the byte list");
    let mut out = File::create(var(OUT_ENV)).expect("create the outcome file");
    // Beside the outcome file, in the parent's temporary directory, which the parent
    // removes whatever becomes of this child (it leaves by `process::exit`, or is killed).
    let path = var(OUT_ENV).with_extension("probe.heap");
    let heap = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("create the probe file");
    let fake = std::env::var(FAKE_ENV).unwrap_or_default();
    for at in list.lines().filter_map(|l| l.parse::<u64>().ok()) {
        writeln!(out, "begin {at}").expect("write");
        out.flush().expect("flush");
        if fake == format!("hang:{at}") {
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        assert_ne!(fake, format!("panic:{at}"), "a seeded panic at byte {at}");
        let o = probe(&heap, &path, &image, at);
        writeln!(out, "{}", o.to_line()).expect("write");
        out.flush().expect("flush");
    }
    std::process::exit(0)
}

/// Seconds a child may take: 30, plus 20 ms per byte (a probe takes well under 1 ms on an
/// idle core; a byte that hangs the library is reported once this bound is past).
pub fn child_deadline(bytes: usize) -> Duration {
    Duration::from_secs(30) + Duration::from_millis(20 * bytes as u64)
}

/// Probes every byte of `bytes` of the image at `image` (a file), in `jobs` child
/// processes of the test `test_name` (which must call [`child_main`] when its role is
/// [`ROLE`]), with `mutant` switched on in them if given. `Err` names a byte that
/// crashed or hung a child.
pub fn sweep(
    test_name: &str,
    image: &Path,
    bytes: &[u64],
    jobs: usize,
    mutant: Option<&str>,
) -> Result<Vec<Outcome>, String> {
    sweep_with(
        test_name,
        image,
        bytes,
        jobs,
        &env_of(mutant),
        child_deadline,
    )
}

fn env_of(mutant: Option<&str>) -> Vec<(&'static str, String)> {
    mutant
        .map(|m| ("MAPHEAP_MUTANT", m.to_string()))
        .into_iter()
        .collect()
}

/// [`sweep`] with extra environment for the children and their deadline as a function of
/// their number of bytes.
pub fn sweep_with(
    test_name: &str,
    image: &Path,
    bytes: &[u64],
    jobs: usize,
    extra: &[(&'static str, String)],
    deadline: fn(usize) -> Duration,
) -> Result<Vec<Outcome>, String> {
    let dir = common::tempdir();
    let chunk = bytes.len().div_ceil(jobs.max(1)).max(1);
    let runs: Vec<Result<Vec<Outcome>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = bytes
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| {
                let dir = dir.path();
                s.spawn(move || run_part(test_name, image, dir, k, part, extra, deadline))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sweep thread"))
            .collect()
    });
    let mut all = Vec::with_capacity(bytes.len());
    for r in runs {
        all.extend(r?);
    }
    all.sort_by_key(|o| o.at);
    Ok(all)
}

fn run_part(
    test_name: &str,
    image: &Path,
    dir: &Path,
    k: usize,
    part: &[u64],
    extra: &[(&'static str, String)],
    deadline: fn(usize) -> Duration,
) -> Result<Vec<Outcome>, String> {
    let list = dir.join(format!("bytes-{k}"));
    let out = dir.join(format!("out-{k}"));
    let text: String = part.iter().map(|b| format!("{b}\n")).collect();
    std::fs::write(&list, text).expect("write the byte list");
    let mut env = vec![
        (common::CHILD_ENV, ROLE.to_string()),
        (BYTES_ENV, list.display().to_string()),
        (OUT_ENV, out.display().to_string()),
        (IMAGE_ENV, image.display().to_string()),
    ];
    env.extend(extra.iter().cloned());
    let deadline = deadline(part.len());
    let run = run_child(test_name, &env, deadline);
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let mut got = Vec::with_capacity(part.len());
    let mut open = None;
    for line in text.lines() {
        if let Some(at) = line.strip_prefix("begin ") {
            open = at.parse::<u64>().ok();
        } else if let Some(o) = Outcome::from_line(line) {
            open = None;
            got.push(o);
        }
    }
    match (run.end.clone(), open) {
        (ChildEnd::Exited(0), None) if got.len() == part.len() => Ok(got),
        (ChildEnd::TimedOut, Some(at)) => Err(format!(
            "flipping byte {at} hung the library (no outcome within the child's bound of \
             {deadline:?}): {}",
            run.describe()
        )),
        (_, Some(at)) => Err(format!(
            "flipping byte {at} crashed the probe: {}",
            run.describe()
        )),
        _ => Err(format!(
            "a probing child gave {} outcomes for {} bytes: {}",
            got.len(),
            part.len(),
            run.describe()
        )),
    }
}
