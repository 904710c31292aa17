//! The recipient's JSON endpoints: token validation, redemption and removal (C3, C4, C7),
//! each for the signed-in user ([`SignedIn`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde::Deserialize;
use sponsorship_core::ids::CloudOrganizationId;

use super::extract::SignedIn;
use super::{Shared, Shr, json_body, parse_org};
use crate::problem::ApiError;
use crate::state::RedeemTarget;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/organization/sponsorship/validate-token",
            post(validate_token),
        )
        .route("/organization/sponsorship/redeem", post(redeem_api))
        .route(
            "/organization/sponsorship/sponsored/{id}",
            delete(remove_sponsorship_api),
        )
}

async fn validate_token(
    State(shared): Shr,
    SignedIn(user): SignedIn,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let token = q.get("sponsorshipToken").cloned().unwrap_or_default();
    let valid = shared.read(|s, _| s.view_offer(user, &token).is_ok());
    Ok(
        Json(serde_json::json!({"isTokenValid": valid, "isFreeFamilyPolicyEnabled": false}))
            .into_response(),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RedeemBody {
    #[serde(default, alias = "PlanSponsorshipType")]
    plan_sponsorship_type: Option<u8>,
    #[serde(alias = "SponsoredOrganizationId")]
    sponsored_organization_id: CloudOrganizationId,
}

async fn redeem_api(
    State(shared): Shr,
    SignedIn(user): SignedIn,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: RedeemBody = json_body(&body)?;
    if body.plan_sponsorship_type.is_none() {
        return Err(ApiError::ModelState(
            "PlanSponsorshipType",
            "The PlanSponsorshipType field is required.".to_owned(),
        ));
    }
    let token = q.get("sponsorshipToken").cloned().unwrap_or_default();
    shared
        .write(|s, now| {
            s.redeem(
                user,
                &token,
                &RedeemTarget::Existing(body.sponsored_organization_id),
                now,
            )
        })
        .map_err(|e| ApiError::bad(e.to_string()))?;
    Ok(().into_response())
}

async fn remove_sponsorship_api(
    State(shared): Shr,
    SignedIn(user): SignedIn,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let org = parse_org(&id)?;
    shared
        .write(|s, now| s.remove_sponsorship(user, org, now))
        .map_err(|e| ApiError::bad(e.to_string()))?;
    Ok(().into_response())
}
