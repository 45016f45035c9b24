//! docs/invariants.md checked against the code: every invariant the code names has a row,
//! every mutant and every test a row names exists, and every mutant has a row and a test
//! that shows its checker catches it. Runs in the default `cargo test` (a few ms); the unit
//! tests at the bottom feed the checker small synthetic projects and show it fails on each
//! kind of error (`cargo test mutant` runs them).
//!
//! # Invariant ids in the code
//!
//! An id is one upper-case ASCII letter and one or two digits, not part of a longer word
//! (`F1`, `A9`, `L5`). Every `.rs` file under src/, models/, proptests/, integration/,
//! benches/, examples/ and fuzz/fuzz_targets/ (except this file) is scanned, line by line,
//! for an id in one of these forms:
//!
//! * after the word `invariant` or `invariants` (any case), optionally in parentheses:
//!   `Invariant B1:`, `invariant G1`, `Invariant (L5):`;
//! * alone in parentheses: `(R1)`;
//! * first in a comment bullet: `//! * A2 the chain…`, `/// * X9 …`, `// * X9 …`;
//! * first in a comment, followed by a colon: `/// A5: a free block…` (src/check.rs);
//!
//! and in the first two forms a range `X1-X3` (or `X1–X3`, `X1..X3`) names every id in it.
//! **(a)** Each id found must have a row (its first cell) in docs/invariants.md. Two rows
//! with one id are an error too.
//!
//! # Rows
//!
//! A row is a table line of docs/invariants.md under a header with the columns `id`,
//! `kept in`, `checks` and `mutant…` (by the header's words, so columns may move). The
//! invariant's statement is prose and not checked. In the other three columns every
//! backticked span is a reference, resolved as follows (anything else is reported as an
//! unrecognised form, so a new form has to be taught here first):
//!
//! | form | example | must exist |
//! | --- | --- | --- |
//! | `CamelCase` in the mutant column | `SkipRepair` | **(b)** a variant of `enum Mutant` in src/mutant.rs |
//! | `CamelCase` elsewhere | `LocalCell`, `Chain` | a struct, enum, enum variant, trait or type in src/ |
//! | `Type::member`, `Type::a/b/c` | `HeapGuard::refresh`, `Arena::alloc/free/extend` | a fn `member` in an `impl` of `Type` (or an item named `member`) in src/ |
//! | `path.rs`, `path.rs::f` | `sync/protocol.rs::try_takeover` | src/path.rs (with a fn `f`) |
//! | `module::…::name` | `heap::tests::open_rejects_bad_images`, `format::tests` | **(c)** a unit test `name` in a module whose path ends in `module::…` (kept-in column: a fn), or such a module |
//! | `binary` | `remap_graph` | a `[[test]]` target of Cargo.toml |
//! | `binary::name`, `binary: name` | `loom_lock::mutant_*`, `fork_heap: no_lost_wakeup_with_a_30s_probe` | **(c)** a test of that target |
//! | `snake_name` | `open_rejects_bad_images`, `mutant_*` | **(c)** a test of any target (kept-in column: a fn in src/) |
//! | `Variant: message` | `BadListEntry: size belongs to another class` | the item, and the message text in src/ |
//! | `mapheap cmd` | `mapheap stress` | a variant of the CLI's `Subcommand` enum (src/bin/) |
//! | `external::path` | `loom::cell::UnsafeCell` | nothing: its first segment is a dependency in Cargo.toml |
//!
//! `name(args)` is also accepted where a fn is expected (`get(&self)`): the fn must exist and
//! one of its signatures must contain `args`. A `*` in a test name is a glob that must match
//! at least one test, and must name its target (`loom_lock::mutant_*`, not `mutant_*`: a
//! glob over every target would name everything).
//!
//! What a test is: in src/ and in `harness = true` targets (and the files their `mod x;`
//! lines pull in, `#[path]` included) a `fn` with a `#[test]` attribute; in a
//! `harness = false` target (integration/) the names it registers, i.e. the snake_case
//! string literals in its `fn main` (`s.run("name", f)`, `("name", f)` tables,
//! `report("name", …)`), which are also the names the binary prints.
//!
//! # Mutants
//!
//! **(d)** Every variant of `enum Mutant` must appear in the mutant column of some row, and
//! some test whose name contains `mutant` must mention it, as `Mutant::X` or `"X"` (any
//! word `X` in the test's body, comments aside). **(e)** Each `mutants → tests` clause of
//! the mutant column (clauses end at `;` and at `(also`) is checked as a claim: for each
//! mutant before the arrow, if the clause names tests with `mutant` in their name after
//! it, at least one of those tests mentions that mutant. A test's body is the fn's body
//! (for a registered name: the text of `main` from the previous name to the next) plus the
//! bodies of the same file's fns it names, one level deep; so a body that hands the variant
//! to a helper counts, and a test that never touches the variant does not. **(f)** Every test
//! with `mutant` in its name is named by some row (by name or by a target's glob), so the
//! table lists every seeded bug's catching test.
//!
//! `DOCS_INVARIANTS_VERBOSE=1 cargo test --test docs_invariants -- --nocapture` prints how
//! each reference resolved.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// This file: never scanned (its synthetic examples would count as ids and tests).
const SELF_PATH: &str = "integration/docs_invariants.rs";
const DOCS_PATH: &str = "docs/invariants.md";
/// Directories scanned for ids (src/ and the test targets are also where tests live).
const SCANNED: &[&str] = &[
    "src",
    "models",
    "proptests",
    "integration",
    "benches",
    "examples",
    "fuzz/fuzz_targets",
];

// ---- the project as text -------------------------------------------------------------------

/// Everything the checker reads, so the unit tests can hand it a synthetic project.
struct Project {
    cargo_toml: String,
    docs: String,
    /// `(path relative to the crate root, text)`, sorted by path.
    files: Vec<(String, String)>,
}

impl Project {
    fn load(root: &Path) -> Project {
        let read = |p: &Path| {
            std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let mut files = Vec::new();
        for dir in SCANNED {
            collect(root, &root.join(dir), &mut files);
        }
        files.retain(|(p, _)| p != SELF_PATH);
        files.sort();
        Project {
            cargo_toml: read(&root.join("Cargo.toml")),
            docs: read(&root.join(DOCS_PATH)),
            files,
        }
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.push((rel, text));
        }
    }
}

/// One error: where, and what.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Problem {
    file: String,
    line: usize,
    what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

