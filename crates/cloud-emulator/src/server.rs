//! The HTTP server: shared state, the router and the JSON endpoints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Form, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use chrono::{DateTime, TimeDelta, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sponsorship_core::cloud::{CloudSponsorship, KeySyncStatus};
use sponsorship_core::ids::{CloudOrganizationId, InstallationId, UserId};
use sponsorship_core::secret::RawSecret;
use sponsorship_core::wire::{LicenseRequest, Scope, SponsorshipSyncRequest};
use url::Url;

use crate::EmulatorOptions;
use crate::error::Error;
use crate::fault::{self, FaultRule};
use crate::problem::ApiError;
use crate::state::{RedeemTarget, State as CloudState};

/// Request bodies above this size are refused (a 1000-item sync batch is about 300 KiB).
pub const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Everything the handlers share.
pub(crate) struct Shared {
    state: Mutex<CloudState>,
    faults: Mutex<Vec<FaultRule>>,
    pub(crate) fault_injection: bool,
    pub(crate) base_url: Url,
    options: EmulatorOptions,
}

impl Shared {
    pub(crate) fn new(state: CloudState, base_url: Url, options: EmulatorOptions) -> Self {
        Self {
            state: Mutex::new(state),
            faults: Mutex::new(Vec::new()),
            fault_injection: options.fault_injection,
            base_url,
            options,
        }
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Vec<FaultRule>> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> MutexGuard<'_, CloudState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_of(&self, state: &CloudState) -> DateTime<Utc> {
        let base = self.options.clock.as_ref().map_or_else(Utc::now, |c| c());
        base + TimeDelta::seconds(state.clock_offset_seconds)
    }

    /// Reads the state.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&CloudState, DateTime<Utc>) -> R) -> R {
        let state = self.lock();
        let now = self.now_of(&state);
        f(&state, now)
    }

    /// Changes the state and saves it to the data file, if there is one (queued e-mails are
    /// rendered first: the data file holds rendered mails only).
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut CloudState, DateTime<Utc>) -> R) -> R {
        let mut state = self.lock();
        let now = self.now_of(&state);
        let result = f(&mut state, now);
        if let Some(path) = &self.options.data_file {
            state.render_outbox(&self.base_url);
            if let Err(e) = save(path, &state) {
                tracing::error!(error = %e, "could not save the emulator state");
            }
        }
        result
    }

    /// Every e-mail sent so far, oldest first, with queued ones rendered.
    pub(crate) fn outbox(&self) -> Vec<crate::SentEmail> {
        self.lock().sent_emails(&self.base_url)
    }

    /// Changes only what is never saved (sessions).
    pub(crate) fn write_volatile<R>(&self, f: impl FnOnce(&mut CloudState) -> R) -> R {
        f(&mut self.lock())
    }
}

/// Loads a data file written by [`save`].
pub(crate) fn load(path: &Path) -> Result<Option<CloudState>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let de = &mut serde_json::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(de)
                .map(Some)
                .map_err(|e| Error::DataFile {
                    path: path.to_owned(),
                    message: format!("at {}: {}", e.path(), e.inner()),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            action: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes the state atomically (temporary file in the same directory, then rename), mode 0600.
pub(crate) fn save(path: &Path, state: &CloudState) -> Result<(), Error> {
    use std::io::Write as _;
    let io = |action, source| Error::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // tempfile creates the file with mode 0600 on Unix.
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io("create", e))?;
    {
        // Compact JSON streamed to the file, not built in memory first: this runs on every
        // change. Files written pretty by earlier versions load the same.
        let mut out = std::io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
        serde_json::to_writer(&mut out, state).map_err(|e| io("serialize", e.into()))?;
        out.flush().map_err(|e| io("write", e))?;
    }
    tmp.as_file().sync_all().map_err(|e| io("sync", e))?;
    tmp.persist(path).map_err(|e| io("replace", e.error))?;
    Ok(())
}

type Shr = State<Arc<Shared>>;

/// The router: identity + API + web page + inspection, all on one origin.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/connect/token", post(token))
        .route("/organization/sponsorship/sync", post(sync))
        .route("/licenses/organization/{id}", get(license))
        .route("/accounts/login", post(login))
        .route("/organizations/{id}/api-key", post(api_key))
        .route("/organizations/{id}/rotate-api-key", post(rotate_api_key))
        .route(
            "/organizations/{id}/api-key-information",
            get(api_key_information),
        )
        .route(
            "/organizations/{id}/api-key-information/{type}",
            get(api_key_information_typed),
        )
        .route(
            "/organizations/{id}/billing-sync-status",
            get(billing_sync_status),
        )
        .route(
            "/organization/sponsorship/{id}/sync-status",
            get(sync_status),
        )
        .route(
            "/organization/sponsorship/validate-token",
            post(validate_token),
        )
        .route("/organization/sponsorship/redeem", post(redeem_api))
        .route(
            "/organization/sponsorship/sponsored/{id}",
            delete(remove_sponsorship_api),
        )
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
        .route("/_emulator/clock", post(advance_clock))
        .route("/_emulator/faults", post(add_fault).delete(clear_faults));
    api.merge(crate::web::routes())
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            fault::layer,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

// ----- helpers ------------------------------------------------------------------------------

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    // The fast path parses without tracking where it is; only a body that fails is parsed
    // again, with serde_path_to_error, to name the field in the answer.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde messages never contain the secret values themselves, only the field names
        // and types; keep it that way by not echoing the body.
        ApiError::ModelState("$", format!("{path}: {}", classify(&inner)))
    })
}

