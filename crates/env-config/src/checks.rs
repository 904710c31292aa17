//! Checks with stable codes, a severity, a line and a fix hint. No message ever contains a
//! value that could be a secret: the installation key is described, never shown.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use sponsorship_core::ids::InstallationId;
use sponsorship_core::region::{CloudRegion, validate_endpoint};
use sponsorship_core::secret::InstallationKey;
use url::Url;

use crate::document::{LineKind, Quote, key_problem};
use crate::error::{Result, from_io};
use crate::file::EnvFile;
use crate::settings::{
    DEFAULT_PUSH_RELAY_URI, PushRelay, UriSetting, is_placeholder, keys, url_value,
};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; nothing breaks.
    Info,
    /// Likely to cause trouble, or read differently by Setup and docker compose.
    Warning,
    /// The server will fail to start, or billing sync will fail.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

/// The stable code of a finding. [`CheckCode::as_str`] gives the kebab-case name scripts can
/// match on; names never change once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckCode {
    /// `region-uri-mismatch`: the region and an identity/API/push URL point at different
    /// regions (including a URL left at its US default under `cloudRegion=EU`).
    RegionUriMismatch,
    /// `unknown-region`: `cloudRegion` is none of US, EU, Gov, Custom.
    UnknownRegion,
    /// `invalid-uri`: a URL setting is not a valid https URL (http only on loopback).
    InvalidUri,
    /// `installation-id-not-guid`: the installation id is not a GUID (the server fails to start).
    InstallationIdNotGuid,
    /// `installation-id-nil`: the installation id is all zeros (Setup's value when none was given).
    InstallationIdNil,
    /// `installation-key-format`: the installation key is not 20 letters and digits.
    InstallationKeyFormat,
    /// `installation-id-key-swapped`: the id looks like a key and the key like an id.
    InstallationIdKeySwapped,
    /// `installation-missing`: cloud communication is on but the id or key is not in this file.
    InstallationMissing,
    /// `placeholder-value`: the installation id or key is `SECRET`, `REPLACE` or blank.
    PlaceholderValue,
    /// `bad-boolean`: a boolean setting is not `true` or `false`.
    BadBoolean,
    /// `unsafe-value-chars`: a value that Setup and docker compose read differently.
    UnsafeValueChars,
    /// `duplicate-key`: the same key on more than one line.
    DuplicateKey,
    /// `duplicate-key-case`: keys that differ only in case (the server ignores case).
    DuplicateKeyCase,
    /// `blanks-around-equals`: `KEY = value` (Setup reads the key as `KEY `).
    BlanksAroundEquals,
    /// `export-prefix`: `export KEY=value` (Setup reads the key as `export KEY`).
    ExportPrefix,
    /// `inline-comment`: `KEY=value # note` (Setup keeps the comment in the value).
    InlineComment,
    /// `unterminated-quote`: a quote that is not closed on its line.
    UnterminatedQuote,
    /// `invalid-key-name`: a key that is not `[A-Za-z_][A-Za-z0-9_]*`.
    InvalidKeyName,
    /// `not-an-assignment`: a line that is neither blank, a comment nor `KEY=VALUE`.
    NotAnAssignment,
    /// `cloud-communication-disabled`: billing sync will not run.
    CloudCommunicationDisabled,
    /// `file-mode-too-open`: the file is readable or writable by group or others.
    FileModeTooOpen,
    /// `duplicate-key-case-across-files`: two files that compose passes to the same container
    /// hold keys that differ only in case (the server ignores case; which wins is unspecified).
    DuplicateKeyCaseAcrossFiles,
    /// `lite-installation-override`: a Bitwarden Lite file sets `globalSettings__installation__*`,
    /// which its entrypoint overrides with `BW_INSTALLATION_*`.
    LiteInstallationOverride,
}

