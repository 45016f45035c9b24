//! Every field of every options struct takes effect (O2), and a test that fails when an
//! options struct gains a field no test here names.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use super::*;
use crate::alloc::AllocError;
use crate::mutant::{with, Mutant};
use crate::offset::Offset;

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Sets the process's umask while alive; the old one comes back on drop.
struct Umask(libc::mode_t);

impl Umask {
    fn set(mask: libc::mode_t) -> Umask {
        // SAFETY: umask only swaps the process's file mode creation mask.
        Umask(unsafe { libc::umask(mask) })
    }
}

impl Drop for Umask {
    fn drop(&mut self) {
        // SAFETY: as in `set`.
        unsafe { libc::umask(self.0) };
    }
}

/// The mode bits of a heap created with `mode` under a umask that clears every group and
/// other bit. (The umask is the process's: other tests running meanwhile create files
/// with fewer bits, never more, and every heap file's mode is set exactly anyway.)
fn created_mode(opts: &CreateOptions) -> u32 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.heap");
    let _umask = Umask::set(0o077);
    drop(Heap::create_with(&path, opts).unwrap());
    mode_of(&path)
}

#[test]
fn create_options_mode_is_exact_whatever_the_umask() {
    for asked in [0o640, 0o604, 0o660, 0o606, 0o600, 0o644, 0o666] {
        let opts = CreateOptions {
            mode: asked,
            ..CreateOptions::new(64 << 10)
        };
        assert_eq!(created_mode(&opts), asked, "{asked:o}");
    }
}

#[test]
fn mutant_ignore_mode_is_caught_by_the_mode_test() {
    let opts = CreateOptions {
        mode: 0o640,
        ..CreateOptions::new(64 << 10)
    };
    assert_eq!(created_mode(&opts), 0o640);
    let got = with(Mutant::IgnoreMode, || created_mode(&opts));
    assert_ne!(got, 0o640, "IgnoreMode not caught: the mode is as asked");
}

#[test]
fn create_options_size_is_the_page_rounded_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let page = u64::from(format::page_size());
    for (i, asked) in [64 << 10, 100_000, (1 << 20) + 1].into_iter().enumerate() {
        let path = dir.path().join(format!("s{i}.heap"));
        let opts = CreateOptions {
            size: asked,
            ..CreateOptions::new(0)
        };
        let heap = Heap::create_with(&path, &opts).unwrap();
        let want = asked.next_multiple_of(page);
        assert_eq!(heap.lock().unwrap().capacity(), want, "{asked}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), want, "{asked}");
    }
}

#[test]
fn create_options_overwrite_replaces_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.heap");
    {
        let heap = Heap::create(&path, 64 << 10).unwrap();
        let mut g = heap.lock().unwrap();
        let v = g.alloc(7u64).unwrap();
        g.set_root("kept", v).unwrap();
    }
    let keep = CreateOptions {
        overwrite: false,
        ..CreateOptions::new(128 << 10)
    };
    assert!(matches!(
        Heap::create_with(&path, &keep),
        Err(Error::Exists(p)) if p == path
    ));
    {
        let heap = Heap::open(&path).unwrap();
        let g = heap.lock().unwrap();
        assert_eq!(
            g.capacity(),
            64 << 10,
            "the refused create left the file alone"
        );
        assert!(g.root::<u64>("kept").unwrap().is_some());
    }
    let replace = CreateOptions {
        overwrite: true,
        ..CreateOptions::new(128 << 10)
    };
    let heap = Heap::create_with(&path, &replace).unwrap();
    let g = heap.lock().unwrap();
    assert_eq!(g.capacity(), 128 << 10);
    assert!(g.roots().is_empty(), "a new heap replaced the old one");
}

#[test]
fn create_options_log_capacity_sets_the_logs_size() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (asked, got)) in [
        (Some(4096), 4096),
        (Some(1001), 1008),
        (None, (1 << 20) / 8 - 2048),
    ]
    .into_iter()
    .enumerate()
    {
        let opts = CreateOptions {
            log_capacity: asked,
            ..CreateOptions::new(1 << 20)
        };
        let heap = Heap::create_with(dir.path().join(format!("l{i}.heap")), &opts).unwrap();
        let mut g = heap.lock().unwrap();
        assert_eq!(g.stats().log_capacity, got, "{asked:?}");
        assert!(
            g.usable_size(Offset::<u8>::from_raw(g.stats().log_block))
                .unwrap()
                >= got
        );
        // The log holds that many bytes of entries before it needs an extension.
        let b = g.alloc_bytes(got, 8).unwrap();
        g.checkpoint().unwrap();
        g.bytes_mut(b, got - crate::txn::ENTRY_HEADER)
            .unwrap()
            .fill(1);
        assert_eq!(
            g.own_blocks().len(),
            1,
            "{asked:?}: an extension was needed"
        );
        g.bytes_mut(b, got).unwrap().fill(1);
        assert_eq!(
            g.own_blocks().len(),
            2,
            "{asked:?}: no extension was needed"
        );
    }
}

