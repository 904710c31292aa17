//! The signed claims token of a license: a compact RS256 JWT (bitwarden/server
//! `LicensingService.GenerateToken`). Verified here with the RSA key directly: a JWT library
//! would add a second crypto stack for one algorithm.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use super::LicenseError;
use super::trust::TrustAnchor;
use crate::ids::CloudOrganizationId;

/// The issuer of license tokens.
pub const TOKEN_ISSUER: &str = "bitwarden";
/// The audience of an organization license's token is this prefix and the organization id.
pub const TOKEN_AUDIENCE_PREFIX: &str = "organization:";

/// The claims of a verified token: registered claims and the license's string-valued claims
/// (`"True"`/`"False"`, numbers as text, dates as `MM/dd/yyyy HH:mm:ss` UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LicenseClaims {
    /// Every claim that is a string, by name.
    pub values: BTreeMap<String, String>,
}

impl LicenseClaims {
    /// A claim's text.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A boolean claim (`True`/`False`, any case); missing or unreadable is `false`, as the
    /// real server reads it.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// A date claim in the .NET invariant form `MM/dd/yyyy HH:mm:ss` (or ISO 8601).
    pub fn date(&self, name: &str) -> Option<DateTime<Utc>> {
        let v = self.get(name)?.trim();
        NaiveDateTime::parse_from_str(v, "%m/%d/%Y %H:%M:%S")
            .map(|n| n.and_utc())
            .ok()
            .or_else(|| crate::wire::time::parse(v))
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Registered {
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
}

fn part(text: &str) -> Result<Vec<u8>, LicenseError> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| LicenseError::invalid("The license token is not a valid JWT (IDX12741)."))
}

/// Verifies a token for the license of `organization` at `now`; returns its claims and the
/// anchor its signature verified against.
pub(crate) fn verify_token<'a>(
    token: &str,
    organization: CloudOrganizationId,
    anchors: &'a [TrustAnchor],
    now: DateTime<Utc>,
) -> Result<(LicenseClaims, &'a TrustAnchor), LicenseError> {
    let mut parts = token.trim().split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(LicenseError::invalid(
            "The license token is not a valid JWT (IDX12741).",
        ));
    };
    let head: Header = serde_json::from_slice(&part(header)?)
        .map_err(|_| LicenseError::invalid("The license token's header is not JSON (IDX12723)."))?;
    if head.alg != "RS256" {
        return Err(LicenseError::invalid(format!(
            "The license token is signed with {}, not RS256 (IDX10511).",
            head.alg
        )));
    }
    let signed = &token.trim()[..header.len() + 1 + payload.len()];
    let signature = part(signature)?;
    let Some(anchor) = anchors
        .iter()
        .find(|a| a.verifies(signed.as_bytes(), &signature))
    else {
        return Err(LicenseError::invalid(
            "The license token's signature does not verify against the licensing key (IDX10503).",
        ));
    };
    let payload = part(payload)?;
    let registered: Registered = serde_json::from_slice(&payload).map_err(|_| {
        LicenseError::invalid("The license token's claims are not JSON (IDX12723).")
    })?;
    if registered.iss.as_deref() != Some(TOKEN_ISSUER) {
        return Err(LicenseError::invalid(
            "The license token's issuer is not bitwarden (IDX10205).",
        ));
    }
    let audience = format!("{TOKEN_AUDIENCE_PREFIX}{organization}");
    let audience_ok = match &registered.aud {
        Some(Audience::One(a)) => *a == audience,
        Some(Audience::Many(all)) => all.contains(&audience),
        None => false,
    };
    if !audience_ok {
        return Err(LicenseError::invalid(format!(
            "The license token is not for this license's organization {organization} (IDX10214)."
        )));
    }
    let t = now.timestamp();
    let Some(exp) = registered.exp else {
        return Err(LicenseError::invalid(
            "The license token has no expiration time (IDX10225).",
        ));
    };
    if exp <= t {
        return Err(LicenseError::invalid(
            "The license token has expired (IDX10223: Lifetime validation failed); get a current license from the cloud.",
        ));
    }
    if registered.nbf.is_some_and(|nbf| nbf > t) {
        return Err(LicenseError::invalid(
            "The license token is not valid yet (IDX10222: Lifetime validation failed); check this server's clock.",
        ));
    }
    let all: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&payload).map_err(|_| {
            LicenseError::invalid("The license token's claims are not JSON (IDX12723).")
        })?;
    let values = all
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect();
    Ok((LicenseClaims { values }, anchor))
}