fn classify(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => "the body is not valid JSON".to_owned(),
        // Not serde's text: it can quote the offending value, which may be a pasted secret.
        Category::Data => "missing, or of the wrong type or value".to_owned(),
        Category::Io => "the body could not be read".to_owned(),
    }
}

fn parse_org(id: &str) -> Result<CloudOrganizationId, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// The signed-in user of a bearer session, else 401.
fn session(shared: &Shared, headers: &HeaderMap) -> Result<UserId, ApiError> {
    let token = bearer(headers).ok_or(ApiError::Unauthorized)?;
    shared
        .read(|s, _| s.session_user(token).map(|u| u.id))
        .ok_or(ApiError::Unauthorized)
}

fn loopback(peer: SocketAddr) -> Result<(), ApiError> {
    if peer.ip().is_loopback() {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

// ----- identity and server-to-server ----------------------------------------------------------

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<RawSecret>,
}

async fn token(
    State(shared): Shr,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return ApiError::token("invalid_request").into_response();
    };
    let lifetime = shared.options.token_lifetime_seconds;
    let result = shared.read(|s, now| {
        s.issue_token(
            form.grant_type.as_deref().unwrap_or_default(),
            form.scope.as_deref().unwrap_or_default(),
            form.client_id.as_deref().unwrap_or_default(),
            &form.client_secret.unwrap_or_else(|| RawSecret::new("")),
            now,
            lifetime,
        )
    });
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn sync(State(shared): Shr, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    shared.read(|s, now| s.authorize(bearer(&headers), Scope::Installation, now))?;
    let request: SponsorshipSyncRequest = json_body(&body)?;
    let response = shared.write(|s, now| s.sync(&request, now))?;
    drop(request);
    // Serialized after the state lock is released, into a buffer sized for the usual item
    // (about 150 bytes), so it does not grow by doubling.
    let mut out = Vec::with_capacity(64 + response.sponsorships_batch.len() * 160);
    serde_json::to_writer(&mut out, &response).map_err(|_| ApiError::Internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        out,
    )
        .into_response())
}

async fn license(
    State(shared): Shr,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let claims = shared.read(|s, now| s.authorize(bearer(&headers), Scope::Licensing, now))?;
    let org = id.parse().map_err(|_| {
        ApiError::NotFoundWith(sponsorship_core::wire::messages::ORGANIZATION_NOT_FOUND)
    })?;
    let request: LicenseRequest = json_body(&body)?;
    let license = shared.read(|s, now| s.license(org, &request, claims.client_sub, now))?;
    Ok(Json(license).into_response())
}

// ----- owner flows ----------------------------------------------------------------------------

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

/// A signed-in session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    /// Bearer token for the owner and recipient endpoints (redacted in `Debug`).
    pub access_token: RawSecret,
    /// `Bearer`.
    pub token_type: String,
    /// The user.
    pub user_id: UserId,
}

