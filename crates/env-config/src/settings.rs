//! Typed Bitwarden cloud-communication settings on top of the document.

use sponsorship_core::ids::InstallationId;
use sponsorship_core::region::{CloudRegion, CustomEndpoints};
use sponsorship_core::secret::InstallationKey;
use url::Url;

use crate::error::Result;
use crate::file::EnvFile;

/// The env keys this crate reads and writes (spec: ecosystem §B.3, protocol §12).
pub mod keys {
    /// `true` enables the sync job, license sync and the connection UI. Default `false`.
    pub const ENABLE_CLOUD_COMMUNICATION: &str = "globalSettings__enableCloudCommunication";
    /// `US`, `EU` (Setup writes one of them), `Gov`, or `Custom` (this crate, own URLs).
    pub const CLOUD_REGION: &str = "globalSettings__baseServiceUri__cloudRegion";
    /// The installation id, a GUID.
    pub const INSTALLATION_ID: &str = "globalSettings__installation__id";
    /// The installation key, 20 letters and digits.
    pub const INSTALLATION_KEY: &str = "globalSettings__installation__key";
    /// Identity base URL; unset means `https://identity.bitwarden.com`.
    pub const IDENTITY_URI: &str = "globalSettings__installation__identityUri";
    /// API base URL; unset means `https://api.bitwarden.com`.
    pub const API_URI: &str = "globalSettings__installation__apiUri";
    /// Push relay base URL; unset here means `global.env`'s `https://push.bitwarden.com`;
    /// `REPLACE` (or another placeholder) disables push.
    pub const PUSH_RELAY_BASE_URI: &str = "globalSettings__pushRelayBaseUri";
    /// `true` on every self-hosted server (written in `global.env`).
    pub const SELF_HOSTED: &str = "globalSettings__selfHosted";
    /// Bitwarden Lite's `settings.env`: its `entrypoint.sh` always exports this as
    /// `globalSettings__installation__id`, overriding that key (ecosystem §B.6).
    pub const LITE_INSTALLATION_ID: &str = "BW_INSTALLATION_ID";
    /// Bitwarden Lite's installation key (same rule as [`LITE_INSTALLATION_ID`]).
    pub const LITE_INSTALLATION_KEY: &str = "BW_INSTALLATION_KEY";
}

/// The server's identity URL when `identityUri` is unset.
pub const DEFAULT_IDENTITY_URI: &str = "https://identity.bitwarden.com";
/// The server's API URL when `apiUri` is unset.
pub const DEFAULT_API_URI: &str = "https://api.bitwarden.com";
/// The push relay `docker/global.env` sets, which the override file inherits.
pub const DEFAULT_PUSH_RELAY_URI: &str = "https://push.bitwarden.com";

/// True for values the server treats as "no value": blank, `SECRET`, `REPLACE` (any case),
/// as `CoreHelpers.SettingHasValue` does.
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    v.is_empty() || v.eq_ignore_ascii_case("SECRET") || v.eq_ignore_ascii_case("REPLACE")
}

/// Where the push relay URL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushRelay {
    /// Not in this file: `docker/global.env` supplies [`DEFAULT_PUSH_RELAY_URI`].
    Inherited,
    /// Present with a placeholder (Setup writes `REPLACE` when push is disabled).
    Disabled,
    /// Set to this URL.
    Uri(Url),
    /// Set, but not a valid URL (see the checks).
    Invalid,
}

impl PushRelay {
    /// The effective URL, if push is on.
    pub fn effective(&self) -> Option<Url> {
        match self {
            Self::Inherited => Url::parse(DEFAULT_PUSH_RELAY_URI).ok(),
            Self::Uri(u) => Some(u.clone()),
            Self::Disabled | Self::Invalid => None,
        }
    }
}

/// A URL setting with the server's default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriSetting {
    /// The effective URL: the file's value, or the server's default when unset or invalid.
    pub url: Url,
    /// True when the file does not set it (absent or placeholder), so the default applies.
    pub is_default: bool,
    /// 1-based line of the key, if present.
    pub line: Option<usize>,
}

/// The effective cloud-communication settings of one `global.override.env`.
///
/// Blank, `SECRET` and `REPLACE` count as unset; the server's defaults are applied to the
/// identity and API URLs. Values that do not parse are `None` here and reported by
/// [`EnvFile::checks`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloudSettings {
    /// `enableCloudCommunication` is `true` (any case). Default `false`.
    pub cloud_communication: bool,
    /// The `cloudRegion` value as a region. `Custom` is built from the identity, API and push
    /// URLs. `None` when unset, unknown, or `Custom` with invalid URLs.
    pub region: Option<CloudRegion>,
    /// The installation id, if set and a GUID.
    pub installation_id: Option<InstallationId>,
    /// The installation key, if set and well-formed. Never printed (`Debug` is redacted).
    pub installation_key: Option<InstallationKey>,
    /// Identity base URL.
    pub identity_uri: UriSetting,
    /// API base URL.
    pub api_uri: UriSetting,
    /// Push relay.
    pub push_relay: PushRelay,
}

