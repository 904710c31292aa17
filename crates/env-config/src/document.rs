//! The lossless line model: one owned buffer, one small record of spans per line.
//!
//! Parsing never allocates per line: a [`Line`] holds byte offsets into the buffer and the
//! offsets of its key and value. An edit appends the new line text to the end of the same buffer
//! and points the edited line at it, so the original bytes (`buf[..orig_len]`) stay available
//! for the diff and for the "did anything change" test.

use std::borrow::Cow;
use std::ops::Range;

/// The UTF-8 byte order mark.
pub(crate) const BOM: &str = "\u{feff}";

/// How a line ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnding {
    /// `\n`.
    Lf,
    /// `\r\n`.
    CrLf,
    /// No line ending: the last line of a file without a final newline.
    None,
}

impl LineEnding {
    /// The bytes of the line ending.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lf => "\n",
            Self::CrLf => "\r\n",
            Self::None => "",
        }
    }
}

/// How a value is quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// `KEY=value`.
    None,
    /// `KEY='value'`: literal.
    Single,
    /// `KEY="value"`: `\"`, `\\`, `\n`, `\t` are escapes.
    Double,
    /// An opening quote without its closing quote on the same line. Multi-line values are not
    /// part of the dialect Setup writes; the raw rest of the line is taken as the value.
    Unterminated,
}

/// Offsets of an assignment's parts, relative to the start of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntrySpans {
    pub(crate) export: bool,
    pub(crate) key_start: u32,
    pub(crate) key_end: u32,
    /// Offset of the `=`.
    pub(crate) eq: u32,
    /// The value token, quotes included, inline comment and trailing blanks excluded.
    pub(crate) value_start: u32,
    pub(crate) value_end: u32,
    pub(crate) quote: Quote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    Blank,
    Comment,
    Entry(EntrySpans),
    /// Text that is neither blank, a comment nor `KEY=VALUE`.
    Other,
}