impl CheckCode {
    /// The stable kebab-case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RegionUriMismatch => "region-uri-mismatch",
            Self::UnknownRegion => "unknown-region",
            Self::InvalidUri => "invalid-uri",
            Self::InstallationIdNotGuid => "installation-id-not-guid",
            Self::InstallationIdNil => "installation-id-nil",
            Self::InstallationKeyFormat => "installation-key-format",
            Self::InstallationIdKeySwapped => "installation-id-key-swapped",
            Self::InstallationMissing => "installation-missing",
            Self::PlaceholderValue => "placeholder-value",
            Self::BadBoolean => "bad-boolean",
            Self::UnsafeValueChars => "unsafe-value-chars",
            Self::DuplicateKey => "duplicate-key",
            Self::DuplicateKeyCase => "duplicate-key-case",
            Self::BlanksAroundEquals => "blanks-around-equals",
            Self::ExportPrefix => "export-prefix",
            Self::InlineComment => "inline-comment",
            Self::UnterminatedQuote => "unterminated-quote",
            Self::InvalidKeyName => "invalid-key-name",
            Self::NotAnAssignment => "not-an-assignment",
            Self::CloudCommunicationDisabled => "cloud-communication-disabled",
            Self::FileModeTooOpen => "file-mode-too-open",
            Self::LiteInstallationOverride => "lite-installation-override",
            Self::DuplicateKeyCaseAcrossFiles => "duplicate-key-case-across-files",
        }
    }
}

impl fmt::Display for CheckCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// Stable code.
    pub code: CheckCode,
    /// How bad it is.
    pub severity: Severity,
    /// 1-based line, when the finding is about one line.
    pub line: Option<usize>,
    /// The key concerned, if any.
    pub key: Option<String>,
    /// What is wrong. Never contains a secret value.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} [{}] line {line}: ", self.severity, self.code)?,
            None => write!(f, "{} [{}]: ", self.severity, self.code)?,
        }
        write!(f, "{} (fix: {})", self.message, self.fix)
    }
}

fn finding(
    code: CheckCode,
    severity: Severity,
    line: Option<usize>,
    key: Option<&str>,
    message: String,
    fix: String,
) -> Finding {
    Finding {
        code,
        severity,
        line,
        key: key.map(str::to_owned),
        message,
        fix,
    }
}

/// Boolean settings the server parses with .NET `bool` (only `true`/`false`, any case).
const BOOLEAN_KEYS: [&str; 3] = [
    keys::ENABLE_CLOUD_COMMUNICATION,
    keys::SELF_HOSTED,
    "globalSettings__disableUserRegistration",
];

/// Checks the permission bits of `path`: anything readable or writable by group or others is
/// a [`CheckCode::FileModeTooOpen`] warning (Setup writes these files 0600; they hold the
/// installation key and database password).
pub fn check_file_mode(path: &Path) -> Result<Option<Finding>> {
    let meta = std::fs::metadata(path).map_err(|e| from_io(path, "reading metadata of", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(mode_finding(meta.permissions().mode() & 0o7777))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Ok(None)
    }
}

pub(crate) fn mode_finding(mode: u32) -> Option<Finding> {
    (mode & 0o077 != 0).then(|| {
        finding(
            CheckCode::FileModeTooOpen,
            Severity::Warning,
            None,
            None,
            format!(
                "the file's mode is {mode:04o}: group or others can read or change the installation key and other secrets"
            ),
            "chmod 600 the file (Bitwarden Setup writes it 0600, owned by the bitwarden user)"
                .to_owned(),
        )
    })
}

/// Checks files that docker compose passes to the same containers, in compose's order (for
/// Bitwarden: `docker/global.env`, `env/uid.env`, `env/global.override.env`), for keys that
/// differ only in case between two files. The same key with the same case in a later file is
/// the normal override and is not reported. Findings carry the line in the later file and name
/// both files in the message.
pub fn check_across_files(files: &[&EnvFile]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, later) in files.iter().enumerate() {
        for earlier in &files[..i] {
            // Lower-cased key -> first entry, so the check stays linear in the file sizes.
            let mut seen = HashMap::new();
            for o in earlier.entries() {
                seen.entry(o.key().to_ascii_lowercase()).or_insert(o);
            }
            for e in later.entries() {
                let Some(other) = seen.get(&e.key().to_ascii_lowercase()) else {
                    continue;
                };
                if other.key() == e.key() {
                    continue;
                }
                out.push(finding(
                    CheckCode::DuplicateKeyCaseAcrossFiles,
                    Severity::Error,
                    Some(e.line()),
                    Some(e.key()),
                    format!(
                        "{} line {} sets {} and {} line {} sets {}: the server ignores case, so which value wins is unspecified",
                        later.path().display(),
                        e.line(),
                        e.key(),
                        earlier.path().display(),
                        other.line(),
                        other.key()
                    ),
                    format!("spell the key exactly as {} does", earlier.path().display()),
                ));
            }
        }
    }
    out
}

