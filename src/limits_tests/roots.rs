//! The root table's limits: names of 1 to `ROOT_NAME_LEN` (32) bytes, a name filling all 32
//! with no NUL included; `ROOT_COUNT` (32) roots.

use super::heap_file;
use crate::error::Error;
use crate::format::{ROOT_COUNT, ROOT_NAME_LEN};
use crate::heap::Heap;
use crate::mutant::{with, Mutant};

/// Whether a root named `name` can be set, found, listed, found again after a reopen (with
/// a clean check) and removed. `Err` with the refusal if `set_root` refuses the name.
fn round_trip(name: &str) -> Result<(), Error> {
    let (_d, path) = heap_file(64 << 10);
    {
        let heap = Heap::open(&path).unwrap();
        let mut g = heap.lock().unwrap();
        let v = g.alloc(7u64).unwrap();
        g.set_root(name, v)?;
        assert_eq!(g.root::<u64>(name).unwrap(), Some(v), "{name:?}");
    }
    let heap = Heap::open(&path).unwrap();
    let mut g = heap.lock().unwrap();
    let listed: Vec<String> = g.roots().into_iter().map(|r| r.name).collect();
    assert_eq!(listed, [name], "the name is listed back whole");
    let v = g.root::<u64>(name).unwrap().expect("found after a reopen");
    assert_eq!(*g.get(v).unwrap(), 7);
    assert!(g.check().is_clean(), "{:?}", g.check());
    assert_eq!(g.remove_root(name).unwrap(), Some(v.raw()));
    assert_eq!(g.root::<u64>(name).unwrap(), None);
    Ok(())
}

/// Every lookup refuses `name` as an invalid name (not "no such root").
fn refused_everywhere(name: &str) {
    let (_d, path) = heap_file(64 << 10);
    let heap = Heap::open(&path).unwrap();
    let mut g = heap.lock().unwrap();
    let v = g.alloc(7u64).unwrap();
    let is_name_err = |r: &Result<(), Error>| matches!(r, Err(Error::RootName(n)) if n == name);
    assert!(is_name_err(&g.set_root(name, v)), "set_root({name:?})");
    assert!(
        is_name_err(&g.root::<u64>(name).map(drop)),
        "root({name:?})"
    );
    assert!(
        is_name_err(&g.remove_root(name).map(drop)),
        "remove_root({name:?})"
    );
    assert!(is_name_err(&g.find_or_init(name, || 1u64).map(drop)));
    assert!(g.roots().is_empty());
}

#[test]
fn root_names_of_1_to_32_bytes_are_kept_and_33_refused() {
    let n = ROOT_NAME_LEN;
    for len in [1, n - 1, n] {
        round_trip(&"r".repeat(len)).unwrap_or_else(|e| panic!("{len} bytes: {e}"));
    }
    // The limit is in bytes, not characters: 16 two-byte characters fill the field.
    round_trip(&"é".repeat(n / 2)).unwrap();
    for bad in [
        String::new(),
        "r".repeat(n + 1),
        format!("{}a", "é".repeat(n / 2)),
        "a\0b".to_string(),
    ] {
        refused_everywhere(&bad);
    }
}

/// `RootNameOffByOne` refuses a name of exactly 32 bytes; the boundary test sees it.
#[test]
fn mutant_root_name_off_by_one_is_caught_by_the_name_boundary() {
    let full = "r".repeat(ROOT_NAME_LEN);
    assert!(round_trip(&full).is_ok());
    let r = with(Mutant::RootNameOffByOne, || round_trip(&full));
    assert!(
        matches!(r, Err(Error::RootName(_))),
        "RootNameOffByOne not caught: {r:?}"
    );
}

#[test]
fn the_root_table_holds_32_roots_and_refuses_the_33rd() {
    let (_d, path) = heap_file(64 << 10);
    let heap = Heap::open(&path).unwrap();
    let mut g = heap.lock().unwrap();
    let v = g.alloc(1u64).unwrap();
    for i in 0..ROOT_COUNT {
        g.set_root(&format!("root{i}"), v).unwrap();
    }
    assert_eq!(g.roots().len(), ROOT_COUNT);
    assert!(matches!(
        g.set_root("one-too-many", v),
        Err(Error::RootTableFull)
    ));
    assert!(matches!(
        g.find_or_init("one-too-many", || 2u64),
        Err(Error::RootTableFull)
    ));
    // A full table still replaces an existing name, and takes a new one once one goes.
    let w = g.alloc(2u64).unwrap();
    g.set_root("root7", w).unwrap();
    assert_eq!(g.root::<u64>("root7").unwrap(), Some(w));
    g.remove_root("root3").unwrap();
    g.set_root("one-too-many", v).unwrap();
    assert_eq!(g.roots().len(), ROOT_COUNT);
    g.checkpoint().unwrap();
    assert!(g.check().is_clean(), "{:?}", g.check());
}
