//! Cargo.toml, read for the checker: the `[[test]]` targets (name, path, harness) and the
//! crates a path may start with (dependencies and `std`, `core`, `alloc`).

use std::collections::{BTreeMap, BTreeSet};

/// A `[[test]]` target: its path, and whether libtest runs it (`harness`).
pub struct Target {
    pub path: String,
    pub harness: bool,
}

/// The `[[test]]` targets, and the crates a path may start with (dependencies, `std`, …;
/// not the package itself).
pub fn parse_cargo(toml: &str) -> (BTreeMap<String, Target>, BTreeSet<String>) {
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