impl EnvFile {
    /// Runs every check on the document (and on the file's mode, if it was read from disk).
    /// Findings are in line order, file-wide ones last.
    pub fn checks(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        self.line_checks(&mut out);
        self.duplicate_checks(&mut out);
        self.setting_checks(&mut out);
        if let Some(f) = self.mode.and_then(mode_finding) {
            out.push(f);
        }
        out.sort_by_key(|f| (f.line.is_none(), f.line));
        out
    }

    fn line_checks(&self, out: &mut Vec<Finding>) {
        for (i, line) in self.doc.lines.iter().enumerate() {
            let n = Some(i + 1);
            if line.kind == LineKind::Other {
                out.push(finding(
                    CheckCode::NotAnAssignment,
                    Severity::Warning,
                    n,
                    None,
                    "this line is neither blank, a comment nor KEY=VALUE; docker compose may reject it".into(),
                    "write it as KEY=VALUE, or start it with # to make it a comment".into(),
                ));
            }
        }
        for e in self.entries() {
            let key = e.key();
            let n = Some(e.line());
            if let Some(reason) = key_problem(key) {
                out.push(finding(
                    CheckCode::InvalidKeyName,
                    Severity::Warning,
                    n,
                    None,
                    format!("the key is not a valid environment variable name: {reason}"),
                    "use only A-Z, a-z, 0-9 and _ in keys, not starting with a digit".into(),
                ));
            }
            if e.has_export() {
                out.push(finding(
                    CheckCode::ExportPrefix,
                    Severity::Warning,
                    n,
                    Some(key),
                    format!("{key} has an `export ` prefix: docker compose accepts it, but Bitwarden Setup reads the key as `export {key}` on update"),
                    format!("remove `export ` so the line starts with {key}="),
                ));
            }
            if e.has_blanks_around_equals() {
                out.push(finding(
                    CheckCode::BlanksAroundEquals,
                    Severity::Warning,
                    n,
                    Some(key),
                    format!("{key} has blanks around `=`: Bitwarden Setup does not trim them and reads a different key or value"),
                    format!("write it as {key}=VALUE with no blanks"),
                ));
            }
            if e.quote() == Quote::Unterminated {
                out.push(finding(
                    CheckCode::UnterminatedQuote,
                    Severity::Error,
                    n,
                    Some(key),
                    format!("the value of {key} opens a quote that is not closed on the same line"),
                    "close the quote, or remove it (the values Bitwarden needs never need quotes)"
                        .into(),
                ));
            } else if !e.trailing().is_empty() {
                out.push(finding(
                    CheckCode::InlineComment,
                    Severity::Warning,
                    n,
                    Some(key),
                    format!("{key} has text after its value: docker compose drops it as a comment, but Bitwarden Setup keeps it as part of the value"),
                    "move the comment to its own line starting with #".into(),
                ));
            }
            if let Some(problem) = unsafe_chars(e.raw_value(), e.quote()) {
                out.push(finding(
                    CheckCode::UnsafeValueChars,
                    Severity::Warning,
                    n,
                    Some(key),
                    format!("the value of {key} {problem}: Setup, docker compose and old docker-compose read such values differently"),
                    "use a value without blanks, #, $, quotes or backslashes, or quote it with \"…\" as Setup does for the connection string".into(),
                ));
            }
            if BOOLEAN_KEYS.iter().any(|b| b.eq_ignore_ascii_case(key)) {
                let v = e.value();
                if !is_placeholder(&v)
                    && !v.eq_ignore_ascii_case("true")
                    && !v.eq_ignore_ascii_case("false")
                {
                    out.push(finding(
                        CheckCode::BadBoolean,
                        Severity::Error,
                        n,
                        Some(key),
                        format!("{key} must be true or false; the server refuses to start on any other value (1, yes, on are not accepted)"),
                        format!("write {key}=true or {key}=false"),
                    ));
                }
            }
        }
    }

