//! The billing key's status in the cloud dialog (spec §10.1).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The billing key's status in the cloud dialog (spec §10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "state"
)]
pub enum KeySyncStatus {
    /// No sync yet: nothing is shown.
    NeverSynced,
    /// Synced after the key was (re)generated.
    Synced {
        /// Latest sync.
        last_sync_date: DateTime<Utc>,
    },
    /// The key was rotated after the last sync: "Token rotated N day(s) ago. Update the billing
    /// sync token in your self-hosted organization settings."
    AwaitingSync {
        /// Days since rotation, rounded.
        days_since_rotation: i64,
    },
}

impl KeySyncStatus {
    /// Computes the status from the latest sync and the key's revision date.
    pub fn of(
        last_sync_date: Option<DateTime<Utc>>,
        key_revision_date: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        match last_sync_date {
            None => Self::NeverSynced,
            Some(s) if s > key_revision_date => Self::Synced { last_sync_date: s },
            Some(_) => {
                let secs = (now - key_revision_date).num_seconds().abs();
                Self::AwaitingSync {
                    days_since_rotation: (secs + 43_200) / 86_400,
                }
            }
        }
    }

    /// The text the cloud dialog shows.
    pub fn message(&self) -> Option<String> {
        match self {
            Self::NeverSynced => None,
            Self::Synced { last_sync_date } => Some(format!(
                "Last sync: {}",
                crate::wire::time::format(last_sync_date)
            )),
            Self::AwaitingSync {
                days_since_rotation,
            } => Some(format!(
                "Token rotated {days_since_rotation} {} ago. Update the billing sync token in your self-hosted organization settings.",
                if *days_since_rotation == 1 {
                    "day"
                } else {
                    "days"
                }
            )),
        }
    }
}