// ---- Rust source, roughly lexed --------------------------------------------------------------

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Two copies of `text` with the same byte offsets: `code` with comments and the contents of
/// string and char literals blanked (quotes kept), `prose` with only comments blanked.
fn mask(text: &str) -> (String, String) {
    let b = text.as_bytes();
    let mut code = b.to_vec();
    let mut prose = b.to_vec();
    let blank = |v: &mut Vec<u8>, from: usize, to: usize| {
        for x in &mut v[from..to.min(b.len())] {
            if *x != b'\n' {
                *x = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let prev_ident = i > 0 && is_ident(b[i - 1]);
        if b[i..].starts_with(b"//") {
            let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
            blank(&mut code, i, end);
            blank(&mut prose, i, end);
            i = end;
        } else if b[i..].starts_with(b"/*") {
            let (mut depth, mut j) = (1, i + 2);
            while j < b.len() && depth > 0 {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut code, i, j);
            blank(&mut prose, i, j);
            i = j;
        } else if b[i] == b'r'
            && (!prev_ident || (b[i - 1] == b'b' && (i < 2 || !is_ident(b[i - 2]))))
            && raw_string_hashes(&b[i + 1..]).is_some()
        {
            let hashes = raw_string_hashes(&b[i + 1..]).unwrap();
            let start = i + 2 + hashes;
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            let end = find_bytes(b, start, &close).unwrap_or(b.len());
            blank(&mut code, start, end);
            i = end + close.len();
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut code, i + 1, j);
            i = j + 1;
        } else if b[i] == b'\'' {
            // A char literal, or a lifetime (left alone).
            if b.get(i + 1) == Some(&b'\\') {
                let end = find_bytes(b, i + 3, b"'").unwrap_or(b.len());
                blank(&mut code, i + 1, end);
                i = end + 1;
            } else if let Some(c) = text.get(i + 1..).and_then(|s| s.chars().next()) {
                let after = i + 1 + c.len_utf8();
                if b.get(after) == Some(&b'\'') {
                    blank(&mut code, i + 1, after);
                    i = after + 1;
                } else {
                    i += 1;
                }
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    let s = |v: Vec<u8>| String::from_utf8(v).expect("masking keeps UTF-8");
    (s(code), s(prose))
}

/// `Some(n)` if `b` starts with `n` hashes and a quote (the rest of a raw string's opening).
fn raw_string_hashes(b: &[u8]) -> Option<usize> {
    let n = b.iter().take_while(|&&c| c == b'#').count();
    (b.get(n) == Some(&b'"')).then_some(n)
}

fn find_bytes(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    (from..hay.len().saturating_sub(needle.len() - 1)).find(|&k| hay[k..].starts_with(needle))
}

/// The index of the `}` matching the `{` at `open` (in masked code).
fn matching_brace(code: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, c) in code.bytes().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// Offsets of the keyword `kw` as a whole word in masked code.
fn keyword_positions<'a>(code: &'a str, kw: &'a str) -> impl Iterator<Item = usize> + 'a {
    let b = code.as_bytes();
    code.match_indices(kw).map(|(k, _)| k).filter(move |&k| {
        (k == 0 || !is_ident(b[k - 1])) && b.get(k + kw.len()).is_none_or(|&c| !is_ident(c))
    })
}

/// The identifier starting at `k` after any spaces, and the offset after it.
fn ident_at(code: &str, mut k: usize) -> Option<(&str, usize)> {
    let b = code.as_bytes();
    while k < b.len() && (b[k] == b' ' || b[k] == b'\n' || b[k] == b'\t') {
        k += 1;
    }
    let start = k;
    while k < b.len() && is_ident(b[k]) {
        k += 1;
    }
    (k > start && !b[start].is_ascii_digit()).then(|| (&code[start..k], k))
}

fn line_of(text: &str, pos: usize) -> usize {
    text[..pos].bytes().filter(|&c| c == b'\n').count() + 1
}

fn is_camel(s: &str) -> bool {
    s.as_bytes().first().is_some_and(|c| c.is_ascii_uppercase()) && s.bytes().all(is_ident)
}

fn is_snake_or_glob(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'*')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// Whether `word` occurs in `text` as a whole identifier.
fn mentions(text: &str, word: &str) -> bool {
    keyword_positions(text, word).next().is_some()
}

/// `*` matches any run of characters.
fn glob(pat: &str, name: &str) -> bool {
    let parts: Vec<&str> = pat.split('*').collect();
    if parts.len() == 1 {
        return pat == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    if !name.ends_with(last) {
        return false;
    }
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(k) => rest = &rest[k + p.len()..],
            None => return false,
        }
    }
    true
}

/// A `fn` declaration.
struct FnDecl {
    name: String,
    pos: usize,
    /// From `fn` to the body's `{` (or the `;`), whitespace collapsed.
    sig: String,
    body: Option<(usize, usize)>,
    is_test: bool,
}

/// One source file, indexed.
struct SrcFile {
    path: String,
    raw: String,
    code: String,
    prose: String,
    fns: Vec<FnDecl>,
    /// Inline `mod name { … }`: name and span.
    inline_mods: Vec<(String, usize, usize)>,
    /// `mod name;` with the path it resolves to.
    child_files: Vec<String>,
    /// `impl … Type { … }`: type name and span.
    impls: Vec<(String, usize, usize)>,
}

impl SrcFile {
    fn new(path: &str, raw: &str) -> SrcFile {
        let (code, prose) = mask(raw);
        let b = code.as_bytes();
        let mut fns = Vec::new();
        for k in keyword_positions(&code, "fn") {
            let Some((name, mut j)) = ident_at(&code, k + 2) else {
                continue;
            };
            let (mut depth, mut body) = (0i32, None);
            while j < b.len() {
                match b[j] {
                    b'(' | b'[' => depth += 1,
                    b')' | b']' => depth -= 1,
                    b';' if depth == 0 => break,
                    b'{' if depth == 0 => {
                        body = matching_brace(&code, j).map(|e| (j, e));
                        break;
                    }
                    _ => {}
                }
                j += 1;
            }
            let sig = code[k..j.min(b.len())]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            fns.push(FnDecl {
                name: name.to_string(),
                pos: k,
                sig,
                body,
                is_test: has_test_attr(&code, k),
            });
        }
        let mut inline_mods = Vec::new();
        let mut child_files = Vec::new();
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        for k in keyword_positions(&code, "mod") {
            let Some((name, j)) = ident_at(&code, k + 3) else {
                continue;
            };
            let next = code[j..].trim_start();
            if next.starts_with('{') {
                let open = j + code[j..].find('{').unwrap();
                if let Some(close) = matching_brace(&code, open) {
                    inline_mods.push((name.to_string(), open, close));
                }
            } else if next.starts_with(';') {
                // `#[path = "…"]` on the lines just above wins.
                let above = &raw[raw[..k].rfind("\n\n").unwrap_or(0)..k];
                let explicit = above
                    .rfind("#[path = \"")
                    .and_then(|p| above[p + 10..].split('"').next());
                match explicit {
                    Some(p) => child_files.push(normalize(&format!("{dir}/{p}"))),
                    None => {
                        child_files.push(format!("{dir}/{name}.rs"));
                        child_files.push(format!("{dir}/{name}/mod.rs"));
                    }
                }
            }
        }
        let mut impls = Vec::new();
        for k in keyword_positions(&code, "impl") {
            let line_start = code[..k].rfind('\n').map_or(0, |n| n + 1);
            let lead = code[line_start..k].trim();
            if !(lead.is_empty() || lead == "unsafe") {
                continue; // `impl Trait` in a type, not an impl block
            }
            let Some(open) = code[k..].find('{').map(|n| k + n) else {
                continue;
            };
            let Some(close) = matching_brace(&code, open) else {
                continue;
            };
            if let Some(ty) = impl_type(&code[k + 4..open]) {
                impls.push((ty, open, close));
            }
        }
        SrcFile {
            path: path.to_string(),
            raw: raw.to_string(),
            code,
            prose,
            fns,
            inline_mods,
            child_files,
            impls,
        }
    }

    fn body_text(&self, f: &FnDecl) -> &str {
        f.body.map_or("", |(s, e)| &self.prose[s..=e])
    }

    /// `text` plus the bodies of the fns of this file it names (one level).
    fn with_callees(&self, code_span: (usize, usize), skip: &str) -> String {
        let mut out = self.prose[code_span.0..code_span.1].to_string();
        let names: BTreeSet<&str> = self.fns.iter().map(|f| f.name.as_str()).collect();
        let mut seen = BTreeSet::new();
        let code = &self.code[code_span.0..code_span.1];
        let b = code.as_bytes();
        let mut k = 0;
        while k < b.len() {
            if is_ident(b[k]) && (k == 0 || !is_ident(b[k - 1])) {
                let end = k + b[k..].iter().take_while(|&&c| is_ident(c)).count();
                let w = &code[k..end];
                if w != skip && names.contains(w) && seen.insert(w) {
                    for f in self.fns.iter().filter(|f| f.name == w) {
                        out.push('\n');
                        out.push_str(self.body_text(f));
                    }
                }
                k = end;
            } else {
                k += 1;
            }
        }
        out
    }
}

/// Whether the attributes just above the `fn` at `pos` include `#[test]`.
fn has_test_attr(code: &str, pos: usize) -> bool {
    let line_start = code[..pos].rfind('\n').map_or(0, |n| n + 1);
    let mut attrs = String::new();
    for line in code[..line_start].lines().rev().take(12) {
        let t = line.trim();
        if t.is_empty() {
            continue; // a comment, blanked
        }
        if !t.starts_with('#') && (t.ends_with('}') || t.ends_with(';') || t.ends_with('{')) {
            break;
        }
        attrs.push_str(t);
    }
    attrs
        .split_whitespace()
        .collect::<String>()
        .contains("#[test]")
}

/// The self type of an impl header (the text between `impl` and `{`).
fn impl_type(header: &str) -> Option<String> {
    let mut h = header.trim();
    if h.starts_with('<') {
        let mut depth = 0;
        for (k, c) in h.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        h = &h[k + 1..];
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(k) = h.rfind(" for ") {
        h = &h[k + 5..];
    }
    let h = h
        .trim()
        .trim_start_matches('&')
        .trim_start_matches("dyn ")
        .trim();
    let path: String = h
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    path.rsplit("::")
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn normalize(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

/// Variants of the enum whose body `{ … }` starts at `open` (masked code).
fn enum_variants(code: &str, open: usize) -> Vec<String> {
    let Some(close) = matching_brace(code, open) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut depth = 0;
    for line in code[open + 1..close].lines() {
        let t = line.trim();
        if depth == 0 && !t.starts_with('#') {
            let name: String = t
                .chars()
                .take_while(|&c| c.is_alphanumeric() || c == '_')
                .collect();
            let rest = t[name.len()..].trim_start();
            if is_camel(&name)
                && (rest.is_empty()
                    || rest.starts_with('{')
                    || rest.starts_with('(')
                    || rest.starts_with(',')
                    || rest.starts_with('='))
            {
                out.push(name);
            }
        }
        for c in t.bytes() {
            match c {
                b'{' | b'(' => depth += 1,
                b'}' | b')' => depth -= 1,
                _ => {}
            }
        }
    }
    out
}

// ---- the index ---------------------------------------------------------------------------------

/// Where a test lives.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TestLoc {
    /// A unit test in src/, with its module path (`["heap", "tests"]`).
    Unit(Vec<String>),
    /// A test of a `[[test]]` target.
    Target(String),
}

struct Test {
    name: String,
    loc: TestLoc,
    file: String,
    line: usize,
    /// What the test's body says (see the top of this file).
    body: String,
}

struct Target {
    path: String,
    harness: bool,
}

struct Index {
    files: Vec<SrcFile>,
    targets: BTreeMap<String, Target>,
    externals: BTreeSet<String>,
    mutants: Vec<String>,
    mutants_found: bool,
    tests: Vec<Test>,
    /// Module paths of src/ (files and inline modules).
    modules: Vec<(Vec<String>, usize, (usize, usize))>,
    /// Structs, enums, variants, traits, types of src/.
    items: BTreeSet<String>,
    /// Type → fns of its impls, in src/.
    impl_fns: BTreeMap<String, BTreeSet<String>>,
    cli: BTreeSet<String>,
}

fn file_module(path: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix("src/")?.strip_suffix(".rs")?;
    if rest.starts_with("bin/") {
        return None;
    }
    let mut segs: Vec<String> = rest.split('/').map(str::to_string).collect();
    if matches!(
        segs.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        segs.pop();
    }
    Some(segs)
}

/// The `[[test]]` targets, and the crates a path may start with (dependencies, `std`, …;
/// not the package itself).
fn parse_cargo(toml: &str) -> (BTreeMap<String, Target>, BTreeSet<String>) {
    let mut targets = BTreeMap::new();
    let mut externals: BTreeSet<String> = ["std", "core", "alloc"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut section = String::new();
    let mut package = String::new();
    let mut cur: Option<(Option<String>, Option<String>, bool)> = None;
    let mut flush = |cur: &mut Option<(Option<String>, Option<String>, bool)>| {
        if let Some((Some(name), path, harness)) = cur.take() {
            let path = path.unwrap_or_else(|| format!("tests/{name}.rs"));
            targets.insert(name, Target { path, harness });
        }
    };
    for line in toml.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            flush(&mut cur);
            section = t.to_string();
            if t == "[[test]]" {
                cur = Some((None, None, true));
            }
            continue;
        }
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim().trim_matches('"').to_string());
        if section == "[package]" && k == "name" {
            package = v.replace('-', "_");
        }
        if section.ends_with("dependencies]") && !t.starts_with('#') {
            externals.insert(k.replace('-', "_"));
        }
        if let Some(c) = cur.as_mut() {
            match k {
                "name" => c.0 = Some(v),
                "path" => c.1 = Some(v),
                "harness" => c.2 = v != "false",
                _ => {}
            }
        }
    }
    flush(&mut cur);
    externals.remove(&package);
    (targets, externals)
}

impl Index {
    fn new(p: &Project) -> Index {
        let files: Vec<SrcFile> = p
            .files
            .iter()
            .map(|(path, t)| SrcFile::new(path, t))
            .collect();
        let (targets, externals) = parse_cargo(&p.cargo_toml);
        let mut ix = Index {
            files,
            targets,
            externals,
            mutants: Vec::new(),
            mutants_found: false,
            tests: Vec::new(),
            modules: Vec::new(),
            items: BTreeSet::new(),
            impl_fns: BTreeMap::new(),
            cli: BTreeSet::new(),
        };
        ix.index_src();
        ix.index_targets();
        ix
    }

    fn file(&self, path: &str) -> Option<&SrcFile> {
        self.files.iter().find(|f| f.path == path)
    }

    fn index_src(&mut self) {
        for (fi, f) in self.files.iter().enumerate() {
            let Some(base) = file_module(&f.path) else {
                if f.path.starts_with("src/bin/") {
                    if let Some(k) = f.code.find("Subcommand)]") {
                        if let Some(open) = f.code[k..].find('{').map(|n| k + n) {
                            for v in enum_variants(&f.code, open) {
                                self.cli.insert(kebab(&v));
                            }
                        }
                    }
                }
                continue;
            };
            self.modules.push((base.clone(), fi, (0, f.code.len())));
            for (name, s, e) in &f.inline_mods {
                // Enclosing inline modules, outermost first.
                let mut path = base.clone();
                for (outer, os, oe) in &f.inline_mods {
                    if os < s && e < oe {
                        path.push(outer.clone());
                    }
                }
                path.push(name.clone());
                self.modules.push((path, fi, (*s, *e)));
            }
            for kw in ["struct", "enum", "trait", "type", "union"] {
                for k in keyword_positions(&f.code, kw) {
                    if let Some((name, j)) = ident_at(&f.code, k + kw.len()) {
                        self.items.insert(name.to_string());
                        if kw == "enum" {
                            if let Some(open) = f.code[j..].find('{').map(|n| j + n) {
                                let vs = enum_variants(&f.code, open);
                                if f.path == "src/mutant.rs" && name == "Mutant" {
                                    self.mutants = vs.clone();
                                    self.mutants_found = true;
                                }
                                self.items.extend(vs);
                            }
                        }
                    }
                }
            }
            for (ty, s, e) in &f.impls {
                let set = self.impl_fns.entry(ty.clone()).or_default();
                for d in f.fns.iter().filter(|d| d.pos > *s && d.pos < *e) {
                    set.insert(d.name.clone());
                }
            }
            for d in f.fns.iter().filter(|d| d.is_test) {
                let mut module = base.clone();
                for (name, s, e) in &f.inline_mods {
                    if *s < d.pos && d.pos < *e {
                        module.push(name.clone());
                    }
                }
                let body = f.with_callees(d.body.map_or((0, 0), |(s, e)| (s, e + 1)), &d.name);
                self.tests.push(Test {
                    name: d.name.clone(),
                    loc: TestLoc::Unit(module),
                    file: f.path.clone(),
                    line: line_of(&f.raw, d.pos),
                    body,
                });
            }
        }
    }

    fn index_targets(&mut self) {
        let mut found = Vec::new();
        for (name, t) in &self.targets {
            let Some(main) = self.file(&t.path) else {
                continue;
            };
            if t.harness {
                let mut todo = vec![main.path.clone()];
                let mut done = BTreeSet::new();
                while let Some(p) = todo.pop() {
                    let Some(f) = self.file(&p) else { continue };
                    if !done.insert(p) {
                        continue;
                    }
                    todo.extend(f.child_files.iter().cloned());
                    for d in f.fns.iter().filter(|d| d.is_test) {
                        let span = d.body.map_or((0, 0), |(s, e)| (s, e + 1));
                        found.push(Test {
                            name: d.name.clone(),
                            loc: TestLoc::Target(name.clone()),
                            file: f.path.clone(),
                            line: line_of(&f.raw, d.pos),
                            body: f.with_callees(span, &d.name),
                        });
                    }
                }
            } else if let Some((s, e)) = main
                .fns
                .iter()
                .find(|d| d.name == "main")
                .and_then(|d| d.body)
            {
                // Registered names: snake_case string literals in `main`.
                let mut lits = Vec::new();
                let b = main.code.as_bytes();
                let mut k = s;
                while k < e {
                    if b[k] == b'"' {
                        let end = main.code[k + 1..].find('"').map_or(e, |n| k + 1 + n);
                        let lit = &main.raw[k + 1..end];
                        if is_snake_or_glob(lit)
                            && !lit.contains('*')
                            && lit.contains('_')
                            && lit != name
                        {
                            lits.push((lit.to_string(), k, end + 1));
                        }
                        k = end + 1;
                    } else {
                        k += 1;
                    }
                }
                for (i, (lit, ls, _)) in lits.iter().enumerate() {
                    let from = if i == 0 { s } else { lits[i - 1].2 };
                    let to = lits.get(i + 1).map_or(e, |l| l.1);
                    found.push(Test {
                        name: lit.clone(),
                        loc: TestLoc::Target(name.clone()),
                        file: main.path.clone(),
                        line: line_of(&main.raw, *ls),
                        body: main.with_callees((from, to), "main"),
                    });
                }
            }
        }
        self.tests.extend(found);
    }

    /// Tests matching `pat` (a name or glob) at `loc`: a target, a module path suffix, or
    /// anywhere.
    fn find_tests(&self, pat: &str, loc: Option<&TestLoc>) -> Vec<&Test> {
        self.tests
            .iter()
            .filter(|t| glob(pat, &t.name))
            .filter(|t| match (loc, &t.loc) {
                (None, _) => true,
                (Some(TestLoc::Target(a)), TestLoc::Target(b)) => a == b,
                (Some(TestLoc::Unit(want)), TestLoc::Unit(have)) => have.ends_with(want),
                _ => false,
            })
            .collect()
    }

    fn modules_ending(&self, segs: &[String]) -> Vec<&(Vec<String>, usize, (usize, usize))> {
        self.modules
            .iter()
            .filter(|(p, _, _)| !segs.is_empty() && p.ends_with(segs))
            .collect()
    }

    fn src_fns(&self, name: &str) -> Vec<(&SrcFile, &FnDecl)> {
        self.files
            .iter()
            .filter(|f| f.path.starts_with("src/"))
            .flat_map(|f| {
                f.fns
                    .iter()
                    .filter(move |d| d.name == name)
                    .map(move |d| (f, d))
            })
            .collect()
    }
}

fn kebab(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

// ---- the docs ------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    Kept,
    Checks,
    Mutants,
}

struct Row {
    line: usize,
    id: String,
    cells: Vec<(Col, String)>,
}

/// Splits a table line on `|` outside backticks; `None` if it is not a table line.
fn split_row(line: &str) -> Option<Vec<String>> {
    let t = line.trim();
    if !t.starts_with('|') {
        return None;
    }
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut in_tick = false;
    for c in t[1..].chars() {
        match c {
            '`' => {
                in_tick = !in_tick;
                cur.push(c);
            }
            '|' if !in_tick => cells.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        cells.push(cur.trim().to_string());
    }
    Some(cells)
}

fn parse_rows(docs: &str, problems: &mut Vec<Problem>) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut header: Option<(usize, Vec<(usize, Col)>)> = None;
    for (n, line) in docs.lines().enumerate() {
        let n = n + 1;
        let Some(cells) = split_row(line) else {
            header = None;
            continue;
        };
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':' || ch == ' '))
        {
            continue;
        }
        match &header {
            None => {
                let low: Vec<String> = cells.iter().map(|c| c.to_lowercase()).collect();
                let find = |p: &str| low.iter().position(|c| c.starts_with(p));
                let (id, kept, checks, muts) =
                    (find("id"), find("kept"), find("check"), find("mutant"));
                match (id, kept, checks, muts) {
                    (Some(0), Some(k), Some(c), Some(m)) => {
                        header =
                            Some((n, vec![(k, Col::Kept), (c, Col::Checks), (m, Col::Mutants)]))
                    }
                    _ => {
                        // Another kind of table: skip it, but say so if it looks like ours.
                        if id == Some(0) {
                            problems.push(Problem {
                                file: DOCS_PATH.into(),
                                line: n,
                                what: "a table with an `id` column lacks `kept in`, `checks` \
                                       or `mutant` columns"
                                    .into(),
                            });
                        }
                        header = Some((n, Vec::new()));
                    }
                }
            }
            Some((_, cols)) if !cols.is_empty() => {
                let id = cells[0].clone();
                let cells = cols
                    .iter()
                    .map(|&(k, col)| (col, cells.get(k).cloned().unwrap_or_default()))
                    .collect();
                rows.push(Row { line: n, id, cells });
            }
            Some(_) => {}
        }
    }
    rows
}

/// Backticked spans of a cell.
fn ticks(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.trim().to_string())
        .collect()
}