    fn duplicate_checks(&self, out: &mut Vec<Finding>) {
        let mut by_key: HashMap<String, Vec<(usize, &str)>> = HashMap::new();
        for e in self.entries() {
            by_key
                .entry(e.key().to_ascii_lowercase())
                .or_default()
                .push((e.line(), e.key()));
        }
        let mut groups: Vec<_> = by_key.into_values().filter(|v| v.len() > 1).collect();
        groups.sort_by_key(|v| v[0].0);
        for group in groups {
            let first = group[0].1;
            let lines: Vec<String> = group.iter().map(|(l, _)| l.to_string()).collect();
            let lines = lines.join(", ");
            let (code, message) = if group.iter().all(|(_, k)| *k == first) {
                (
                    CheckCode::DuplicateKey,
                    format!("{first} is set on lines {lines}; docker compose uses the last one"),
                )
            } else {
                (
                    CheckCode::DuplicateKeyCase,
                    format!(
                        "keys on lines {lines} differ only in case ({}); the server ignores case, so which value wins is unspecified",
                        group.iter().map(|(_, k)| *k).collect::<Vec<_>>().join(", ")
                    ),
                )
            };
            for (line, key) in &group[1..] {
                out.push(finding(
                    code,
                    Severity::Error,
                    Some(*line),
                    Some(key),
                    message.clone(),
                    "keep one line for the key and delete the others".into(),
                ));
            }
        }
    }

    fn setting_checks(&self, out: &mut Vec<Finding>) {
        let s = self.settings();
        let enabled = s.cloud_communication;
        if !enabled {
            out.push(finding(
                CheckCode::CloudCommunicationDisabled,
                Severity::Info,
                self.entry(keys::ENABLE_CLOUD_COMMUNICATION)
                    .map(|e| e.line()),
                Some(keys::ENABLE_CLOUD_COMMUNICATION),
                "cloud communication is off: billing sync and license sync will not run".into(),
                format!(
                    "set {}=true (enable-cloud does this with the region's URLs)",
                    keys::ENABLE_CLOUD_COMMUNICATION
                ),
            ));
        }
        self.installation_checks(enabled, out);
        for (key, setting) in [
            (keys::IDENTITY_URI, &s.identity_uri),
            (keys::API_URI, &s.api_uri),
        ] {
            self.uri_validity(key, setting.line, out);
        }
        if let Some(e) = self.entry(keys::PUSH_RELAY_BASE_URI)
            && !is_placeholder(&e.value())
        {
            self.uri_validity(keys::PUSH_RELAY_BASE_URI, Some(e.line()), out);
        }
        self.region_checks(&s, out);
    }

    fn uri_validity(&self, key: &'static str, line: Option<usize>, out: &mut Vec<Finding>) {
        let Some(value) = self.get(key).filter(|v| !is_placeholder(v)) else {
            if let Some(v) = self.get(key).filter(|v| !v.trim().is_empty())
                && key != keys::PUSH_RELAY_BASE_URI
            {
                {
                    out.push(finding(
                        CheckCode::PlaceholderValue,
                        Severity::Warning,
                        line,
                        Some(key),
                        format!("{key} is the placeholder {v}: this crate and the server's other code treat it as unset, but the installation settings may use it literally"),
                        "remove the line, or set the region's URL".to_owned(),
                    ));
                }
            }
            return;
        };
        if let Err(e) = validate_endpoint("endpoint", &value) {
            out.push(finding(
                CheckCode::InvalidUri,
                Severity::Error,
                line,
                Some(key),
                format!("{key}: {e}"),
                "use the region's https URL, e.g. https://api.bitwarden.eu (enable-cloud writes them)"
                    .into(),
            ));
        }
    }

