//! Cloud regions and their canonical endpoints (spec §12).
//!
//! Decision (field lesson C13): an unknown region name is an error that lists the valid ones; there
//! is never a silent fall-back to US. A [`CloudRegion::Custom`] region carries its own URLs and is
//! accepted only with `https`, or with plain `http` on a loopback host (for the reference cloud).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use url::Url;

/// A data region of the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CloudRegion {
    /// `*.bitwarden.com`.
    Us,
    /// `*.bitwarden.eu`.
    Eu,
    /// `*.bitwarden-gov.com`.
    Gov,
    /// Own endpoints (a reverse proxy, or the reference cloud on loopback).
    Custom(Box<CustomEndpoints>),
}

/// The endpoints of a [`CloudRegion::Custom`] region. Build with [`CustomEndpoints::new`], which
/// validates the URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomEndpoints {
    identity: Url,
    api: Url,
    push: Option<Url>,
    vault: Option<Url>,
}

/// What is wrong with a region name or a custom endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegionError {
    /// The name is none of US, EU, Gov (custom regions are given by their URLs).
    #[error(
        "unknown cloud region {name:?}: use one of US, EU, Gov (or give custom identity and API URLs)"
    )]
    UnknownRegion {
        /// The name given (at most 32 characters of it).
        name: String,
    },
    /// The URL does not parse.
    #[error("the {role} URL {url:?} is not a valid absolute URL: {reason}")]
    InvalidUrl {
        /// Which endpoint (identity, api, push, vault).
        role: &'static str,
        /// The URL given.
        url: String,
        /// The parser's reason.
        reason: String,
    },
    /// The URL is not https (and not http on loopback).
    #[error(
        "the {role} URL {url} must use https (plain http is only allowed on a loopback host such as 127.0.0.1, for tests)"
    )]
    InsecureUrl {
        /// Which endpoint.
        role: &'static str,
        /// The URL given.
        url: String,
    },
    /// The URL carries credentials, a query or a fragment.
    #[error("the {role} URL {url} must not contain a user name, password, query or fragment")]
    UrlHasExtras {
        /// Which endpoint.
        role: &'static str,
        /// The URL given, credentials removed.
        url: String,
    },
}

impl CustomEndpoints {
    /// Validates and builds custom endpoints. `push` and `vault` are optional.
    pub fn new(
        identity: &str,
        api: &str,
        push: Option<&str>,
        vault: Option<&str>,
    ) -> Result<Self, RegionError> {
        Ok(Self {
            identity: validate_endpoint("identity", identity)?,
            api: validate_endpoint("api", api)?,
            push: push.map(|u| validate_endpoint("push", u)).transpose()?,
            vault: vault.map(|u| validate_endpoint("vault", u)).transpose()?,
        })
    }

    /// Identity base URL.
    pub fn identity(&self) -> &Url {
        &self.identity
    }

    /// API base URL.
    pub fn api(&self) -> &Url {
        &self.api
    }
}

/// Checks one endpoint URL: absolute, https (or http on loopback), no credentials, query or
/// fragment. Shared by the env-file checks and the client configuration.
pub fn validate_endpoint(role: &'static str, raw: &str) -> Result<Url, RegionError> {
    let url = Url::parse(raw.trim()).map_err(|e| RegionError::InvalidUrl {
        role,
        url: raw.chars().take(200).collect(),
        reason: e.to_string(),
    })?;
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        let mut shown = url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        return Err(RegionError::UrlHasExtras {
            role,
            url: shown.to_string(),
        });
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if is_loopback_url(&url) => Ok(url),
        _ => Err(RegionError::InsecureUrl {
            role,
            url: url.to_string(),
        }),
    }
}

/// True when the URL's host is `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn fixed(url: &'static str) -> Url {
    // The literals below are valid URLs; a failure here is a bug caught by the unit tests.
    Url::parse(url).unwrap_or_else(|_| unreachable!("canonical URL {url} is valid"))
}

