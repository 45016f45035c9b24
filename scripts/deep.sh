#!/usr/bin/env bash
# scripts/deep.sh: every test tier of mapheap at higher bounds than the default `cargo test`,
# in release mode, for a run before a release (docs/testing.md, "Going deeper").
#
#   scripts/deep.sh                 # every tier at the deep bounds below: roughly 20-30 min
#                                   # on 2 cores after the builds (loom ~7 min, fork tests a
#                                   # few, stress and fuzz 2 each); a cold release build is
#                                   # ~7 min and the nightly fuzz build ~6 more
#   scripts/deep.sh loom stress     # only these tiers, in this order
#   DEEP_QUICK=1 scripts/deep.sh    # smoke bounds (a few minutes): checks the script itself
#
# Tiers (default: all, in this order):
#   build    cargo test --release --no-run, cargo build --release (the binary without the
#            test-only `mutants` feature), so the tiers below time runs, not builds
#   lib      unit tests, doc tests (compile-fail included), docs_invariants
#   mutants  every test with `mutant` in its name, in every target, at the default bounds:
#            each seeded bug is caught in a release build too (the tiers below skip the
#            libtest mutant tests: a higher bound only finds the same bug later)
#   loom     models/loom_lock.rs, MAPHEAP_LOOM_PREEMPTIONS=$DEEP_LOOM_PREEMPTIONS
#   shuttle  models/shuttle_lock.rs, MAPHEAP_SHUTTLE_ITERS=$DEEP_SHUTTLE_ITERS
#   props    remap_graph, alloc_model, corrupt_image, txn_model, txn_crash with
#            PROPTEST_CASES=$DEEP_PROPTEST_CASES, and header_sweep with MAPHEAP_SWEEP=all
#            (every header byte flipped, not a sample)
#   fork     fork_heap, fork_death, fork_txn, lock_smoke, disk_full with
#            MAPHEAP_FORK_SCALE=$DEEP_FORK_SCALE
#            (their mutant tests run in the mutants tier, like the other tiers')
#   stress   cargo run --release -- stress --duration $DEEP_STRESS_SECS --kill-rate $DEEP_STRESS_KILL_RATE
#   fuzz     cargo +nightly fuzz run open_image for $DEEP_FUZZ_SECS seconds, if cargo-fuzz and
#            a nightly toolchain are installed (skipped otherwise, or with DEEP_FUZZ_SECS=0)
#
# Knobs (environment; defaults in brackets, DEEP_QUICK=1 values in parentheses):
#   DEEP_LOOM_PREEMPTIONS [5] (3)  loom's bound for the 3-thread models; the default run uses 3
#                                  (~10k executions each, seconds), 5 takes 500k-760k executions
#                                  each, ~6.5 min in release on 2 cores; 6 or `none` take far longer
#   DEEP_SHUTTLE_ITERS [20000] (200)  random and PCT executions per shuttle configuration
#                                  (default run: 2000)
#   DEEP_PROPTEST_CASES [8000] (64)   cases of every property (default run: 1024-2048)
#   DEEP_FORK_SCALE [3] (1)        processes, rounds and kills of the fork tests (default 1)
#   DEEP_STRESS_SECS [120] (10)    `mapheap stress` duration; DEEP_STRESS_KILL_RATE [20] (20)
#                                  SIGKILLs per second; DEEP_STRESS_WORKERS [2 per CPU]
#   DEEP_FUZZ_SECS [600] (20)      libFuzzer's -max_total_time; 0 skips the tier
#   DEEP_MINUTES                   if set, the time-boxed tiers share this budget instead of
#                                  DEEP_STRESS_SECS and DEEP_FUZZ_SECS: stress gets 2/3 of it,
#                                  fuzz 1/3 (the bounded tiers are unaffected)
#   DEEP_KEEP_GOING [1]            run the remaining tiers after a failure (0: stop at once)
#   DEEP_LOG_DIR [target/deep/<date-time>]  one log per tier, plus summary.txt
#   MAPHEAP_FORK_SEED, PROPTEST_RNG_SEED    passed through, to repeat a run's random choices
#   CARGO_TARGET_DIR                        respected, as by cargo itself
#
# Every tier runs all of its test binaries (--no-fail-fast) even when one fails.
# The bounded tiers (loom, shuttle, props, fork) also run on nextest, shardable across
# machines: `cargo nextest run --release -P deep` (.config/nextest.toml, docs/testing.md).
# Exit status: 0 if every tier that ran passed, 1 otherwise; the summary at the end lists
# each tier's status, time, bounds and log.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=${DEEP_QUICK:-0}
pick() { if [ "$quick" = 1 ]; then echo "$2"; else echo "$1"; fi; }
LOOM_PREEMPTIONS=${DEEP_LOOM_PREEMPTIONS:-$(pick 5 3)}
SHUTTLE_ITERS=${DEEP_SHUTTLE_ITERS:-$(pick 20000 200)}
PROPTEST_CASES_DEEP=${DEEP_PROPTEST_CASES:-$(pick 8000 64)}
FORK_SCALE=${DEEP_FORK_SCALE:-$(pick 3 1)}
STRESS_SECS=${DEEP_STRESS_SECS:-$(pick 120 10)}
STRESS_KILL_RATE=${DEEP_STRESS_KILL_RATE:-20}
STRESS_WORKERS=${DEEP_STRESS_WORKERS:-}
FUZZ_SECS=${DEEP_FUZZ_SECS:-$(pick 600 20)}
if [ -n "${DEEP_MINUTES:-}" ]; then
    STRESS_SECS=$((DEEP_MINUTES * 60 * 2 / 3))
    FUZZ_SECS=$((DEEP_MINUTES * 60 - STRESS_SECS))
