//! Secrets as types: the billing sync key, the installation key, and raw secrets on the wire.
//!
//! None of them can be printed by accident: `Debug` shows `[REDACTED]`, there is no `Display`,
//! and reading the value needs an explicit [`ExposeSecret::expose_secret`] call. Validation
//! errors say what is wrong (length, which position holds a character outside `A-Z a-z 0-9`)
//! without echoing the value.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// What is wrong with a pasted key. Never contains the key itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFormatError {
    /// Nothing (or only whitespace) was given.
    #[error("the {what} is empty: paste the {expected}-character value")]
    Empty {
        /// Which secret.
        what: &'static str,
        /// Its required length.
        expected: usize,
    },
    /// Wrong length after trimming whitespace.
    #[error(
        "the {what} has {actual} characters, expected {expected}: copy the whole value again{hint}"
    )]
    WrongLength {
        /// Which secret.
        what: &'static str,
        /// Its required length.
        expected: usize,
        /// The length found.
        actual: usize,
        /// An extra hint (for example that the value looks like another secret).
        hint: &'static str,
    },
    /// A character outside `A-Z a-z 0-9`.
    #[error(
        "the {what} has a character that is not a letter or digit at position {position}: it must be {expected} characters of A-Z, a-z, 0-9{hint}"
    )]
    NotAlphanumeric {
        /// Which secret.
        what: &'static str,
        /// Its required length.
        expected: usize,
        /// 1-based position of the first bad character.
        position: usize,
        /// An extra hint.
        hint: &'static str,
    },
}

fn validate_alphanumeric(
    what: &'static str,
    expected: usize,
    raw: &str,
) -> Result<SecretString, SecretFormatError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(SecretFormatError::Empty { what, expected });
    }
    let looks_like_guid = value.len() == 36 && value.chars().filter(|c| *c == '-').count() == 4;
    let hint = if looks_like_guid {
        " (this looks like an installation id, not a key: were id and key swapped?)"
    } else {
        ""
    };
    if let Some(pos) = value.chars().position(|c| !c.is_ascii_alphanumeric()) {
        return Err(SecretFormatError::NotAlphanumeric {
            what,
            expected,
            position: pos + 1,
            hint,
        });
    }
    if value.len() != expected {
        return Err(SecretFormatError::WrongLength {
            what,
            expected,
            actual: value.chars().count(),
            hint,
        });
    }
    Ok(SecretString::from(value.to_owned()))
}

macro_rules! alnum_secret {
    ($(#[$doc:meta])* $name:ident, $what:literal, $len:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Required length.
            pub const LENGTH: usize = $len;

            /// Validates a pasted value: surrounding whitespace (a trailing newline from a
            /// file or terminal) is trimmed; anything else that is not exactly
            #[doc = concat!(stringify!($len), " ASCII letters or digits is refused.")]
            pub fn parse(raw: &str) -> Result<Self, SecretFormatError> {
                validate_alphanumeric($what, $len, raw).map(Self)
            }

            /// The last four characters, for display as `…abcd`.
            pub fn last_four(&self) -> String {
                let v = self.0.expose_secret();
                format!("…{}", &v[v.len().saturating_sub(4)..])
            }

            /// Constant-time comparison with a secret received on the wire.
            pub fn matches(&self, other: &RawSecret) -> bool {
                ct_eq(self.0.expose_secret(), other.0.expose_secret())
            }

            /// The key as a raw wire secret.
            pub fn to_raw(&self) -> RawSecret {
                RawSecret(self.0.clone())
            }
        }

        impl ExposeSecret<str> for $name {
            fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([REDACTED])"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                ct_eq(self.0.expose_secret(), other.0.expose_secret())
            }
        }

        impl Eq for $name {}

        impl Serialize for $name {
            /// Serializes the value itself: used only where the protocol or a `0600` state
            /// file needs it.
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.0.expose_secret())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = SecretString::deserialize(d)?;
                Self::parse(raw.expose_secret()).map_err(serde::de::Error::custom)
            }
        }
    };
}

alnum_secret!(
    /// The billing sync key (token): 30 characters of `A-Z a-z 0-9`, generated in the cloud by an
    /// owner of the cloud organization and pasted into the self-hosted organization.
    BillingSyncKey,
    "billing sync key",
    30
);
alnum_secret!(
    /// The installation key: 20 characters of `A-Z a-z 0-9`, issued with the installation id.
    InstallationKey,
    "installation key",
    20
);

/// Constant-time string comparison (length is not hidden; both keys have public fixed lengths).
fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A secret as it arrives on the wire, not validated (a wrong key must produce "Invalid Billing
/// Sync Key", not a parse error). Serializes its value; `Debug` is redacted.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct RawSecret(SecretString);

impl RawSecret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// True when empty or whitespace only.
    pub fn is_blank(&self) -> bool {
        self.0.expose_secret().trim().is_empty()
    }
}

impl ExposeSecret<str> for RawSecret {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawSecret([REDACTED])")
    }
}

impl Serialize for RawSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose_secret())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY30: &str = "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd";

    #[test]
    fn billing_key_trims_and_validates() {
        let key = BillingSyncKey::parse(&format!("  {KEY30}\r\n")).unwrap();
        assert_eq!(key.expose_secret(), KEY30);
        assert_eq!(key.last_four(), "…1bCd");
        assert!(key.matches(&RawSecret::new(KEY30)));
        assert!(!key.matches(&RawSecret::new(&KEY30[..29])));
    }

    #[test]
    fn format_errors_name_the_problem_and_never_the_value() {
        let short = BillingSyncKey::parse("abc").unwrap_err();
        assert_eq!(
            short,
            SecretFormatError::WrongLength {
                what: "billing sync key",
                expected: 30,
                actual: 3,
                hint: ""
            }
        );
        let bad = BillingSyncKey::parse("Ab3dEf6hIj9lMn2p-r5tUv8xYz1bCd").unwrap_err();
        let text = bad.to_string();
        assert!(text.contains("position 17"), "{text}");
        assert!(!text.contains("Ab3d"), "{text}");
        assert!(matches!(
            InstallationKey::parse(" \n"),
            Err(SecretFormatError::Empty { expected: 20, .. })
        ));
        let swapped = InstallationKey::parse("7e0b3c52-3f4c-4d0e-9e57-aa7a1e5c9a10").unwrap_err();
        assert!(swapped.to_string().contains("swapped"), "{swapped}");
    }

    #[test]
    fn debug_never_shows_the_value() {
        let key = InstallationKey::parse("AbCdEfGhIj0123456789").unwrap();
        let dbg = format!("{key:?} {:?}", key.to_raw());
        assert!(!dbg.contains("AbCd"), "{dbg}");
        assert!(dbg.contains("REDACTED"));
    }

    #[test]
    fn serde_round_trip_validates_on_read() {
        let key = BillingSyncKey::parse(KEY30).unwrap();
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, format!("\"{KEY30}\""));
        assert_eq!(serde_json::from_str::<BillingSyncKey>(&json).unwrap(), key);
        assert!(serde_json::from_str::<BillingSyncKey>("\"short\"").is_err());
    }
}
