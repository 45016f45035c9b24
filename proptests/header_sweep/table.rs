//! docs/format.md's table "Which bytes are checked", read as the sweep's specification:
//! one row per field or range of the header, `verified` (and by what) or `free` (and why).

use std::ops::Range;

/// The page and the section holding the table.
pub const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/format.md");
const SECTION: &str = "## Which bytes are checked";

/// One row.
#[derive(Clone, Debug)]
pub struct Row {
    /// The bytes it covers (file offsets).
    pub bytes: Range<u64>,
    /// The field's name.
    pub field: String,
    /// `free` (no check looks at these bytes) rather than `verified`.
    pub free: bool,
    /// The last column: which checks, or why free.
    pub how: String,
}

impl Row {
    /// Whether the row's last column names `token` as a backticked span.
    pub fn names(&self, token: &str) -> bool {
        self.how.contains(&format!("`{token}`"))
    }
}

/// The rows of the first table in the section, checked to tile `0..end` in order.
pub fn rows(end: u64) -> Vec<Row> {
    let text = std::fs::read_to_string(PAGE).expect("read docs/format.md");
    let section = text
        .split_once(SECTION)
        .unwrap_or_else(|| panic!("docs/format.md has no section {SECTION:?}"))
        .1;
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in section.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        in_table = true;
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() != 4 || cells[0] == "bytes" || cells[0].starts_with("---") {
            continue;
        }
        let range = cells[0].trim_matches('`');
        let (a, b) = range
            .split_once("..")
            .unwrap_or_else(|| panic!("row {line:?}: the first cell is not a range a..b"));
        let parse = |s: &str| {
            s.parse::<u64>()
                .unwrap_or_else(|_| panic!("row {line:?}: {s:?} is not a byte offset"))
        };
        let free = match cells[2] {
            "free" => true,
            "verified" => false,
            v => panic!("row {line:?}: verdict {v:?} is neither `verified` nor `free`"),
        };
        rows.push(Row {
            bytes: parse(a)..parse(b),
            field: cells[1].to_string(),
            free,
            how: cells[3].to_string(),
        });
    }
    let mut at = 0;
    for r in &rows {
        assert!(
            r.bytes.start == at && r.bytes.end > at,
            "docs/format.md, {SECTION:?}: row {:?} ({:?}) should start at byte {at}: the rows \
             must tile the header in order",
            r.field,
            r.bytes
        );
        at = r.bytes.end;
    }
    assert_eq!(
        at, end,
        "docs/format.md, {SECTION:?}: the rows end at {at}, not {end}"
    );
    rows
}

/// The row covering byte `at`.
pub fn row_of(rows: &[Row], at: u64) -> &Row {
    let i = rows.partition_point(|r| r.bytes.end <= at);
    &rows[i]
}