impl CloudSettings {
    /// The named region that the identity and API URLs point at, when both agree.
    pub fn region_of_endpoints(&self) -> Option<CloudRegion> {
        let identity = CloudRegion::of_url(&self.identity_uri.url)?;
        let api = CloudRegion::of_url(&self.api_uri.url)?;
        (identity == api).then_some(identity)
    }
}

/// What [`EnvFile::enable_cloud_communication`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnableSummary {
    /// Keys whose lines were changed or added, in the order written.
    pub changed_keys: Vec<&'static str>,
    /// What happened to the push relay setting.
    pub push_relay: PushRelayAction,
}

impl EnableSummary {
    /// True when the document changed.
    pub fn changed(&self) -> bool {
        !self.changed_keys.is_empty()
    }
}

/// What [`EnvFile::enable_cloud_communication`] did with `pushRelayBaseUri`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushRelayAction {
    /// Set to the region's relay (or already was).
    Set,
    /// Left alone: push is disabled with a placeholder (`REPLACE`).
    LeftDisabled,
    /// Left alone: the region has no known push relay (Gov, or a custom region without one).
    NoRelayForRegion,
}

/// A URL as Setup and the docs write it: no trailing slash (the server concatenates paths).
pub(crate) fn url_value(url: &Url) -> String {
    let s = url.as_str();
    s.strip_suffix('/').unwrap_or(s).to_owned()
}

fn uri_setting(file: &EnvFile, key: &str, default: &str) -> UriSetting {
    let entry = file.entry(key);
    let line = entry.map(|e| e.line());
    let parsed = entry
        .map(|e| e.value())
        .filter(|v| !is_placeholder(v))
        .map(|v| Url::parse(v.trim()));
    match parsed {
        Some(Ok(url)) => UriSetting {
            url,
            is_default: false,
            line,
        },
        Some(Err(_)) => UriSetting {
            url: fixed(default),
            is_default: false,
            line,
        },
        None => UriSetting {
            url: fixed(default),
            is_default: true,
            line,
        },
    }
}

fn fixed(url: &str) -> Url {
    // Only called with this module's URL constants, which parse (unit-tested).
    Url::parse(url).unwrap_or_else(|_| unreachable!("default URL {url} is valid"))
}

/// A setting's value with placeholders removed.
fn value_of(file: &EnvFile, key: &str) -> Option<String> {
    file.get(key)
        .filter(|v| !is_placeholder(v))
        .map(|v| v.trim().to_owned())
}

impl EnvFile {
    /// True for a Bitwarden Lite `settings.env`: it has `BW_INSTALLATION_ID` or
    /// `BW_INSTALLATION_KEY`. There the installation id and key come from those keys only.
    pub fn is_lite(&self) -> bool {
        self.entry(keys::LITE_INSTALLATION_ID).is_some()
            || self.entry(keys::LITE_INSTALLATION_KEY).is_some()
    }

    /// The keys that hold the installation id and key in this file: Setup's
    /// `globalSettings__installation__id`/`__key`, or Lite's `BW_INSTALLATION_ID`/`_KEY`.
    pub fn installation_keys(&self) -> (&'static str, &'static str) {
        if self.is_lite() {
            (keys::LITE_INSTALLATION_ID, keys::LITE_INSTALLATION_KEY)
        } else {
            (keys::INSTALLATION_ID, keys::INSTALLATION_KEY)
        }
    }

    /// The effective cloud-communication settings.
    pub fn settings(&self) -> CloudSettings {
        let (id_key, key_key) = self.installation_keys();
        let cloud_communication = value_of(self, keys::ENABLE_CLOUD_COMMUNICATION)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let identity_uri = uri_setting(self, keys::IDENTITY_URI, DEFAULT_IDENTITY_URI);
        let api_uri = uri_setting(self, keys::API_URI, DEFAULT_API_URI);
        let push_relay = match self.get(keys::PUSH_RELAY_BASE_URI) {
            None => PushRelay::Inherited,
            Some(v) if is_placeholder(&v) => PushRelay::Disabled,
            Some(v) => Url::parse(v.trim()).map_or(PushRelay::Invalid, PushRelay::Uri),
        };
        let region = value_of(self, keys::CLOUD_REGION).and_then(|name| {
            if name.eq_ignore_ascii_case("custom") {
                let push = push_relay.effective();
                CustomEndpoints::new(
                    identity_uri.url.as_str(),
                    api_uri.url.as_str(),
                    push.as_ref().map(Url::as_str),
                    None,
                )
                .ok()
                .map(|c| CloudRegion::Custom(Box::new(c)))
            } else {
                name.parse().ok()
            }
        });
        CloudSettings {
            cloud_communication,
            region,
            installation_id: value_of(self, id_key).and_then(|v| v.parse().ok()),
            installation_key: value_of(self, key_key).and_then(|v| InstallationKey::parse(&v).ok()),
            identity_uri,
            api_uri,
            push_relay,
        }
    }

