#!/usr/bin/env bash
# Mutation testing of the library with cargo-mutants (configuration, and what is skipped
# and why: .cargo/mutants.toml; the last score: docs/testing.md).
#
#   scripts/mutants.sh --shard 0/8          # every 8th mutant (round robin): a sample,
#                                           # about 40 min on 2 cores
#   scripts/mutants.sh                      # every mutant of src/ (many hours on 2 cores)
#   scripts/mutants.sh --file src/sync/protocol.rs
#   scripts/mutants.sh --list               # what would be tried
#
# The mutants are applied in place, but in a git worktree of HEAD under target/ (never in
# your tree), whose own target/ stays warm from one run to the next: each mutant then costs
# one incremental build (about 10 s) plus the default `cargo test` (about 1 minute when no
# test notices it, seconds when the unit tests do). Results: target/mutants-tree/mutants.out/
# (caught.txt, missed.txt, timeout.txt, unviable.txt, one log per mutant).
# Needs `cargo install cargo-mutants --locked`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo mutants --version >/dev/null 2>&1; then
    echo "cargo-mutants is not installed: cargo install cargo-mutants --locked" >&2
    exit 2
fi
head=$(git rev-parse HEAD)
tree=${MUTANTS_TREE:-target/mutants-tree}
if [ -e "$tree/.git" ]; then
    git -C "$tree" checkout -q --force --detach "$head"
else
    git worktree add -q --detach "$tree" "$head"
fi
if ! git diff --quiet HEAD; then
    echo "note: uncommitted changes are not in the run (it tests HEAD $head)" >&2
fi
cd "$tree"
# --timeout: a mutant that makes a test hang is stopped after this many seconds (the
# unmutated suite takes about 60-100 s here).
# A shard is every k-th mutant (round robin), so that a shard is a sample of every file.
sharding=()
for a in "$@"; do
    case $a in --shard | --shard=*) sharding=(--sharding round-robin) ;; esac
done
exec cargo mutants --in-place "${sharding[@]}" --timeout "${MUTANTS_TIMEOUT:-150}" "$@"
