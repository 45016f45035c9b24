#!/usr/bin/env bash
# Mutation testing of the library with cargo-mutants (configuration and the list of what
# is skipped, and why: .cargo/mutants.toml; results: docs/testing.md).
#
#   scripts/mutants.sh                      # every mutant of src/ (hours on 2 cores)
#   scripts/mutants.sh --shard 0/4          # every 4th mutant (round robin): a sample
#   scripts/mutants.sh --file src/sync/protocol.rs
#   scripts/mutants.sh --list               # what would be tried
#
# Each mutant is built with the `mutants` profile and judged by the default `cargo test`
# (every unit test, model, property and fork test); results land in mutants.out/
# (caught.txt, missed.txt, timeout.txt, unviable.txt). Needs `cargo install cargo-mutants`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo mutants --version >/dev/null 2>&1; then
    echo "cargo-mutants is not installed: cargo install cargo-mutants --locked" >&2
    exit 2
fi
# --copy-target: reuse the dependencies already built in target/ (a cold build is minutes).
exec cargo mutants --sharding round-robin --copy-target=true "$@"
