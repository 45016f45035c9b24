#!/usr/bin/env bash
# Setup script of nextest's `deep` profile (.config/nextest.toml): writes the deep bounds to
# the file named by $NEXTEST_ENV, and nextest sets them for every test the profile's script
# rule matches. The defaults and the DEEP_* knobs are scripts/deep.sh's:
#   DEEP_LOOM_PREEMPTIONS [5]  DEEP_SHUTTLE_ITERS [20000]  DEEP_PROPTEST_CASES [8000]
#   DEEP_FORK_SCALE [3]; and MAPHEAP_SWEEP=all (the header sweep flips every header byte)
# e.g. `DEEP_FORK_SCALE=5 cargo nextest run --release -P deep`.
set -euo pipefail
: "${NEXTEST_ENV:?this is a nextest setup script: run cargo nextest run -P deep}"
{
    echo "MAPHEAP_LOOM_PREEMPTIONS=${DEEP_LOOM_PREEMPTIONS:-5}"
    echo "MAPHEAP_SHUTTLE_ITERS=${DEEP_SHUTTLE_ITERS:-20000}"
    echo "PROPTEST_CASES=${DEEP_PROPTEST_CASES:-8000}"
    echo "MAPHEAP_FORK_SCALE=${DEEP_FORK_SCALE:-3}"
    echo "MAPHEAP_SWEEP=all"
} >>"$NEXTEST_ENV"
