//! Sync state per organization and the daily schedule (spec §5.5, lessons C11, A6, A15).
//!
//! The reference server picks a random hour after *process start* and then runs every 24 h,
//! remembering nothing: a server restarted more often than daily may never sync. Here the state
//! is persisted by the caller and the schedule is a pure decision over it:
//!
//! * **First run** at a random offset within 24 h of the first time the schedule is consulted.
//!   The caller persists that `next_due`, so a restart does not roll the dice again.
//! * **Daily** after each successful run.
//! * **Catch-up**: a `next_due` in the past (downtime, restarts) runs right away, spread by a small
//!   jitter so many servers coming back at once do not hit the cloud together.
//! * **Retry after failure** sooner than daily: 1 h, doubling per consecutive failure, at most 24 h;
//!   the state says when and why ("backing off until T because …", lesson C2/C3).
//!
//! Randomness comes from an injected [`Jitter`] source and `now` is always a parameter.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// What kind of failure the last sync hit. Shared by the client, the store and the CLI, all
/// with one string form: [`ErrorCategory::name`] (`identity-rejected`), which is also its JSON
/// form and what [`FromStr`](std::str::FromStr) parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCategory {
    /// Local configuration (cloud communication off, no key, bad URL).
    Config,
    /// Host name did not resolve.
    Dns,
    /// TCP connection refused or timed out.
    Connect,
    /// TLS handshake or certificate failure.
    Tls,
    /// The proxy refused or failed.
    Proxy,
    /// The request timed out.
    Timeout,
    /// Identity rejected the installation id/key (`invalid_client`).
    IdentityRejected,
    /// The billing sync key is wrong or was rotated.
    BillingKeyInvalid,
    /// The cloud does not know the organization.
    CloudOrganizationUnknown,
    /// 429 from the cloud.
    RateLimited,
    /// 5xx from the cloud.
    CloudUnavailable,
    /// 404/405/410 on a known path: the cloud API changed.
    ApiChanged,
    /// The response did not parse.
    MalformedResponse,
    /// The cloud refused the request for another reason (4xx with a message).
    Rejected,
    /// The license version is not supported by this release.
    UnsupportedVersion,
    /// The local store failed.
    Store,
    /// Another sync for the organization is running.
    Busy,
}

impl ErrorCategory {
    /// Stable kebab-case name (used in JSON output and logs).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Dns => "dns",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Proxy => "proxy",
            Self::Timeout => "timeout",
            Self::IdentityRejected => "identity-rejected",
            Self::BillingKeyInvalid => "billing-key-invalid",
            Self::CloudOrganizationUnknown => "cloud-organization-unknown",
            Self::RateLimited => "rate-limited",
            Self::CloudUnavailable => "cloud-unavailable",
            Self::ApiChanged => "api-changed",
            Self::MalformedResponse => "malformed-response",
            Self::Rejected => "rejected",
            Self::UnsupportedVersion => "unsupported-version",
            Self::Store => "store",
            Self::Busy => "busy",
        }
    }

    /// Every category.
    pub const ALL: &'static [Self] = &[
        Self::Config,
        Self::Dns,
        Self::Connect,
        Self::Tls,
        Self::Proxy,
        Self::Timeout,
        Self::IdentityRejected,
        Self::BillingKeyInvalid,
        Self::CloudOrganizationUnknown,
        Self::RateLimited,
        Self::CloudUnavailable,
        Self::ApiChanged,
        Self::MalformedResponse,
        Self::Rejected,
        Self::UnsupportedVersion,
        Self::Store,
        Self::Busy,
    ];

    /// Whether retrying the same request later can succeed without a change by the operator.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Dns
                | Self::Connect
                | Self::Timeout
                | Self::RateLimited
                | Self::CloudUnavailable
                | Self::Busy
        )
    }
}

/// A string that is no [`ErrorCategory`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error category {0:?}")]
pub struct UnknownCategory(pub String);

impl std::str::FromStr for ErrorCategory {
    type Err = UnknownCategory;

    /// The [`name`](ErrorCategory::name); the camelCase spelling that state files of earlier
    /// releases hold (`identityRejected`) is read as well.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let camel_case = |name: &str| {
            let mut out = String::with_capacity(name.len());
            let mut upper = false;
            for c in name.chars() {
                if c == '-' {
                    upper = true;
                } else if upper {
                    out.push(c.to_ascii_uppercase());
                    upper = false;
                } else {
                    out.push(c);
                }
            }
            out
        };
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.name() == s || camel_case(c.name()) == s)
            .ok_or_else(|| UnknownCategory(s.chars().take(64).collect()))
    }
}

