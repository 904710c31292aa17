//! H7–H11: cloud communication and the billing sync connection; "Sync now".

use secrecy::ExposeSecret;
use sponsorship_core::ids::{CloudOrganizationId, OrganizationId};
use sponsorship_core::org::{
    BillingConnection, BillingSyncConfig, BillingSyncConnection, CLOUD_COMMUNICATION_DISABLED,
    ConnectionError,
};
use sponsorship_core::schedule::SyncState;
use sponsorship_core::secret::BillingSyncKey;
use sponsorship_core::store::BillingConnectionStore;

use cloud_client::{ErrorKind, SyncOptions, SyncReport};

use crate::api::SelfHostedApi;
use crate::host::{Host, HostOrganization, User};
use crate::input::Body;
use crate::json::{ApiError, internal};
use crate::models::{BillingSyncConfigJson, ConnectionResponse};

/// `OrganizationConnectionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionType {
    /// 1: the billing sync connection.
    CloudBillingSync,
    /// 2: SCIM (not kept by this crate).
    Scim,
    /// Any other number.
    Unknown(i64),
}

impl ConnectionType {
    /// From a route value or a body member: the number or the name, ignoring case.
    pub fn parse(raw: &str) -> Option<Self> {
        if let Ok(n) = raw.trim().parse::<i64>() {
            return Some(Self::from_number(n));
        }
        if raw.eq_ignore_ascii_case("CloudBillingSync") {
            Some(Self::CloudBillingSync)
        } else if raw.eq_ignore_ascii_case("Scim") {
            Some(Self::Scim)
        } else {
            None
        }
    }

    fn from_number(n: i64) -> Self {
        match n {
            1 => Self::CloudBillingSync,
            2 => Self::Scim,
            other => Self::Unknown(other),
        }
    }

    /// As the reference writes the enum in messages.
    fn name(self) -> String {
        match self {
            Self::CloudBillingSync => "CloudBillingSync".into(),
            Self::Scim => "Scim".into(),
            Self::Unknown(n) => n.to_string(),
        }
    }
}

/// H9/H10's body (`OrganizationConnectionRequestModel` with a `BillingSyncConfig`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionRequest {
    /// `organizationId`.
    pub organization_id: OrganizationId,
    /// `type`.
    pub connection_type: ConnectionType,
    /// `enabled`.
    pub enabled: bool,
    /// `config` as sent.
    config: Config,
}

/// The `config` member of a connection request.
#[derive(Clone)]
enum Config {
    /// Not sent (the reference fails with a 500).
    Missing,
    /// Sent, but not an object with a string `billingSyncKey`.
    Malformed,
    /// The key as sent.
    Key(String),
}

impl std::fmt::Debug for Config {
    // The key is a secret: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Missing => "Missing",
            Self::Malformed => "Malformed",
            Self::Key(_) => "Key(…)",
        })
    }
}

impl ConnectionRequest {
    /// The body the web vault's billing sync dialog sends.
    pub fn billing_sync(organization_id: OrganizationId, key: &str, enabled: bool) -> Self {
        Self {
            organization_id,
            connection_type: ConnectionType::CloudBillingSync,
            enabled,
            config: Config::Key(key.to_owned()),
        }
    }

    /// Binds a JSON body, member names in any case.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ApiError> {
        let body = Body::parse(bytes)?;
        let organization_id = body.guid("organizationId", "OrganizationId")?.map_or_else(
            || OrganizationId::from_uuid(uuid::Uuid::nil()),
            OrganizationId::from_uuid,
        );
        let connection_type = match body.get("type") {
            Some(serde_json::Value::String(s)) => ConnectionType::parse(s).ok_or_else(|| {
                ApiError::invalid_model(
                    "Type",
                    "The JSON value could not be converted to Bit.Core.Enums.OrganizationConnectionType.",
                )
            })?,
            _ => ConnectionType::from_number(body.integer("type", "Type")?.unwrap_or(0)),
        };
        let config = match body.get("config") {
            None => Config::Missing,
            Some(_) => body
                .object("config")
                .and_then(|c| {
                    c.string("billingSyncKey", "BillingSyncKey")
                        .ok()
                        .flatten()
                        .map(str::to_owned)
                })
                .map_or(Config::Malformed, Config::Key),
        };
        Ok(Self {
            organization_id,
            connection_type,
            enabled: body.bool("enabled", "Enabled")?.unwrap_or(false),
            config,
        })
    }
}