#[test]
fn create_options_open_applies_to_the_created_handle() {
    let dir = tempfile::tempdir().unwrap();
    let growing = CreateOptions {
        open: OpenOptions {
            grow_limit: Some(1 << 20),
            ..OpenOptions::default()
        },
        ..CreateOptions::new(64 << 10)
    };
    let heap = Heap::create_with(dir.path().join("g.heap"), &growing).unwrap();
    heap.lock().unwrap().alloc_bytes(256 << 10, 8).unwrap();
    let fixed = CreateOptions::new(64 << 10);
    let heap = Heap::create_with(dir.path().join("f.heap"), &fixed).unwrap();
    assert!(matches!(
        heap.lock().unwrap().alloc_bytes(256 << 10, 8),
        Err(Error::Alloc(AllocError::OutOfSpace { .. }))
    ));
}

/// How long `open_with` takes to take a dead owner's lock over with `opts`.
fn takeover_time(opts: &OpenOptions) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.heap");
    let dying = Heap::create(&path, 64 << 10).unwrap();
    std::mem::forget(dying.lock().unwrap());
    drop(dying);
    let t = Instant::now();
    let heap = Heap::open_with(&path, opts).unwrap();
    let took = t.elapsed();
    assert!(heap.recovered_at_open().is_some());
    took
}

#[test]
fn open_options_probe_interval_bounds_a_takeover() {
    let _watchdog = crate::watchdog!(30);
    let with_probe = |ms| OpenOptions {
        probe_interval: Duration::from_millis(ms),
        ..OpenOptions::default()
    };
    let long = Duration::from_millis(1500);
    let took = takeover_time(&with_probe(1500));
    assert!(
        took >= long,
        "took over after {took:?}, before the {long:?} probe"
    );
    assert!(took < long + Duration::from_secs(5), "{took:?}");
    let took = takeover_time(&with_probe(1));
    assert!(took < Duration::from_secs(1), "a 1 ms probe took {took:?}");
}

#[test]
fn open_options_map_at_places_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.heap");
    drop(Heap::create(&path, 64 << 10).unwrap());
    let len = 64 << 10;
    // SAFETY: reserves an address range of our own (no file, no access); the heap's
    // mapping replaces all of it with MAP_FIXED and unmaps it when it goes.
    let hole = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(hole, libc::MAP_FAILED);
    let at = NonNull::new(hole.cast::<u8>()).unwrap();
    let opts = OpenOptions {
        map_at: Some(at),
        ..OpenOptions::default()
    };
    let placed = Heap::open_with(&path, &opts).unwrap();
    let elsewhere = Heap::open(&path).unwrap();
    let off = {
        let mut g = placed.lock().unwrap();
        assert_eq!(g.base_address(), at.as_ptr() as usize);
        g.alloc(41u64).unwrap()
    };
    let g = elsewhere.lock().unwrap();
    assert_ne!(g.base_address(), at.as_ptr() as usize);
    assert_eq!(*g.get(off).unwrap(), 41);
}

#[test]
fn open_options_grow_limit_lets_allocations_grow_up_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.heap");
    drop(Heap::create(&path, 64 << 10).unwrap());
    let attempt = |limit: Option<u64>| {
        let heap = Heap::open_with(
            &path,
            &OpenOptions {
                grow_limit: limit,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        let mut g = heap.lock().unwrap();
        let r = g.alloc_bytes(200 << 10, 8).map(drop);
        (r, g.capacity())
    };
    for limit in [None, Some(64 << 10), Some(128 << 10)] {
        let (r, cap) = attempt(limit);
        assert!(
            matches!(r, Err(Error::Alloc(AllocError::OutOfSpace { .. }))),
            "{limit:?}"
        );
        assert_eq!(cap, 64 << 10, "{limit:?}");
    }
    let (r, cap) = attempt(Some(1 << 20));
    r.unwrap();
    assert!(cap > 64 << 10 && cap <= 1 << 20, "{cap}");
    // Without a limit the allocator's own refusal comes back as it is (the alignment it
    // searched with, 8 for a request of 1), never one from an attempt to grow.
    let heap = Heap::open(&path).unwrap();
    let mut g = heap.lock().unwrap();
    let cap = g.capacity();
    match g.alloc_bytes(cap, 1) {
        Err(Error::Alloc(e)) => assert_eq!(
            e,
            AllocError::OutOfSpace {
                requested: cap,
                align: 8,
                capacity: cap
            }
        ),
        other => panic!("{:?}", other.map(drop)),
    }
}

/// `(struct, field)` of every `pub struct …Options` in `src` (one file's text).
fn option_fields(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("pub struct ") {
        rest = &rest[i + "pub struct ".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let Some(body) = rest.find('{').map(|o| &rest[o + 1..]) else {
            continue;
        };
        if !name.ends_with("Options") {
            continue;
        }
        let body = &body[..body.find('}').unwrap_or(body.len())];
        for line in body.lines() {
            if let Some(f) = line.trim().strip_prefix("pub ") {
                if let Some((field, _)) = f.split_once(':') {
                    out.push((name.clone(), field.trim().to_string()));
                }
            }
        }
    }
    out
}

/// `CreateOptions` → `create_options`.
fn snake(camel: &str) -> String {
    let mut s = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_lowercase());
    }
    s
}

