//! The checker's own seeded errors: a small synthetic project with one of each reference
//! form, which must check clean, and tests (named `mutant_…`, so `cargo test mutant` runs
//! them) that each break it one way and show the checker reports exactly that; plus unit
//! tests of the id forms, masking and globs.

use crate::ids::ids_in_line;
use crate::project::Project;
use crate::rules::check;
use crate::source::{glob, mask};
use crate::src_file::SrcFile;

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
path = "integration/fork_heap/main.rs"
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
fn main() -> ExitCode {
    harness::run(\"fork_heap\", None, vec![
        case(\"processes_agree\", 10, agree),
        case(\"mutant_alpha_is_caught_across_processes\", 10, storms::alpha),
    ])
}

fn agree() {}

mod storms;
";

const STORMS_RS: &str = "\
pub fn alpha() -> TestResult {
    storm(Mutant::Alpha)
}
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
            ("integration/fork_heap/main.rs".into(), FORK_RS.into()),
            ("integration/fork_heap/storms.rs".into(), STORMS_RS.into()),
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

/// A module of the crate named like a standard crate (`alloc`) is checked like any other
/// module, not skipped as the external crate of that name.
#[test]
fn mutant_unknown_test_in_a_module_named_like_a_std_crate_is_caught() {
    let rename = |p: &mut Project| {
        p.files
            .iter_mut()
            .find(|(f, _)| f == "src/widget.rs")
            .unwrap()
            .0 = "src/alloc.rs".into();
        replace(&mut p.docs, "`widget.rs`", "`alloc.rs`");
        replace(&mut p.docs, "widget::tests::", "alloc::tests::");
    };
    assert_only(&problems_after(rename), &[]);
    let p = problems_after(|p| {
        rename(p);
        replace(
            &mut p.docs,
            "alloc::tests::widgets_build",
            "alloc::tests::widgets_built",
        )
    });
    assert_one(
        &p,
        "row W1 (checks): no test `widgets_built` in a src/ module `…alloc::tests`",
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
        "no test `processes_agree` in target `loom_lock` (it is at integration/fork_heap/main.rs:3)",
    );
}

#[test]
fn mutant_bare_unknown_test_is_caught() {
    let p = problems_after(|p| replace(&mut p.docs, "`shared_world_test`", "`shared_word_test`"));
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
    let p = problems_after(|p| replace(&mut p.docs, "`fork_heap: processes_*`", "`processes_*`"));
    assert_one(
        &p,
        "row W2 (checks): the glob `processes_*` names no target",
    );
}

#[test]
fn mutant_test_no_row_names_is_caught() {
    let p = problems_after(|p| {
        file(p, "integration/fork_heap/main.rs").push_str(
            "fn other() {\n    case(\"mutant_beta_is_caught_too\", 10, || storm(Mutant::Beta));\n}\n",
        );
        replace(
            file(p, "integration/fork_heap/main.rs"),
            "        case(\"processes_agree\", 10, agree),\n",
            "        case(\"processes_agree\", 10, agree),\n        case(\"mutant_beta_is_caught_too\", 10, || storm(Mutant::Beta)),\n",
        );
    });
    assert_one(
        &p,
        "integration/fork_heap/main.rs:4: test `fork_heap: mutant_beta_is_caught_too` has `mutant` in its name but no row",
    );
}

#[test]
fn mutant_without_a_row_is_caught() {
    let p =
        problems_after(|p| replace(&mut p.docs, "`Beta` → `loom_lock::mutant_*`", "the models"));
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
        p.iter()
            .any(|s| s.contains("mutant `Gamma`: no test with `mutant` in its name mentions it")),
        "{p:#?}"
    );
    assert!(
        p.iter().any(|s| s
            .contains("`Gamma` → `loom_lock::mutant_*` but none of those tests mentions `Gamma`")),
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
fn mutant_registered_test_body_reaches_the_module_fns_it_names() {
    // Only the fork_heap test backs the Alpha claim; its body is `storms::alpha` in
    // integration/fork_heap/storms.rs, which mentions Alpha.
    let only_the_fork_test = |p: &mut Project| {
        replace(
            &mut p.docs,
            "`Alpha` → `widget::tests::mutant_alpha_is_caught_by_build`, `fork_heap: mutant_alpha_is_caught_across_processes`",
            "`Alpha` → `fork_heap: mutant_alpha_is_caught_across_processes`; also \
                 `widget::tests::mutant_alpha_is_caught_by_build`",
        )
    };
    let p = problems_after(only_the_fork_test);
    assert!(p.is_empty(), "{p:#?}");
    let p = problems_after(|p| {
        only_the_fork_test(p);
        replace(
            file(p, "integration/fork_heap/storms.rs"),
            "storm(Mutant::Alpha)",
            "storm(other)",
        );
    });
    assert_one(
        &p,
        "`Alpha` → `fork_heap: mutant_alpha_is_caught_across_processes` but none of those tests mentions `Alpha`",
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