fn parse_id(s: &str) -> Option<(char, u32)> {
    let b = s.as_bytes();
    if (2..=3).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b[1..].iter().all(u8::is_ascii_digit)
    {
        Some((b[0] as char, s[1..].parse().ok()?))
    } else {
        None
    }
}

// ---- ids in the code -------------------------------------------------------------------------

/// The id at byte `k` of `line` (with word boundaries) and its end.
fn id_at(line: &str, k: usize) -> Option<(String, usize)> {
    let b = line.as_bytes();
    if k > 0 && is_ident(b[k - 1]) {
        return None;
    }
    let len = b[k..].iter().take_while(|&&c| is_ident(c)).count();
    let word = &line[k..k + len];
    parse_id(word).map(|_| (word.to_string(), k + len))
}

/// `X1-X3`, `X1–X3`, `X1..X3` after an id ending at `end`: the ids in the range.
fn range_after(line: &str, first: &str, end: usize) -> Vec<String> {
    let rest = &line[end..];
    let skip = ["..", "-", "–"]
        .iter()
        .find(|s| rest.starts_with(**s))
        .map(|s| s.len());
    let Some(skip) = skip else {
        return vec![first.to_string()];
    };
    match (
        parse_id(first),
        id_at(line, end + skip).and_then(|(w, _)| parse_id(&w)),
    ) {
        (Some((a, from)), Some((b, to))) if a == b && from <= to => {
            (from..=to).map(|n| format!("{a}{n}")).collect()
        }
        _ => vec![first.to_string()],
    }
}

