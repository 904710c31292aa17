//! [`SelfHostedApi`]: the routes of H1–H14 and their dispatch.

use std::sync::Arc;

use futures_util::lock::Mutex;
use sponsorship_core::ids::OrganizationId;

use crate::connections::{ConnectionRequest, ConnectionType};
use crate::host::{Host, HostOrganization, User, is_owner};
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::json::{ApiError, internal, to_vec};
use crate::sponsorships::CreateSponsorship;
use sponsorship_core::org::{BillingConnection, Member};
use sponsorship_core::schedule::SyncState;
use sponsorship_core::sponsorship::Sponsorship;
use sponsorship_core::store::{BillingConnectionStore, SponsorshipStore};

/// The self-hosted endpoints of one host. Cheap to share (`Arc`); the pages
/// ([`crate::pages::Pages`]) call the same operations.
pub struct SelfHostedApi<H> {
    host: Arc<H>,
    /// Serializes this process's read-decide-write of sponsorship rows (offers, revokes), so
    /// two requests of one member cannot both create a row.
    pub(crate) writes: Mutex<()>,
}

impl<H> std::fmt::Debug for SelfHostedApi<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfHostedApi").finish_non_exhaustive()
    }
}

/// One endpoint, with its route values.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    CreateSponsorship(String),
    RevokeOwn(String),
    RevokeOwnAlias(String),
    RevokeByName(String, String),
    AdminSponsorships(String),
    SyncNow(String),
    Resend(String),
    ConnectionsEnabled,
    GetConnection(String, String),
    CreateConnection,
    Connection(String),
    SyncLicense(String),
    UploadLicense(String),
    Subscription(String),
}

impl Route {
    /// The route of a path and the method it takes; ASP.NET matches literals ignoring case.
    fn of(segments: &[String]) -> Option<(Self, &'static [Method])> {
        let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
        let l: Vec<&str> = lower.iter().map(String::as_str).collect();
        let arg = |i: usize| segments[i].clone();
        Some(match l.as_slice() {
            [
                "organization",
                "sponsorship",
                "self-hosted",
                _,
                "families-for-enterprise",
            ] => (Self::CreateSponsorship(arg(3)), &[Method::Post]),
            ["organization", "sponsorship", "self-hosted", _] => {
                (Self::RevokeOwn(arg(3)), &[Method::Delete])
            }
            ["organization", "sponsorship", "self-hosted", _, "delete"] => {
                (Self::RevokeOwnAlias(arg(3)), &[Method::Post])
            }
            ["organization", "sponsorship", "self-hosted", _, "sponsored"] => {
                (Self::AdminSponsorships(arg(3)), &[Method::Get])
            }
            ["organization", "sponsorship", "self-hosted", _, "sync"] => {
                (Self::SyncNow(arg(3)), &[Method::Post])
            }
            ["organization", "sponsorship", "self-hosted", _, _, "revoke"] => {
                (Self::RevokeByName(arg(3), arg(4)), &[Method::Delete])
            }
            [
                "organization",
                "sponsorship",
                _,
                "families-for-enterprise",
                "resend",
            ] => (Self::Resend(arg(2)), &[Method::Post]),
            ["organizations", "connections", "enabled"] => {
                (Self::ConnectionsEnabled, &[Method::Get])
            }
            ["organizations", "connections"] => (Self::CreateConnection, &[Method::Post]),
            ["organizations", "connections", _] => {
                (Self::Connection(arg(2)), &[Method::Put, Method::Delete])
            }
            ["organizations", "connections", _, _] => {
                (Self::GetConnection(arg(2), arg(3)), &[Method::Get])
            }
            ["organizations", "licenses", "self-hosted", _, "sync"] => {
                (Self::SyncLicense(arg(3)), &[Method::Post])
            }
            ["organizations", "licenses", "self-hosted", _] => {
                (Self::UploadLicense(arg(3)), &[Method::Post])
            }
            ["organizations", _, "subscription"] => (Self::Subscription(arg(1)), &[Method::Get]),
            _ => return None,
        })
    }
}

