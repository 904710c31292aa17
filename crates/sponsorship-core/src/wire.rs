//! Wire types of the server-to-server protocol (spec §3, §4.1, §5.3, §5.4, §11), with the exact
//! JSON names (camelCase).
//!
//! Timestamps: the reference cloud writes some values with a `Z` and some (read back from its
//! database) with no offset at all. [`time`] accepts both and treats an offset-less value as UTC;
//! it always writes RFC 3339 with `Z`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CloudOrganizationId, MemberId};
use crate::plan::PlanSponsorshipType;
use crate::secret::RawSecret;

/// Serde helpers for the reference server's timestamps.
pub mod time {
    use chrono::{
        DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Timelike, Utc,
    };
    use serde::{Deserialize, Deserializer, Serializer};

    /// Parses an ISO-8601 timestamp with or without an offset; an offset-less value is UTC.
    pub fn parse(s: &str) -> Option<DateTime<Utc>> {
        let s = s.trim();
        if let Some(t) = parse_utc_fast(s.as_bytes(), true) {
            return Some(t);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Some(t.with_timezone(&Utc));
        }
        for fmt in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M:%S%.f",
        ] {
            if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
                return Some(n.and_utc());
            }
        }
        None
    }

    /// Parses a strict RFC 3339 timestamp (an offset is required, nothing around it), as
    /// chrono's `parse_from_rfc3339` does, into UTC. The forms this project writes (`…Z` or
    /// `…+00:00` with 0–9 fraction digits) are read without chrono's general parser.
    pub fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
        parse_utc_fast(s.as_bytes(), false).or_else(|| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
    }

    fn digits(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    }

    /// The shapes every sync response and our own stores use, without chrono's general parser
    /// (two of them per row and sync, hundreds of thousands per large sync):
    /// `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1–9 digits, then `Z`, `+00:00` or (when
    /// `offsetless` is allowed) nothing. Anything else returns `None` and goes through chrono.
    fn parse_utc_fast(b: &[u8], offsetless: bool) -> Option<DateTime<Utc>> {
        if b.len() < 19
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let date = NaiveDate::from_ymd_opt(
            i32::try_from(digits(&b[0..4])?).ok()?,
            digits(&b[5..7])?,
            digits(&b[8..10])?,
        )?;
        let (hour, minute, second) = (
            digits(&b[11..13])?,
            digits(&b[14..16])?,
            digits(&b[17..19])?,
        );
        let mut rest = &b[19..];
        let mut nanos = 0;
        if let Some(fraction) = rest.strip_prefix(b".") {
            let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            nanos = digits(&fraction[..n])? * 10u32.pow(u32::try_from(9 - n).ok()?);
            rest = &fraction[n..];
        }
        if !(matches!(rest, b"Z" | b"+00:00") || (offsetless && rest.is_empty())) {
            return None;
        }
        let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
        Some(date.and_time(time).and_utc())
    }

    /// How many fraction digits [`Rfc3339`] writes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Fraction {
        /// 0, 3, 6 or 9, as few as the value needs (chrono's `SecondsFormat::AutoSi`): the wire
        /// form.
        Auto,
        /// Always 6, sub-microsecond digits dropped (chrono's `SecondsFormat::Micros`).
        Micros,
    }

    /// An RFC 3339 timestamp in UTC (`…Z`) written into a stack buffer: exactly what chrono's
    /// `to_rfc3339_opts(…, true)` writes, without its allocation.
    #[derive(Clone, Copy)]
    pub struct Rfc3339 {
        buf: [u8; 30],
        len: usize,
    }

    impl Rfc3339 {
        /// `t` with `fraction` digits; `None` outside the years 0–9999 and for leap seconds,
        /// which only chrono writes.
        pub fn new(t: &DateTime<Utc>, fraction: Fraction) -> Option<Self> {
            let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
            let nanos = t.nanosecond();
            if nanos >= 1_000_000_000 {
                return None;
            }
            let mut buf = [0u8; 30];
            let mut put = |at: usize, value: u32, width: usize| {
                let mut v = value;
                for i in (at..at + width).rev() {
                    // `v % 10` is a single digit.
                    buf[i] = b'0' + u8::try_from(v % 10).unwrap_or(0);
                    v /= 10;
                }
            };
            put(0, year, 4);
            put(5, t.month(), 2);
            put(8, t.day(), 2);
            put(11, t.hour(), 2);
            put(14, t.minute(), 2);
            put(17, t.second(), 2);
            let (value, width) = match fraction {
                Fraction::Micros => (nanos / 1_000, 6),
                Fraction::Auto if nanos == 0 => (0, 0),
                Fraction::Auto if nanos.is_multiple_of(1_000_000) => (nanos / 1_000_000, 3),
                Fraction::Auto if nanos.is_multiple_of(1_000) => (nanos / 1_000, 6),
                Fraction::Auto => (nanos, 9),
            };
            let mut len = 19;
            if width > 0 {
                put(len + 1, value, width);
                buf[len] = b'.';
                len += 1 + width;
            }
            for (i, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
                buf[i] = c;
            }
            buf[len] = b'Z';
            Some(Self { buf, len: len + 1 })
        }

        /// The text (ASCII).
        pub fn as_str(&self) -> &str {
            std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
        }
    }

    impl std::fmt::Debug for Rfc3339 {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.as_str())
        }
    }

    /// Formats as RFC 3339 with `Z` and only as many fraction digits as needed.
    pub fn format(t: &DateTime<Utc>) -> String {
        Rfc3339::new(t, Fraction::Auto).map_or_else(
            || t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            |f| f.as_str().to_owned(),
        )
    }

    /// For `DateTime<Utc>` fields.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        match Rfc3339::new(t, Fraction::Auto) {
            Some(f) => s.serialize_str(f.as_str()),
            None => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }

    /// For `DateTime<Utc>` fields.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse(&raw).ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {raw:?}")))
    }

    /// For `Option<DateTime<Utc>>` fields (`null` or absent is `None`).
    pub mod option {
        use super::{DateTime, Deserialize, Deserializer, Serializer, Utc};

        /// Serializes `None` as `null`.
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        /// Accepts `null`, an offset timestamp or an offset-less one.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            let raw = Option::<std::borrow::Cow<'de, str>>::deserialize(d)?;
            raw.map(|r| {
                super::parse(&r)
                    .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {r:?}")))
            })
            .transpose()
        }
    }
}