    fn installation_checks(&self, enabled: bool, out: &mut Vec<Finding>) {
        let (id_name, key_name) = self.installation_keys();
        if id_name == keys::LITE_INSTALLATION_ID {
            for shadowed in [keys::INSTALLATION_ID, keys::INSTALLATION_KEY] {
                if let Some(e) = self.entry(shadowed) {
                    out.push(finding(
                        CheckCode::LiteInstallationOverride,
                        Severity::Warning,
                        Some(e.line()),
                        Some(shadowed),
                        format!("this is a Bitwarden Lite settings file: its entrypoint overrides {shadowed} with the BW_INSTALLATION_* value, so this line has no effect"),
                        "set BW_INSTALLATION_ID and BW_INSTALLATION_KEY instead, and remove this line".into(),
                    ));
                }
            }
        }
        let id_entry = self.entry(id_name);
        let key_entry = self.entry(key_name);
        let id_value = id_entry.map(|e| e.value().trim().to_owned());
        let key_value = key_entry.map(|e| e.value().trim().to_owned());
        let severity = if enabled {
            Severity::Error
        } else {
            Severity::Warning
        };

        for (name, entry, value) in [
            (id_name, id_entry, &id_value),
            (key_name, key_entry, &key_value),
        ] {
            match (entry, value) {
                (None, _) if enabled => out.push(finding(
                    CheckCode::InstallationMissing,
                    Severity::Error,
                    None,
                    Some(name),
                    format!("cloud communication is on but {name} is not in this file"),
                    "add the installation id and key from https://bitwarden.com/host (choose the same region)".into(),
                )),
                (Some(e), Some(v)) if is_placeholder(v) => out.push(finding(
                    CheckCode::PlaceholderValue,
                    severity,
                    Some(e.line()),
                    Some(name),
                    format!("{name} is a placeholder (blank, SECRET or REPLACE): the server treats it as unset"),
                    "paste the value from https://bitwarden.com/host (choose the same region)".into(),
                )),
                _ => {}
            }
        }

        let id_real = id_value.as_deref().filter(|v| !is_placeholder(v));
        let key_real = key_value.as_deref().filter(|v| !is_placeholder(v));
        let id_ok = id_real.map(str::parse::<InstallationId>);
        let key_ok = key_real.map(InstallationKey::parse);
        let swapped = matches!((&id_ok, &key_ok), (Some(Err(_)), Some(Err(_))))
            && id_real.is_some_and(|v| InstallationKey::parse(v).is_ok())
            && key_real.is_some_and(|v| v.parse::<InstallationId>().is_ok());
        if swapped {
            out.push(finding(
                CheckCode::InstallationIdKeySwapped,
                Severity::Error,
                id_entry.map(|e| e.line()),
                Some(id_name),
                format!("{id_name} holds a 20-character key and {key_name} holds a GUID: they look swapped"),
                "swap the two values: the id is the GUID, the key the 20 letters and digits".into(),
            ));
            return;
        }
        match id_ok {
            Some(Err(_)) => out.push(finding(
                CheckCode::InstallationIdNotGuid,
                Severity::Error,
                id_entry.map(|e| e.line()),
                Some(id_name),
                format!("{} is not a GUID ({} characters); the server refuses to start", id_name, id_real.map_or(0, |v| v.chars().count())),
                "paste the installation id (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx) from https://bitwarden.com/host".into(),
            )),
            Some(Ok(id)) if id.as_uuid().is_nil() => out.push(finding(
                CheckCode::InstallationIdNil,
                severity,
                id_entry.map(|e| e.line()),
                Some(id_name),
                format!("{id_name} is all zeros: Setup writes that when no id was given"),
                "paste the installation id from https://bitwarden.com/host".into(),
            )),
            _ => {}
        }
        if let Some(Err(e)) = key_ok {
            out.push(finding(
                CheckCode::InstallationKeyFormat,
                Severity::Error,
                key_entry.map(|e| e.line()),
                Some(key_name),
                // SecretFormatError never contains the value.
                e.to_string(),
                "paste the installation key (20 letters and digits) from https://bitwarden.com/host".into(),
            ));
        }
    }

