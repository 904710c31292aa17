//! JSON as the reference server writes it (System.Text.Json web defaults): camelCase, `null`
//! members written, enums as numbers, lower-case GUIDs, dates with up to seven fraction digits,
//! and the default encoder's escapes (non-ASCII and `<>&'+"` as `\uXXXX`).

use std::collections::BTreeMap;
use std::io;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::http::HttpResponse;

/// Writes `value` as the reference server does.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, StjFormatter);
    // Serializing the crate's own models into memory cannot fail.
    if let Err(e) = value.serialize(&mut ser) {
        tracing::error!(error = %e, "a response did not serialize");
        return b"null".to_vec();
    }
    out
}

/// serde_json's compact output with System.Text.Json's default escaping.
struct StjFormatter;

impl serde_json::ser::Formatter for StjFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_ascii() && !matches!(c, '<' | '>' | '&' | '\'' | '+' | '`' | '\x7f') {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0_u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04X}")?;
            }
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        use serde_json::ser::CharEscape;
        match escape {
            CharEscape::Quote => writer.write_all(b"\\u0022"),
            CharEscape::ReverseSolidus => writer.write_all(b"\\\\"),
            CharEscape::Backspace => writer.write_all(b"\\b"),
            CharEscape::FormFeed => writer.write_all(b"\\f"),
            CharEscape::LineFeed => writer.write_all(b"\\n"),
            CharEscape::CarriageReturn => writer.write_all(b"\\r"),
            CharEscape::Tab => writer.write_all(b"\\t"),
            CharEscape::AsciiControl(byte) => write!(writer, "\\u{byte:04X}"),
            CharEscape::Solidus => writer.write_all(b"/"),
        }
    }
}

/// A time as .NET's round-trip format writes it: seconds, then up to seven fraction digits
/// with trailing zeros trimmed, then `suffix` (`Z` for UTC values, nothing for database
/// values, `+00:00` for local ones on a server that runs on UTC).
pub(crate) fn dotnet_time(t: DateTime<Utc>, suffix: &str) -> String {
    let ticks = t.timestamp_subsec_nanos() / 100;
    let mut out = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if ticks > 0 {
        let digits = format!("{ticks:07}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push_str(suffix);
    out
}

#[allow(clippy::ref_option)] // serde's `serialize_with` passes `&Option<T>`
/// Serializes a database date (`DateTime` of kind Unspecified: no suffix).
pub(crate) fn db_date<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    raw_time(t.as_ref(), "", s)
}

#[allow(clippy::ref_option)] // serde's `serialize_with` passes `&Option<T>`
/// Serializes a UTC date (`Z`).
pub(crate) fn utc_date<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    raw_time(t.as_ref(), "Z", s)
}

#[allow(clippy::ref_option)] // serde's `serialize_with` passes `&Option<T>`
/// Serializes a local date of a server on UTC (`+00:00`).
pub(crate) fn local_date<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    raw_time(t.as_ref(), "+00:00", s)
}

/// A time as a JSON string written as is: System.Text.Json writes dates with its own
/// formatter, which does not escape (`+00:00` stays `+`, where a string's `+` is `\u002B`).
fn raw_time<S: Serializer>(
    t: Option<&DateTime<Utc>>,
    suffix: &str,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => {
            let raw = serde_json::value::RawValue::from_string(format!(
                "\"{}\"",
                dotnet_time(*t, suffix)
            ))
            .map_err(serde::ser::Error::custom)?;
            raw.serialize(s)
        }
        None => s.serialize_none(),
    }
}

/// The reference server's error body (`ErrorResponseModel`, `object` first).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    object: &'static str,
    message: &'a str,
    validation_errors: Option<&'a BTreeMap<String, Vec<String>>>,
    exception_message: Option<()>,
    exception_stack_trace: Option<()>,
    inner_exception_message: Option<()>,
}

/// Why a call failed: a status and the reference server's message, or a bare status (an
/// authentication challenge, a failed authorization policy, an unknown route).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status}: {message}")]
#[non_exhaustive]
pub struct ApiError {
    /// The status code.
    pub status: u16,
    /// The message (empty for a bare status).
    pub message: String,
    /// Model-state errors keyed by the C# property name (`SponsoredEmail`).
    pub validation_errors: Option<BTreeMap<String, Vec<String>>>,
    /// A bare status: no body at all.
    pub bare: bool,
}

