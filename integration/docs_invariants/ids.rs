//! Invariant ids: what an id is (`A1`, `F12`), and the ids a line of code names, in the
//! forms listed in the module doc of main.rs.

use crate::source::is_ident;

/// An id (`A1`, `F12`): its letter and number.
pub fn parse_id(s: &str) -> Option<(char, u32)> {
    let b = s.as_bytes();
    if (2..=3).contains(&b.len())
        && b[0].is_ascii_uppercase()
        && b[1..].iter().all(u8::is_ascii_digit)
    {
        Some((b[0] as char, s[1..].parse().ok()?))
    } else {
        None
    }
}

/// The id at byte `k` of `line` (with word boundaries) and its end.
fn id_at(line: &str, k: usize) -> Option<(String, usize)> {
    let b = line.as_bytes();
    if k > 0 && is_ident(b[k - 1]) {
        return None;
    }
    let len = b[k..].iter().take_while(|&&c| is_ident(c)).count();
    let word = &line[k..k + len];
    parse_id(word).map(|_| (word.to_string(), k + len))
}

/// `X1-X3`, `X1–X3`, `X1..X3` after an id ending at `end`: the ids in the range.
fn range_after(line: &str, first: &str, end: usize) -> Vec<String> {
    let rest = &line[end..];
    let skip = ["..", "-", "–"]
        .iter()
        .find(|s| rest.starts_with(**s))
        .map(|s| s.len());
    let Some(skip) = skip else {
        return vec![first.to_string()];
    };
    match (
        parse_id(first),
        id_at(line, end + skip).and_then(|(w, _)| parse_id(&w)),
    ) {
        (Some((a, from)), Some((b, to))) if a == b && from <= to => {
            (from..=to).map(|n| format!("{a}{n}")).collect()
        }
        _ => vec![first.to_string()],
    }
}

/// Every id the line names, by the forms in the module doc of main.rs.
pub fn ids_in_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = line.to_ascii_lowercase();
    // `invariant X1`, `Invariants (X1)`.
    for (k, _) in lower.match_indices("invariant") {
        if k > 0 && is_ident(lower.as_bytes()[k - 1]) {
            continue;
        }
        let mut j = k + "invariant".len();
        if lower[j..].starts_with('s') {
            j += 1;
        }
        let rest = &line[j..];
        let trimmed = rest.trim_start_matches([' ', '(']);
        if trimmed.len() == rest.len() {
            continue; // `invariants.md`, `invariantly`
        }
        let at = j + rest.len() - trimmed.len();
        if let Some((id, end)) = id_at(line, at) {
            out.extend(range_after(line, &id, end));
        }
    }
    // `(X1)`, `(X1-X3)`, in a comment.
    let comment = line.find("//").unwrap_or(line.len());
    for (k, _) in line[comment..]
        .match_indices('(')
        .map(|(k, c)| (k + comment, c))
    {
        if let Some((id, end)) = id_at(line, k + 1) {
            let ids = range_after(line, &id, end);
            let last_end = line[end..].find(')').map(|n| end + n);
            if last_end.is_some_and(|e| line[end..e].len() <= 6) {
                out.extend(ids);
            }
        }
    }
    // Comment bullets and `/// X1:`.
    let t = line.trim_start();
    for lead in ["//! ", "/// ", "// "] {
        if let Some(rest) = t.strip_prefix(lead) {
            let start = line.len() - rest.len();
            if rest.starts_with("* ") {
                if let Some((id, _)) = id_at(line, start + 2) {
                    out.push(id);
                }
            } else if let Some((id, end)) = id_at(line, start) {
                if line[end..].starts_with(':') {
                    out.push(id);
                }
            }
            break;
        }
    }
    out.sort();
    out.dedup();
    out
}