impl CloudRegion {
    /// The three named regions.
    pub const NAMED: [CloudRegion; 3] = [CloudRegion::Us, CloudRegion::Eu, CloudRegion::Gov];

    /// The value of `globalSettings__baseServiceUri__cloudRegion`: `US`, `EU`, `Gov`, or `Custom`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Us => "US",
            Self::Eu => "EU",
            Self::Gov => "Gov",
            Self::Custom(_) => "Custom",
        }
    }

    /// The reference server's enum value (`CloudRegion`: US 0, EU 1, Gov 2); none for custom.
    pub fn number(&self) -> Option<u8> {
        match self {
            Self::Us => Some(0),
            Self::Eu => Some(1),
            Self::Gov => Some(2),
            Self::Custom(_) => None,
        }
    }

    /// Identity base URL (`globalSettings__installation__identityUri`).
    pub fn identity_uri(&self) -> Url {
        match self {
            Self::Us => fixed("https://identity.bitwarden.com"),
            Self::Eu => fixed("https://identity.bitwarden.eu"),
            Self::Gov => fixed("https://identity.bitwarden-gov.com"),
            Self::Custom(c) => c.identity.clone(),
        }
    }

    /// API base URL (`globalSettings__installation__apiUri`).
    pub fn api_uri(&self) -> Url {
        match self {
            Self::Us => fixed("https://api.bitwarden.com"),
            Self::Eu => fixed("https://api.bitwarden.eu"),
            Self::Gov => fixed("https://api.bitwarden-gov.com"),
            Self::Custom(c) => c.api.clone(),
        }
    }

    /// Push relay base URL (`globalSettings__pushRelayBaseUri`). US and EU come from the public
    /// documentation; Gov has no documented relay, so none is returned rather than a guess.
    pub fn push_relay_uri(&self) -> Option<Url> {
        match self {
            Self::Us => Some(fixed("https://push.bitwarden.com")),
            Self::Eu => Some(fixed("https://push.bitwarden.eu")),
            Self::Gov => None,
            Self::Custom(c) => c.push.clone(),
        }
    }

    /// Web vault URL of the region's cloud.
    pub fn vault_uri(&self) -> Option<Url> {
        match self {
            Self::Us => Some(fixed("https://vault.bitwarden.com")),
            Self::Eu => Some(fixed("https://vault.bitwarden.eu")),
            Self::Gov => Some(fixed("https://vault.bitwarden-gov.com")),
            Self::Custom(c) => c.vault.clone(),
        }
    }

    /// The hosts (with port) that outbound HTTPS must reach for billing sync: identity and API.
    pub fn egress_hosts(&self) -> Vec<String> {
        [self.identity_uri(), self.api_uri()]
            .iter()
            .filter_map(|u| {
                let host = u.host_str()?;
                Some(format!(
                    "{host}:{}",
                    u.port_or_known_default().unwrap_or(443)
                ))
            })
            .collect()
    }

    /// The named region a URL belongs to, judged by its host's domain, if any. Used to detect a
    /// region that does not match a configured URI.
    pub fn of_url(url: &Url) -> Option<CloudRegion> {
        let host = url.host_str()?.to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        let under = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
        if under("bitwarden-gov.com") {
            Some(Self::Gov)
        } else if under("bitwarden.eu") {
            Some(Self::Eu)
        } else if under("bitwarden.com") {
            Some(Self::Us)
        } else {
            None
        }
    }
}

impl fmt::Display for CloudRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CloudRegion {
    type Err = RegionError;

    /// Parses `US`, `EU` or `Gov` (any case). `Custom` cannot be parsed from a name alone.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "us" => Ok(Self::Us),
            "eu" => Ok(Self::Eu),
            "gov" => Ok(Self::Gov),
            _ => Err(RegionError::UnknownRegion {
                name: s.trim().chars().take(32).collect(),
            }),
        }
    }
}