#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) eol: LineEnding,
    /// 0-based index of the line in the original text; `None` for appended lines.
    pub(crate) origin: Option<usize>,
    /// True when the text or line ending differ from the original line.
    pub(crate) edited: bool,
    pub(crate) kind: LineKind,
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn to_u32(n: usize) -> u32 {
    // Lines are bounded by the file-size limit (16 MiB) and by edit values we build ourselves.
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Classifies one line's text (without its line ending).
pub(crate) fn classify(text: &str) -> LineKind {
    let bytes = text.as_bytes();
    let mut pos = 0;
    while pos < bytes.len() && is_blank(bytes[pos]) {
        pos += 1;
    }
    if text[pos..].trim().is_empty() {
        return LineKind::Blank;
    }
    if bytes[pos] == b'#' {
        return LineKind::Comment;
    }
    let mut export = false;
    if text[pos..].starts_with("export") && bytes.get(pos + 6).is_some_and(|c| is_blank(*c)) {
        export = true;
        pos += 6;
        while pos < bytes.len() && is_blank(bytes[pos]) {
            pos += 1;
        }
    }
    let key_start = pos;
    let Some(eq_rel) = text[pos..].find('=') else {
        return LineKind::Other;
    };
    let eq = pos + eq_rel;
    let mut key_end = eq;
    while key_end > key_start && is_blank(bytes[key_end - 1]) {
        key_end -= 1;
    }
    if key_end == key_start {
        return LineKind::Other;
    }
    let mut v = eq + 1;
    while v < bytes.len() && is_blank(bytes[v]) {
        v += 1;
    }
    let (value_end, quote) = match bytes.get(v) {
        Some(b'"') => {
            let mut j = v + 1;
            let mut close = None;
            while j < bytes.len() {
                match bytes[j] {
                    b'\\' => j += 2,
                    b'"' => {
                        close = Some(j);
                        break;
                    }
                    _ => j += 1,
                }
            }
            match close {
                Some(c) => (c + 1, Quote::Double),
                None => (trim_end_blank(bytes, bytes.len()), Quote::Unterminated),
            }
        }
        Some(b'\'') => match text[v + 1..].find('\'') {
            Some(c) => (v + 1 + c + 1, Quote::Single),
            None => (trim_end_blank(bytes, bytes.len()), Quote::Unterminated),
        },
        _ => {
            // An inline comment needs a blank before the `#`.
            let mut end = bytes.len();
            let mut j = v;
            while j < bytes.len() {
                if bytes[j] == b'#' && j > 0 && is_blank(bytes[j - 1]) {
                    end = j;
                    break;
                }
                j += 1;
            }
            (trim_end_blank(bytes, end).max(v), Quote::None)
        }
    };
    LineKind::Entry(EntrySpans {
        export,
        key_start: to_u32(key_start),
        key_end: to_u32(key_end),
        eq: to_u32(eq),
        value_start: to_u32(v),
        value_end: to_u32(value_end),
        quote,
    })
}

fn trim_end_blank(b: &[u8], mut end: usize) -> usize {
    while end > 0 && (is_blank(b[end - 1]) || b[end - 1] == b'\r') {
        end -= 1;
    }
    end
}

/// Splits text into lines (`\n` or `\r\n`), calling `f(start, end, eol)` per line. A text that
/// ends with a newline has no empty line after it; an empty text has no lines.
pub(crate) fn split_lines(text: &str, offset: usize, mut f: impl FnMut(usize, usize, LineEnding)) {
    let b = text.as_bytes();
    let mut start = 0;
    while start < b.len() {
        if let Some(rel) = text[start..].find('\n') {
            let nl = start + rel;
            let (end, eol) = if nl > start && b[nl - 1] == b'\r' {
                (nl - 1, LineEnding::CrLf)
            } else {
                (nl, LineEnding::Lf)
            };
            f(offset + start, offset + end, eol);
            start = nl + 1;
        } else {
            f(offset + start, offset + b.len(), LineEnding::None);
            start = b.len();
        }
    }
}

/// The parsed document: the buffer and its lines.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// Original text (BOM included, if any), followed by the text of edited lines.
    pub(crate) buf: String,
    /// Length of the original text in `buf`.
    pub(crate) orig_len: usize,
    pub(crate) bom: bool,
    pub(crate) lines: Vec<Line>,
    /// The line ending used for new lines: the first one found, else LF.
    pub(crate) eol: LineEnding,
}

impl Document {
    pub(crate) fn parse(buf: String) -> Self {
        let bom = buf.starts_with(BOM);
        let body_start = if bom { BOM.len() } else { 0 };
        let orig_len = buf.len();
        // One allocation for the line records, sized from a cheap newline count.
        #[allow(clippy::naive_bytecount)] // vectorised by the compiler; no extra dependency
        let estimate = buf.as_bytes().iter().filter(|b| **b == b'\n').count() + 1;
        // Room for a few appended keys (enabling a region adds up to five) without regrowing.
        let mut lines = Vec::with_capacity(estimate + 8);
        let mut eol = None;
        split_lines(&buf[body_start..], body_start, |start, end, e| {
            if eol.is_none() && e != LineEnding::None {
                eol = Some(e);
            }
            let origin = Some(lines.len());
            lines.push(Line {
                start,
                end,
                eol: e,
                origin,
                edited: false,
                kind: classify(&buf[start..end]),
            });
        });
        Self {
            buf,
            orig_len,
            bom,
            lines,
            eol: eol.unwrap_or(LineEnding::Lf),
        }
    }

    pub(crate) fn line_text(&self, line: &Line) -> &str {
        &self.buf[line.start..line.end]
    }

    pub(crate) fn is_modified(&self) -> bool {
        self.lines.iter().any(|l| l.edited)
            || self.lines.len() != self.original_line_count()
            || self.lines.iter().any(|l| l.origin.is_none())
    }