/// `(name, body)` of every `#[test]` fn in `src`; a body runs to the next `#[test]`.
fn tests_in(src: &str) -> Vec<(String, String)> {
    src.split("#[test]")
        .skip(1)
        .filter_map(|t| {
            let f = t.find("fn ")?;
            let name: String = t[f + 3..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            Some((name, t.to_string()))
        })
        .collect()
}

/// The fields no test covers, as `Struct.field`: a test covers a field if its name starts
/// with the struct's name in snake case and its body names the field (`field:` in a
/// struct literal, or `.field`), whole word.
fn uncovered(fields: &[(String, String)], tests: &[(String, String)]) -> Vec<String> {
    let names = |body: &str, f: &str| {
        let word = |k: usize| !body[k..].starts_with(|c: char| c.is_alphanumeric() || c == '_');
        body.match_indices(&format!("{f}:"))
            .chain(body.match_indices(&format!(".{f}")))
            .any(|(k, m)| {
                let start_ok = k == 0
                    || m.starts_with('.')
                    || !body[..k].ends_with(|c: char| c.is_alphanumeric() || c == '_');
                start_ok && (m.ends_with(':') || word(k + m.len()))
            })
    };
    fields
        .iter()
        .filter(|(s, f)| {
            !tests
                .iter()
                .any(|(name, body)| name.starts_with(&snake(s)) && names(body, f))
        })
        .map(|(s, f)| format!("{s}.{f}"))
        .collect()
}

#[test]
fn every_options_field_is_named_by_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut fields = Vec::new();
    let mut stack = vec![root.join("src")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs")
                && !p.ends_with("heap/options_tests.rs")
            {
                // (this file's synthetic example of a struct is not a struct)
                fields.extend(option_fields(&std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    for want in [("CreateOptions", "mode"), ("OpenOptions", "grow_limit")] {
        assert!(
            fields.contains(&(want.0.into(), want.1.into())),
            "the walk missed {want:?}: {fields:?}"
        );
    }
    let here = std::fs::read_to_string(root.join("src/heap/options_tests.rs")).unwrap();
    let missing = uncovered(&fields, &tests_in(&here));
    assert!(
        missing.is_empty(),
        "options fields no test names (add a test here named for the struct that sets the \
         field and shows its effect): {missing:?}"
    );
}

/// The coverage check itself fails: a field no test names is reported, and so is one only
/// a test of another struct names, or only as part of a longer word.
#[test]
fn the_options_check_reports_a_field_without_a_test() {
    let src =
        "pub struct FrobOptions {\n    /// Doc.\n    pub depth: u32,\n    pub width: u32,\n}\n\
               pub struct Other { pub depth: u32 }\n";
    let fields = option_fields(src);
    assert_eq!(
        fields,
        [
            ("FrobOptions".to_string(), "depth".to_string()),
            ("FrobOptions".to_string(), "width".to_string())
        ]
    );
    let tests = "#[test]\nfn frob_options_depth_works() { let o = FrobOptions { depth: 1 }; }\n\
                 #[test]\nfn other_width() { o.width = 2; }\n\
                 #[test]\nfn frob_options_x() { o.widths = 2; }\n";
    assert_eq!(uncovered(&fields, &tests_in(tests)), ["FrobOptions.width"]);
    let more = format!("{tests}#[test]\nfn frob_options_w() {{ o.width += 1; }}\n");
    assert!(uncovered(&fields, &tests_in(&more)).is_empty());
}
