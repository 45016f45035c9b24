//! One source file, indexed: its `fn`s (signature, body, `#[test]`), inline and file
//! modules (`mod x;`, `#[path]` included), `impl` blocks, and the variants of an enum.

use std::collections::BTreeSet;

use crate::source::{ident_at, is_camel, is_ident, keyword_positions, mask, matching_brace};

/// A `fn` declaration.
pub struct FnDecl {
    pub name: String,
    pub pos: usize,
    /// From `fn` to the body's `{` (or the `;`), whitespace collapsed.
    pub sig: String,
    pub body: Option<(usize, usize)>,
    pub is_test: bool,
}

/// One source file, indexed.
pub struct SrcFile {
    pub path: String,
    pub raw: String,
    pub code: String,
    pub prose: String,
    pub fns: Vec<FnDecl>,
    /// Inline `mod name { … }`: name and span.
    pub inline_mods: Vec<(String, usize, usize)>,
    /// `mod name;` with the path it resolves to.
    pub child_files: Vec<String>,
    /// `mod name;` by name, with the paths it may resolve to.
    pub child_mods: Vec<(String, Vec<String>)>,
    /// `impl … Type { … }`: type name and span.
    pub impls: Vec<(String, usize, usize)>,
}

impl SrcFile {
    pub fn new(path: &str, raw: &str) -> SrcFile {
        let (code, prose) = mask(raw);
        let b = code.as_bytes();
        let mut fns = Vec::new();
        for k in keyword_positions(&code, "fn") {
            let Some((name, mut j)) = ident_at(&code, k + 2) else {
                continue;
            };
            let (mut depth, mut body) = (0i32, None);
            while j < b.len() {
                match b[j] {
                    b'(' | b'[' => depth += 1,
                    b')' | b']' => depth -= 1,
                    b';' if depth == 0 => break,
                    b'{' if depth == 0 => {
                        body = matching_brace(&code, j).map(|e| (j, e));
                        break;
                    }
                    _ => {}
                }
                j += 1;
            }
            let sig = code[k..j.min(b.len())]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            fns.push(FnDecl {
                name: name.to_string(),
                pos: k,
                sig,
                body,
                is_test: has_test_attr(&code, k),
            });
        }
        let mut inline_mods = Vec::new();
        let mut child_files = Vec::new();
        let mut child_mods = Vec::new();
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        for k in keyword_positions(&code, "mod") {
            let Some((name, j)) = ident_at(&code, k + 3) else {
                continue;
            };
            let next = code[j..].trim_start();
            if next.starts_with('{') {
                let open = j + code[j..].find('{').unwrap();
                if let Some(close) = matching_brace(&code, open) {
                    inline_mods.push((name.to_string(), open, close));
                }
            } else if next.starts_with(';') {
                // `#[path = "…"]` on the lines just above wins.
                let above = &raw[raw[..k].rfind("\n\n").unwrap_or(0)..k];
                let explicit = above
                    .rfind("#[path = \"")
                    .and_then(|p| above[p + 10..].split('"').next());
                let paths = match explicit {
                    Some(p) => vec![normalize(&format!("{dir}/{p}"))],
                    None => vec![format!("{dir}/{name}.rs"), format!("{dir}/{name}/mod.rs")],
                };
                child_files.extend(paths.iter().cloned());
                child_mods.push((name.to_string(), paths));
            }
        }
        let mut impls = Vec::new();
        for k in keyword_positions(&code, "impl") {
            let line_start = code[..k].rfind('\n').map_or(0, |n| n + 1);
            let lead = code[line_start..k].trim();
            if !(lead.is_empty() || lead == "unsafe") {
                continue; // `impl Trait` in a type, not an impl block
            }
            let Some(open) = code[k..].find('{').map(|n| k + n) else {
                continue;
            };
            let Some(close) = matching_brace(&code, open) else {
                continue;
            };
            if let Some(ty) = impl_type(&code[k + 4..open]) {
                impls.push((ty, open, close));
            }
        }
        SrcFile {
            path: path.to_string(),
            raw: raw.to_string(),
            code,
            prose,
            fns,
            inline_mods,
            child_files,
            child_mods,
            impls,
        }
    }

    pub fn body_text(&self, f: &FnDecl) -> &str {
        f.body.map_or("", |(s, e)| &self.prose[s..=e])
    }

    /// `text` plus the bodies of the fns of this file it names (one level).
    pub fn with_callees(&self, code_span: (usize, usize), skip: &str) -> String {
        let mut out = self.prose[code_span.0..code_span.1].to_string();
        let names: BTreeSet<&str> = self.fns.iter().map(|f| f.name.as_str()).collect();
        let mut seen = BTreeSet::new();
        let code = &self.code[code_span.0..code_span.1];
        let b = code.as_bytes();
        let mut k = 0;
        while k < b.len() {
            if is_ident(b[k]) && (k == 0 || !is_ident(b[k - 1])) {
                let end = k + b[k..].iter().take_while(|&&c| is_ident(c)).count();
                let w = &code[k..end];
                if w != skip && names.contains(w) && seen.insert(w) {
                    for f in self.fns.iter().filter(|f| f.name == w) {
                        out.push('\n');
                        out.push_str(self.body_text(f));
                    }
                }
                k = end;
            } else {
                k += 1;
            }
        }
        out
    }
}

/// Whether the attributes just above the `fn` at `pos` include `#[test]`.
fn has_test_attr(code: &str, pos: usize) -> bool {
    let line_start = code[..pos].rfind('\n').map_or(0, |n| n + 1);
    let mut attrs = String::new();
    for line in code[..line_start].lines().rev().take(12) {
        let t = line.trim();
        if t.is_empty() {
            continue; // a comment, blanked
        }
        if !t.starts_with('#') && (t.ends_with('}') || t.ends_with(';') || t.ends_with('{')) {
            break;
        }
        attrs.push_str(t);
    }
    attrs
        .split_whitespace()
        .collect::<String>()
        .contains("#[test]")
}

/// The self type of an impl header (the text between `impl` and `{`).
fn impl_type(header: &str) -> Option<String> {
    let mut h = header.trim();
    if h.starts_with('<') {
        let mut depth = 0;
        for (k, c) in h.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        h = &h[k + 1..];
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(k) = h.rfind(" for ") {
        h = &h[k + 5..];
    }
    let h = h
        .trim()
        .trim_start_matches('&')
        .trim_start_matches("dyn ")
        .trim();
    let path: String = h
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    path.rsplit("::")
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn normalize(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

/// Variants of the enum whose body `{ … }` starts at `open` (masked code).
pub fn enum_variants(code: &str, open: usize) -> Vec<String> {
    let Some(close) = matching_brace(code, open) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut depth = 0;
    for line in code[open + 1..close].lines() {
        let t = line.trim();
        if depth == 0 && !t.starts_with('#') {
            let name: String = t
                .chars()
                .take_while(|&c| c.is_alphanumeric() || c == '_')
                .collect();
            let rest = t[name.len()..].trim_start();
            if is_camel(&name)
                && (rest.is_empty()
                    || rest.starts_with('{')
                    || rest.starts_with('(')
                    || rest.starts_with(',')
                    || rest.starts_with('='))
            {
                out.push(name);
            }
        }
        for c in t.bytes() {
            match c {
                b'{' | b'(' => depth += 1,
                b'}' | b')' => depth -= 1,
                _ => {}
            }
        }
    }
    out
}