fn plan_type_or_zero<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<PlanSponsorshipType, D::Error> {
    Ok(Option::<PlanSponsorshipType>::deserialize(d)?.unwrap_or_default())
}

/// Body of `POST /organization/sponsorship/sync` (spec §5.3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SponsorshipSyncRequest {
    /// The billing sync key.
    pub billing_sync_key: RawSecret,
    /// The cloud organization.
    pub sponsoring_organization_cloud_id: CloudOrganizationId,
    /// The items (never null on the wire: null makes the reference cloud answer 500).
    pub sponsorships_batch: Vec<SponsorshipSyncItem>,
}

/// One item of a sync request (spec §5.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SponsorshipSyncItem {
    /// The self-hosted member id (match key).
    pub sponsoring_organization_user_id: MemberId,
    /// Friendly name.
    pub friendly_name: Option<String>,
    /// Recipient.
    pub offered_to_email: Option<String>,
    /// Sponsorship type (`null` read as 0).
    #[serde(deserialize_with = "plan_type_or_zero", default)]
    pub plan_sponsorship_type: PlanSponsorshipType,
    /// Last sync of this row (`null` = never).
    #[serde(with = "time::option", default)]
    pub last_sync_date: Option<DateTime<Utc>>,
    /// Known end of the paid period.
    #[serde(with = "time::option", default)]
    pub valid_until: Option<DateTime<Utc>>,
    /// Revocation requested.
    #[serde(default)]
    pub to_delete: bool,
}

/// Body of the sync response (spec §5.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SponsorshipSyncResponse {
    /// The items the cloud processed (skipped ones are absent).
    pub sponsorships_batch: Vec<SponsorshipSyncResponseItem>,
}

/// One item of the sync response (spec §5.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SponsorshipSyncResponseItem {
    /// Echoed member id.
    pub sponsoring_organization_user_id: MemberId,
    /// Echoed.
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// Echoed.
    #[serde(default)]
    pub offered_to_email: Option<String>,
    /// Echoed.
    #[serde(deserialize_with = "plan_type_or_zero", default)]
    pub plan_sponsorship_type: PlanSponsorshipType,
    /// Cloud time of processing.
    #[serde(with = "time::option", default)]
    pub last_sync_date: Option<DateTime<Utc>>,
    /// The cloud row's `ValidUntil`.
    #[serde(with = "time::option", default)]
    pub valid_until: Option<DateTime<Utc>>,
    /// Echoed (see the cloud module for our cloud's decision on QUIRK 14.4).
    #[serde(default)]
    pub to_delete: bool,
    /// The cloud deleted its row in this sync.
    #[serde(default)]
    pub cloud_sponsorship_removed: bool,
    /// Always false in practice.
    #[serde(default)]
    pub is_admin_initiated: bool,
}

/// The scopes an installation may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// `api.installation`: sponsorship sync.
    Installation,
    /// `api.licensing`: license sync.
    Licensing,
    /// `api.push`: push relay.
    Push,
}

impl Scope {
    /// The scope string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Installation => "api.installation",
            Self::Licensing => "api.licensing",
            Self::Push => "api.push",
        }
    }

    /// Parses a scope string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "api.installation" => Some(Self::Installation),
            "api.licensing" => Some(Self::Licensing),
            "api.push" => Some(Self::Push),
            _ => None,
        }
    }
}

/// Successful token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: RawSecret,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// `Bearer`.
    pub token_type: String,
    /// Granted scope.
    #[serde(default)]
    pub scope: Option<String>,
}

