//! The inspection and control surface under `/_emulator/`: outbox, cloud rows, licenses,
//! scripted redemption, license version, clock and faults. Loopback peers only: the group is
//! mounted behind [`loopback_only`](super::extract::loopback_only).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use sponsorship_core::cloud::CloudSponsorship;
use sponsorship_core::ids::{CloudOrganizationId, InstallationId};
use url::Url;

use super::{Shared, Shr, json_body, parse_org};
use crate::fault::FaultRule;
use crate::problem::ApiError;
use crate::state::RedeemTarget;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator/outbox", get(outbox))
        .route(
            "/_emulator/organizations/{id}/sponsorships",
            get(cloud_rows),
        )
        .route(
            "/_emulator/organizations/{id}/license",
            get(license_inspect),
        )
        .route("/_emulator/redeem", post(redeem_inspect))
        .route("/_emulator/license-version", put(set_license_version))
        .route("/_emulator/license-signing-key", get(license_signing_key))
        .route("/_emulator/clock", post(advance_clock))
        .route("/_emulator/faults", post(add_fault).delete(clear_faults))
        .route_layer(axum::middleware::from_fn(super::extract::loopback_only))
}

/// A cloud sponsorship row as the inspection surface shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudRow {
    /// The row.
    #[serde(flatten)]
    pub row: CloudSponsorship,
    /// Changed in the cloud after the last sync of it ("Awaiting sync").
    pub awaiting_sync: bool,
}

impl CloudRow {
    /// The row as shown, with its "Awaiting sync" flag.
    pub fn of(row: &CloudSponsorship) -> Self {
        Self {
            awaiting_sync: row.awaiting_sync(),
            row: row.clone(),
        }
    }
}

async fn outbox(State(shared): Shr) -> Result<Response, ApiError> {
    Ok(Json(shared.outbox()).into_response())
}

async fn cloud_rows(
    State(shared): Shr,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let org = parse_org(&id)?;
    let rows = shared.read(|s, _| {
        s.organizations.contains_key(&org).then(|| {
            s.ledger
                .of_organization(org)
                .into_iter()
                .map(CloudRow::of)
                .collect::<Vec<_>>()
        })
    });
    rows.map(|r| Json(r).into_response())
        .ok_or(ApiError::NotFound)
}

async fn license_inspect(
    State(shared): Shr,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let org = parse_org(&id)?;
    let installation: Option<InstallationId> = match q.get("installationId") {
        Some(raw) => Some(
            raw.parse()
                .map_err(|_| ApiError::bad("installationId is not a GUID"))?,
        ),
        None => None,
    };
    let license = shared.read(|s, now| s.license_of(org, installation, now));
    license
        .map(|l| Json(l).into_response())
        .ok_or(ApiError::NotFound)
}

/// Body of `POST /_emulator/redeem`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScriptedRedeem {
    /// The offer link from the outbox (or give `token`).
    #[serde(default)]
    pub link: Option<String>,
    /// The bare offer token.
    #[serde(default)]
    pub token: Option<String>,
    /// The redeeming user's e-mail.
    pub email: String,
    /// Their password; checked when given for an existing user, used when creating one.
    #[serde(default)]
    pub password: Option<String>,
    /// Create the user when it does not exist.
    #[serde(default)]
    pub create_user: bool,
    /// Redeem on this existing Families organization (the user must own it).
    #[serde(default)]
    pub organization_id: Option<CloudOrganizationId>,
    /// Name of the new Families organization when `organizationId` is absent.
    #[serde(default)]
    pub new_organization_name: Option<String>,
}

fn token_of(req: &ScriptedRedeem) -> Option<String> {
    if let Some(t) = &req.token {
        return Some(t.clone());
    }
    let link = Url::parse(req.link.as_deref()?).ok()?;
    link.query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

async fn redeem_inspect(State(shared): Shr, body: Bytes) -> Result<Response, ApiError> {
    let req: ScriptedRedeem = json_body(&body)?;
    let token =
        token_of(&req).ok_or_else(|| ApiError::bad("Give the offer `link` or its `token`."))?;
    let target = req.organization_id.map_or_else(
        || RedeemTarget::New(req.new_organization_name.clone().unwrap_or_default()),
        RedeemTarget::Existing,
    );
    let result = shared.write(|s, now| {
        let user = match s.user_by_email(&req.email) {
            Some(u) => {
                if req
                    .password
                    .as_deref()
                    .is_some_and(|p| !u.password_matches(p))
                {
                    return Err(ApiError::bad(
                        "Username or password is incorrect. Try again.",
                    ));
                }
                u.id
            }
            None if req.create_user => {
                let password = req
                    .password
                    .clone()
                    .unwrap_or_else(|| crate::state::random_alphanumeric(16));
                s.register(&req.email, &password).map_err(ApiError::bad)?
            }
            None => return Err(ApiError::bad("No user with this e-mail; set createUser.")),
        };
        s.redeem(user, &token, &target, now)
            .map_err(|e| ApiError::bad(e.to_string()))
    })?;
    Ok(Json(result).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionBody {
    version: u32,
}

/// The public key the licenses of this cloud are signed with (SPKI PEM), for a self-hosted
/// side to trust explicitly (`sponsorctl --trust-license-key`).
async fn license_signing_key() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/x-pem-file; charset=utf-8",
        )],
        crate::licensing::license_signing_key_pem(),
    )
        .into_response()
}

async fn set_license_version(State(shared): Shr, body: Bytes) -> Result<Response, ApiError> {
    let body: VersionBody = json_body(&body)?;
    shared.write(|s, _| s.license_version = body.version);
    Ok(Json(serde_json::json!({"version": body.version})).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockBody {
    advance_seconds: i64,
}

async fn advance_clock(State(shared): Shr, body: Bytes) -> Result<Response, ApiError> {
    let body: ClockBody = json_body(&body)?;
    shared.write(|s, _| {
        s.clock_offset_seconds = s.clock_offset_seconds.saturating_add(body.advance_seconds);
    });
    let now = shared.read(|_, now| now);
    Ok(
        Json(serde_json::json!({"now": sponsorship_core::wire::time::format(&now)}))
            .into_response(),
    )
}

async fn add_fault(State(shared): Shr, body: Bytes) -> Result<Response, ApiError> {
    if !shared.fault_injection {
        return Err(ApiError::bad(
            "Fault injection is off: start the emulator with fault injection enabled.",
        ));
    }
    let rule: FaultRule = json_body(&body)?;
    shared.faults().push(rule);
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

async fn clear_faults(State(shared): Shr) -> Result<Response, ApiError> {
    shared.faults().clear();
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}
