//! Roots: each entry's integrity (R2) and what it names (R1).

use super::blocks::Chain;
use super::{RootFault, Violation};
use crate::alloc::Arena;
use crate::format::{BLOCK_HEADER, ROOT_NAME_LEN};
use crate::heap::entry_fault;

pub(super) fn check(arena: &Arena<'_>, chain: &Chain, v: &mut Vec<Violation>) {
    let roots = arena.state().roots;
    for (index, root) in roots.iter().enumerate() {
        let name = String::from_utf8_lossy(&root.name)
            .trim_end_matches('\0')
            .to_string();
        if let Some(fault) = entry_fault(root) {
            v.push(Violation::Root { index, name, fault });
            continue;
        }
        if root.name == [0; ROOT_NAME_LEN] {
            continue;
        }
        if roots[..index].iter().any(|r| r.name == root.name) {
            v.push(Violation::Root {
                index,
                name,
                fault: RootFault::Duplicate,
            });
            continue;
        }
        // The header in front of a root must be a used block on the chain, not just a word
        // that decodes as one: a stale header left inside a free block (or inside another
        // block) decodes too, and resolution cannot tell it apart without walking the chain.
        let fault = match arena.usable_size(root.offset) {
            Ok(_)
                if chain.whole && !chain.used.contains(&root.offset.wrapping_sub(BLOCK_HEADER)) =>
            {
                RootFault::Stale
            }
            Ok(cap)
                if cap >= u64::from(root.size)
                    && root.offset % u64::from(root.align.max(1)) == 0 =>
            {
                continue
            }
            Ok(_) => RootFault::TooSmall,
            Err(_) => RootFault::Dangling,
        };
        v.push(Violation::Root { index, name, fault });
    }
}
