//! `mapheap create`: `--size` sets the capacity, `--overwrite` is what lets it replace a
//! file.

use mapheap::Heap;

use crate::run::{ok, run};

fn capacity(path: &std::path::Path) -> u64 {
    Heap::open(path).unwrap().lock().unwrap().capacity()
}

#[test]
fn create_size_sets_the_capacity_and_the_default_is_64m() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &["create", "a.heap", "--size", "3M"]);
    assert_eq!(capacity(&dir.path().join("a.heap")), 3 << 20, "{out}");
    assert!(out.contains(&format!("({} bytes", 3 << 20)), "{out}");
    ok(dir.path(), &["create", "b.heap"]);
    assert_eq!(capacity(&dir.path().join("b.heap")), 64 << 20);
    run(dir.path(), &["create", "c.heap", "--size", "1X"]).assert_fails(2, "suffix");
}

#[test]
fn create_overwrite_replaces_a_file_and_without_it_create_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.heap");
    ok(dir.path(), &["create", "h.heap", "--size", "1M"]);
    run(dir.path(), &["create", "h.heap", "--size", "2M"]).assert_fails(2, "already exists");
    assert_eq!(
        capacity(&path),
        1 << 20,
        "the refused create changed the file"
    );
    ok(
        dir.path(),
        &["create", "h.heap", "--size", "2M", "--overwrite"],
    );
    assert_eq!(capacity(&path), 2 << 20);
}