/// Every id the line names, by the forms at the top of this file.
fn ids_in_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = line.to_ascii_lowercase();
    // `invariant X1`, `Invariants (X1)`.
    for (k, _) in lower.match_indices("invariant") {
        if k > 0 && is_ident(lower.as_bytes()[k - 1]) {
            continue;
        }
        let mut j = k + "invariant".len();
        if lower[j..].starts_with('s') {
            j += 1;
        }
        let rest = &line[j..];
        let trimmed = rest.trim_start_matches([' ', '(']);
        if trimmed.len() == rest.len() {
            continue; // `invariants.md`, `invariantly`
        }
        let at = j + rest.len() - trimmed.len();
        if let Some((id, end)) = id_at(line, at) {
            out.extend(range_after(line, &id, end));
        }
    }
    // `(X1)`, `(X1-X3)`, in a comment.
    let comment = line.find("//").unwrap_or(line.len());
    for (k, _) in line[comment..]
        .match_indices('(')
        .map(|(k, c)| (k + comment, c))
    {
        if let Some((id, end)) = id_at(line, k + 1) {
            let ids = range_after(line, &id, end);
            let last_end = line[end..].find(')').map(|n| end + n);
            if last_end.is_some_and(|e| line[end..e].len() <= 6) {
                out.extend(ids);
            }
        }
    }
    // Comment bullets and `/// X1:`.
    let t = line.trim_start();
    for lead in ["//! ", "/// ", "// "] {
        if let Some(rest) = t.strip_prefix(lead) {
            let start = line.len() - rest.len();
            if rest.starts_with("* ") {
                if let Some((id, _)) = id_at(line, start + 2) {
                    out.push(id);
                }
            } else if let Some((id, end)) = id_at(line, start) {
                if line[end..].starts_with(':') {
                    out.push(id);
                }
            }
            break;
        }
    }
    out.sort();
    out.dedup();
    out
}

