//! The index of the project: its source files, test targets, external crates, the variants
//! of `enum Mutant`, every test (unit tests of src/, `#[test]` fns of harness targets, the
//! names a `harness = false` target registers in `main`) with its body, and the modules,
//! items, impl fns and CLI subcommands of src/, with the lookups the resolver uses.

use std::collections::{BTreeMap, BTreeSet};

use crate::cargo::{parse_cargo, Target};
use crate::project::Project;
use crate::source::{glob, ident_at, is_ident, is_snake_or_glob, keyword_positions, line_of};
use crate::src_file::{enum_variants, FnDecl, SrcFile};

/// Where a test lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TestLoc {
    /// A unit test in src/, with its module path (`["heap", "tests"]`).
    Unit(Vec<String>),
    /// A test of a `[[test]]` target.
    Target(String),
}

pub struct Test {
    pub name: String,
    pub loc: TestLoc,
    pub file: String,
    pub line: usize,
    /// What the test's body says (see "# Mutants" in the module doc of main.rs).
    pub body: String,
}

pub struct Index {
    pub files: Vec<SrcFile>,
    pub targets: BTreeMap<String, Target>,
    pub externals: BTreeSet<String>,
    pub mutants: Vec<String>,
    pub mutants_found: bool,
    pub tests: Vec<Test>,
    /// Module paths of src/ (files and inline modules).
    pub modules: Vec<(Vec<String>, usize, (usize, usize))>,
    /// Structs, enums, variants, traits, types of src/.
    pub items: BTreeSet<String>,
    /// Type → fns of its impls, in src/.
    pub impl_fns: BTreeMap<String, BTreeSet<String>>,
    pub cli: BTreeSet<String>,
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

impl Index {
    pub fn new(p: &Project) -> Index {
        let files: Vec<SrcFile> = p
            .files
            .iter()
            .map(|(path, t)| SrcFile::new(path, t))
            .collect();
        let (targets, mut externals) = parse_cargo(&p.cargo_toml);
        // A module of the crate named like a standard crate (`alloc`) is what the docs
        // mean by that path: check it like any module rather than skip it as external.
        for (path, _) in &p.files {
            if let Some(m) = path
                .strip_prefix("src/")
                .and_then(|r| r.strip_suffix("/mod.rs").or_else(|| r.strip_suffix(".rs")))
            {
                externals.remove(m);
            }
        }
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

    pub fn file(&self, path: &str) -> Option<&SrcFile> {
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
                    let mut body = main.with_callees((from, to), "main");
                    body.push_str(&self.module_callees(main, (from, to)));
                    found.push(Test {
                        name: lit.clone(),
                        loc: TestLoc::Target(name.clone()),
                        file: main.path.clone(),
                        line: line_of(&main.raw, *ls),
                        body,
                    });
                }
            }
        }
        self.tests.extend(found);
    }

    /// The bodies of the fns that `main`'s text in `span` names as `module::f`, where
    /// `module` is a `mod module;` of `main`'s (one level, like `SrcFile::with_callees`).
    fn module_callees(&self, main: &SrcFile, span: (usize, usize)) -> String {
        let mut out = String::new();
        let code = &main.code[span.0..span.1];
        for (m, paths) in &main.child_mods {
            let Some(f) = paths.iter().find_map(|p| self.file(p)) else {
                continue;
            };
            let prefix = format!("{m}::");
            let mut from = 0;
            while let Some(k) = code[from..].find(&prefix).map(|k| from + k) {
                from = k + prefix.len();
                let before_ok = k == 0 || !is_ident(code.as_bytes()[k - 1]);
                let Some((name, _)) = ident_at(code, from) else {
                    continue;
                };
                if before_ok {
                    for d in f.fns.iter().filter(|d| d.name == name) {
                        out.push('\n');
                        out.push_str(f.body_text(d));
                    }
                }
            }
        }
        out
    }

    /// Tests matching `pat` (a name or glob) at `loc`: a target, a module path suffix, or
    /// anywhere.
    pub fn find_tests(&self, pat: &str, loc: Option<&TestLoc>) -> Vec<&Test> {
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

    pub fn modules_ending(&self, segs: &[String]) -> Vec<&(Vec<String>, usize, (usize, usize))> {
        self.modules
            .iter()
            .filter(|(p, _, _)| !segs.is_empty() && p.ends_with(segs))
            .collect()
    }

    pub fn src_fns(&self, name: &str) -> Vec<(&SrcFile, &FnDecl)> {
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