fi
KEEP_GOING=${DEEP_KEEP_GOING:-1}
LOG_DIR=${DEEP_LOG_DIR:-${CARGO_TARGET_DIR:-target}/deep/$(date +%Y%m%d-%H%M%S)}
ALL_TIERS="build lib mutants loom shuttle props fork stress fuzz"

if [ $# -gt 0 ]; then tiers="$*"; else tiers=$ALL_TIERS; fi
for t in $tiers; do
    case " $ALL_TIERS " in
        *" $t "*) ;;
        *) echo "deep.sh: unknown tier '$t' (tiers: $ALL_TIERS)" >&2; exit 2 ;;
    esac
done
mkdir -p "$LOG_DIR"

# Bounds are set per tier; a variable inherited from the caller's shell must not leak into
# a tier that means to run at the default bound.
unset MAPHEAP_LOOM_PREEMPTIONS MAPHEAP_SHUTTLE_ITERS PROPTEST_CASES MAPHEAP_FORK_SCALE MAPHEAP_SWEEP MAPHEAP_MUTANT \
    MAPHEAP_CONFORMANCE_CASES

summary=()
failed=0
start_all=$SECONDS

# run_tier NAME BOUNDS CMD...: runs CMD with its output on the terminal and in NAME.log.
run_tier() {
    local name=$1 bounds=$2
    shift 2
    local log=$LOG_DIR/$name.log t0=$SECONDS status
    printf '\n==== %s (%s) ====\n+ %s\n' "$name" "$bounds" "$*" | tee "$log"
    if "$@" 2>&1 | tee -a "$log"; then status=ok; else status=FAILED; fi
    local secs=$((SECONDS - t0))
    summary+=("$(printf '%-8s %-7s %4dm%02ds  %-40s %s' "$name" "$status" $((secs / 60)) $((secs % 60)) "$bounds" "$log")")
    if [ "$status" != ok ]; then
        failed=1
        if [ "$KEEP_GOING" != 1 ]; then finish; fi
    fi
}

skip_tier() {
    summary+=("$(printf '%-8s %-7s %9s  %s' "$1" skipped "" "$2")")
    echo "==== $1: skipped ($2)"
}

finish() {
    local secs=$((SECONDS - start_all))
    {
        echo
        echo "==== deep.sh summary ($((secs / 60))m$((secs % 60))s, logs in $LOG_DIR) ===="
        printf '%s\n' "${summary[@]}"
        if [ "$failed" = 0 ]; then echo "all tiers that ran passed"; else echo "SOME TIERS FAILED"; fi
    } | tee "$LOG_DIR/summary.txt"
    exit "$failed"
}