// ---- the checker ---------------------------------------------------------------------------------

/// A reference, resolved: `Err` says why it does not resolve; `Ok` carries the tests it
/// names (if it names tests).
type Resolved<'a> = Result<Vec<&'a Test>, String>;

impl Index {
    fn resolve(&self, s: &str, col: Col) -> Resolved<'_> {
        let ok = Ok(Vec::new());
        if let Some(cmd) = s.strip_prefix("mapheap ") {
            let cmd = cmd.split_whitespace().next().unwrap_or("");
            return if self.cli.contains(cmd) {
                ok
            } else {
                Err(format!("no subcommand `{cmd}` in the CLI (src/bin/)"))
            };
        }
        // `target: test` or `Variant: message`.
        if let Some((head, tail)) = s.split_once(": ") {
            let (head, tail) = (head.trim(), tail.trim());
            if self.targets.contains_key(head) {
                return self.tests_in(tail, Some(&TestLoc::Target(head.into())), s);
            }
            if is_camel(head) {
                if !self.items.contains(head) {
                    return Err(format!("no item `{head}` in src/"));
                }
                let quoted = format!("\"{tail}\"");
                let found = self
                    .files
                    .iter()
                    .any(|f| f.path.starts_with("src/") && f.raw.contains(&quoted));
                return if found {
                    ok
                } else {
                    Err(format!("no string {quoted} in src/ (for `{head}`)"))
                };
            }
            return Err(format!("unrecognised reference form `{s}`"));
        }
        // `name(args)`.
        let (core, args) = match s.split_once('(') {
            Some((c, a)) => (c.trim(), Some(a.trim_end_matches(')').trim())),
            None => (s, None),
        };
        if let Some((file, item)) = core.split_once(".rs") {
            let path = format!("src/{file}.rs");
            let Some(f) = self.file(&path) else {
                return Err(format!("no file {path}"));
            };
            let item = item.trim_start_matches("::");
            if !item.is_empty() && !f.fns.iter().any(|d| d.name == item) {
                return Err(format!("no fn `{item}` in {path}"));
            }
            return ok;
        }
        if core.contains("::") {
            let segs: Vec<String> = core.split("::").map(str::to_string).collect();
            let first = segs[0].as_str();
            let last = segs.last().unwrap().as_str();
            if self.targets.contains_key(first) {
                return self.tests_in(last, Some(&TestLoc::Target(first.into())), s);
            }
            if self.externals.contains(first) {
                return ok;
            }
            if is_camel(first) {
                if !self.items.contains(first) {
                    return Err(format!("no type `{first}` in src/"));
                }
                let fns = self.impl_fns.get(first);
                for member in last.split('/') {
                    let known =
                        fns.is_some_and(|f| f.contains(member)) || self.items.contains(member);
                    if !known {
                        return Err(format!("no fn `{member}` in an impl of `{first}` in src/"));
                    }
                }
                return self.check_args(last, args, s);
            }
            // A module path.
            if !self.modules_ending(&segs).is_empty() {
                return ok;
            }
            let parent = &segs[..segs.len() - 1];
            if self.modules_ending(parent).is_empty() {
                return Err(format!("no module `{}` in src/", parent.join("::")));
            }
            if col == Col::Kept {
                let has = self.modules_ending(parent).iter().any(|(_, fi, (a, b))| {
                    self.files[*fi]
                        .fns
                        .iter()
                        .any(|d| d.name == last && d.pos > *a && d.pos < *b)
                });
                return if has {
                    self.check_args(last, args, s)
                } else {
                    Err(format!("no fn `{last}` in module `{}`", parent.join("::")))
                };
            }
            return self.tests_in(last, Some(&TestLoc::Unit(parent.to_vec())), s);
        }
        if self.targets.contains_key(core) {
            return ok;
        }
        if is_camel(core) {
            return if col == Col::Mutants {
                if self.mutants.iter().any(|m| m == core) {
                    ok
                } else {
                    Err(format!(
                        "`{core}` is not a variant of `enum Mutant` in src/mutant.rs"
                    ))
                }
            } else if self.items.contains(core) {
                ok
            } else {
                Err(format!(
                    "no struct, enum, variant, trait or type `{core}` in src/"
                ))
            };
        }
        if is_snake_or_glob(core) {
            if col == Col::Kept {
                return if self.src_fns(core).is_empty() {
                    Err(format!("no fn `{core}` in src/"))
                } else {
                    self.check_args(core, args, s)
                };
            }
            if core.contains('*') {
                return Err(format!(
                    "the glob `{core}` names no target: write `target::{core}` or `target: {core}`"
                ));
            }
            return self.tests_in(core, None, s);
        }
        Err(format!("unrecognised reference form `{s}`"))
    }

    fn tests_in(&self, pat: &str, loc: Option<&TestLoc>, whole: &str) -> Resolved<'_> {
        if !is_snake_or_glob(pat) {
            return Err(format!("unrecognised test name `{pat}` in `{whole}`"));
        }
        let found = self.find_tests(pat, loc);
        if found.is_empty() {
            let where_ = match loc {
                None => "in any target or src/".to_string(),
                Some(TestLoc::Target(t)) => format!("in target `{t}`"),
                Some(TestLoc::Unit(m)) => format!("in a src/ module `…{}`", m.join("::")),
            };
            let near: Vec<String> = self
                .find_tests(pat, None)
                .iter()
                .map(|t| format!("{}:{}", t.file, t.line))
                .collect();
            let hint = if near.is_empty() {
                String::new()
            } else {
                format!(" (it is at {})", near.join(", "))
            };
            return Err(format!("no test `{pat}` {where_}{hint}"));
        }
        Ok(found)
    }

    fn check_args(&self, name: &str, args: Option<&str>, whole: &str) -> Resolved<'_> {
        let Some(args) = args else {
            return Ok(Vec::new());
        };
        let want: String = args.split_whitespace().collect::<Vec<_>>().join(" ");
        if self
            .src_fns(name)
            .iter()
            .any(|(_, d)| d.sig.contains(&want))
        {
            Ok(Vec::new())
        } else {
            Err(format!(
                "no fn `{name}` whose signature contains `{want}` (for `{whole}`)"
            ))
        }
    }
}