impl ApiError {
    /// 400 with the reference server's message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::with_status(400, message)
    }

    /// 404 `Resource not found.`
    pub fn not_found() -> Self {
        Self::with_status(404, "Resource not found.")
    }

    /// 401 `Unauthorized.` with an error body (an `UnauthorizedAccessException`; the web vault
    /// logs the user out).
    pub fn unauthorized() -> Self {
        Self::with_status(401, "Unauthorized.")
    }

    /// 500 `An unhandled server error has occurred.` (the reference server's text for an
    /// unhandled exception).
    pub fn internal() -> Self {
        Self::with_status(500, "An unhandled server error has occurred.")
    }

    /// 400 `The model state is invalid.` with one field's errors.
    pub fn invalid_model(field: &str, error: impl Into<String>) -> Self {
        let mut errors = BTreeMap::new();
        errors.insert(field.to_owned(), vec![error.into()]);
        Self {
            validation_errors: Some(errors),
            ..Self::bad_request("The model state is invalid.")
        }
    }

    /// A status with no body (401 challenge, 403 policy failure, 404/405 routing).
    pub fn bare(status: u16) -> Self {
        Self {
            status,
            message: String::new(),
            validation_errors: None,
            bare: true,
        }
    }

    fn with_status(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            validation_errors: None,
            bare: false,
        }
    }

    /// The message a page shows: the first validation error when there is one.
    pub(crate) fn user_message(&self) -> String {
        self.validation_errors
            .as_ref()
            .and_then(|e| e.values().flatten().next().cloned())
            .unwrap_or_else(|| self.message.clone())
    }

    /// The response.
    pub fn to_response(&self) -> HttpResponse {
        if self.bare {
            let response = HttpResponse::empty(self.status);
            return if self.status == 401 {
                response.with_header("www-authenticate", "Bearer".into())
            } else {
                response
            };
        }
        HttpResponse::json(
            self.status,
            to_vec(&ErrorBody {
                object: "error",
                message: &self.message,
                validation_errors: self.validation_errors.as_ref(),
                exception_message: None,
                exception_stack_trace: None,
                inner_exception_message: None,
            }),
        )
    }
}

/// A store or host failure: logged with its cause, answered 500 without it.
pub(crate) fn internal(what: &str, e: &dyn std::error::Error) -> ApiError {
    tracing::error!(error = %e, "{what} failed");
    ApiError::internal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn strings_are_escaped_as_the_default_encoder_does() {
        let text = String::from_utf8(to_vec(&"a+b@x.example <é> \"q\" 'x' & 😀\x7f")).unwrap();
        assert_eq!(
            text,
            r#""a\u002Bb@x.example \u003C\u00E9\u003E \u0022q\u0022 \u0027x\u0027 \u0026 \uD83D\uDE00\u007F""#
        );
    }

    #[test]
    fn times_trim_fraction_zeros_and_take_their_suffix() {
        let t = Utc.with_ymd_and_hms(2026, 12, 2, 8, 30, 0).unwrap();
        assert_eq!(dotnet_time(t, "Z"), "2026-12-02T08:30:00Z");
        let t = t + chrono::TimeDelta::microseconds(120_500);
        assert_eq!(dotnet_time(t, ""), "2026-12-02T08:30:00.1205");
        assert_eq!(dotnet_time(t, "+00:00"), "2026-12-02T08:30:00.1205+00:00");
    }

    #[test]
    fn dates_are_written_unescaped() {
        #[derive(Serialize)]
        struct Dated {
            #[serde(serialize_with = "local_date")]
            at: Option<DateTime<Utc>>,
        }
        let at = Some(Utc.with_ymd_and_hms(2026, 12, 2, 8, 30, 0).unwrap());
        assert_eq!(
            String::from_utf8(to_vec(&Dated { at })).unwrap(),
            r#"{"at":"2026-12-02T08:30:00+00:00"}"#
        );
    }

    #[test]
    fn error_bodies_have_the_reference_shape() {
        let body = ApiError::bad_request("Unknown Organization User").to_response();
        assert_eq!(body.status, 400);
        assert_eq!(
            body.text(),
            r#"{"object":"error","message":"Unknown Organization User","validationErrors":null,"exceptionMessage":null,"exceptionStackTrace":null,"innerExceptionMessage":null}"#
        );
        let bare = ApiError::bare(403).to_response();
        assert!(bare.body.is_empty());
    }
}
