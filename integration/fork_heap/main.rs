//! Fork tests on real file mappings, without deaths: contention across processes, processes
//! that map the heap at different addresses sharing one offset graph, growth while others
//! are attached, and opening a heap while another process (re)creates it.
//!
//! `harness = false` with libtest's protocol (`harness/`): the tests run one at a time on
//! the main thread, which never starts another, so forking is safe; each states a bound
//! (seconds at `MAPHEAP_FORK_SCALE=1`, times the scale) past which a watchdog ends the
//! process with a message. Children attach afresh and leave through `_exit`; the parent
//! reaps every child with a deadline and SIGKILLs stragglers. Re-executed children
//! (`MAPHEAP_FORK_ROLE`) map the file by themselves at addresses the test chooses; their
//! roles are dispatched before the harness starts. See docs/fork-tests.md.

#[path = "../fork_support/mod.rs"]
mod fork_support;
#[path = "../harness/mod.rs"]
mod harness;

mod addresses;
mod contention;
mod create_race;
mod detach;
mod growth;
mod mapping_mutants;
mod wakeup;

use std::process::ExitCode;

use fork_support::{bound as b, case, dispatch_role, header};
use mapheap::mutant::Mutant;

fn main() -> ExitCode {
    if let Some(code) = dispatch_role(|role| match role {
        "graph-worker" => addresses::graph_worker(),
        "hold-through-growth" => mapping_mutants::hold_through_growth(),
        other => Err(format!("unknown role {other}")),
    }) {
        return code;
    }
    harness::run(
        "fork_heap",
        Some(header()),
        vec![
            case(
                "contention_counters_and_blocks_are_exact",
                b(180),
                contention::contention,
            ),
            case(
                "different_addresses_share_one_offset_graph",
                b(180),
                addresses::different_addresses,
            ),
            case(
                "growth_while_attached_keeps_every_offset",
                b(180),
                growth::growth_while_attached,
            ),
            case(
                "open_while_creating_never_sees_a_half_made_file",
                b(180),
                create_race::create_vs_open,
            ),
            case(
                "dropped_handle_frees_its_slot_while_a_fork_child_lives",
                b(30),
                detach::dropped_handle_frees_its_slot_while_a_fork_child_lives,
            ),
            case(
                "fork_child_dropping_an_inherited_handle_keeps_the_parents_slot",
                b(30),
                detach::fork_child_dropping_an_inherited_handle_keeps_the_parents_slot,
            ),
            case(
                "no_lost_wakeup_with_a_30s_probe",
                b(60),
                wakeup::no_lost_wakeup,
            ),
            case(
                "mutant_futex_private_is_caught_by_a_stalled_waiter",
                b(60),
                || wakeup::mutant_storm(Mutant::FutexPrivate),
            ),
            case(
                "mutant_unlock_without_wake_is_caught_by_a_stalled_waiter",
                b(60),
                || wakeup::mutant_storm(Mutant::UnlockWithoutWake),
            ),
            case(
                "mutant_absolute_address_is_caught_across_mappings",
                b(300),
                mapping_mutants::mutant_absolute_address,
            ),
            case(
                "mutant_wrong_base_is_caught_after_growth_moves_the_mapping",
                b(240),
                mapping_mutants::mutant_wrong_base,
            ),
            case(
                "mutant_create_in_place_is_caught_by_concurrent_openers",
                b(180),
                create_race::mutant_create_in_place,
            ),
        ],
    )
}
