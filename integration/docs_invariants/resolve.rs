//! Resolving a reference of a row's cell (one backticked span) against the index, by the
//! table of forms in the module doc of main.rs: why it does not resolve, or the tests it
//! names.

use crate::index::{Index, Test, TestLoc};
use crate::rows::Col;
use crate::source::{is_camel, is_snake_or_glob};

/// A reference, resolved: `Err` says why it does not resolve; `Ok` carries the tests it
/// names (if it names tests).
type Resolved<'a> = Result<Vec<&'a Test>, String>;

impl Index {
    pub fn resolve(&self, s: &str, col: Col) -> Resolved<'_> {
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