async fn login(State(shared): Shr, body: Bytes) -> Result<Response, ApiError> {
    let body: LoginBody = json_body(&body)?;
    let (token, user_id) = shared
        .write_volatile(|s| s.login(&body.email, &body.password))
        .ok_or_else(|| ApiError::bad("Username or password is incorrect. Try again."))?;
    Ok(Json(SessionResponse {
        access_token: RawSecret::new(token),
        token_type: "Bearer".to_owned(),
        user_id,
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiKeyBody {
    #[serde(rename = "type", alias = "Type")]
    key_type: u8,
    #[serde(default, alias = "MasterPasswordHash")]
    master_password_hash: Option<String>,
}

/// The answer of `api-key` and `rotate-api-key` (spec §10.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyResponse {
    /// `apiKey`.
    pub object: String,
    /// The 30-character billing sync key.
    pub api_key: RawSecret,
    /// When it was (re)generated.
    #[serde(with = "sponsorship_core::wire::time")]
    pub revision_date: DateTime<Utc>,
}

fn api_key_common(
    shared: &Shared,
    id: &str,
    headers: &HeaderMap,
    body: &Bytes,
    rotate: bool,
) -> Result<Response, ApiError> {
    let user = session(shared, headers)?;
    let org = parse_org(id)?;
    let body: ApiKeyBody = json_body(body)?;
    let password = body.master_password_hash.unwrap_or_default();
    let key = shared.write(|s, now| s.api_key(user, org, body.key_type, &password, rotate, now))?;
    Ok(Json(ApiKeyResponse {
        object: "apiKey".to_owned(),
        api_key: key.key.to_raw(),
        revision_date: key.revision_date,
    })
    .into_response())
}

async fn api_key(
    State(shared): Shr,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    api_key_common(&shared, &id, &headers, &body, false)
}

async fn rotate_api_key(
    State(shared): Shr,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    api_key_common(&shared, &id, &headers, &body, true)
}

fn key_information(shared: &Shared, id: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let user = session(shared, headers)?;
    let org = parse_org(id)?;
    let data = shared.read(|s, _| {
        s.owned_org(user, org).map(|r| {
            r.billing_sync_key
                .iter()
                .map(|k| {
                    serde_json::json!({
                        "object": "keyInformation",
                        "keyType": 1,
                        "revisionDate": sponsorship_core::wire::time::format(&k.revision_date),
                    })
                })
                .collect::<Vec<_>>()
        })
    })?;
    Ok(
        Json(serde_json::json!({"object":"list","data":data,"continuationToken":null}))
            .into_response(),
    )
}

async fn api_key_information(
    State(shared): Shr,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    key_information(&shared, &id, &headers)
}

async fn api_key_information_typed(
    State(shared): Shr,
    UrlPath((id, key_type)): UrlPath<(String, u8)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if key_type != 1 {
        return Ok(
            Json(serde_json::json!({"object":"list","data":[],"continuationToken":null}))
                .into_response(),
        );
    }
    key_information(&shared, &id, &headers)
}

async fn sync_status(
    State(shared): Shr,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let user = session(&shared, &headers)?;
    let org = parse_org(&id)?;
    let last = shared.read(|s, _| {
        s.owned_org(user, org)
            .map(|_| s.ledger.latest_sync_date(org))
    })?;
    Ok(Json(serde_json::json!({
        "object": "syncStatus",
        "lastSyncDate": last.map(|t| sponsorship_core::wire::time::format(&t)),
    }))
    .into_response())
}

/// The billing-key status the cloud dialog shows (spec §10.1), as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingSyncStatus {
    /// Latest sync of any of the organization's rows.
    #[serde(with = "sponsorship_core::wire::time::option")]
    pub last_sync_date: Option<DateTime<Utc>>,
    /// When the key was last generated or rotated (`null`: no key).
    #[serde(with = "sponsorship_core::wire::time::option")]
    pub key_revision_date: Option<DateTime<Utc>>,
    /// The status (`null`: no key).
    pub status: Option<KeySyncStatus>,
    /// The dialog's text, such as "Token rotated 3 days ago. …".
    pub message: Option<String>,
}

async fn billing_sync_status(
    State(shared): Shr,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let user = session(&shared, &headers)?;
    let org = parse_org(&id)?;
    let status = shared.read(|s, now| {
        s.owned_org(user, org).map(|r| {
            let status = s.key_status(org, now);
            BillingSyncStatus {
                last_sync_date: s.ledger.latest_sync_date(org),
                key_revision_date: r.billing_sync_key.as_ref().map(|k| k.revision_date),
                message: status.as_ref().and_then(KeySyncStatus::message),
                status,
            }
        })
    })?;
    Ok(Json(status).into_response())
}

// ----- recipient JSON endpoints (C3, C4, C7) ----------------------------------------------------

async fn validate_token(
    State(shared): Shr,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let user = session(&shared, &headers)?;
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
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = session(&shared, &headers)?;
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
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let user = session(&shared, &headers)?;
    let org = parse_org(&id)?;
    shared
        .write(|s, now| s.remove_sponsorship(user, org, now))
        .map_err(|e| ApiError::bad(e.to_string()))?;
    Ok(().into_response())
}

// ----- inspection (loopback only) ---------------------------------------------------------------

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

async fn outbox(
    State(shared): Shr,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Result<Response, ApiError> {
    loopback(peer)?;
    Ok(Json(shared.outbox()).into_response())
}

async fn cloud_rows(
    State(shared): Shr,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    loopback(peer)?;
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    loopback(peer)?;
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

async fn redeem_inspect(
    State(shared): Shr,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    loopback(peer)?;
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

async fn set_license_version(
    State(shared): Shr,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    loopback(peer)?;
    let body: VersionBody = json_body(&body)?;
    shared.write(|s, _| s.license_version = body.version);
    Ok(Json(serde_json::json!({"version": body.version})).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockBody {
    advance_seconds: i64,
}

async fn advance_clock(
    State(shared): Shr,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    loopback(peer)?;
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

async fn add_fault(
    State(shared): Shr,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    loopback(peer)?;
    if !shared.fault_injection {
        return Err(ApiError::bad(
            "Fault injection is off: start the emulator with fault injection enabled.",
        ));
    }
    let rule: FaultRule = json_body(&body)?;
    shared.faults().push(rule);
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

async fn clear_faults(
    State(shared): Shr,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Result<Response, ApiError> {
    loopback(peer)?;
    shared.faults().clear();
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspection_answers_loopback_peers_only() {
        assert!(loopback("127.0.0.1:5000".parse().unwrap()).is_ok());
        assert!(loopback("[::1]:5000".parse().unwrap()).is_ok());
        assert_eq!(
            loopback("10.1.2.3:5000".parse().unwrap()),
            Err(ApiError::Forbidden)
        );
    }

    #[test]
    fn body_errors_name_the_field_but_never_the_value() {
        let body = Bytes::from_static(
            br#"{"billingSyncKey":"k","sponsoringOrganizationCloudId":"SECRETSECRETSECRET","sponsorshipsBatch":[]}"#,
        );
        let err = json_body::<SponsorshipSyncRequest>(&body).unwrap_err();
        let ApiError::ModelState(_, message) = err else {
            panic!("{err:?}")
        };
        assert!(
            message.starts_with("sponsoringOrganizationCloudId"),
            "{message}"
        );
        assert!(!message.contains("SECRET"), "{message}");
    }

    #[test]
    fn the_data_file_round_trips_and_pretty_files_of_earlier_versions_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloud.json");
        let seed = crate::Seed::from_json(
            r#"{"region":"US","installations":[],"organizations":[],
                "users":[{"email":"a@home.example","password":"pw","ownerOf":[]}]}"#,
        )
        .unwrap();
        let state = CloudState::from_seed(seed, 7);
        let expected = serde_json::to_value(&state).unwrap();
        save(&path, &state).unwrap();
        let loaded = load(&path).unwrap().unwrap();
        assert_eq!(serde_json::to_value(&loaded).unwrap(), expected);
        std::fs::write(&path, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
        let old = load(&path).unwrap().unwrap();
        assert_eq!(serde_json::to_value(&old).unwrap(), expected);
    }

    #[test]
    fn bearer_is_read_case_insensitively() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
