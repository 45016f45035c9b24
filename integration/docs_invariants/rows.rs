//! The rows of docs/invariants.md: table lines under a header with the columns `id`,
//! `kept in`, `checks` and `mutant…`, and the backticked references of their cells.

use crate::project::DOCS_PATH;
use crate::rules::Problem;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Col {
    Kept,
    Checks,
    Mutants,
}

pub struct Row {
    pub line: usize,
    pub id: String,
    pub cells: Vec<(Col, String)>,
}

/// Splits a table line on `|` outside backticks; `None` if it is not a table line.
fn split_row(line: &str) -> Option<Vec<String>> {
    let t = line.trim();
    if !t.starts_with('|') {
        return None;
    }
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut in_tick = false;
    for c in t[1..].chars() {
        match c {
            '`' => {
                in_tick = !in_tick;
                cur.push(c);
            }
            '|' if !in_tick => cells.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        cells.push(cur.trim().to_string());
    }
    Some(cells)
}

pub fn parse_rows(docs: &str, problems: &mut Vec<Problem>) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut header: Option<(usize, Vec<(usize, Col)>)> = None;
    for (n, line) in docs.lines().enumerate() {
        let n = n + 1;
        let Some(cells) = split_row(line) else {
            header = None;
            continue;
        };
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':' || ch == ' '))
        {
            continue;
        }
        match &header {
            None => {
                let low: Vec<String> = cells.iter().map(|c| c.to_lowercase()).collect();
                let find = |p: &str| low.iter().position(|c| c.starts_with(p));
                let (id, kept, checks, muts) =
                    (find("id"), find("kept"), find("check"), find("mutant"));
                match (id, kept, checks, muts) {
                    (Some(0), Some(k), Some(c), Some(m)) => {
                        header =
                            Some((n, vec![(k, Col::Kept), (c, Col::Checks), (m, Col::Mutants)]))
                    }
                    _ => {
                        // Another kind of table: skip it, but say so if it looks like ours.
                        if id == Some(0) {
                            problems.push(Problem {
                                file: DOCS_PATH.into(),
                                line: n,
                                what: "a table with an `id` column lacks `kept in`, `checks` \
                                       or `mutant` columns"
                                    .into(),
                            });
                        }
                        header = Some((n, Vec::new()));
                    }
                }
            }
            Some((_, cols)) if !cols.is_empty() => {
                let id = cells[0].clone();
                let cells = cols
                    .iter()
                    .map(|&(k, col)| (col, cells.get(k).cloned().unwrap_or_default()))
                    .collect();
                rows.push(Row { line: n, id, cells });
            }
            Some(_) => {}
        }
    }
    rows
}

/// Backticked spans of a cell.
pub fn ticks(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.trim().to_string())
        .collect()
}