    pub(crate) fn original_line_count(&self) -> usize {
        let body = if self.bom { BOM.len() } else { 0 };
        let mut n = 0;
        split_lines(&self.buf[body..self.orig_len], 0, |_, _, _| n += 1);
        n
    }

    pub(crate) fn render(&self) -> String {
        let size = self
            .lines
            .iter()
            .map(|l| l.end - l.start + l.eol.as_str().len())
            .sum::<usize>()
            + if self.bom { BOM.len() } else { 0 };
        let mut out = String::with_capacity(size);
        if self.bom {
            out.push_str(BOM);
        }
        for line in &self.lines {
            out.push_str(self.line_text(line));
            out.push_str(line.eol.as_str());
        }
        out
    }

    /// Replaces line `idx`'s text, appending the new text to the buffer.
    pub(crate) fn replace_line_text(&mut self, idx: usize, text: &str) {
        let start = self.buf.len();
        self.buf.push_str(text);
        let end = self.buf.len();
        let kind = classify(&self.buf[start..end]);
        let line = &mut self.lines[idx];
        line.start = start;
        line.end = end;
        line.kind = kind;
        line.edited = true;
    }

    /// Appends a new line with the document's line ending style.
    pub(crate) fn push_line(&mut self, text: &str) {
        if let Some(last) = self.lines.last_mut()
            && last.eol == LineEnding::None
        {
            last.eol = self.eol;
            last.edited = true;
        }
        let start = self.buf.len();
        self.buf.push_str(text);
        let end = self.buf.len();
        let kind = classify(&self.buf[start..end]);
        self.lines.push(Line {
            start,
            end,
            eol: self.eol,
            origin: None,
            edited: true,
            kind,
        });
    }
}

/// One `KEY=VALUE` line, borrowed from the document.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub(crate) line_no: usize,
    pub(crate) text: &'a str,
    pub(crate) spans: EntrySpans,
}

impl<'a> Entry<'a> {
    /// 1-based line number.
    pub fn line(&self) -> usize {
        self.line_no
    }

    /// The key as written (its case kept).
    pub fn key(&self) -> &'a str {
        &self.text[self.spans.key_start as usize..self.spans.key_end as usize]
    }

    /// The value token as written: quotes included, inline comment excluded.
    pub fn raw_value(&self) -> &'a str {
        &self.text[self.value_range()]
    }

    pub(crate) fn value_range(&self) -> Range<usize> {
        self.spans.value_start as usize..self.spans.value_end as usize
    }

    /// The value as docker compose reads it: quotes removed, `\"`, `\\`, `\n`, `\t` unescaped in
    /// double quotes, single quotes literal.
    pub fn value(&self) -> Cow<'a, str> {
        let raw = self.raw_value();
        match self.spans.quote {
            Quote::None | Quote::Unterminated => Cow::Borrowed(raw),
            Quote::Single => Cow::Borrowed(&raw[1..raw.len() - 1]),
            Quote::Double => {
                let inner = &raw[1..raw.len() - 1];
                if inner.contains('\\') {
                    Cow::Owned(unescape_double(inner))
                } else {
                    Cow::Borrowed(inner)
                }
            }
        }
    }

    /// How the value is quoted.
    pub fn quote(&self) -> Quote {
        self.spans.quote
    }

    /// True when the line starts with `export `.
    pub fn has_export(&self) -> bool {
        self.spans.export
    }

    /// True when there are blanks between the key and `=`, or between `=` and the value (Setup
    /// would read `KEY ` and ` value`).
    pub fn has_blanks_around_equals(&self) -> bool {
        self.spans.key_end != self.spans.eq || self.spans.value_start != self.spans.eq + 1
    }

    /// Text after the value token (an inline comment), if any.
    pub fn trailing(&self) -> &'a str {
        self.text[self.spans.value_end as usize..].trim()
    }
}

