//! The project as text: Cargo.toml, docs/invariants.md and every `.rs` file of the scanned
//! directories (the checker's own directory aside), read once so the unit tests can hand the
//! checker a synthetic project instead.

use std::path::Path;

/// The checker's own directory: never scanned (its synthetic examples would count as ids and
/// tests).
pub const SELF_DIR: &str = "integration/docs_invariants/";
pub const DOCS_PATH: &str = "docs/invariants.md";
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

/// Everything the checker reads, so the unit tests can hand it a synthetic project.
pub struct Project {
    pub cargo_toml: String,
    pub docs: String,
    /// `(path relative to the crate root, text)`, sorted by path.
    pub files: Vec<(String, String)>,
}

impl Project {
    pub fn load(root: &Path) -> Project {
        let read = |p: &Path| {
            std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let mut files = Vec::new();
        for dir in SCANNED {
            collect(root, &root.join(dir), &mut files);
        }
        files.retain(|(p, _)| !p.starts_with(SELF_DIR));
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