impl Serialize for CloudRegion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for CloudRegion {
    /// Deserializes a named region (`US`, `EU`, `Gov`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_urls_per_region() {
        assert_eq!(
            CloudRegion::Us.identity_uri().as_str(),
            "https://identity.bitwarden.com/"
        );
        assert_eq!(
            CloudRegion::Us.api_uri().as_str(),
            "https://api.bitwarden.com/"
        );
        assert_eq!(
            CloudRegion::Eu.identity_uri().as_str(),
            "https://identity.bitwarden.eu/"
        );
        assert_eq!(
            CloudRegion::Eu.api_uri().as_str(),
            "https://api.bitwarden.eu/"
        );
        assert_eq!(
            CloudRegion::Eu.push_relay_uri().unwrap().as_str(),
            "https://push.bitwarden.eu/"
        );
        assert_eq!(
            CloudRegion::Gov.api_uri().as_str(),
            "https://api.bitwarden-gov.com/"
        );
        assert_eq!(CloudRegion::Gov.push_relay_uri(), None);
        assert_eq!(
            CloudRegion::Eu.vault_uri().unwrap().as_str(),
            "https://vault.bitwarden.eu/"
        );
        assert_eq!(
            CloudRegion::Eu.egress_hosts(),
            vec!["identity.bitwarden.eu:443", "api.bitwarden.eu:443"]
        );
    }

    #[test]
    fn region_names_parse_case_insensitively_and_unknown_lists_valid_ones() {
        assert_eq!("eu".parse::<CloudRegion>().unwrap(), CloudRegion::Eu);
        assert_eq!(" Gov ".parse::<CloudRegion>().unwrap(), CloudRegion::Gov);
        let err = "EUROPE".parse::<CloudRegion>().unwrap_err().to_string();
        assert!(err.contains("US, EU, Gov"), "{err}");
        for r in CloudRegion::NAMED {
            assert_eq!(r.name().parse::<CloudRegion>().unwrap(), r);
        }
    }

    #[test]
    fn region_of_url_matches_domains_not_substrings() {
        let of = |s: &str| CloudRegion::of_url(&Url::parse(s).unwrap());
        assert_eq!(of("https://api.bitwarden.eu"), Some(CloudRegion::Eu));
        assert_eq!(of("https://identity.bitwarden.com/"), Some(CloudRegion::Us));
        assert_eq!(of("https://api.bitwarden-gov.com"), Some(CloudRegion::Gov));
        assert_eq!(of("https://bitwarden.com.evil.example"), None);
        assert_eq!(of("https://notbitwarden.com"), None);
    }

    #[test]
    fn custom_endpoints_require_https_or_loopback_http() {
        assert!(
            CustomEndpoints::new("https://id.example/bw/", "https://api.example", None, None)
                .is_ok()
        );
        assert!(
            CustomEndpoints::new("http://127.0.0.1:8080", "http://localhost:1/", None, None)
                .is_ok()
        );
        assert!(CustomEndpoints::new("http://[::1]:9", "http://127.0.0.2", None, None).is_ok());
        let err = CustomEndpoints::new("http://id.example", "https://api.example", None, None)
            .unwrap_err();
        assert!(
            matches!(
                err,
                RegionError::InsecureUrl {
                    role: "identity",
                    ..
                }
            ),
            "{err}"
        );
        let err = CustomEndpoints::new("https://u:p@id.example", "https://api.example", None, None)
            .unwrap_err();
        assert!(!err.to_string().contains(":p@"), "{err}");
        assert!(matches!(
            CustomEndpoints::new("not a url", "https://a.example", None, None),
            Err(RegionError::InvalidUrl { .. })
        ));
        assert!(matches!(
            CustomEndpoints::new("ftp://a.example", "https://a.example", None, None),
            Err(RegionError::InsecureUrl { .. })
        ));
    }
}