    fn region_checks(&self, s: &crate::settings::CloudSettings, out: &mut Vec<Finding>) {
        let region_entry = self.entry(keys::CLOUD_REGION);
        let region_line = region_entry.map(|e| e.line());
        let named = match (&s.region, region_entry) {
            (Some(CloudRegion::Custom(_)), _) => return,
            (Some(r), _) => Some(r.clone()),
            (None, Some(e)) if !is_placeholder(&e.value()) => {
                let v = e.value();
                let custom = v.trim().eq_ignore_ascii_case("custom");
                out.push(finding(
                    CheckCode::UnknownRegion,
                    Severity::Error,
                    region_line,
                    Some(keys::CLOUD_REGION),
                    if custom {
                        format!("{} is Custom, but the identity and API URLs are not valid custom endpoints", keys::CLOUD_REGION)
                    } else {
                        format!("{} is {:?}, which is none of US, EU, Gov", keys::CLOUD_REGION, v.chars().take(32).collect::<String>())
                    },
                    format!("set {}=US or EU, the region where you got the installation id", keys::CLOUD_REGION),
                ));
                None
            }
            _ => None,
        };
        let push = match &s.push_relay {
            PushRelay::Inherited => Url::parse(DEFAULT_PUSH_RELAY_URI)
                .ok()
                .map(|u| (u, true, None)),
            PushRelay::Uri(u) => Some((
                u.clone(),
                false,
                self.entry(keys::PUSH_RELAY_BASE_URI).map(|e| e.line()),
            )),
            PushRelay::Disabled | PushRelay::Invalid => None,
        };
        let uris: [(&str, &'static str, Option<UriAt>); 3] = [
            (
                "identity URL",
                keys::IDENTITY_URI,
                Some(uri_triple(&s.identity_uri)),
            ),
            ("API URL", keys::API_URI, Some(uri_triple(&s.api_uri))),
            ("push relay URL", keys::PUSH_RELAY_BASE_URI, push),
        ];
        // The region to compare against: cloudRegion, else what the identity URL says.
        let (reference, reference_name) = match named {
            Some(r) => (
                r,
                format!(
                    "{} is {}",
                    keys::CLOUD_REGION,
                    s.region.as_ref().map_or("", CloudRegion::name)
                ),
            ),
            None => match CloudRegion::of_url(&s.identity_uri.url) {
                Some(r) => (r.clone(), format!("the identity URL is in region {r}")),
                None => return,
            },
        };
        for (what, key, uri) in uris {
            let Some((url, is_default, line)) = uri else {
                continue;
            };
            let Some(actual) = CloudRegion::of_url(&url) else {
                continue;
            };
            if actual == reference {
                continue;
            }
            let origin = if is_default {
                format!(" (the default, because {key} is not set)")
            } else {
                String::new()
            };
            let expected = match key {
                keys::IDENTITY_URI => Some(reference.identity_uri()),
                keys::API_URI => Some(reference.api_uri()),
                _ => reference.push_relay_uri(),
            };
            let fix = match expected {
                Some(u) => format!(
                    "set {key}={} (or run enable-cloud for region {reference})",
                    url_value(&u)
                ),
                None => {
                    format!("set {key} to your region's push relay, or REPLACE to disable push")
                }
            };
            out.push(finding(
                CheckCode::RegionUriMismatch,
                Severity::Error,
                line.or(region_line),
                Some(key),
                format!("{reference_name} but the {what} is {} (region {actual}){origin}: the installation will authenticate against the wrong region and sync fails", url_value(&url)),
                fix,
            ));
        }
    }
}

/// A URL, whether it is the server's default, and its line.
type UriAt = (Url, bool, Option<usize>);

fn uri_triple(s: &UriSetting) -> UriAt {
    (
        s.url.clone(),
        s.is_default,
        if s.is_default { None } else { s.line },
    )
}

/// Why a raw value token is read differently by Setup and compose, without showing it.
fn unsafe_chars(raw: &str, quote: Quote) -> Option<String> {
    let inner = match quote {
        Quote::Double => {
            // Setup writes the connection string this way; only `$` (interpolation) is unsafe.
            return raw.find('$').map(|i| {
                format!("contains a '$' at character {i} (docker compose may interpolate it)")
            });
        }
        Quote::Single => {
            return Some("is single-quoted (Setup keeps the quotes as part of the value)".into());
        }
        Quote::None | Quote::Unterminated => raw,
    };
    for (i, c) in inner.chars().enumerate() {
        let what = match c {
            ' ' | '\t' => "a blank",
            '$' => "a '$'",
            '"' | '\'' | '`' => "a quote",
            '\\' => "a backslash",
            '\r' => "a carriage return",
            c if c.is_control() => "a control character",
            _ => continue,
        };
        return Some(format!("contains {what} at character {}", i + 1));
    }
    None
}
