//! Identifier newtypes. Each wraps a [`Uuid`] so that an organization id can never be passed where
//! a member id is expected. All of them serialize as the lowercase hyphenated GUID form the
//! reference server uses, and parse from any form [`Uuid`] accepts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// A fresh random (v4) id. The core never calls this itself; it is here for stores
            /// and tests that need new ids.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            /// The wrapped UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = crate::ParseIdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| crate::ParseIdError {
                    kind: stringify!($name),
                    input_len: s.len(),
                })
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

id_type!(
    /// A self-hosted organization's id (the SH org; differs from the cloud organization's id).
    OrganizationId
);
id_type!(
    /// An organization's id in the cloud (the `Id` inside the license file).
    CloudOrganizationId
);
id_type!(
    /// A membership (organization-user) id. On the wire this is `sponsoringOrganizationUserId`,
    /// the natural key that links a self-hosted row to its cloud row.
    MemberId
);
id_type!(
    /// A sponsorship row's own id. Each side has its own; it never crosses the sync.
    SponsorshipId
);
id_type!(
    /// An installation id, issued per cloud region at bitwarden.com/host.
    InstallationId
);
id_type!(
    /// A user account id (cloud users in the reference cloud).
    UserId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_lowercase_hyphenated_and_parse_back() {
        let id: MemberId = "9E1D0000-0000-4000-8000-00000000ABCD".parse().unwrap();
        assert_eq!(id.to_string(), "9e1d0000-0000-4000-8000-00000000abcd");
        assert_eq!(id.to_string().parse::<MemberId>().unwrap(), id);
    }

    #[test]
    fn bad_id_names_its_kind_without_echoing_input() {
        let err = "not-a-guid".parse::<InstallationId>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("InstallationId"), "{text}");
        assert!(!text.contains("not-a-guid"), "{text}");
    }
}