/// OAuth error response (`{"error":"invalid_client"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenErrorResponse {
    /// `invalid_client`, `invalid_scope`, `unsupported_grant_type`, …
    pub error: String,
    /// Optional text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// The API's error body (spec §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponse {
    /// Always `error`.
    #[serde(default = "error_object")]
    pub object: String,
    /// The message.
    pub message: String,
    /// Field errors of a model-state failure.
    #[serde(default)]
    pub validation_errors: Option<BTreeMap<String, Vec<String>>>,
    /// Filled only by a cloud running in a development environment; written as `null`.
    #[serde(default)]
    pub exception_message: Option<String>,
    /// As `exception_message`.
    #[serde(default)]
    pub exception_stack_trace: Option<String>,
    /// As `exception_message`.
    #[serde(default)]
    pub inner_exception_message: Option<String>,
}

fn error_object() -> String {
    "error".to_owned()
}

impl ErrorResponse {
    /// A plain error body with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            object: error_object(),
            message: message.into(),
            validation_errors: None,
            exception_message: None,
            exception_stack_trace: None,
            inner_exception_message: None,
        }
    }
}

/// The cloud's error texts for the sync endpoint.
pub mod messages {
    /// Wrong key (or none stored).
    pub const INVALID_BILLING_SYNC_KEY: &str = "Invalid Billing Sync Key";
    /// Unknown cloud organization.
    pub const INVALID_ORGANIZATION: &str = "Invalid organization";
    /// License request with a wrong license key.
    pub const INVALID_LICENSE_KEY: &str = "Invalid license key.";
    /// License request for an unknown organization.
    pub const ORGANIZATION_NOT_FOUND: &str = "Organization not found.";
    /// The body of every 404 of the real cloud (its exception filter drops the specific text).
    pub const RESOURCE_NOT_FOUND: &str = "Resource not found.";
    /// License request from an installation of another region.
    pub const INVALID_INSTALLATION_ID: &str = "Invalid installation id";
}

/// Body of the license sync `GET /licenses/organization/{id}` (spec §4.1 S3; a GET with a body).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseRequest {
    /// The self-hosted organization's license key.
    pub license_key: RawSecret,
    /// The billing sync key.
    pub billing_sync_key: RawSecret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_and_without_offset() {
        let z = time::parse("2024-05-01T10:00:00.1234567Z").unwrap();
        let naive = time::parse("2024-05-01T10:00:00.1234567").unwrap();
        assert_eq!(z, naive);
        let plus = time::parse("2024-05-01T12:00:00.1234567+02:00").unwrap();
        assert_eq!(plus, z);
        assert_eq!(time::format(&z), "2024-05-01T10:00:00.123456700Z");
        assert_eq!(time::parse("yesterday"), None);
    }

    #[test]
    fn request_matches_spec_example() {
        let json = r#"{
          "billingSyncKey": "q0W3q0W3q0W3q0W3q0W3q0W3q0W3q0",
          "sponsoringOrganizationCloudId": "0b7c2f0e-1111-2222-3333-444455556666",
          "sponsorshipsBatch": [
            {"sponsoringOrganizationUserId": "9e1d0000-0000-4000-8000-000000000001","friendlyName": "me@home.example","offeredToEmail": "me@home.example",
             "planSponsorshipType": 0,"lastSyncDate": null,"validUntil": null,"toDelete": false}
          ]
        }"#;
        let req: SponsorshipSyncRequest = serde_json::from_str(json).unwrap();
        assert_eq!(req.sponsorships_batch.len(), 1);
        let back = serde_json::to_value(&req).unwrap();
        let orig: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back, orig);
        assert!(!format!("{req:?}").contains("q0W3"));
    }

    #[test]
    fn response_item_accepts_reference_forms() {
        let json = r#"{"sponsorshipsBatch":[{"sponsoringOrganizationUserId":"9e1d0000-0000-4000-8000-000000000001",
          "friendlyName":null,"offeredToEmail":"a@b.cd","planSponsorshipType":null,
          "lastSyncDate":"2024-05-01T10:00:00.1234567","validUntil":"2025-05-01T10:00:00Z",
          "toDelete":false,"cloudSponsorshipRemoved":false,"isAdminInitiated":false}]}"#;
        let resp: SponsorshipSyncResponse = serde_json::from_str(json).unwrap();
        let item = &resp.sponsorships_batch[0];
        assert_eq!(
            item.plan_sponsorship_type,
            PlanSponsorshipType::FamiliesForEnterprise
        );
        assert_eq!(
            item.last_sync_date,
            time::parse("2024-05-01T10:00:00.1234567Z")
        );
        assert!(item.valid_until.is_some());
    }

    #[test]
    fn error_body_shape() {
        let body: ErrorResponse = serde_json::from_str(
            r#"{"object":"error","message":"Invalid Billing Sync Key","validationErrors":null,"exceptionMessage":null,"exceptionStackTrace":null,"innerExceptionMessage":null}"#,
        )
        .unwrap();
        assert_eq!(body.message, messages::INVALID_BILLING_SYNC_KEY);
        assert_eq!(
            serde_json::to_string(&ErrorResponse::new("x")).unwrap(),
            r#"{"object":"error","message":"x","validationErrors":null,"exceptionMessage":null,"exceptionStackTrace":null,"innerExceptionMessage":null}"#
        );
    }
}
