//! Rust source, roughly lexed: masking comments and string/char literals (keeping byte
//! offsets), brace matching, whole-word keyword and identifier scanning, and the shapes of
//! names (CamelCase, snake_case, globs).

pub fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Two copies of `text` with the same byte offsets: `code` with comments and the contents of
/// string and char literals blanked (quotes kept), `prose` with only comments blanked.
pub fn mask(text: &str) -> (String, String) {
    let b = text.as_bytes();
    let mut code = b.to_vec();
    let mut prose = b.to_vec();
    let blank = |v: &mut Vec<u8>, from: usize, to: usize| {
        for x in &mut v[from..to.min(b.len())] {
            if *x != b'\n' {
                *x = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let prev_ident = i > 0 && is_ident(b[i - 1]);
        if b[i..].starts_with(b"//") {
            let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
            blank(&mut code, i, end);
            blank(&mut prose, i, end);
            i = end;
        } else if b[i..].starts_with(b"/*") {
            let (mut depth, mut j) = (1, i + 2);
            while j < b.len() && depth > 0 {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut code, i, j);
            blank(&mut prose, i, j);
            i = j;
        } else if b[i] == b'r'
            && (!prev_ident || (b[i - 1] == b'b' && (i < 2 || !is_ident(b[i - 2]))))
            && raw_string_hashes(&b[i + 1..]).is_some()
        {
            let hashes = raw_string_hashes(&b[i + 1..]).unwrap();
            let start = i + 2 + hashes;
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            let end = find_bytes(b, start, &close).unwrap_or(b.len());
            blank(&mut code, start, end);
            i = end + close.len();
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut code, i + 1, j);
            i = j + 1;
        } else if b[i] == b'\'' {
            // A char literal, or a lifetime (left alone).
            if b.get(i + 1) == Some(&b'\\') {
                let end = find_bytes(b, i + 3, b"'").unwrap_or(b.len());
                blank(&mut code, i + 1, end);
                i = end + 1;
            } else if let Some(c) = text.get(i + 1..).and_then(|s| s.chars().next()) {
                let after = i + 1 + c.len_utf8();
                if b.get(after) == Some(&b'\'') {
                    blank(&mut code, i + 1, after);
                    i = after + 1;
                } else {
                    i += 1;
                }
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    let s = |v: Vec<u8>| String::from_utf8(v).expect("masking keeps UTF-8");
    (s(code), s(prose))
}

/// `Some(n)` if `b` starts with `n` hashes and a quote (the rest of a raw string's opening).
fn raw_string_hashes(b: &[u8]) -> Option<usize> {
    let n = b.iter().take_while(|&&c| c == b'#').count();
    (b.get(n) == Some(&b'"')).then_some(n)
}

fn find_bytes(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    (from..hay.len().saturating_sub(needle.len() - 1)).find(|&k| hay[k..].starts_with(needle))
}

/// The index of the `}` matching the `{` at `open` (in masked code).
pub fn matching_brace(code: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, c) in code.bytes().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// Offsets of the keyword `kw` as a whole word in masked code.
pub fn keyword_positions<'a>(code: &'a str, kw: &'a str) -> impl Iterator<Item = usize> + 'a {
    let b = code.as_bytes();
    code.match_indices(kw).map(|(k, _)| k).filter(move |&k| {
        (k == 0 || !is_ident(b[k - 1])) && b.get(k + kw.len()).is_none_or(|&c| !is_ident(c))
    })
}

/// The identifier starting at `k` after any spaces, and the offset after it.
pub fn ident_at(code: &str, mut k: usize) -> Option<(&str, usize)> {
    let b = code.as_bytes();
    while k < b.len() && (b[k] == b' ' || b[k] == b'\n' || b[k] == b'\t') {
        k += 1;
    }
    let start = k;
    while k < b.len() && is_ident(b[k]) {
        k += 1;
    }
    (k > start && !b[start].is_ascii_digit()).then(|| (&code[start..k], k))
}

pub fn line_of(text: &str, pos: usize) -> usize {
    text[..pos].bytes().filter(|&c| c == b'\n').count() + 1
}

pub fn is_camel(s: &str) -> bool {
    s.as_bytes().first().is_some_and(|c| c.is_ascii_uppercase()) && s.bytes().all(is_ident)
}

pub fn is_snake_or_glob(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'*')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// Whether `word` occurs in `text` as a whole identifier.
pub fn mentions(text: &str, word: &str) -> bool {
    keyword_positions(text, word).next().is_some()
}

/// `*` matches any run of characters.
pub fn glob(pat: &str, name: &str) -> bool {
    let parts: Vec<&str> = pat.split('*').collect();
    if parts.len() == 1 {
        return pat == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    if !name.ends_with(last) {
        return false;
    }
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(k) => rest = &rest[k + p.len()..],
            None => return false,
        }
    }
    true
}
