//! Every validated identity field altered alone (F2): `open` refuses it with an error that
//! names that field, except `created_ns`, the one free identity field (docs/format.md).

use super::{format_refusal, heap_file, peek, poke};
use crate::format::{fnv1a, Identity, IDENTITY_FIELDS, VERSION};
use crate::heap::Heap;

/// Fields `open` accepts any value of, with the reason (docs/format.md, identity table).
const FREE_FIELDS: &[(&str, &str)] = &[(
    "created_ns",
    "it only tells two heaps apart; its checksum still covers it",
)];

/// `id` as bytes, with the checksum recomputed over the bytes before it.
fn resealed(mut id: [u8; 64]) -> [u8; 64] {
    let at = std::mem::offset_of!(Identity, checksum);
    let sum = fnv1a(&id[..at]);
    id[at..at + 8].copy_from_slice(&sum.to_le_bytes());
    id
}

/// The table of fields tiles `Identity`: a field added to the struct and not to the table
/// (`format/fields.rs`) fails here.
#[test]
fn the_identity_field_table_tiles_the_struct() {
    let mut end = 0;
    for f in IDENTITY_FIELDS {
        assert_eq!(
            f.offset, end,
            "{} does not start where the field before ends",
            f.name
        );
        assert!(f.size > 0, "{}", f.name);
        end += f.size;
    }
    assert_eq!(
        end,
        size_of::<Identity>(),
        "Identity has bytes no row of IDENTITY_FIELDS covers"
    );
    let total: usize = IDENTITY_FIELDS.iter().map(|f| f.size).sum();
    assert_eq!(total, size_of::<Identity>());
    for (free, _) in FREE_FIELDS {
        assert!(IDENTITY_FIELDS.iter().any(|f| f.name == *free), "{free}");
    }
}

#[test]
fn every_identity_field_altered_alone_is_refused_by_name() {
    let (_d, path) = heap_file(64 << 10);
    let good: [u8; 64] = peek(&path, 0);
    let names: Vec<&str> = IDENTITY_FIELDS.iter().map(|f| f.name).collect();
    for f in IDENTITY_FIELDS {
        let mut id = good;
        id[f.offset] ^= 1;
        if f.name != "checksum" {
            id = resealed(id);
        }
        poke(&path, 0, &id);
        if FREE_FIELDS.iter().any(|(n, _)| *n == f.name) {
            let h = Heap::open(&path)
                .unwrap_or_else(|e| panic!("{} is free, yet refused: {e}", f.name));
            assert!(h.check().unwrap().is_clean(), "{}", f.name);
        } else {
            let msg = format_refusal(&path, &format!("{} altered alone", f.name));
            let named: Vec<&&str> = names.iter().filter(|n| msg.contains(**n)).collect();
            assert_eq!(
                named,
                [&f.name],
                "altering {} alone gave {msg:?}, which must name that field and no other",
                f.name
            );
        }
        poke(&path, 0, &good);
    }
    Heap::open(&path).expect("the restored identity opens");
}

#[test]
fn a_version_1_file_is_refused_naming_both_versions() {
    let (_d, path) = heap_file(64 << 10);
    let mut id: [u8; 64] = peek(&path, 0);
    let at = std::mem::offset_of!(Identity, version);
    for (v, opens) in [(VERSION - 1, false), (VERSION, true), (VERSION + 1, false)] {
        id[at..at + 4].copy_from_slice(&v.to_le_bytes());
        poke(&path, 0, &resealed(id));
        if opens {
            Heap::open(&path).unwrap();
            continue;
        }
        let msg = format_refusal(&path, &format!("version {v}"));
        assert!(
            msg.contains(&format!("version {v}")) && msg.contains(&format!("reads {VERSION}")),
            "{msg:?} does not name both versions"
        );
    }
    assert_eq!(VERSION - 1, 1, "this test is about version 1 files");
}