impl std::fmt::Display for ErrorCategory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for ErrorCategory {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ErrorCategory {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The last error of a sync, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncErrorRecord {
    /// Category.
    pub category: ErrorCategory,
    /// Message (never contains a secret).
    pub message: String,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// Persistable sync state of one organization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SyncState {
    /// Last time a sync started.
    pub last_attempt: Option<DateTime<Utc>>,
    /// Last time a sync completed with the cloud's acceptance ("Never" until the first).
    pub last_success: Option<DateTime<Utc>>,
    /// Last error, cleared by a success.
    pub last_error: Option<SyncErrorRecord>,
    /// When the next scheduled sync is due.
    pub next_due: Option<DateTime<Utc>>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Last successful license sync ("Never" until the first).
    pub last_license_sync: Option<DateTime<Utc>>,
}

/// Formats an optional time as the UI does: "Never" until the first.
pub fn display_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "Never".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// A source of random offsets.
pub trait Jitter {
    /// A uniformly random duration in `[0, max)` (zero when `max` is zero).
    fn within(&mut self, max: TimeDelta) -> TimeDelta;
}

impl<F: FnMut(TimeDelta) -> TimeDelta> Jitter for F {
    fn within(&mut self, max: TimeDelta) -> TimeDelta {
        self(max)
    }
}

/// The schedule's parameters. [`Schedule::default`] is the daily schedule described above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Between successful runs.
    pub interval: TimeDelta,
    /// Window for the random first run.
    pub first_run_window: TimeDelta,
    /// Spread of catch-up runs.
    pub catch_up_spread: TimeDelta,
    /// First retry delay after a failure (doubles, capped at `interval`).
    pub retry_base: TimeDelta,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            interval: TimeDelta::hours(24),
            first_run_window: TimeDelta::hours(24),
            catch_up_spread: TimeDelta::minutes(5),
            retry_base: TimeDelta::hours(1),
        }
    }
}

/// Warn when the last success is older than this: the cloud stops accepting redemptions of
/// offers not synced for 182.5 days (lesson C14).
pub const STALE_SYNC_WARNING: TimeDelta = TimeDelta::days(30);

impl Schedule {
    /// When the next sync should run; a time at or before `now` means "run now". When the answer
    /// differs from the state's `next_due`, the caller must persist it as `next_due` (so restarts
    /// keep it). A persisted time missed by less than `catch_up_spread` is returned unchanged, so
    /// a caller that sleeps until the answer and asks again gets a due time, never a new delay.
    pub fn next_run(
        &self,
        state: &SyncState,
        now: DateTime<Utc>,
        jitter: &mut impl Jitter,
    ) -> DateTime<Utc> {
        let due = state.next_due.or_else(|| {
            state
                .last_success
                .or(state.last_attempt)
                .map(|last| last + self.interval)
        });
        match due {
            // Not yet due, or due within the last catch-up spread: the time stands (a caller
            // that slept until a planned time finds it due, instead of being moved on again).
            Some(t) if t > now - self.catch_up_spread => t,
            // Missed by more (downtime, restarts): catch up now, spread by a small jitter.
            Some(_) => now + jitter.within(self.catch_up_spread),
            None => now + jitter.within(self.first_run_window),
        }
    }

    /// The state after a run that started at `started` and ended at `now`.
    pub fn record_run(
        &self,
        state: &SyncState,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
        result: Result<(), (ErrorCategory, String)>,
    ) -> SyncState {
        let mut next = state.clone();
        next.last_attempt = Some(started);
        match result {
            Ok(()) => {
                next.last_success = Some(now);
                next.last_error = None;
                next.consecutive_failures = 0;
                next.next_due = Some(now + self.interval);
            }
            Err((category, message)) => {
                next.consecutive_failures = state.consecutive_failures.saturating_add(1);
                next.last_error = Some(SyncErrorRecord {
                    category,
                    message,
                    at: now,
                });
                let exp = next.consecutive_failures.saturating_sub(1).min(16);
                let backoff = self
                    .retry_base
                    .checked_mul(1_i32 << exp)
                    .unwrap_or(self.interval)
                    .min(self.interval);
                next.next_due = Some(now + backoff);
            }
        }
        next
    }