    /// Turns cloud communication on for `region`, as Bitwarden's documentation says:
    ///
    /// - `globalSettings__enableCloudCommunication=true`
    /// - `globalSettings__baseServiceUri__cloudRegion=<US|EU|Gov|Custom>`
    /// - `globalSettings__installation__identityUri` and `…__apiUri` = the region's URLs
    /// - `globalSettings__pushRelayBaseUri` = the region's relay, unless push is disabled with
    ///   a placeholder (`REPLACE`) or the region has no known relay (Gov): then it is left as is.
    ///
    /// Nothing else is touched and nothing is removed. Values are written as Setup writes them
    /// (no quotes, no spaces, no trailing slash). All edits are checked first: if one would fail
    /// (for example a key set twice), nothing is changed. A [`CloudRegion::Custom`] region has
    /// already been validated by [`CustomEndpoints::new`] (https, or http on loopback).
    pub fn enable_cloud_communication(&mut self, region: &CloudRegion) -> Result<EnableSummary> {
        let mut plan: Vec<(&'static str, String)> = vec![
            (keys::ENABLE_CLOUD_COMMUNICATION, "true".to_owned()),
            (keys::CLOUD_REGION, region.name().to_owned()),
            (keys::IDENTITY_URI, url_value(&region.identity_uri())),
            (keys::API_URI, url_value(&region.api_uri())),
        ];
        // One pass over the file finds every key this edit touches.
        let located = self.locate(&[
            keys::ENABLE_CLOUD_COMMUNICATION,
            keys::CLOUD_REGION,
            keys::IDENTITY_URI,
            keys::API_URI,
            keys::PUSH_RELAY_BASE_URI,
        ]);
        let push_disabled = located[4]
            .last()
            .and_then(|line| self.entry_at(line - 1))
            .is_some_and(|e| is_placeholder(&e.value()));
        let push_relay = match region.push_relay_uri() {
            _ if push_disabled => PushRelayAction::LeftDisabled,
            None => PushRelayAction::NoRelayForRegion,
            Some(url) => {
                plan.push((keys::PUSH_RELAY_BASE_URI, url_value(&url)));
                PushRelayAction::Set
            }
        };
        let mut found = Vec::with_capacity(plan.len());
        for ((key, value), lines) in plan.iter().zip(&located) {
            found.push(self.plan_set_at(key, value, lines)?);
        }
        let mut changed_keys = Vec::new();
        for ((key, value), line) in plan.iter().zip(found) {
            if self.apply_set(line, key, value) {
                changed_keys.push(*key);
            }
        }
        tracing::info!(region = %region, changed = changed_keys.len(), "cloud communication enabled");
        Ok(EnableSummary {
            changed_keys,
            push_relay,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_defaults() {
        assert!(is_placeholder(" "));
        assert!(is_placeholder("replace"));
        assert!(is_placeholder("Secret"));
        assert!(!is_placeholder("US"));
        let f = EnvFile::parse("globalSettings__installation__identityUri=REPLACE\n").unwrap();
        let s = f.settings();
        assert!(!s.cloud_communication);
        assert!(s.identity_uri.is_default);
        assert_eq!(s.identity_uri.line, Some(1));
        assert_eq!(
            s.identity_uri.url.as_str(),
            "https://identity.bitwarden.com/"
        );
        assert_eq!(s.api_uri.url.as_str(), "https://api.bitwarden.com/");
        assert_eq!(s.push_relay, PushRelay::Inherited);
        assert_eq!(s.region, None);
        assert_eq!(s.region_of_endpoints(), Some(CloudRegion::Us));
    }

    #[test]
    fn url_values_have_no_trailing_slash() {
        assert_eq!(
            url_value(&CloudRegion::Eu.api_uri()),
            "https://api.bitwarden.eu"
        );
        let u = Url::parse("https://x.example/bw/").unwrap();
        assert_eq!(url_value(&u), "https://x.example/bw");
    }
}