/// An organization's billing sync, as the Billing → Subscription page shows it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BillingSyncOverview {
    /// Cloud communication is on.
    pub cloud_communication: bool,
    /// The saved connection.
    pub connection: Option<BillingConnection>,
    /// The cloud organization, from the license.
    pub cloud_organization_id: Option<CloudOrganizationId>,
    /// Last success, last attempt, last error, last license sync, next due.
    pub state: SyncState,
}

/// An organization's saved connection as the core judges it: the one place that joins the
/// connection, the license's cloud organization and the last license sync ("Sync now", "Sync
/// license", the daily runner's [`crate::HostTargets`]).
pub(crate) fn judge(
    org: OrganizationId,
    organization: &HostOrganization,
    connection: Option<BillingConnection>,
    state: &SyncState,
) -> Result<BillingSyncConfig, ConnectionError> {
    BillingSyncConnection::readiness(
        org,
        connection.map(|c| (c.key, c.enabled)),
        organization.license.as_ref().map(|l| l.id),
        state.last_license_sync,
    )
}

impl<H: Host> SelfHostedApi<H> {
    /// H7: `selfHosted && enableCloudCommunication`.
    pub fn cloud_communication_enabled(&self) -> bool {
        self.host().cloud().is_some()
    }

    /// H8: the billing sync connection (owners only; "no connection" is a 200 with nulls).
    pub async fn connection(
        &self,
        user: &User,
        org: OrganizationId,
        connection_type: ConnectionType,
    ) -> Result<ConnectionResponse, ApiError> {
        if !self.owns(user, org).await? {
            return Err(ApiError::bad_request(format!(
                "You do not have permission to retrieve a connection of type {}.",
                connection_type.name()
            )));
        }
        match connection_type {
            ConnectionType::CloudBillingSync => self.connection_response(org).await,
            ConnectionType::Scim => Ok(ConnectionResponse::none()),
            ConnectionType::Unknown(_) => Err(ApiError::bad_request(format!(
                "Unknown Organization connection Type: {}",
                connection_type.name()
            ))),
        }
    }

    /// H9: saves a new billing sync connection; the key's format is checked, the cloud
    /// organization comes from the license.
    pub async fn create_connection(
        &self,
        user: &User,
        request: &ConnectionRequest,
    ) -> Result<ConnectionResponse, ApiError> {
        let org = request.organization_id;
        if !self.owns(user, org).await? {
            return Err(ApiError::bad_request(format!(
                "You do not have permission to create a connection of type {}.",
                request.connection_type.name()
            )));
        }
        if request.connection_type == ConnectionType::CloudBillingSync
            && self.stored_connection(org).await?.is_some()
        {
            return Err(ApiError::bad_request(format!(
                "The requested organization already has a connection of type {}. Only one of each connection type may exist per organization.",
                request.connection_type.name()
            )));
        }
        self.save_connection(org, request).await
    }

    /// H10: replaces the connection `id` (on this server, the organization's id).
    pub async fn update_connection(
        &self,
        user: &User,
        id: OrganizationId,
        request: &ConnectionRequest,
    ) -> Result<ConnectionResponse, ApiError> {
        if id != request.organization_id || self.stored_connection(id).await?.is_none() {
            return Err(ApiError::not_found());
        }
        if !self.owns(user, id).await? {
            return Err(ApiError::bad_request(
                "You do not have permission to update this connection.",
            ));
        }
        if request.connection_type != ConnectionType::CloudBillingSync {
            return Err(ApiError::bad_request(
                "The connection type cannot be changed.",
            ));
        }
        self.save_connection(id, request).await
    }

    /// H11: deletes the connection `id`. Rows and sync history stay.
    pub async fn delete_connection(&self, user: &User, id: OrganizationId) -> Result<(), ApiError> {
        if self.stored_connection(id).await?.is_none() {
            return Err(ApiError::not_found());
        }
        if !self.owns(user, id).await? {
            return Err(ApiError::bad_request(
                "You do not have permission to remove this connection of type CloudBillingSync.",
            ));
        }
        self.host()
            .store()
            .delete_billing_connection(id)
            .await
            .map(drop)
            .map_err(|e| internal("deleting the connection", &e))
    }