    /// A warning when the last successful sync is getting old.
    pub fn stale_warning(&self, state: &SyncState, now: DateTime<Utc>) -> Option<String> {
        let last = state.last_success?;
        let age = now - last;
        (age > STALE_SYNC_WARNING).then(|| {
            format!(
                "the last successful sync was {} days ago: offers not synced for 182 days can no longer be redeemed",
                age.num_days()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::hours(h)
    }

    #[test]
    fn first_run_is_random_within_a_day_and_kept_across_restarts() {
        let s = Schedule::default();
        let mut jitter = |max: TimeDelta| max / 3;
        let mut state = SyncState::default();
        let first = s.next_run(&state, t(0), &mut jitter);
        assert_eq!(first, t(8));
        state.next_due = Some(first);
        // A restart two hours later keeps the persisted time.
        let mut other = |max: TimeDelta| max / 2;
        assert_eq!(s.next_run(&state, t(2), &mut other), t(8));
    }

    #[test]
    fn daily_after_success_and_catch_up_after_downtime() {
        let s = Schedule::default();
        let state = s.record_run(&SyncState::default(), t(8), t(9), Ok(()));
        assert_eq!(state.last_success, Some(t(9)));
        assert_eq!(state.next_due, Some(t(33)));
        let mut zero = |_| TimeDelta::zero();
        assert_eq!(s.next_run(&state, t(10), &mut zero), t(33));
        // Down for three days: due at once (plus a jitter within five minutes).
        let mut two_min = |max: TimeDelta| {
            assert_eq!(max, TimeDelta::minutes(5));
            TimeDelta::minutes(2)
        };
        assert_eq!(
            s.next_run(&state, t(80), &mut two_min),
            t(80) + TimeDelta::minutes(2)
        );
        // Woken at the planned catch-up time (a little late): due, not moved again.
        let planned = SyncState {
            next_due: Some(t(80) + TimeDelta::minutes(2)),
            ..state.clone()
        };
        let woke = t(80) + TimeDelta::minutes(2) + TimeDelta::seconds(1);
        assert_eq!(
            s.next_run(&planned, woke, &mut zero),
            t(80) + TimeDelta::minutes(2)
        );
        assert!(s.next_run(&planned, woke, &mut zero) <= woke);
        // State without next_due (older store): due a day after the last success.
        let legacy = SyncState {
            next_due: None,
            ..state
        };
        assert_eq!(s.next_run(&legacy, t(10), &mut zero), t(33));
    }

    #[test]
    fn failures_back_off_and_keep_last_success() {
        let s = Schedule::default();
        let ok = s.record_run(&SyncState::default(), t(0), t(0), Ok(()));
        let f1 = s.record_run(
            &ok,
            t(24),
            t(24),
            Err((ErrorCategory::Connect, "refused".into())),
        );
        assert_eq!(f1.next_due, Some(t(25)));
        assert_eq!(f1.last_success, Some(t(0)));
        assert_eq!(f1.last_attempt, Some(t(24)));
        assert_eq!(
            f1.last_error.as_ref().unwrap().category,
            ErrorCategory::Connect
        );
        let f2 = s.record_run(
            &f1,
            t(25),
            t(25),
            Err((ErrorCategory::Connect, "refused".into())),
        );
        assert_eq!(f2.next_due, Some(t(27)));
        let mut f = f2;
        for _ in 0..10 {
            f = s.record_run(&f, t(30), t(30), Err((ErrorCategory::Dns, "nx".into())));
        }
        assert_eq!(f.next_due, Some(t(54)), "capped at a day");
        let back = s.record_run(&f, t(60), t(60), Ok(()));
        assert_eq!(back.consecutive_failures, 0);
        assert_eq!(back.last_error, None);
    }

    #[test]
    fn never_until_first_and_stale_warning() {
        assert_eq!(display_time(None), "Never");
        assert_eq!(display_time(Some(t(1))), "2026-01-01 01:00:00 UTC");
        let s = Schedule::default();
        let state = SyncState {
            last_success: Some(t(0)),
            ..SyncState::default()
        };
        assert!(s.stale_warning(&state, t(24 * 29)).is_none());
        assert!(
            s.stale_warning(&state, t(24 * 40))
                .unwrap()
                .contains("40 days")
        );
    }

    #[test]
    fn one_string_form_per_category() {
        for &c in ErrorCategory::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.name());
            assert_eq!(c.name().parse::<ErrorCategory>(), Ok(c));
            assert_eq!(c.to_string(), c.name());
        }
        // What earlier releases stored.
        assert_eq!(
            "identityRejected".parse::<ErrorCategory>(),
            Ok(ErrorCategory::IdentityRejected)
        );
        assert_eq!(
            serde_json::from_str::<ErrorCategory>("\"cloudOrganizationUnknown\"").unwrap(),
            ErrorCategory::CloudOrganizationUnknown
        );
        assert!("identity_rejected".parse::<ErrorCategory>().is_err());
    }
}
