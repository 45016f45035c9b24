//! docs/invariants.md checked against the code: every invariant the code names has a row,
//! every mutant and every test a row names exists, and every mutant has a row and a test
//! that shows its checker catches it. Runs in the default `cargo test` (a few ms); the unit
//! tests in synthetic.rs feed the checker small synthetic projects and show it fails on each
//! kind of error (`cargo test mutant` runs them).
//!
//! # Invariant ids in the code
//!
//! An id is one upper-case ASCII letter and one or two digits, not part of a longer word
//! (`F1`, `A9`, `L5`). Every `.rs` file under src/, models/, proptests/, integration/,
//! benches/, examples/ and fuzz/fuzz_targets/ (except this checker's own directory,
//! integration/docs_invariants/) is scanned, line by line, for an id in one of these forms:
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
//! string literals in its `fn main` (`case("name", bound, f)`, `at("name", …)`), which are
//! also the names its `--list` prints.
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
//! bodies of the same file's fns it names, one level deep (for a registered name also the
//! fns it names as `module::f`, in the file of a `mod module;` of the target's main file); so a body that hands the variant
//! to a helper counts, and a test that never touches the variant does not. **(f)** Every test
//! with `mutant` in its name is named by some row (by name or by a target's glob), so the
//! table lists every seeded bug's catching test.
//!
//! # docs/limits.md
//!
//! limits.rs checks the page of limits the same way: every constant of the library is a
//! limit with a row there (naming tests that exist, resolved as above) or is listed as not
//! a limit with a reason (the rules are at its top).
//!
//! `DOCS_INVARIANTS_VERBOSE=1 cargo test --test docs_invariants -- --nocapture` prints how
//! each reference resolved.

mod cargo;
mod ids;
mod index;
mod limits;
mod project;
mod resolve;
mod rows;
mod rules;
mod source;
mod src_file;
#[cfg(test)]
mod synthetic;

use std::path::Path;

use project::{Project, DOCS_PATH, SELF_DIR};
use rules::{check, Outcome};

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
            "{} problem(s) between {DOCS_PATH} and the code:\n{}\n(the rules are at the top of {SELF_DIR}main.rs)",
            problems.len(),
            list.join("\n")
        );
    }
}
