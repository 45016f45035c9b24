//! Free lists and bitmaps (A1, A5).

use std::collections::HashMap;

use super::blocks::Chain;
use super::{ListFault, Violation};
use crate::alloc::tlsf::mapping_insert;
use crate::alloc::Arena;
use crate::format::{FL_COUNT, SL_COUNT};

pub(super) fn check(arena: &Arena<'_>, chain: &Chain, v: &mut Vec<Violation>) {
    let st = arena.state();
    let mut listed: HashMap<u64, (usize, usize)> = HashMap::new();
    for fl in 0..FL_COUNT {
        let mut any = false;
        for sl in 0..SL_COUNT {
            let list = (fl, sl);
            let head = st.heads[fl * SL_COUNT + sl];
            let bit = st.sl_bitmap[fl] & (1 << sl) != 0;
            if bit != (head != 0) {
                v.push(Violation::SlBit { fl, sl });
            }
            any |= head != 0;
            // Ends: every step either stops or records a new free block of the chain in
            // `listed`, and a block seen again (a cycle, or one listed twice) stops the walk.
            let (mut at, mut back) = (head, 0u64);
            while at != 0 {
                let Some(&size) = chain.free.get(&at) else {
                    v.push(Violation::List {
                        list,
                        at,
                        fault: ListFault::NotFree,
                    });
                    break;
                };
                if mapping_insert(size) != list {
                    v.push(Violation::List {
                        list,
                        at,
                        fault: ListFault::WrongClass,
                    });
                }
                if listed.insert(at, list).is_some() {
                    v.push(Violation::List {
                        list,
                        at,
                        fault: ListFault::ListedTwice,
                    });
                    break;
                }
                match arena.word(at + 16) {
                    Ok(p) if p == back => {}
                    _ => v.push(Violation::List {
                        list,
                        at,
                        fault: ListFault::PrevNotBack,
                    }),
                }
                back = at;
                at = arena.word(at + 8).unwrap_or(0);
            }
        }
        if any != (st.fl_bitmap & (1 << fl) != 0) {
            v.push(Violation::FlBit { fl });
        }
    }
    if st.fl_bitmap >> FL_COUNT != 0 {
        v.push(Violation::FlBit {
            fl: (st.fl_bitmap >> FL_COUNT).trailing_zeros() as usize + FL_COUNT,
        });
    }
    let mut unlisted: Vec<u64> = chain
        .free
        .keys()
        .filter(|b| !listed.contains_key(b))
        .copied()
        .collect();
    unlisted.sort_unstable();
    v.extend(
        unlisted
            .into_iter()
            .map(|block| Violation::NotListed { block }),
    );
}
