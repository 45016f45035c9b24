//! docs/limits.md checked against the code: every constant of the library is either a
//! limit with a row, or listed as not a limit with a reason; every row names tests that
//! exist; every constant a row names exists.
//!
//! # Tables of docs/limits.md
//!
//! * a table whose header has the columns `limit`, `constant` and `tests` (by the header's
//!   first words) lists limits: in the `constant` cell every backticked SCREAMING_CASE span
//!   (optionally `module::NAME`) names a `const` of src/ (any visibility); the `tests` cell
//!   holds at least one backticked reference, each resolved like a `checks` reference of
//!   docs/invariants.md (main.rs) and naming at least one test;
//! * a table whose header starts with `constant` and has a `why` column lists constants
//!   that are not limits: one backticked name each, with a reason.
//!
//! # Constants of the code
//!
//! Every top-level `pub const` (or `pub(crate) const`) of src/, outside the tool modules
//! in [`TOOLS`] (their constants size the tools, not the heap), must appear in one of the
//! two tables, and every name in the second table must be such a constant.

use std::collections::BTreeSet;

use crate::index::Index;
use crate::project::Project;
use crate::rows::{ticks, Col};
use crate::source::mask;

pub const LIMITS_PATH: &str = "docs/limits.md";

/// Parts of src/ whose constants are not the library's: the stress tool, the benchmark,
/// the test support and seeded bugs, the progress bars, the CLI, and the tests.
pub const TOOLS: &[&str] = &[
    "src/stress/",
    "src/bench.rs",
    "src/watchdog.rs",
    "src/mutant.rs",
    "src/fault.rs",
    "src/progress.rs",
    "src/bin/",
    "src/limits_tests/",
];

/// `(file, line, name)` of every top-level `const` of `text` (`public` only: `pub const`,
/// `pub(crate) const`), comments and strings aside.
fn consts(text: &str, public: bool) -> Vec<(usize, String)> {
    let (code, _) = mask(text);
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let rest = if let Some(r) = line.strip_prefix("pub const ") {
            r
        } else if let Some(r) = line.strip_prefix("pub(crate) const ") {
            r
        } else if let Some(r) = line.strip_prefix("const ").filter(|_| !public) {
            r
        } else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && name != "fn" {
            out.push((n + 1, name));
        }
    }
    out
}

fn is_const_name(s: &str) -> bool {
    let last = s.rsplit("::").next().unwrap_or(s);
    last.len() > 1
        && last.starts_with(|c: char| c.is_ascii_uppercase())
        && last
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn split_row(line: &str) -> Option<Vec<String>> {
    let t = line.trim();
    let t = t.strip_prefix('|')?;
    let t = t.strip_suffix('|').unwrap_or(t);
    Some(t.split('|').map(|c| c.trim().to_string()).collect())
}

pub struct LimitRow {
    pub line: usize,
    pub limit: String,
    pub consts: Vec<String>,
    pub tests: Vec<String>,
}

pub struct Exempt {
    pub line: usize,
    pub name: String,
    pub why: String,
}

/// The two tables of the page (see the module doc).
pub fn parse(doc: &str) -> (Vec<LimitRow>, Vec<Exempt>) {
    let (mut rows, mut exempt) = (Vec::new(), Vec::new());
    // (column of constant, column of tests) of a limits table, or None for an exempt table.
    let mut header: Option<Option<(usize, usize)>> = None;
    let mut in_other = false;
    for (n, line) in doc.lines().enumerate() {
        let Some(cells) = split_row(line) else {
            header = None;
            in_other = false;
            continue;
        };
        if cells.iter().all(|c| c.chars().all(|ch| "-: ".contains(ch))) {
            continue;
        }
        if in_other {
            continue;
        }
        let Some(kind) = header else {
            let low: Vec<String> = cells.iter().map(|c| c.to_lowercase()).collect();
            let col = |w: &str| low.iter().position(|c| c.starts_with(w));
            header = match (col("limit"), col("constant"), col("tests"), col("why")) {
                (Some(0), Some(c), Some(t), _) => Some(Some((c, t))),
                (_, Some(0), _, Some(_)) => Some(None),
                _ => {
                    in_other = true;
                    None
                }
            };
            continue;
        };
        match kind {
            Some((c, t)) => rows.push(LimitRow {
                line: n + 1,
                limit: cells[0].clone(),
                consts: ticks(cells.get(c).map_or("", String::as_str))
                    .into_iter()
                    .filter(|s| is_const_name(s))
                    .map(|s| s.rsplit("::").next().unwrap_or(&s).to_string())
                    .collect(),
                tests: ticks(cells.get(t).map_or("", String::as_str)),
            }),
            None => exempt.push(Exempt {
                line: n + 1,
                name: ticks(&cells[0]).join(" "),
                why: cells[1..].join(" ").trim().to_string(),
            }),
        }
    }
    (rows, exempt)
}

/// Every problem between the page `doc` and the project `p`.
pub fn problems(p: &Project, doc: &str) -> Vec<String> {
    let ix = Index::new(p);
    let (rows, exempt) = parse(doc);
    let mut out = Vec::new();
    let at = |line: usize, what: String| format!("{LIMITS_PATH}:{line}: {what}");
    if rows.is_empty() {
        out.push(at(
            1,
            "no limits table (columns `limit`, `constant`, `tests`)".into(),
        ));
    }
    let library =
        |path: &str| path.starts_with("src/") && !TOOLS.iter().any(|t| path.starts_with(t));
    let mut public = Vec::new();
    let mut any: BTreeSet<String> = BTreeSet::new();
    for (path, text) in p.files.iter().filter(|(path, _)| path.starts_with("src/")) {
        any.extend(consts(text, false).into_iter().map(|(_, n)| n));
        if library(path) {
            public.extend(
                consts(text, true)
                    .into_iter()
                    .map(|(l, n)| (path.clone(), l, n)),
            );
        }
    }
    let in_rows: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.consts.iter().map(String::as_str))
        .collect();
    let exempted: BTreeSet<&str> = exempt.iter().map(|e| e.name.as_str()).collect();
    for (path, line, name) in &public {
        if !in_rows.contains(name.as_str()) && !exempted.contains(name.as_str()) {
            out.push(format!(
                "{path}:{line}: constant `{name}` is in no row of {LIMITS_PATH} (add a row for \
                 the limit it sets, with tests at, below and past it, or list it as not a \
                 limit, with the reason)"
            ));
        }
    }
    for r in &rows {
        for c in &r.consts {
            if !any.contains(c) {
                out.push(at(r.line, format!("`{c}` is not a constant of src/")));
            }
        }
        if r.tests.is_empty() {
            out.push(at(r.line, format!("the limit `{}` names no test", r.limit)));
        }
        for t in &r.tests {
            match ix.resolve(t, Col::Checks) {
                Err(e) => out.push(at(r.line, e)),
                Ok(ts) if ts.is_empty() => out.push(at(r.line, format!("`{t}` names no test"))),
                Ok(_) => {}
            }
        }
    }
    let public_names: BTreeSet<&str> = public.iter().map(|(_, _, n)| n.as_str()).collect();
    for e in &exempt {
        if !public_names.contains(e.name.as_str()) {
            out.push(at(
                e.line,
                format!("`{}` is not a public constant of the library", e.name),
            ));
        }
        if e.why.is_empty() {
            out.push(at(
                e.line,
                format!("`{}` is listed as not a limit without a reason", e.name),
            ));
        }
        if in_rows.contains(e.name.as_str()) {
            out.push(at(
                e.line,
                format!("`{}` is both a limit and not one", e.name),
            ));
        }
    }
    out
}

