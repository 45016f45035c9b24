//! Transactional workloads under real kills: several processes, each mapping the heap at
//! an address of its own, run plain transactional code (one `HeapGuard` per operation, no
//! commit protocol of their own) while the parent SIGKILLs them at random instants. What
//! each workload keeps must hold after every kill (workers check it after each takeover)
//! and at the end, with `check()` clean and every allocated block reachable from the
//! workload's root:
//!
//! * W1 (accounts.rs) the accounts' total never changes under transfers;
//! * W2 (list.rs) a doubly linked list's forward and backward walks agree;
//! * W3 (counter.rs) a counter's append-only record holds exactly 1..=counter.
//!
//! Every run must also show kills inside transactions (recoveries that rolled one back),
//! so it cannot pass without testing anything; the `mutant_*` tests switch a seeded bug of
//! the transactions on in the workers and require a workload to fail (after a control run
//! without it passes). transfer.rs kills the README's example, examples/transfer.rs.
//!
//! `harness = false` with libtest's protocol (`harness/`): one test at a time on the main
//! thread; each test states a bound (seconds at `MAPHEAP_FORK_SCALE=1`, times the scale)
//! past which a watchdog ends the process with a message. See docs/fork-tests.md.

#[path = "../fork_support/mod.rs"]
mod fork_support;
#[path = "../harness/mod.rs"]
mod harness;
#[path = "../../examples/transfer.rs"]
mod transfer_example;

mod accounts;
mod board;
mod counter;
mod kills;
mod list;
mod run;
mod transfer;

use std::process::ExitCode;

use fork_support::{bound as b, case, header};
use mapheap::mutant::Mutant;

use accounts::Bank4x4;
use counter::Record;
use list::DList;

fn main() -> ExitCode {
    harness::run(
        "fork_txn",
        Some(header()),
        vec![
            case("accounts_total_survives_random_kills", b(60), || {
                kills::survives(&Bank4x4, 1)
            }),
            case("list_walks_agree_through_random_kills", b(60), || {
                kills::survives(&DList, 2)
            }),
            case(
                "counter_matches_its_record_through_random_kills",
                b(60),
                || kills::survives(&Record, 3),
            ),
            case(
                "transfer_example_survives_a_kill_at_every_store",
                b(60),
                transfer::kill_at_every_store,
            ),
            case(
                "transfer_example_survives_random_sigkills",
                b(60),
                transfer::random_sigkills,
            ),
            case(
                "readme_transfer_snippet_is_the_examples_code",
                10,
                transfer::readme_snippet_is_the_example,
            ),
            case("mutant_commit_before_log_is_caught_by_accounts", 60, || {
                kills::caught(&Bank4x4, Mutant::CommitBeforeLog, 10)
            }),
            case("mutant_image_after_write_is_caught_by_accounts", 60, || {
                kills::caught(&Bank4x4, Mutant::ImageAfterWrite, 20)
            }),
            case("mutant_rollback_keeps_allocs_is_caught_by_list", 60, || {
                kills::caught(&DList, Mutant::RollbackKeepsAllocs, 30)
            }),
            case("mutant_free_before_commit_is_caught_by_list", 60, || {
                kills::caught(&DList, Mutant::FreeBeforeCommit, 40)
            }),
            case("mutant_commit_before_log_is_caught_by_counter", 60, || {
                kills::caught(&Record, Mutant::CommitBeforeLog, 50)
            }),
            case("mutant_skip_repair_is_caught_by_list", 60, || {
                // No pauses, and more kills: a kill must land inside one of the allocator's
                // few stores, which pauses between the writes would make rarer still.
                kills::caught_with(&DList, Mutant::SkipRepair, 60, |p| run::Plan {
                    spin: 0,
                    kills: 400,
                    ..p
                })
            }),
        ],
    )
}