/// A GUID route value; anything else is model state invalid, as ASP.NET binds it.
fn guid(value: &str, name: &str) -> Result<OrganizationId, ApiError> {
    value
        .parse::<uuid::Uuid>()
        .map(OrganizationId::from_uuid)
        .map_err(|_| ApiError::invalid_model(name, format!("The value '{value}' is not valid.")))
}

fn ok_empty() -> HttpResponse {
    HttpResponse::empty(200)
}

fn ok_json<T: serde::Serialize>(value: &T) -> HttpResponse {
    HttpResponse::json(200, to_vec(value))
}

impl<H: Host> SelfHostedApi<H> {
    /// The API of `host`.
    pub fn new(host: Arc<H>) -> Self {
        Self {
            host,
            writes: Mutex::new(()),
        }
    }

    /// The host.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// Answers one request: routes it (literals ignoring case; duplicate and trailing slashes
    /// ignored), authenticates its bearer token through [`Host::user_by_token`] (a bare 401
    /// otherwise), binds its body and runs the endpoint. Unknown paths are a bare 404, a known
    /// path with another method a bare 405.
    pub async fn handle(&self, request: &HttpRequest) -> HttpResponse {
        let segments = request.segments();
        let Some((route, methods)) = Route::of(&segments) else {
            return ApiError::bare(404).to_response();
        };
        if !methods.contains(&request.method) {
            return ApiError::bare(405).to_response();
        }
        let user = match self.authenticate(request).await {
            Ok(user) => user,
            Err(e) => return e.to_response(),
        };
        match self.dispatch(&user, route, request).await {
            Ok(response) => response,
            Err(e) => e.to_response(),
        }
    }

    /// The user of a request's bearer token.
    pub async fn authenticate(&self, request: &HttpRequest) -> Result<User, ApiError> {
        let Some(token) = request.bearer() else {
            return Err(ApiError::bare(401));
        };
        self.host
            .user_by_token(token)
            .await
            .map_err(|e| internal("looking up the bearer token", &e))?
            .ok_or_else(|| ApiError::bare(401))
    }

    async fn dispatch(
        &self,
        user: &User,
        route: Route,
        request: &HttpRequest,
    ) -> Result<HttpResponse, ApiError> {
        Ok(match route {
            Route::CreateSponsorship(org) => {
                let org = guid(&org, "sponsoringOrgId")?;
                let body = CreateSponsorship::from_json(&request.body)?;
                self.create_sponsorship(user, org, &body).await?;
                ok_empty()
            }
            Route::RevokeOwn(org) | Route::RevokeOwnAlias(org) => {
                let org = guid(&org, "sponsoringOrgId")?;
                self.revoke_own_sponsorship(user, org).await?;
                ok_empty()
            }
            Route::RevokeByName(org, name) => {
                let org = guid(&org, "organizationId")?;
                self.revoke_by_friendly_name(user, org, &name).await?;
                ok_empty()
            }
            Route::AdminSponsorships(org) => {
                ok_json(&self.admin_sponsorships(user, guid(&org, "orgId")?).await?)
            }
            Route::SyncNow(org) => {
                let report = self.sync_now(user, guid(&org, "sponsoringOrgId")?).await?;
                ok_json(&serde_json::json!({
                    "sent": report.sent,
                    "updated": report.updated,
                    "removed": report.removed,
                    "skipped": report.skipped.len(),
                    "object": "sponsorshipSyncRun",
                }))
            }
            Route::Resend(org) => {
                self.resend_offer(user, guid(&org, "organizationId")?)
                    .await?;
                ok_empty()
            }
            Route::ConnectionsEnabled => ok_json(&self.cloud_communication_enabled()),
            Route::GetConnection(org, kind) => {
                let org = guid(&org, "organizationId")?;
                let kind = ConnectionType::parse(&kind).ok_or_else(|| {
                    ApiError::invalid_model("type", format!("The value '{kind}' is not valid."))
                })?;
                ok_json(&self.connection(user, org, kind).await?)
            }
            Route::CreateConnection => {
                let body = ConnectionRequest::from_json(&request.body)?;
                ok_json(&self.create_connection(user, &body).await?)
            }
            Route::Connection(id) => {
                let id = guid(&id, "organizationConnectionId")?;
                if request.method == Method::Delete {
                    self.delete_connection(user, id).await?;
                    ok_empty()
                } else {
                    let body = ConnectionRequest::from_json(&request.body)?;
                    ok_json(&self.update_connection(user, id, &body).await?)
                }
            }
            Route::SyncLicense(org) => {
                self.sync_license(user, guid(&org, "id")?).await?;
                ok_empty()
            }
            Route::UploadLicense(org) => {
                let org = guid(&org, "id")?;
                self.upload_license(
                    user,
                    org,
                    request.header_value("content-type"),
                    &request.body,
                )
                .await?;
                ok_empty()
            }
            Route::Subscription(org) => {
                // `{id:guid}`: anything else does not match the route.
                let Ok(org) = org.parse::<uuid::Uuid>() else {
                    return Err(ApiError::bare(404));
                };
                ok_json(
                    &self
                        .subscription(user, OrganizationId::from_uuid(org))
                        .await?,
                )
            }
        })
    }
}