#[test]
fn every_constant_is_a_limit_with_tests_or_says_why_not() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join(LIMITS_PATH))
        .unwrap_or_else(|e| panic!("{LIMITS_PATH}: {e}"));
    let p = Project::load(root);
    let (rows, exempt) = parse(&doc);
    println!(
        "{} limit rows, {} constants that are not limits",
        rows.len(),
        exempt.len()
    );
    let found = problems(&p, &doc);
    assert!(
        found.is_empty(),
        "{} problem(s) between {LIMITS_PATH} and the code:\n  {}",
        found.len(),
        found.join("\n  ")
    );
}

#[cfg(test)]
mod synthetic {
    use super::*;

    const FORMAT_RS: &str = "\
/// Longest name.
pub const NAME_LEN: usize = 32;
/// A flag.
pub const FLAG: u64 = 1;
const PRIVATE_MASK: u64 = 7;
impl X { pub const ALL: u8 = 0; }
pub const fn helper() {}
#[cfg(test)]
mod tests {
    #[test]
    fn names_of_32_bytes() {}
}
";

    const DOC: &str = "\
| limit | value | constant | tests |
| --- | --- | --- | --- |
| name length | 32 | `NAME_LEN`, `PRIVATE_MASK` | `format::tests::names_of_32_bytes` |

| constant | why not a limit |
| --- | --- |
| `FLAG` | a flag bit |
";

    fn project(format_rs: &str) -> Project {
        Project {
            cargo_toml: "[package]\nname = \"demo\"\n".into(),
            docs: String::new(),
            files: vec![
                ("src/format.rs".into(), format_rs.into()),
                (
                    "src/stress/board.rs".into(),
                    "pub const TOOL_ONLY: u8 = 1;\n".into(),
                ),
            ],
        }
    }

    #[test]
    fn a_page_that_matches_checks_clean() {
        assert_eq!(problems(&project(FORMAT_RS), DOC), Vec::<String>::new());
        let (rows, exempt) = parse(DOC);
        assert_eq!(rows[0].consts, ["NAME_LEN", "PRIVATE_MASK"]);
        assert_eq!(
            (exempt[0].name.as_str(), exempt[0].why.as_str()),
            ("FLAG", "a flag bit")
        );
    }

    /// Each kind of gap is reported: a new constant with no row, a row naming a test or a
    /// constant that does not exist, a stale or unexplained exemption.
    #[test]
    fn each_gap_is_reported() {
        let one = |src: &str, doc: &str, want: &str| {
            let got = problems(&project(src), doc);
            assert!(
                got.len() == 1 && got[0].contains(want),
                "wanted one problem with {want:?}, got {got:?}"
            );
        };
        let grown = format!("{FORMAT_RS}pub const MAX_THINGS: u32 = 9;\n");
        one(&grown, DOC, "constant `MAX_THINGS` is in no row");
        one(
            FORMAT_RS,
            &DOC.replace("names_of_32_bytes", "names_of_33"),
            "no test",
        );
        one(
            FORMAT_RS,
            &DOC.replace("`PRIVATE_MASK`", "`GONE_MASK`"),
            "`GONE_MASK` is not a constant",
        );
        let flagless = FORMAT_RS.replace("/// A flag.\npub const FLAG: u64 = 1;\n", "");
        one(&flagless, DOC, "`FLAG` is not a public constant");
        one(
            FORMAT_RS,
            &DOC.replace(" a flag bit ", " "),
            "without a reason",
        );
        one(
            FORMAT_RS,
            &DOC.replace("`format::tests::names_of_32_bytes`", "none"),
            "names no test",
        );
    }
}