/// Every problem of the project, sorted.
/// What the checker found: the problems (sorted), a one-line summary, and how each
/// reference resolved (printed with `DOCS_INVARIANTS_VERBOSE=1`).
struct Outcome {
    problems: Vec<Problem>,
    summary: String,
    trace: Vec<String>,
}

fn check(p: &Project) -> Outcome {
    let ix = Index::new(p);
    let mut problems = Vec::new();
    let mut trace = Vec::new();
    let at_docs = |line: usize, what: String| Problem {
        file: DOCS_PATH.into(),
        line,
        what,
    };
    let rows = parse_rows(&p.docs, &mut problems);
    if rows.is_empty() {
        problems.push(at_docs(1, "no invariant rows found".into()));
    }
    if !ix.mutants_found {
        problems.push(Problem {
            file: "src/mutant.rs".into(),
            line: 1,
            what: "no `enum Mutant` found".into(),
        });
    }

    // Row ids: well-formed and unique.
    let mut by_id: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        if parse_id(&r.id).is_none() {
            problems.push(at_docs(
                r.line,
                format!("row id `{}` is not an invariant id (like A1)", r.id),
            ));
        }
        if let Some(first) = by_id.insert(&r.id, r.line) {
            problems.push(at_docs(
                r.line,
                format!(
                    "row {}: a second row for {} (first at line {first})",
                    r.id, r.id
                ),
            ));
        }
    }

    // (a) ids named in the code.
    let mut ids_seen = 0;
    let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
    for f in &ix.files {
        for (n, line) in f.raw.lines().enumerate() {
            for id in ids_in_line(line) {
                ids_seen += 1;
                if !by_id.contains_key(id.as_str()) && reported.insert((f.path.clone(), id.clone()))
                {
                    problems.push(Problem {
                        file: f.path.clone(),
                        line: n + 1,
                        what: format!("invariant {id} is named here but has no row in {DOCS_PATH}"),
                    });
                }
            }
        }
    }

    // (b), (c) every reference of every row; (e) each clause of the mutant column.
    let mut refs = 0;
    let mut in_rows: BTreeSet<String> = BTreeSet::new();
    let mut named_tests: BTreeSet<(String, usize)> = BTreeSet::new();
    for r in &rows {
        for (col, cell) in &r.cells {
            for s in ticks(cell) {
                refs += 1;
                let col_name = match col {
                    Col::Kept => "kept in",
                    Col::Checks => "checks",
                    Col::Mutants => "mutant column",
                };
                match ix.resolve(&s, *col) {
                    Err(e) => {
                        problems.push(at_docs(r.line, format!("row {} ({col_name}): {e}", r.id)))
                    }
                    Ok(tests) => {
                        named_tests.extend(tests.iter().map(|t| (t.file.clone(), t.line)));
                        let to: Vec<String> = tests
                            .iter()
                            .map(|t| format!("{}:{}", t.file, t.line))
                            .collect();
                        trace.push(format!(
                            "{} {col_name}: `{s}` -> {}",
                            r.id,
                            if to.is_empty() {
                                "ok".into()
                            } else {
                                to.join(" ")
                            }
                        ));
                    }
                }
                if *col == Col::Mutants && ix.mutants.contains(&s) {
                    in_rows.insert(s.clone());
                }
            }
            if *col != Col::Mutants {
                continue;
            }
            for clause in cell.split(';').flat_map(|c| c.split("(also")) {
                let Some((before, after)) =
                    clause.split_once('→').or_else(|| clause.split_once("->"))
                else {
                    continue;
                };
                let named: Vec<String> = ticks(before)
                    .into_iter()
                    .filter(|m| ix.mutants.contains(m))
                    .collect();
                let mut tests: Vec<&Test> = Vec::new();
                let mut names = Vec::new();
                for s in ticks(after) {
                    if let Ok(ts) = ix.resolve(&s, Col::Mutants) {
                        let ts: Vec<&Test> = ts
                            .into_iter()
                            .filter(|t| t.name.contains("mutant"))
                            .collect();
                        if !ts.is_empty() {
                            names.push(format!("`{s}`"));
                            tests.extend(ts);
                        }
                    }
                }
                if tests.is_empty() {
                    continue;
                }
                for m in named {
                    if !tests.iter().any(|t| mentions(&t.body, &m)) {
                        problems.push(at_docs(
                            r.line,
                            format!(
                                "row {}: `{m}` → {} but none of those tests mentions `{m}`",
                                r.id,
                                names.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
    }

    // (f) every test that says it catches a mutant is named by a row.
    for t in ix.tests.iter().filter(|t| t.name.contains("mutant")) {
        if !named_tests.contains(&(t.file.clone(), t.line)) {
            let loc = match &t.loc {
                TestLoc::Target(n) => format!("`{n}: {}`", t.name),
                TestLoc::Unit(m) => format!("`{}::{}`", m.join("::"), t.name),
            };
            problems.push(Problem {
                file: t.file.clone(),
                line: t.line,
                what: format!(
                    "test {loc} has `mutant` in its name but no row of {DOCS_PATH} names it"
                ),
            });
        }
    }

    // (d) every mutant has a row and a test.
    let enum_line = ix
        .file("src/mutant.rs")
        .and_then(|f| f.raw.find("enum Mutant").map(|k| line_of(&f.raw, k)))
        .unwrap_or(1);
    for m in &ix.mutants {
        if !in_rows.contains(m) {
            problems.push(Problem {
                file: "src/mutant.rs".into(),
                line: enum_line,
                what: format!("mutant `{m}` is in no row's mutant column of {DOCS_PATH}"),
            });
        }
        let caught = ix
            .tests
            .iter()
            .any(|t| t.name.contains("mutant") && mentions(&t.body, m));
        if !caught {
            problems.push(Problem {
                file: "src/mutant.rs".into(),
                line: enum_line,
                what: format!(
                    "mutant `{m}`: no test with `mutant` in its name mentions it (Mutant::{m})"
                ),
            });
        }
    }

    problems.sort();
    problems.dedup();
    let summary =
        format!(
        "{} rows, {refs} references, {ids_seen} invariant ids in the code, {} mutants, {} tests \
         indexed ({} with `mutant` in the name), {} test targets",
        rows.len(),
        ix.mutants.len(),
        ix.tests.len(),
        ix.tests.iter().filter(|t| t.name.contains("mutant")).count(),
        ix.targets.len(),
    );
    Outcome {
        problems,
        summary,
        trace,
    }
}

#[test]
fn docs_invariants_match_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Outcome {
        problems,
        summary,
        trace,
    } = check(&Project::load(root));
    if std::env::var_os("DOCS_INVARIANTS_VERBOSE").is_some() {
        for t in &trace {
            println!("{t}");
        }
    }
    println!("checked {summary}");
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        panic!(
            "{} problem(s) between {DOCS_PATH} and the code:\n{}\n(the rules are at the top of {SELF_PATH})",
            problems.len(),
            list.join("\n")
        );
    }
}

// ---- the checker's own seeded errors -------------------------------------------------------------

#[cfg(test)]
mod synthetic {
    use super::*;

    const CARGO: &str = r#"
[package]
name = "demo"

[dependencies]
libc = "0.2"

[dev-dependencies]
loom = "0.7"

[[test]]
name = "loom_lock"
path = "models/loom_lock.rs"

[[test]]
name = "fork_heap"
path = "integration/fork_heap.rs"
harness = false
"#;

    const MUTANT_RS: &str = "\
/// Seeded bugs.
pub enum Mutant {
    /// One.
    Alpha = 1,
    /// Two.
    Beta,
}
";

    const WIDGET_RS: &str = r#"//! Widgets.
//!
//! Invariant W1: a widget is whole.
//! * W2 a widget's parts are listed.

pub struct Widget;

impl Widget {
    pub fn build(&self) {}
}

pub enum Violation {
    /// W1: broken.
    Broken { at: u64 },
}

fn describe() -> &'static str {
    "part missing"
}

#[cfg(test)]
mod tests {
    #[test]
    fn widgets_build() {}

    #[test]
    fn mutant_alpha_is_caught_by_build() {
        caught(Mutant::Alpha);
    }
}
"#;

    const LOOM_RS: &str = "\
#[path = \"common/world.rs\"]
mod world;

#[test]
fn mutant_beta_is_caught() {
    helper();
}

fn helper() {
    with(Mutant::Beta, || ());
}
";

    const WORLD_RS: &str = "\
#[test]
fn shared_world_test() {}
";

    const FORK_RS: &str = "\
fn main() {
    let mut s = Suite::new(\"fork_heap\");
    s.run(\"processes_agree\", agree);
    s.run(\"mutant_alpha_is_caught_across_processes\", || storm(Mutant::Alpha));
}

fn agree() {}
";

    const DOCS: &str = "\
# Invariants

| id | invariant | kept in | checks | mutant → test that catches it |
| --- | --- | --- | --- | --- |
| W1 | whole | `widget.rs`, `Widget::build` | `widget::tests::widgets_build`, `Broken: part missing`, `loom::cell::UnsafeCell` | `Alpha` → `widget::tests::mutant_alpha_is_caught_by_build`, `fork_heap: mutant_alpha_is_caught_across_processes` |
| W2 | listed | `describe`, `Widget` | `loom_lock`, `shared_world_test`, `fork_heap: processes_*` | `Beta` → `loom_lock::mutant_*` |
";

    fn project() -> Project {
        Project {
            cargo_toml: CARGO.into(),
            docs: DOCS.into(),
            files: vec![
                ("src/mutant.rs".into(), MUTANT_RS.into()),
                ("src/widget.rs".into(), WIDGET_RS.into()),
                ("models/loom_lock.rs".into(), LOOM_RS.into()),
                ("models/common/world.rs".into(), WORLD_RS.into()),
                ("integration/fork_heap.rs".into(), FORK_RS.into()),
            ],
        }
    }

    /// The problems of the synthetic project after `edit`, as text.
    fn problems_after(edit: impl FnOnce(&mut Project)) -> Vec<String> {
        let mut p = project();
        edit(&mut p);
        check(&p).problems.iter().map(ToString::to_string).collect()
    }

    fn replace(s: &mut String, from: &str, to: &str) {
        assert!(s.contains(from), "synthetic text lacks {from:?}");
        *s = s.replace(from, to);
    }

    fn file<'a>(p: &'a mut Project, path: &str) -> &'a mut String {
        &mut p.files.iter_mut().find(|(f, _)| f == path).unwrap().1
    }

    /// Each problem contains one of `needles`, and each needle is in some problem.
    fn assert_only(problems: &[String], needles: &[&str]) {
        let ok = problems.len() == needles.len()
            && needles
                .iter()
                .all(|n| problems.iter().any(|p| p.contains(n)));
        assert!(
            ok,
            "want problems containing {needles:#?}, got {problems:#?}"
        );
    }

    /// What (f) says when no row names loom_lock's mutant test any more.
    const LOOM_BETA_UNNAMED: &str =
        "models/loom_lock.rs:5: test `loom_lock: mutant_beta_is_caught` has `mutant` in its name but no row";

    fn assert_one(problems: &[String], needle: &str) {
        assert!(
            problems.len() == 1 && problems[0].contains(needle),
            "want exactly one problem containing {needle:?}, got {problems:#?}"
        );
    }

    #[test]
    fn the_synthetic_project_is_clean() {
        let p = problems_after(|_| {});
        assert!(p.is_empty(), "{p:#?}");
    }

    #[test]
    fn mutant_missing_row_is_caught() {
        let p = problems_after(|p| {
            replace(file(p, "src/widget.rs"), "Invariant W1:", "Invariant (W7):");
        });
        assert_one(
            &p,
            "src/widget.rs:3: invariant W7 is named here but has no row",
        );
    }

    #[test]
    fn mutant_missing_row_for_a_bullet_a_doc_label_or_a_range_is_caught() {
        let p = problems_after(|p| {
            replace(file(p, "src/widget.rs"), "* W2 a widget", "* W8 a widget");
            replace(file(p, "src/widget.rs"), "/// W1: broken", "/// W9: broken");
            file(p, "models/loom_lock.rs").push_str("// Checks invariants W1-W3 (W4).\n");
        });
        for id in ["W3", "W4", "W8", "W9"] {
            assert!(
                p.iter()
                    .any(|s| s.contains(&format!("invariant {id} is named"))),
                "{id}: {p:#?}"
            );
        }
        assert_eq!(p.len(), 4, "{p:#?}");
    }

    #[test]
    fn mutant_duplicate_row_is_caught() {
        let p = problems_after(|p| p.docs.push_str("| W2 | again | | | |\n"));
        assert_one(&p, "a second row for W2");
    }

    #[test]
    fn mutant_unknown_mutant_is_caught() {
        let p = problems_after(|p| replace(&mut p.docs, "`Beta` →", "`Gamma`, `Beta` →"));
        assert_one(
            &p,
            "row W2 (mutant column): `Gamma` is not a variant of `enum Mutant`",
        );
    }

    #[test]
    fn mutant_unknown_unit_test_is_caught() {
        let p = problems_after(|p| {
            replace(
                &mut p.docs,
                "widget::tests::widgets_build",
                "widget::tests::widgets_built",
            )
        });
        assert_one(
            &p,
            "row W1 (checks): no test `widgets_built` in a src/ module `…widget::tests`",
        );
    }

    #[test]
    fn mutant_test_in_the_wrong_module_is_caught() {
        let p = problems_after(|p| {
            replace(
                &mut p.docs,
                "widget::tests::widgets_build",
                "widget::other::widgets_build",
            )
        });
        assert_one(&p, "no module `widget::other` in src/");
    }

    #[test]
    fn mutant_unknown_registered_test_is_caught() {
        let p = problems_after(|p| {
            replace(
                &mut p.docs,
                "fork_heap: processes_*",
                "fork_heap: process_agree",
            )
        });
        assert_one(
            &p,
            "row W2 (checks): no test `process_agree` in target `fork_heap`",
        );
    }

    #[test]
    fn mutant_glob_matching_nothing_is_caught() {
        let p = problems_after(|p| {
            replace(
                &mut p.docs,
                "`loom_lock::mutant_*`",
                "`loom_lock::mutant_gamma_*`",
            )
        });
        assert_only(
            &p,
            &[
                "no test `mutant_gamma_*` in target `loom_lock`",
                LOOM_BETA_UNNAMED,
            ],
        );
    }

    #[test]
    fn mutant_test_of_another_target_is_caught() {
        let p = problems_after(|p| {
            replace(
                &mut p.docs,
                "`fork_heap: processes_*`",
                "`loom_lock::processes_agree`",
            )
        });
        assert_one(
            &p,
            "no test `processes_agree` in target `loom_lock` (it is at integration/fork_heap.rs:3)",
        );
    }

    #[test]
    fn mutant_bare_unknown_test_is_caught() {
        let p =
            problems_after(|p| replace(&mut p.docs, "`shared_world_test`", "`shared_word_test`"));
        assert_one(&p, "no test `shared_word_test` in any target or src/");
    }

    #[test]
    fn mutant_fn_without_test_attribute_is_not_a_test() {
        let p = problems_after(|p| replace(&mut p.docs, "`shared_world_test`", "`helper`"));
        assert_one(&p, "no test `helper`");
    }

    #[test]
    fn mutant_unknown_target_file_and_items_are_caught() {
        for (from, to, needle) in [
            ("`widget.rs`", "`gadget.rs`", "no file src/gadget.rs"),
            (
                "`Widget::build`",
                "`Widget::break`",
                "no fn `break` in an impl of `Widget`",
            ),
            (
                "`describe`, `Widget`",
                "`describe`, `Gadget`",
                "no struct, enum, variant, trait or type `Gadget`",
            ),
            ("`describe`", "`prescribe`", "no fn `prescribe` in src/"),
            (
                "`Broken: part missing`",
                "`Broken: part lost`",
                "no string \"part lost\" in src/",
            ),
            ("`loom_lock`, ", "`loom_locks`, ", "no test `loom_locks`"),
            (
                "`loom::cell::UnsafeCell`",
                "`gloom::cell::UnsafeCell`",
                "no module `gloom::cell` in src/",
            ),
            (
                "`loom_lock`, ",
                "`mapheap frobnicate`, ",
                "no subcommand `frobnicate`",
            ),
            (
                "`loom_lock`, ",
                "`a + b`, ",
                "unrecognised reference form `a + b`",
            ),
        ] {
            let p = problems_after(|p| replace(&mut p.docs, from, to));
            assert_one(&p, needle);
        }
    }

    #[test]
    fn mutant_glob_without_a_target_is_caught() {
        let p =
            problems_after(|p| replace(&mut p.docs, "`fork_heap: processes_*`", "`processes_*`"));
        assert_one(
            &p,
            "row W2 (checks): the glob `processes_*` names no target",
        );
    }

    #[test]
    fn mutant_test_no_row_names_is_caught() {
        let p = problems_after(|p| {
            file(p, "integration/fork_heap.rs").push_str(
                "fn other() {\n    s.run(\"mutant_beta_is_caught_too\", || storm(Mutant::Beta));\n}\n",
            );
            replace(
                file(p, "integration/fork_heap.rs"),
                "    s.run(\"processes_agree\", agree);\n",
                "    s.run(\"processes_agree\", agree);\n    s.run(\"mutant_beta_is_caught_too\", || storm(Mutant::Beta));\n",
            );
        });
        assert_one(
            &p,
            "integration/fork_heap.rs:4: test `fork_heap: mutant_beta_is_caught_too` has `mutant` in its name but no row",
        );
    }

    #[test]
    fn mutant_without_a_row_is_caught() {
        let p = problems_after(|p| {
            replace(&mut p.docs, "`Beta` → `loom_lock::mutant_*`", "the models")
        });
        assert_only(
            &p,
            &[
                "mutant `Beta` is in no row's mutant column",
                LOOM_BETA_UNNAMED,
            ],
        );
    }

    #[test]
    fn mutant_without_a_test_is_caught() {
        let p = problems_after(|p| {
            replace(
                file(p, "src/mutant.rs"),
                "    Beta,\n",
                "    Beta,\n    Gamma,\n",
            );
            replace(&mut p.docs, "`Beta` →", "`Beta`, `Gamma` →");
        });
        assert!(
            p.iter().any(
                |s| s.contains("mutant `Gamma`: no test with `mutant` in its name mentions it")
            ),
            "{p:#?}"
        );
        assert!(
            p.iter().any(|s| s.contains(
                "`Gamma` → `loom_lock::mutant_*` but none of those tests mentions `Gamma`"
            )),
            "{p:#?}"
        );
        assert_eq!(p.len(), 2, "{p:#?}");
    }

    #[test]
    fn mutant_test_that_only_names_the_mutant_in_a_comment_or_its_name_is_not_enough() {
        let p = problems_after(|p| {
            replace(
                file(p, "models/loom_lock.rs"),
                "with(Mutant::Beta, || ());",
                "// Mutant::Beta\n    with_beta();",
            );
        });
        assert!(
            p.iter().any(|s| s.contains("mutant `Beta`: no test")),
            "{p:#?}"
        );
    }

    #[test]
    fn mutant_row_pairing_a_mutant_with_another_mutants_test_is_caught() {
        let p = problems_after(|p| {
            replace(
                &mut p.docs,
                "`Alpha` → `widget::tests::mutant_alpha_is_caught_by_build`, `fork_heap: mutant_alpha_is_caught_across_processes`",
                "`Alpha` → `loom_lock::mutant_beta_is_caught`; named so (f) is content: \
                 `widget::tests::mutant_alpha_is_caught_by_build`, \
                 `fork_heap: mutant_alpha_is_caught_across_processes`",
            )
        });
        assert_one(&p, "row W1: `Alpha` → `loom_lock::mutant_beta_is_caught` but none of those tests mentions `Alpha`");
    }

    #[test]
    fn mutant_registered_test_body_is_its_window_of_main() {
        // The registered fork_heap test mentions Alpha in its closure; Beta is not in it.
        let p = problems_after(|p| {
            replace(
                &mut p.docs,
                "`Beta` → `loom_lock::mutant_*`",
                "`Beta` → `fork_heap: mutant_alpha_is_caught_across_processes`; see `loom_lock::mutant_*`",
            )
        });
        assert_one(
            &p,
            "`Beta` → `fork_heap: mutant_alpha_is_caught_across_processes` but none",
        );
    }

    #[test]
    fn ids_are_found_only_in_the_documented_forms() {
        assert_eq!(ids_in_line("//! Invariant B1: x"), ["B1"]);
        assert_eq!(ids_in_line("//! Invariant (L5): x"), ["L5"]);
        assert_eq!(ids_in_line("/// outlives the lock (invariant G1)."), ["G1"]);
        assert_eq!(ids_in_line("//! * A2 the chain"), ["A2"]);
        assert_eq!(ids_in_line("    /// A5: a list"), ["A5"]);
        assert_eq!(ids_in_line("// root check (R1) sees"), ["R1"]);
        assert_eq!(
            ids_in_line("// invariants S1-S3 and (T1..T2)"),
            ["S1", "S2", "S3", "T1", "T2"]
        );
        assert!(ids_in_line("let (a, b) = (u8, T1);").is_empty());
        assert!(ids_in_line("//! see docs/invariants.md A1").is_empty());
        assert!(ids_in_line("let s2 = s.clone(); // t0 (t1)").is_empty());
        assert!(ids_in_line("write!(f, \"A2 chain\")").is_empty());
    }

    #[test]
    fn masking_keeps_offsets_and_hides_strings_and_comments() {
        let src = "fn a() { let c = '{'; let s = \"}\"; /* { */ let r = r#\"}\"#; } // {\nfn b<'x>(v: &'x u8) {}";
        let (code, prose) = mask(src);
        assert_eq!(code.len(), src.len());
        let f = SrcFile::new("src/x.rs", src);
        let names: Vec<&str> = f.fns.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let (s, e) = f.fns[0].body.unwrap();
        assert_eq!(
            &src[s..=e],
            "{ let c = '{'; let s = \"}\"; /* { */ let r = r#\"}\"#; }"
        );
        assert!(prose.contains("\"}\"") && !prose.contains("/* {"));
        assert!(!code.contains("\"}\""));
    }

    #[test]
    fn globs_match_like_the_shell() {
        assert!(glob("mutant_*", "mutant_x"));
        assert!(glob("*_caught", "mutant_x_caught"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXcYb"));
        assert!(!glob("mutant_*", "a_mutant_x"));
        assert!(glob("exact", "exact") && !glob("exact", "exact2"));
    }
}
