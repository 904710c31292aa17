//! A unified diff built from the line model: edits keep line order, so no general diff
//! algorithm is needed. Each current line knows the original line it came from, if any.

use std::fmt::Write as _;

use crate::document::{BOM, LineEnding, LineKind, classify, split_lines};
use crate::file::EnvFile;

const CONTEXT: usize = 3;

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Current line index (the original line is the same text).
    Equal(usize),
    Delete(usize),
    Insert(usize),
}

/// Names of keys whose values the diff hides.
pub(crate) fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["key", "password", "secret", "token", "connectionstring"]
        .iter()
        .any(|w| k.contains(w))
}

/// The line as shown in a diff: a secret-looking key's value replaced by `[hidden]`, and the
/// credentials of any URL (`scheme://user:password@host`, a Sentry DSN) under any key replaced
/// by `[hidden]@`.
fn shown(text: &str) -> String {
    if let LineKind::Entry(spans) = classify(text) {
        let key = &text[spans.key_start as usize..spans.key_end as usize];
        if is_secret_key(key) && spans.value_end > spans.value_start {
            return format!(
                "{}[hidden]{}",
                &text[..spans.value_start as usize],
                &text[spans.value_end as usize..]
            );
        }
    }
    hide_url_credentials(text)
}

/// Replaces the `user[:password]` part of every `scheme://user[:password]@` in `text`.
fn hide_url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at the first `/`, `?`, `#`, blank or quote.
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'') || c.is_whitespace())
            .unwrap_or(after.len());
        match after[..end].rfind('@') {
            Some(userinfo_end) => {
                out.push_str("[hidden]");
                rest = &after[userinfo_end..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

pub(crate) fn unified(file: &EnvFile) -> String {
    let doc = &file.doc;
    let body = if doc.bom { BOM.len() } else { 0 };
    let mut old: Vec<(usize, usize, LineEnding)> = Vec::new();
    split_lines(&doc.buf[body..doc.orig_len], body, |s, e, eol| {
        old.push((s, e, eol));
    });
    let mut ops = Vec::with_capacity(doc.lines.len() + 4);
    let mut next_old = 0;
    for (j, line) in doc.lines.iter().enumerate() {
        match line.origin {
            Some(k) => {
                while next_old < k {
                    ops.push(Op::Delete(next_old));
                    next_old += 1;
                }
                if line.edited {
                    ops.push(Op::Delete(k));
                    ops.push(Op::Insert(j));
                } else {
                    ops.push(Op::Equal(j));
                }
                next_old = k + 1;
            }
            None => ops.push(Op::Insert(j)),
        }
    }
    while next_old < old.len() {
        ops.push(Op::Delete(next_old));
        next_old += 1;
    }

    let old_text = |k: usize| {
        let (s, e, eol) = old[k];
        (&doc.buf[s..e], eol)
    };
    let new_text = |j: usize| {
        let l = &doc.lines[j];
        (doc.line_text(l), l.eol)
    };

    let name = file.path().display();
    let mut out = format!("--- a/{name}\n+++ b/{name}\n");
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Equal(..)))
        .map(|(i, _)| i)
        .collect();
    let mut i = 0;
    while i < changed.len() {
        // Grow a hunk while the next change is within 2 * CONTEXT equal lines.
        let first = changed[i];
        let mut last = first;
        while i + 1 < changed.len() && changed[i + 1] - last <= 2 * CONTEXT + 1 {
            i += 1;
            last = changed[i];
        }
        i += 1;
        let start = first.saturating_sub(CONTEXT);
        let end = (last + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        // Line numbers where the hunk starts, counted from the ops before it.
        let (mut old_line, mut new_line) = (1, 1);
        for op in &ops[..start] {
            match op {
                Op::Equal(..) => {
                    old_line += 1;
                    new_line += 1;
                }
                Op::Delete(_) => old_line += 1,
                Op::Insert(_) => new_line += 1,
            }
        }
        let old_count = hunk.iter().filter(|o| !matches!(o, Op::Insert(_))).count();
        let new_count = hunk.iter().filter(|o| !matches!(o, Op::Delete(_))).count();
        if old_count == 0 {
            old_line -= 1;
        }
        if new_count == 0 {
            new_line -= 1;
        }
        let _ = writeln!(out, "@@ -{old_line},{old_count} +{new_line},{new_count} @@");
        for op in hunk {
            let (sign, (text, eol)) = match *op {
                Op::Equal(j) => (' ', new_text(j)),
                Op::Delete(k) => ('-', old_text(k)),
                Op::Insert(j) => ('+', new_text(j)),
            };
            let _ = writeln!(out, "{sign}{}", shown(text));
            if eol == LineEnding::None {
                out.push_str("\\ No newline at end of file\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_secret_values() {
        assert_eq!(
            shown("globalSettings__installation__key=abc"),
            "globalSettings__installation__key=[hidden]"
        );
        assert_eq!(shown("A=b"), "A=b");
        assert!(is_secret_key("globalSettings__sqlServer__connectionString"));
        // URL credentials under a key that does not look secret (a Sentry DSN, a proxy).
        assert_eq!(
            shown("globalSettings__sentry__dsn=https://0123abcd:s3cr3t@o1.ingest.sentry.io/42"),
            "globalSettings__sentry__dsn=https://[hidden]@o1.ingest.sentry.io/42"
        );
        assert_eq!(
            shown("PROXY=\"http://user@proxy.example:3128\" # and http://plain.example/a@b"),
            "PROXY=\"http://[hidden]@proxy.example:3128\" # and http://plain.example/a@b"
        );
    }

    #[test]
    fn diff_of_an_edit_in_the_middle_and_an_append() {
        let mut text = String::new();
        for i in 1..=14 {
            let _ = writeln!(text, "K{i}=v{i}");
        }
        let mut f = EnvFile::parse(text).unwrap();
        f.set("K6", "new").unwrap();
        f.set("NEW", "x").unwrap();
        let d = f.diff();
        let expected = "--- a/<memory>\n+++ b/<memory>\n\
            @@ -3,7 +3,7 @@\n K3=v3\n K4=v4\n K5=v5\n-K6=v6\n+K6=new\n K7=v7\n K8=v8\n K9=v9\n\
            @@ -12,3 +12,4 @@\n K12=v12\n K13=v13\n K14=v14\n+NEW=x\n";
        assert_eq!(d, expected);
    }

    #[test]
    fn diff_of_a_removal_and_missing_final_newline() {
        let mut f = EnvFile::parse("A=1\nB=2").unwrap();
        f.remove("A").unwrap();
        f.set("C", "3").unwrap();
        let d = f.diff();
        assert_eq!(
            d,
            "--- a/<memory>\n+++ b/<memory>\n@@ -1,2 +1,2 @@\n-A=1\n-B=2\n\\ No newline at end of file\n+B=2\n+C=3\n"
        );
    }
}
