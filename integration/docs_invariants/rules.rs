//! The rules (a)–(f) of the module doc of main.rs, applied to a project: every problem
//! found (where, and what), a one-line summary, and a trace of how each reference resolved.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::ids::{ids_in_line, parse_id};
use crate::index::{Index, Test, TestLoc};
use crate::project::{Project, DOCS_PATH};
use crate::rows::{parse_rows, ticks, Col};
use crate::source::{line_of, mentions};

/// One error: where, and what.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

/// What the checker found: the problems (sorted), a one-line summary, and how each
/// reference resolved (printed with `DOCS_INVARIANTS_VERBOSE=1`).
pub struct Outcome {
    pub problems: Vec<Problem>,
    pub summary: String,
    pub trace: Vec<String>,
}

/// Checks `p` by the rules (a)–(f).
pub fn check(p: &Project) -> Outcome {
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
