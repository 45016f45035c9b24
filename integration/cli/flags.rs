//! Every flag of every subcommand is named by a test: walks clap's definition of the CLI
//! (src/bin/mapheap/cli.rs, included here) and the tests of this target, and fails listing
//! each `SUBCOMMAND --flag` that no test mentions.
//!
//! A flag counts as covered by a `#[test]` fn whose name has the subcommand as one of its
//! `_`-separated words (`stress_seed_makes_...` for `stress`) and whose body holds the flag
//! as a string literal (`"--seed"`), i.e. passes it to the binary. Positional arguments are
//! not flags; `--help` and `--version` are clap's own.

use std::collections::BTreeSet;

use clap::CommandFactory;

#[allow(dead_code)]
#[path = "../../src/bin/mapheap/cli.rs"]
mod cli;

/// `(subcommand, "--flag")` for every long flag of every subcommand of `cmd`.
fn flags(cmd: &clap::Command) -> BTreeSet<(String, String)> {
    cmd.get_subcommands()
        .flat_map(|sub| {
            sub.get_arguments()
                .filter_map(|a| a.get_long())
                .filter(|l| !matches!(*l, "help" | "version"))
                .map(|l| (sub.get_name().to_string(), format!("--{l}")))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `(name, body)` of every `#[test]` fn in `src`; a body runs to the next `#[test]`.
fn tests(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("#[test]") {
        rest = &rest[i + "#[test]".len()..];
        let body_end = rest.find("#[test]").unwrap_or(rest.len());
        let body = &rest[..body_end];
        if let Some(f) = body.find("fn ") {
            let name: String = body[f + 3..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push((name, body.to_string()));
        }
    }
    out
}

/// The flags of `cmd` that no test in `tests` covers, as `subcommand --flag`.
fn uncovered(cmd: &clap::Command, tests: &[(String, String)]) -> Vec<String> {
    flags(cmd)
        .into_iter()
        .filter(|(sub, flag)| {
            !tests.iter().any(|(name, body)| {
                name.split('_').any(|w| w == sub) && body.contains(&format!("\"{flag}\""))
            })
        })
        .map(|(sub, flag)| format!("{sub} {flag}"))
        .collect()
}

/// The tests of this target: every .rs file beside this one.
fn this_targets_tests() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/cli");
    let mut all = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            all.extend(tests(&std::fs::read_to_string(&p).unwrap()));
        }
    }
    all
}

#[test]
fn every_flag_of_every_subcommand_is_named_by_a_test() {
    let cmd = cli::Cli::command();
    let all = flags(&cmd);
    // The walk sees the CLI: a few flags that must be there.
    for want in [
        ("create", "--overwrite"),
        ("stress", "--seed"),
        ("bench", "--only"),
    ] {
        assert!(
            all.contains(&(want.0.to_string(), want.1.to_string())),
            "the walk missed {want:?}: {all:?}"
        );
    }
    let missing = uncovered(&cmd, &this_targets_tests());
    assert!(
        missing.is_empty(),
        "flags no test names (add a test named for the subcommand that passes the flag and \
         shows its effect): {missing:?}"
    );
}

/// The coverage check itself fails: a flag no test passes is reported, and so is one only
/// a test of another subcommand passes.
#[test]
fn the_flag_check_reports_a_flag_without_a_test() {
    let cmd = clap::Command::new("m")
        .subcommand(clap::Command::new("create").arg(clap::Arg::new("frob").long("frob")))
        .subcommand(clap::Command::new("stat").arg(clap::Arg::new("json").long("json")));
    let src = r#"
        #[test]
        fn stat_prints_json() { run(&["stat", "--json", "--frob"]); }
        #[test]
        fn create_makes_a_file() { run(&["create", "x"]); }
    "#;
    let t = tests(src);
    assert_eq!(t.len(), 2);
    assert_eq!(uncovered(&cmd, &t), ["create --frob"]);
    let covered =
        format!("{src}\n#[test]\nfn create_frobs() {{ run(&[\"create\", \"--frob\"]); }}");
    assert!(uncovered(&cmd, &tests(&covered)).is_empty());
}