fn unescape_double(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// True for a POSIX environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn key_problem(key: &str) -> Option<&'static str> {
    let b = key.as_bytes();
    match b.first() {
        None => Some("it is empty"),
        Some(c) if c.is_ascii_digit() => Some("it starts with a digit"),
        _ if !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_') => {
            Some("it contains a character other than A-Z, a-z, 0-9 and _")
        }
        _ => None,
    }
}

/// Why a value cannot be written as Setup writes values (raw, unquoted), if it cannot.
/// Never includes the value.
pub(crate) fn value_problem(value: &str) -> Option<String> {
    for (i, c) in value.chars().enumerate() {
        let what = match c {
            '\n' | '\r' => "a line break",
            ' ' | '\t' => "a blank",
            '#' => "a '#'",
            '$' => "a '$'",
            '"' | '\'' | '`' => "a quote",
            '\\' => "a backslash",
            c if c.is_control() => "a control character",
            _ => continue,
        };
        return Some(format!("contains {what} at character {}", i + 1));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> Entry<'_> {
        match classify(text) {
            LineKind::Entry(spans) => Entry {
                line_no: 1,
                text,
                spans,
            },
            other => panic!("{text:?} is {other:?}"),
        }
    }

    #[test]
    fn classifies_the_dialect() {
        assert_eq!(classify(""), LineKind::Blank);
        assert_eq!(classify(" \t "), LineKind::Blank);
        assert_eq!(classify("  # c=d"), LineKind::Comment);
        assert_eq!(classify("JUSTAWORD"), LineKind::Other);
        assert_eq!(classify("=v"), LineKind::Other);
        let e = entry("A=b");
        assert_eq!((e.key(), e.raw_value(), &*e.value()), ("A", "b", "b"));
        assert!(!e.has_blanks_around_equals());
        let e = entry("export  K = v # note");
        assert!(e.has_export());
        assert_eq!((e.key(), &*e.value(), e.trailing()), ("K", "v", "# note"));
        assert!(e.has_blanks_around_equals());
        let e = entry("K=v#x");
        assert_eq!(&*e.value(), "v#x");
        let e = entry(r#"C="Data Source=tcp:x;Password=a\"b;" # c"#);
        assert_eq!(&*e.value(), r#"Data Source=tcp:x;Password=a"b;"#);
        assert_eq!(e.quote(), Quote::Double);
        let e = entry("S='a $b \\n'");
        assert_eq!(&*e.value(), "a $b \\n");
        let e = entry("U=\"open");
        assert_eq!(e.quote(), Quote::Unterminated);
        assert_eq!(&*e.value(), "\"open");
        let e = entry("E=");
        assert_eq!(&*e.value(), "");
        let e = entry("E=  # only a comment");
        assert_eq!((&*e.value(), e.trailing()), ("", "# only a comment"));
        let e = entry("exporter=1");
        assert_eq!(e.key(), "exporter");
    }

    #[test]
    fn keys_and_values_are_validated_without_echoing() {
        assert_eq!(key_problem("globalSettings__x"), None);
        assert!(key_problem("1A").is_some());
        assert!(key_problem("A-B").is_some());
        assert!(key_problem("").is_some());
        assert_eq!(value_problem("https://api.bitwarden.eu"), None);
        let p = value_problem("sec ret").unwrap();
        assert!(
            p.contains("blank at character 4") && !p.contains("sec"),
            "{p}"
        );
    }

    #[test]
    fn renders_byte_identical_and_appends_with_file_style() {
        for text in [
            "",
            "A=1",
            "A=1\n",
            "\u{feff}A=1\r\nB=2",
            "\n\n#x\r\n",
            "a\r\r\n",
        ] {
            let doc = Document::parse(text.to_owned());
            assert_eq!(doc.render(), text);
            assert!(!doc.is_modified());
        }
        let mut doc = Document::parse("A=1\r\nB=2".to_owned());
        doc.push_line("C=3");
        assert_eq!(doc.render(), "A=1\r\nB=2\r\nC=3\r\n");
    }
}
