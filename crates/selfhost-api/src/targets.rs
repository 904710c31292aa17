//! The daily runner's view of the host: [`HostTargets`] lists every organization with a
//! billing sync connection, judged by the core.

use std::sync::Arc;

use cloud_client::runner::{SyncTarget, SyncTargets};
use sponsorship_core::store::{BillingConnectionStore, SponsorshipStore};

use crate::connections::judge;
use crate::host::Host;

/// A host's organizations as [`cloud_client::runner::DailyRunner`] asks for them: each one
/// with a saved connection, ready or not (the runner leaves out those that are not).
#[derive(Debug)]
pub struct HostTargets<H>(pub Arc<H>);

/// Why the organizations could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
#[non_exhaustive]
pub struct TargetsError {
    what: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

fn failed(
    what: &'static str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> TargetsError {
    TargetsError {
        what,
        source: Box::new(source),
    }
}

impl<H: Host> SyncTargets for HostTargets<H> {
    type Error = TargetsError;

    async fn sync_targets(&self) -> Result<Vec<SyncTarget>, TargetsError> {
        let host = &self.0;
        let ids = host
            .organization_ids()
            .await
            .map_err(|e| failed("listing the organizations", e))?;
        let mut targets = Vec::new();
        for id in ids {
            let Some(connection) = host
                .store()
                .billing_connection(id)
                .await
                .map_err(|e| failed("loading a billing sync connection", e))?
            else {
                continue;
            };
            let Some(found) = host
                .organization(id)
                .await
                .map_err(|e| failed("loading an organization", e))?
            else {
                continue;
            };
            let state = host
                .store()
                .sync_state(id)
                .await
                .map_err(|e| failed("loading a sync state", e))?;
            let billing = judge(id, &found, Some(connection), &state);
            targets.push(SyncTarget {
                organization_id: id,
                name: found.organization.name,
                billing,
            });
        }
        Ok(targets)
    }
}