fuzz_ready() {
    command -v cargo-fuzz >/dev/null 2>&1 &&
        rustup run nightly rustc --version >/dev/null 2>&1 &&
        [ -f fuzz/Cargo.toml ]
}

stress_args=(--duration "$STRESS_SECS" --kill-rate "$STRESS_KILL_RATE")
if [ -n "$STRESS_WORKERS" ]; then stress_args+=(--workers "$STRESS_WORKERS"); fi

for t in $tiers; do
    case $t in
        build)
            run_tier build "release" bash -c 'set -e
                cargo test --release --no-run
                cargo build --release'
            ;;
        lib)
            run_tier lib "release" bash -c 'rc=0
                cargo test --release --no-fail-fast --lib --test docs_invariants || rc=1
                cargo test --release --doc || rc=1
                exit $rc'
            ;;
        mutants)
            run_tier mutants "default bounds" cargo test --release --no-fail-fast mutant
            ;;
        loom)
            run_tier loom "MAPHEAP_LOOM_PREEMPTIONS=$LOOM_PREEMPTIONS" \
                env MAPHEAP_LOOM_PREEMPTIONS="$LOOM_PREEMPTIONS" \
                cargo test --release --test loom_lock -- --skip mutant --nocapture
            ;;
        shuttle)
            run_tier shuttle "MAPHEAP_SHUTTLE_ITERS=$SHUTTLE_ITERS" \
                env MAPHEAP_SHUTTLE_ITERS="$SHUTTLE_ITERS" \
                cargo test --release --test shuttle_lock -- --skip mutant
            ;;
        props)
            run_tier props "PROPTEST_CASES=$PROPTEST_CASES_DEEP, MAPHEAP_SWEEP=all" \
                env PROPTEST_CASES="$PROPTEST_CASES_DEEP" MAPHEAP_SWEEP=all \
                cargo test --release --no-fail-fast --test remap_graph --test alloc_model \
                --test corrupt_image --test header_sweep --test txn_model --test txn_crash \
                -- --skip mutant
            # The direct allocation and the direct free against the planned ones (unit
            # tests, their own bound).
            run_tier conformance "MAPHEAP_CONFORMANCE_CASES=20000" \
                env MAPHEAP_CONFORMANCE_CASES=20000 \
                cargo test --release --lib -- makes_the_planned_stores_in_the_planned_order
            ;;
        fork)
            run_tier fork "MAPHEAP_FORK_SCALE=$FORK_SCALE" \
                env MAPHEAP_FORK_SCALE="$FORK_SCALE" \
                cargo test --release --no-fail-fast --test fork_heap --test fork_death \
                --test fork_txn --test lock_smoke --test disk_full -- --skip mutant
            ;;
        stress)
            run_tier stress "${STRESS_SECS}s, kill rate $STRESS_KILL_RATE/s" \
                cargo run --release -- stress "${stress_args[@]}"
            ;;
        fuzz)
            if [ "$FUZZ_SECS" -le 0 ]; then
                skip_tier fuzz "DEEP_FUZZ_SECS=0"
            elif ! fuzz_ready; then
                skip_tier fuzz "needs cargo-fuzz (cargo install cargo-fuzz) and a nightly toolchain"
            else
                # Its own crate and workspace (fuzz/Cargo.toml). It starts from the committed
                # seeds (fuzz/seeds/open_image: every base image, every state field, every
                # block header, truncations) and keeps what it finds in corpus/ (not
                # committed); a crash fails the tier and is saved in artifacts/.
                run_tier fuzz "${FUZZ_SECS}s" bash -c 'cd fuzz && mkdir -p corpus/open_image &&
                    exec cargo +nightly fuzz run open_image corpus/open_image seeds/open_image \
                    -- -max_total_time="$1" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1' \
                    fuzz "$FUZZ_SECS"
            fi
            ;;
    esac
done
finish
