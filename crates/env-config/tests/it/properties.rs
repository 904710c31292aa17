//! Property tests: parse → render is the identity, and `set` touches only its line.

use env_config::EnvFile;
use proptest::prelude::*;

/// Lines drawn from the dialect and its edge cases.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("   ".to_owned()),
        "#[ -~]{0,20}",
        "[A-Za-z_][A-Za-z0-9_]{0,12}=[ -~]{0,20}",
        "export [A-Z_]{1,8}=\"[ -~]{0,12}\"",
        "[A-Z]{1,6} = '[a-z $]{0,8}' # c",
        "[A-Za-z]{1,6}=\"unterminated[a-z]{0,4}",
        "\\PC{0,16}",
    ]
}

fn eol() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("\n"), Just("\r\n")]
}

/// A document: optional BOM, lines with mixed endings, optional final newline.
fn document() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec((line(), eol()), 0..20),
        any::<bool>(),
    )
        .prop_map(|(bom, lines, final_newline)| {
            let mut s = String::new();
            if bom {
                s.push('\u{feff}');
            }
            let n = lines.len();
            for (i, (l, e)) in lines.into_iter().enumerate() {
                s.push_str(&l.replace(['\n', '\r'], ""));
                if i + 1 < n || final_newline {
                    s.push_str(e);
                }
            }
            s
        })
}

fn lines_of(s: &str) -> Vec<&str> {
    s.strip_prefix('\u{feff}')
        .unwrap_or(s)
        .split_inclusive('\n')
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_then_render_is_the_identity_on_documents(text in document()) {
        let file = EnvFile::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(file.render(), text);
        prop_assert!(!file.is_modified());
        prop_assert_eq!(file.diff(), "");
    }

    #[test]
    fn parse_then_render_is_the_identity_on_any_utf8(text in "\\PC*|[\r\n =\"'#a-z]*") {
        let file = EnvFile::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(file.render(), text);
    }

    #[test]
    fn set_then_get_returns_the_value_and_keeps_other_lines(
        text in document(),
        key in "[A-Za-z_][A-Za-z0-9_]{0,10}",
        value in "[A-Za-z0-9:/._,;=@+-]{0,24}",
    ) {
        let mut file = EnvFile::parse(text.as_bytes()).unwrap();
        let before: Vec<usize> = file.occurrences(&key).map(|e| e.line()).collect();
        match file.set(&key, &value) {
            Err(env_config::Error::AmbiguousKey { lines, .. }) => {
                prop_assert!(before.len() > 1);
                prop_assert_eq!(lines, before);
                prop_assert_eq!(file.render(), text);
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
            Ok(changed) => {
                let got = file.get(&key).map(std::borrow::Cow::into_owned);
                prop_assert_eq!(got.as_deref(), Some(value.as_str()));
                let after = file.render();
                prop_assert_eq!(changed, after != text);
                let old = lines_of(&text);
                let new = lines_of(&after);
                if let Some(&line) = before.first() {
                        // Same number of lines; only `line` differs.
                        prop_assert_eq!(old.len(), new.len());
                        for (i, (o, n)) in old.iter().zip(&new).enumerate() {
                            if i + 1 != line {
                                prop_assert_eq!(o, n);
                            }
                        }
                } else {
                        // Appended: every old line kept (the last one may gain a line ending).
                        prop_assert_eq!(new.len(), old.len() + 1);
                        for (o, n) in old.iter().zip(&new) {
                            prop_assert!(n.starts_with(o), "{:?} -> {:?}", o, n);
                        }
                        let last = new.last().unwrap();
                        let expected = format!("{key}={value}");
                        prop_assert!(last.trim_end_matches(['\r', '\n']) == expected);
                }
                // Re-parsing the rendered text gives the same value.
                let again = EnvFile::parse(after.as_bytes()).unwrap();
                let got = again.get(&key).map(std::borrow::Cow::into_owned);
                prop_assert_eq!(got.as_deref(), Some(value.as_str()));
            }
        }
    }

    #[test]
    fn remove_deletes_exactly_one_line(text in document(), key in "[A-Z]{1,3}") {
        let mut file = EnvFile::parse(text.as_bytes()).unwrap();
        let before: Vec<usize> = file.occurrences(&key).map(|e| e.line()).collect();
        match file.remove(&key) {
            Ok(true) => {
                prop_assert_eq!(before.len(), 1);
                prop_assert_eq!(file.line_count() + 1, lines_of(&text).len());
                prop_assert!(file.get(&key).is_none());
            }
            Ok(false) => prop_assert!(before.is_empty()),
            Err(_) => prop_assert!(before.len() > 1),
        }
    }
}

#[test]
fn new_keys_use_the_files_line_ending_and_bom_is_kept() {
    let mut file = EnvFile::parse("\u{feff}A=1\r\nB=2").unwrap();
    assert!(file.set("C", "3").unwrap());
    assert_eq!(file.render(), "\u{feff}A=1\r\nB=2\r\nC=3\r\n");
    let mut file = EnvFile::parse("").unwrap();
    file.set("A", "1").unwrap();
    assert_eq!(file.render(), "A=1\n");
}

#[test]
fn set_keeps_the_rest_of_the_line_and_writes_values_unquoted() {
    let mut file = EnvFile::parse("export  A = \"old value\" # keep me\nB='x'\n").unwrap();
    file.set("a", "new").unwrap();
    file.set("B", "x").unwrap(); // reads back equal: untouched
    assert_eq!(file.render(), "export  A = new # keep me\nB='x'\n");
    let mut file = EnvFile::parse("C= # empty\n").unwrap();
    file.set("C", "v").unwrap();
    assert_eq!(file.render(), "C= v # empty\n");
    assert_eq!(file.get("C").as_deref(), Some("v"));
    // Text glued to a closing quote would join an unquoted value: it is dropped.
    let mut file = EnvFile::parse("D='x'junk # c\nE=\"y\"\0\n").unwrap();
    file.set("D", "1").unwrap();
    file.set("E", "2").unwrap();
    assert_eq!(file.render(), "D=1 # c\nE=2\n");
}

#[test]
fn invalid_keys_and_unsafe_values_are_refused_without_echoing_the_value() {
    let mut file = EnvFile::parse("A=1\n").unwrap();
    let err = file.set("1BAD", "x").unwrap_err();
    assert!(matches!(err, env_config::Error::InvalidKey { .. }), "{err}");
    assert!(err.to_string().contains("<memory>"), "{err}");
    let err = file.set("A", "s3cr3t value").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("blank") && !text.contains("s3cr3t"), "{text}");
    assert_eq!(file.render(), "A=1\n");
}

#[test]
fn case_variants_are_reported_never_merged() {
    let text = "globalSettings__installation__id=a\nGLOBALSETTINGS__INSTALLATION__ID=b\n";
    let mut file = EnvFile::parse(text).unwrap();
    let err = file
        .set("globalSettings__installation__id", "c")
        .unwrap_err();
    assert!(err.to_string().contains("line 1, line 2"), "{err}");
    assert!(file.remove("globalSettings__installation__id").is_err());
    assert_eq!(file.render(), text);
    // The last occurrence is the one read.
    assert_eq!(
        file.get("globalSettings__installation__id").as_deref(),
        Some("b")
    );
}
