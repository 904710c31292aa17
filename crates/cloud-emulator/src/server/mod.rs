//! The HTTP server: shared state, the data file, the router, and the routes by group.
//!
//! | module | routes |
//! |---|---|
//! | `identity` | token, sponsorship sync, license (server-to-server) |
//! | `owner` | sign-in, billing sync key, sync status (the cloud organization's owner) |
//! | `recipient` | token validation, redemption, removal (JSON) |
//! | `inspect` | `/_emulator/…`, loopback peers only |
//! | `crate::web` | the redemption page |
//!
//! `extract` holds the signed-in user extractor and the loopback layer.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, header};
use chrono::{DateTime, TimeDelta, Utc};
use serde::de::DeserializeOwned;
use sponsorship_core::ids::CloudOrganizationId;
use url::Url;

use crate::EmulatorOptions;
use crate::error::Error;
use crate::fault::{self, FaultRule};
use crate::problem::ApiError;
use crate::state::State as CloudState;

pub(crate) mod binding;
mod extract;
mod identity;
mod inspect;
mod owner;
mod recipient;

pub use inspect::{CloudRow, ScriptedRedeem};
pub use owner::{ApiKeyResponse, BillingSyncStatus, SessionResponse};

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
        match self.try_write(|s, now| Ok::<R, std::convert::Infallible>(f(s, now))) {
            Ok(result) => result,
            Err(never) => match never {},
        }
    }

    /// As [`Shared::write`], but the data file is saved only when `f` succeeds: a refused
    /// change writes nothing.
    pub(crate) fn try_write<R, E>(
        &self,
        f: impl FnOnce(&mut CloudState, DateTime<Utc>) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut state = self.lock();
        let now = self.now_of(&state);
        let result = f(&mut state, now)?;
        if let Some(path) = &self.options.data_file {
            state.render_outbox(&self.base_url);
            if let Err(e) = save(path, &state) {
                tracing::error!(error = %e, "could not save the emulator state");
            }
        }
        Ok(result)
    }

    /// Every e-mail sent so far, oldest first, with queued ones rendered.
    pub(crate) fn outbox(&self) -> Vec<crate::SentEmail> {
        self.lock().sent_emails(&self.base_url)
    }

    /// As [`Shared::write_volatile`], with the emulator's "now".
    pub(crate) fn write_volatile_at<R>(
        &self,
        f: impl FnOnce(&mut CloudState, DateTime<Utc>) -> R,
    ) -> R {
        let mut state = self.lock();
        let now = self.now_of(&state);
        f(&mut state, now)
    }

    /// Changes only what is never saved (sessions).
    pub(crate) fn write_volatile<R>(&self, f: impl FnOnce(&mut CloudState) -> R) -> R {
        self.write_volatile_at(|s, _| f(s))
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
    identity::routes()
        .merge(owner::routes())
        .merge(recipient::routes())
        .merge(inspect::routes())
        .merge(crate::web::routes())
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            fault::layer,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

pub(crate) fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    // The fast path parses without tracking where it is; only a body that fails is parsed
    // again, with serde_path_to_error, to name the field in the answer.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(model_state)
}

/// A body that does not bind, as the model-state error that names the field.
pub(crate) fn model_state(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    // serde messages never contain the secret values themselves, only the field names and
    // types; keep it that way by not echoing the body.
    ApiError::ModelState("$", format!("{path}: {}", classify(&inner)))
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

pub(crate) fn parse_org(id: &str) -> Result<CloudOrganizationId, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

#[cfg(test)]
mod tests {
    use sponsorship_core::wire::SponsorshipSyncRequest;

    use super::*;

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