/// What the operations load, each with the failure answered 500 and logged.
impl<H: Host> SelfHostedApi<H> {
    /// The organization's sponsorship rows.
    pub(crate) async fn rows(&self, org: OrganizationId) -> Result<Vec<Sponsorship>, ApiError> {
        self.host
            .store()
            .sponsorships(org)
            .await
            .map_err(|e| internal("loading the sponsorships", &e))
    }

    /// The organization's sync state.
    pub(crate) async fn sync_state(&self, org: OrganizationId) -> Result<SyncState, ApiError> {
        self.host
            .store()
            .sync_state(org)
            .await
            .map_err(|e| internal("loading the sync state", &e))
    }

    /// The user's membership of the organization.
    pub(crate) async fn membership(
        &self,
        user: &User,
        org: OrganizationId,
    ) -> Result<Option<Member>, ApiError> {
        self.host
            .membership(user, org)
            .await
            .map_err(|e| internal("loading the membership", &e))
    }

    /// All of the user's memberships.
    pub(crate) async fn memberships(&self, user: &User) -> Result<Vec<Member>, ApiError> {
        self.host
            .memberships(user)
            .await
            .map_err(|e| internal("loading the memberships", &e))
    }

    /// The organization, if the host has it.
    pub(crate) async fn find_organization(
        &self,
        org: OrganizationId,
    ) -> Result<Option<HostOrganization>, ApiError> {
        self.host
            .organization(org)
            .await
            .map_err(|e| internal("loading the organization", &e))
    }

    /// The organization's billing sync connection.
    pub(crate) async fn stored_connection(
        &self,
        org: OrganizationId,
    ) -> Result<Option<BillingConnection>, ApiError> {
        self.host()
            .store()
            .billing_connection(org)
            .await
            .map_err(|e| internal("loading the connection", &e))
    }

    /// The organization; 404 when the host does not have it.
    pub(crate) async fn organization_of(
        &self,
        org: OrganizationId,
    ) -> Result<HostOrganization, ApiError> {
        self.find_organization(org)
            .await?
            .ok_or_else(ApiError::not_found)
    }

    /// A confirmed owner of an existing organization.
    pub(crate) async fn owns(&self, user: &User, org: OrganizationId) -> Result<bool, ApiError> {
        let member = self.membership(user, org).await?;
        Ok(is_owner(member.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Option<Route> {
        Route::of(&HttpRequest::new(Method::Get, path).segments()).map(|(r, _)| r)
    }

    #[test]
    fn routes_ignore_case_trailing_and_double_slashes_and_decode_values() {
        assert_eq!(
            route("/Organizations//Connections/Enabled/"),
            Some(Route::ConnectionsEnabled)
        );
        assert_eq!(
            route("/organization/sponsorship/self-hosted/X/kid%40home.example/revoke"),
            Some(Route::RevokeByName("X".into(), "kid@home.example".into()))
        );
        assert_eq!(
            route("/organizations/licenses/self-hosted/Y/sync/"),
            Some(Route::SyncLicense("Y".into()))
        );
        assert_eq!(
            route("/organizations/connections/"),
            Some(Route::CreateConnection)
        );
        assert_eq!(route("/nothing/here"), None);
    }
}