    /// "Sync now" (an extension: the reference has only the daily job and the Admin portal's
    /// trigger): one sync run of the organization, owners only, through the cloud client. The
    /// run is recorded in the sync state, whatever its end.
    pub async fn sync_now(&self, user: &User, org: OrganizationId) -> Result<SyncReport, ApiError> {
        if !self.owns(user, org).await? {
            return Err(ApiError::not_found());
        }
        let host = self.host();
        let Some(cloud) = host.cloud() else {
            return Err(ApiError::bad_request(CLOUD_COMMUNICATION_DISABLED));
        };
        let billing = self.ready_config(org).await?;
        cloud
            .sync_organization(
                host.store(),
                org,
                &billing,
                SyncOptions {
                    holder: "selfhost-api sync now",
                    ..SyncOptions::default()
                },
            )
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::Busy { .. } => ApiError::bad_request(format!(
                    "A sync of this organization is running already: {e}"
                )),
                _ => ApiError::bad_request(format!("The sync failed: {e}")),
            })
    }

    /// What the Billing → Subscription page shows about billing sync (owners only).
    pub async fn billing_sync_overview(
        &self,
        user: &User,
        org: OrganizationId,
    ) -> Result<BillingSyncOverview, ApiError> {
        if !self.owns(user, org).await? {
            return Err(ApiError::not_found());
        }
        let organization = self.organization_of(org).await?;
        let state = self.sync_state(org).await?;
        Ok(BillingSyncOverview {
            cloud_communication: self.cloud_communication_enabled(),
            connection: self.stored_connection(org).await?,
            cloud_organization_id: organization.license.as_ref().map(|l| l.id),
            state,
        })
    }

    /// The connection as "Sync now" uses it, judged by the core.
    pub(crate) async fn ready_config(
        &self,
        org: OrganizationId,
    ) -> Result<BillingSyncConfig, ApiError> {
        let organization = self.organization_of(org).await?;
        let connection = self.stored_connection(org).await?;
        let state = self.sync_state(org).await?;
        judge(org, &organization, connection, &state)
            .map_err(|e| ApiError::bad_request(e.to_string()))
    }

    async fn save_connection(
        &self,
        org: OrganizationId,
        request: &ConnectionRequest,
    ) -> Result<ConnectionResponse, ApiError> {
        match request.connection_type {
            ConnectionType::CloudBillingSync => {}
            ConnectionType::Scim => {
                return Err(ApiError::bad_request(
                    "This server keeps no Scim connection.",
                ));
            }
            ConnectionType::Unknown(_) => {
                return Err(ApiError::bad_request(format!(
                    "Unknown Organization connection Type: {}",
                    request.connection_type.name()
                )));
            }
        }
        let raw = match &request.config {
            Config::Missing => return Err(ApiError::internal()),
            Config::Malformed => {
                return Err(ApiError::bad_request(
                    "Organization Connection configuration malformed",
                ));
            }
            Config::Key(raw) => raw,
        };
        let key = BillingSyncKey::parse(raw).map_err(|e| {
            ApiError::bad_request(format!(
                "The billing sync token is not valid: {e}. Paste the token an owner of the cloud organization generated (Billing → Subscription → Manage billing sync in the cloud)."
            ))
        })?;
        let organization = self.organization_of(org).await?;
        let Some(license) = &organization.license else {
            return Err(ApiError::bad_request("Cannot verify license file."));
        };
        let host = self.host();
        let installation = host.installation_id();
        host.license_verifier()
            .verify(license, installation, host.now())
            .map_err(|_| ApiError::bad_request("Cannot verify license file."))?;
        host.store()
            .save_billing_connection(org, &key, request.enabled, host.now())
            .await
            .map_err(|e| internal("saving the connection", &e))?;
        tracing::info!(organization = %org, key = %key.last_four(), enabled = request.enabled, "billing sync connection saved");
        self.connection_response(org).await
    }

    async fn connection_response(
        &self,
        org: OrganizationId,
    ) -> Result<ConnectionResponse, ApiError> {
        let Some(connection) = self.stored_connection(org).await? else {
            return Ok(ConnectionResponse::none());
        };
        let organization = self.organization_of(org).await?;
        let state = self.sync_state(org).await?;
        let config = organization
            .license
            .as_ref()
            .map(|l| BillingSyncConfigJson {
                billing_sync_key: connection.key.expose_secret().to_owned(),
                cloud_organization_id: l.id,
                last_license_sync: state.last_license_sync,
            });
        Ok(ConnectionResponse {
            id: Some(org),
            connection_type: 1,
            organization_id: *org.as_uuid(),
            enabled: connection.enabled,
            config,
        })
    }
}
