//! The emulator's state and the cloud-side operations on it. Every rule about sponsorships is
//! `sponsorship_core::cloud`'s; this module only looks things up (always scoped to the
//! organization named in the path or body), checks who may act, and records e-mails.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::OsRng;
use rand::{Rng as _, RngCore, TryRngCore};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sponsorship_core::cloud::{
    CloudLedger, CloudOrganization, CloudSponsorship, KeySyncStatus, RedeemError, RemoveError,
    SyncRejection, check_billing_sync_key,
};
use sponsorship_core::email::same_email;
use sponsorship_core::ids::{CloudOrganizationId, InstallationId, SponsorshipId, UserId};
use sponsorship_core::license::OrganizationLicense;
use sponsorship_core::plan::PlanType;
use sponsorship_core::region::CloudRegion;
use sponsorship_core::secret::{BillingSyncKey, RawSecret};
use sponsorship_core::wire::{Scope, SponsorshipSyncResponse, TokenResponse, messages};
use subtle::ConstantTimeEq;
use url::Url;

use crate::outbox::Outbox;
use crate::problem::ApiError;
use crate::seed::{Seed, SeedInstallation};
use crate::server::binding::{LicenseBody, SyncBody};
use crate::tokens::{AccessClaims, Signer};

/// Failed sign-ins for one e-mail that start the throttle.
pub(crate) const LOGIN_ATTEMPTS: usize = 5;
/// The window the failures are counted in, and how long the throttle lasts.
pub(crate) const LOGIN_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// Subject of offer e-mails (spec §7).
pub const OFFER_SUBJECT: &str = "Accept your Sponsored Families Plan";

/// The key check of spec §6 as the real cloud answers it: 400 `Invalid Billing Sync Key` for a
/// missing, blank or wrong key, 500 when the organization has no key at all (QUIRK 14.9).
fn check_key(record: &OrgRecord, supplied: Option<&RawSecret>) -> Result<(), ApiError> {
    let blank = RawSecret::new(String::new());
    match check_billing_sync_key(
        record.billing_sync_key.as_ref().map(|k| &k.key),
        supplied.unwrap_or(&blank),
    ) {
        Ok(()) => Ok(()),
        Err(SyncRejection::NoKeyStored) => {
            tracing::warn!(
                organization = %record.org.id,
                "no billing sync key stored: the real cloud answers 500 (QUIRK 14.9)"
            );
            Err(ApiError::Internal)
        }
        Err(e) => Err(ApiError::bad(e.to_string())),
    }
}

/// The stored billing sync key of an organization (spec §2.6).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredKey {
    pub(crate) key: BillingSyncKey,
    #[serde(with = "sponsorship_core::wire::time")]
    pub(crate) revision_date: DateTime<Utc>,
}

/// An organization and its billing sync key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrgRecord {
    pub(crate) org: CloudOrganization,
    pub(crate) billing_sync_key: Option<StoredKey>,
}

/// A user account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct User {
    pub(crate) id: UserId,
    pub(crate) email: String,
    pub(crate) password: RawSecret,
    pub(crate) owner_of: BTreeSet<CloudOrganizationId>,
}

impl User {
    pub(crate) fn password_matches(&self, supplied: &str) -> bool {
        let stored = self.password.expose_secret().as_bytes();
        stored.len() == supplied.len() && bool::from(stored.ct_eq(supplied.as_bytes()))
    }
}

/// One e-mail the emulator "sent" (the outbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentEmail {
    /// Recipient.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// The offer link to the emulator's redemption page.
    pub link: String,
    /// When it was sent.
    #[serde(with = "sponsorship_core::wire::time")]
    pub sent_at: DateTime<Utc>,
    /// The cloud sponsorship row it offers.
    pub sponsorship_id: SponsorshipId,
}

/// Everything the emulator keeps; this is what the data file holds (written `0600`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct State {
    pub(crate) region: CloudRegion,
    pub(crate) installations: Vec<SeedInstallation>,
    pub(crate) organizations: BTreeMap<CloudOrganizationId, OrgRecord>,
    pub(crate) users: Vec<User>,
    pub(crate) ledger: CloudLedger,
    /// Offer e-mails: rendered ones, then those queued by sync requests.
    pub(crate) outbox: Outbox,
    /// The server secret the token keys derive from.
    pub(crate) secret: RawSecret,
    /// License file version served by the license endpoint.
    pub(crate) license_version: u32,
    /// Shift of the emulator's clock, in seconds (tests and demos move time forward).
    pub(crate) clock_offset_seconds: i64,
    /// The seed's `allowRegistration`.
    #[serde(default)]
    pub(crate) allow_registration: bool,
    /// Failed sign-ins per lower-cased e-mail, newest last (not persisted).
    #[serde(skip)]
    pub(crate) failed_logins: HashMap<String, Vec<DateTime<Utc>>>,
    /// Signed-in sessions: token → user (not persisted).
    #[serde(skip)]
    pub(crate) sessions: HashMap<String, UserId>,
    /// The token keys, derived from `secret` on first use (the secret never changes).
    #[serde(skip)]
    signer: OnceLock<Signer>,
}

/// `n` characters of `A-Z a-z 0-9` from the operating system's CSPRNG; `Alphanumeric` draws
/// uniformly from the 62 symbols (it rejects out-of-range draws instead of taking a modulo).
pub(crate) fn random_alphanumeric(n: usize) -> String {
    Alphanumeric.sample_string(&mut OsRng.unwrap_err(), n)
}

/// 32 random bytes, base64url: session tokens and the server secret.
pub(crate) fn random_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    OsRng.unwrap_err().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The license key of an organization: derived from its id, so that the same seed always gives
/// the same key (an emulator has no license server to ask).
pub(crate) fn license_key_of(org: CloudOrganizationId) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("cloud-emulator license key {org}").as_bytes());
    digest.iter().take(16).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `s.to_lowercase()`, without allocating for the usual all-lowercase ASCII address.
fn lowercase(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// What a redeeming user chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RedeemTarget {
    /// Create a new Families organization with this name, owned by the user.
    New(String),
    /// An existing organization.
    Existing(CloudOrganizationId),
}

/// A successful redemption (the answer of `POST /_emulator/redeem`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redeemed {
    /// The cloud sponsorship row.
    pub sponsorship_id: SponsorshipId,
    /// The Families organization that now holds the sponsorship.
    pub sponsored_organization_id: CloudOrganizationId,
    /// Its name.
    pub organization_name: String,
    /// The sponsoring organization's name.
    pub sponsoring_organization_name: String,
    /// End of the sponsored period (one year after redemption).
    #[serde(with = "sponsorship_core::wire::time::option")]
    pub valid_until: Option<DateTime<Utc>>,
}

/// An offer a signed-in user may look at (C3 passed).
#[derive(Debug, Clone)]
pub(crate) struct OfferView {
    pub(crate) sponsor_name: String,
    pub(crate) families_orgs: Vec<(CloudOrganizationId, String, bool)>,
}

impl State {
    pub(crate) fn from_seed(seed: Seed, license_version: u32) -> Self {
        let organizations = seed
            .organizations
            .iter()
            .map(|o| {
                (
                    o.id,
                    OrgRecord {
                        org: CloudOrganization {
                            id: o.id,
                            name: o.name.clone(),
                            plan_type: o.plan_type,
                            enabled: o.enabled,
                            expiration_date: None,
                        },
                        billing_sync_key: o.billing_sync_key.clone().map(|key| StoredKey {
                            key,
                            revision_date: DateTime::<Utc>::UNIX_EPOCH,
                        }),
                    },
                )
            })
            .collect();
        let users = seed
            .users
            .into_iter()
            .map(|u| User {
                id: UserId::new_random(),
                email: u.email,
                password: u.password,
                owner_of: u.owner_of.into_iter().collect(),
            })
            .collect();
        Self {
            region: seed.region,
            installations: seed.installations,
            organizations,
            users,
            ledger: CloudLedger::new(),
            outbox: Outbox::default(),
            secret: RawSecret::new(random_token()),
            license_version,
            clock_offset_seconds: 0,
            allow_registration: seed.allow_registration,
            failed_logins: HashMap::new(),
            sessions: HashMap::new(),
            signer: OnceLock::new(),
        }
    }

    pub(crate) fn signer(&self) -> &Signer {
        self.signer
            .get_or_init(|| Signer::new(self.secret.expose_secret().as_bytes()))
    }

    /// Renders the queued offer e-mails (links under `base_url`); after this the outbox holds
    /// every mail sent and the state can be saved.
    pub(crate) fn render_outbox(&mut self, base_url: &Url) {
        let signer = self
            .signer
            .get_or_init(|| Signer::new(self.secret.expose_secret().as_bytes()));
        self.outbox.render(signer, base_url);
    }

    /// Every e-mail sent, oldest first, rendered.
    pub(crate) fn sent_emails(&mut self, base_url: &Url) -> Vec<SentEmail> {
        self.render_outbox(base_url);
        self.outbox.rendered().to_vec()
    }

    pub(crate) fn user(&self, id: UserId) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub(crate) fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| same_email(&u.email, email.trim()))
    }

    /// Checks e-mail and password; the same answer for an unknown user and a wrong password.
    /// After [`LOGIN_ATTEMPTS`] failures for one e-mail within [`LOGIN_WINDOW`], every attempt
    /// is refused until the window has passed (`Err(true)`); `Err(false)` is a wrong login.
    pub(crate) fn login_at(
        &mut self,
        email: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, UserId), bool> {
        let key = lowercase(email.trim()).into_owned();
        let recent = self.failed_logins.entry(key.clone()).or_default();
        recent.retain(|t| now - *t < LOGIN_WINDOW);
        if recent.len() >= LOGIN_ATTEMPTS {
            tracing::warn!("sign-in throttled after {LOGIN_ATTEMPTS} failures");
            return Err(true);
        }
        if let Some(ok) = self.login(email, password) {
            self.failed_logins.remove(&key);
            Ok(ok)
        } else {
            self.failed_logins.entry(key).or_default().push(now);
            Err(false)
        }
    }

    /// Checks e-mail and password; the same answer for an unknown user and a wrong password.
    pub(crate) fn login(&mut self, email: &str, password: &str) -> Option<(String, UserId)> {
        let user = self.user_by_email(email)?;
        if !user.password_matches(password) {
            return None;
        }
        let id = user.id;
        let token = random_token();
        self.sessions.insert(token.clone(), id);
        Some((token, id))
    }

    /// Creates an account; `None` when the e-mail is taken or invalid.
    pub(crate) fn register(&mut self, email: &str, password: &str) -> Result<UserId, String> {
        let email = email.trim();
        if sponsorship_core::email::validate_strict_email(email).is_err() {
            return Err("Enter a valid e-mail address.".to_owned());
        }
        if password.is_empty() {
            return Err("Choose a password.".to_owned());
        }
        if self.user_by_email(email).is_some() {
            return Err("An account with this e-mail already exists: sign in instead.".to_owned());
        }
        let id = UserId::new_random();
        self.users.push(User {
            id,
            email: email.to_owned(),
            password: RawSecret::new(password),
            owner_of: BTreeSet::new(),
        });
        Ok(id)
    }

    pub(crate) fn session_user(&self, token: &str) -> Option<&User> {
        self.sessions.get(token).and_then(|id| self.user(*id))
    }

    fn owns(&self, user: UserId, org: CloudOrganizationId) -> bool {
        self.user(user).is_some_and(|u| u.owner_of.contains(&org))
            && self.organizations.contains_key(&org)
    }

    /// The organization, if `user` owns it (404 otherwise: no difference between "missing"
    /// and "not yours").
    pub(crate) fn owned_org(
        &self,
        user: UserId,
        org: CloudOrganizationId,
    ) -> Result<&OrgRecord, ApiError> {
        if self.owns(user, org) {
            self.organizations.get(&org).ok_or(ApiError::NotFound)
        } else {
            Err(ApiError::NotFound)
        }
    }

    // ----- identity (S1) -------------------------------------------------------------------

    /// Client credentials for `installation.<id>` (spec §5.1).
    pub(crate) fn issue_token(
        &self,
        grant_type: &str,
        scope: &str,
        client_id: &str,
        client_secret: &RawSecret,
        now: DateTime<Utc>,
        lifetime_seconds: u64,
    ) -> Result<TokenResponse, ApiError> {
        if grant_type != "client_credentials" {
            return Err(ApiError::token("unsupported_grant_type"));
        }
        let installation = client_id
            .split_once('.')
            .filter(|(kind, _)| *kind == "installation")
            .and_then(|(_, id)| id.parse::<InstallationId>().ok())
            .and_then(|id| self.installations.iter().find(|i| i.id == id));
        let Some(installation) = installation else {
            return Err(ApiError::token("invalid_client"));
        };
        // Always compare the key (constant time) before looking at the other reasons, so the
        // answer's timing does not tell which one applied.
        let key_ok = installation.key.matches(client_secret);
        if !key_ok || !installation.enabled || installation.region != self.region {
            return Err(ApiError::token("invalid_client"));
        }
        let scopes: Vec<&str> = scope.split_whitespace().collect();
        if scopes.is_empty() || scopes.iter().any(|s| Scope::parse(s).is_none()) {
            return Err(ApiError::token("invalid_scope"));
        }
        let t = now.timestamp();
        let lifetime = i64::try_from(lifetime_seconds).unwrap_or(i64::MAX / 2);
        let claims = AccessClaims {
            client_id: client_id.to_owned(),
            client_sub: installation.id,
            scope: scopes.iter().map(|s| (*s).to_owned()).collect(),
            iat: t,
            nbf: t,
            exp: t.saturating_add(lifetime),
        };
        tracing::info!(installation = %installation.id, scope, "issued installation token");
        Ok(TokenResponse {
            access_token: RawSecret::new(self.signer().access_token(&claims)),
            expires_in: lifetime_seconds,
            token_type: "Bearer".to_owned(),
            scope: Some(scopes.join(" ")),
        })
    }

    /// The claims of a valid bearer token (else a bare 401, as the JWT middleware answers)
    /// that carries `scope` (else a bare 403, as the authorization policy answers). As in the
    /// real cloud, the token alone decides: an installation disabled after the token was issued
    /// keeps syncing until it expires (the license endpoint checks the installation itself).
    pub(crate) fn authorize(
        &self,
        bearer: Option<&str>,
        scope: Scope,
        now: DateTime<Utc>,
    ) -> Result<AccessClaims, ApiError> {
        let claims = bearer
            .and_then(|t| self.signer().verify_access(t, now))
            .ok_or(ApiError::Unauthorized)?;
        if !claims.has_scope(scope.as_str()) {
            return Err(ApiError::Forbid);
        }
        Ok(claims)
    }

    // ----- sponsorship sync (S2, spec §6, §7) -----------------------------------------------

    /// Processes one sync batch. Offer e-mails are only queued here (see [`Outbox`]); their
    /// tokens and links are rendered when the outbox is read or the state saved.
    ///
    /// In the real cloud's order (spec §6, §7): unknown organization, blank key, no key stored
    /// (500, QUIRK 14.9), wrong key, missing batch (500), then the rules, which fail with a 500
    /// for an organization holding two rows of one member (QUIRK 14.2).
    pub(crate) fn sync(
        &mut self,
        request: &SyncBody,
        now: DateTime<Utc>,
    ) -> Result<SponsorshipSyncResponse, ApiError> {
        let Some(record) = request
            .sponsoring_organization_cloud_id
            .and_then(|id| self.organizations.get(&id))
        else {
            return Err(ApiError::bad(
                SyncRejection::InvalidOrganization.to_string(),
            ));
        };
        check_key(record, request.billing_sync_key.as_ref())?;
        let Some(items) = request.sponsorships_batch.as_deref() else {
            tracing::warn!("sync request without sponsorshipsBatch: the real cloud answers 500");
            return Err(ApiError::Internal);
        };
        let org = record.org.clone();
        // Random (v4) ids from the thread's ChaCha generator: seeded from the OS and reseeded
        // by rand, so as unguessable as `Uuid::new_v4`, without a getrandom call per id.
        let mut rng = rand::rng();
        let (outcome, offers) = self
            .ledger
            .sync_batch(&org, items, now, || {
                SponsorshipId::from_uuid(uuid::Builder::from_random_bytes(rng.random()).into_uuid())
            })
            .map_err(|e| {
                tracing::warn!(organization = %org.id, "sync fails with 500: {e}");
                ApiError::Internal
            })?;
        tracing::info!(
            organization = %org.id,
            items = items.len(),
            returned = outcome.response.sponsorships_batch.len(),
            skipped = outcome.skipped.len(),
            offers = offers.len(),
            "sponsorship sync"
        );
        if !offers.is_empty() {
            // Whether each recipient has an account decides the link; record it now, as sent.
            let registered = self.registered_emails();
            for offer in offers {
                let known = registered.contains(lowercase(offer.email.trim()).as_ref());
                self.outbox.enqueue(offer, now, known);
            }
        }
        Ok(outcome.response)
    }

    /// The users' e-mail addresses, lowercased: `same_email(a, b)` is
    /// `lowercase(a) == lowercase(b)`, so one set lookup per offer replaces a scan of the users.
    fn registered_emails(&self) -> HashSet<String> {
        self.users.iter().map(|u| u.email.to_lowercase()).collect()
    }

    // ----- license sync (S3, spec §11) ------------------------------------------------------

    /// The checks of `LicensesController.OrganizationSync` in its order (spec §4.1 S3, §17):
    /// organization (404 `Resource not found.`), license key (400, after the real cloud's 2 s
    /// delay, which the server adds for [`ApiError::DelayedBadRequest`]), billing sync key (400; 500
    /// when none is stored), installation enabled (400).
    pub(crate) fn license(
        &self,
        org_id: CloudOrganizationId,
        request: &LicenseBody,
        installation: InstallationId,
        now: DateTime<Utc>,
    ) -> Result<OrganizationLicense, ApiError> {
        let record = self.organizations.get(&org_id).ok_or(ApiError::NotFound)?;
        let expected = license_key_of(org_id);
        let supplied = request
            .license_key
            .as_ref()
            .map(|k| k.expose_secret().as_bytes())
            .unwrap_or_default();
        if !(supplied.len() == expected.len() && bool::from(supplied.ct_eq(expected.as_bytes()))) {
            return Err(ApiError::DelayedBadRequest(messages::INVALID_LICENSE_KEY));
        }
        check_key(record, request.billing_sync_key.as_ref())?;
        if !self
            .installations
            .iter()
            .any(|i| i.id == installation && i.enabled && i.region == self.region)
        {
            return Err(ApiError::bad(messages::INVALID_INSTALLATION_ID));
        }
        self.license_of(org_id, Some(installation), now)
            .ok_or(ApiError::NotFound)
    }

    /// The license JSON the cloud would issue for the organization now.
    pub(crate) fn license_of(
        &self,
        org_id: CloudOrganizationId,
        installation: Option<InstallationId>,
        now: DateTime<Utc>,
    ) -> Option<OrganizationLicense> {
        let record = self.organizations.get(&org_id)?;
        let mut other = BTreeMap::new();
        other.insert("licenseType".to_owned(), serde_json::json!(1));
        other.insert("seats".to_owned(), serde_json::json!(100));
        other.insert("usePolicies".to_owned(), serde_json::json!(true));
        let mut license = OrganizationLicense {
            id: org_id,
            name: record.org.name.clone(),
            plan_type: record.org.plan_type,
            version: self.license_version,
            license_key: RawSecret::new(license_key_of(org_id)),
            installation_id: installation,
            enabled: record.org.enabled,
            self_host: true,
            use_admin_sponsored_families: false,
            issued: Some(now),
            expires: Some(now + chrono::TimeDelta::days(365)),
            token: None,
            signature: None,
            other,
        };
        if let Err(e) = crate::licensing::signer().sign(&mut license, now) {
            // An unsupported version set on purpose: served unsigned, as a too-new file.
            tracing::info!("license served unsigned: {e}");
        }
        Some(license)
    }

    // ----- owner flows (spec §10.1, C8) -----------------------------------------------------

    /// `api-key` (get or create) and `rotate-api-key`. The password is verified BEFORE anything
    /// is created or replaced (our decision on QUIRK 14.8).
    pub(crate) fn api_key(
        &mut self,
        user: UserId,
        org_id: CloudOrganizationId,
        key_type: u8,
        password: &str,
        rotate: bool,
        now: DateTime<Utc>,
    ) -> Result<StoredKey, ApiError> {
        let record = self.owned_org(user, org_id)?;
        if key_type != 1 {
            return Err(ApiError::ModelState(
                "Type",
                "Only billing sync keys (type 1) exist in this emulator.".to_owned(),
            ));
        }
        let verified = self
            .user(user)
            .is_some_and(|u| u.password_matches(password));
        if !verified {
            return Err(ApiError::ModelState(
                "MasterPasswordHash",
                "Invalid password.".to_owned(),
            ));
        }
        if !rotate && !record.org.plan_type.can_generate_billing_sync_key() {
            return Err(ApiError::NotFound);
        }
        let existing = record.billing_sync_key.clone();
        let key = match (existing, rotate) {
            (Some(k), false) => k,
            (None, true) => return Err(ApiError::NotFound),
            _ => {
                let key = BillingSyncKey::parse(&random_alphanumeric(BillingSyncKey::LENGTH))
                    .map_err(|_| ApiError::Internal)?;
                let stored = StoredKey {
                    key,
                    revision_date: now,
                };
                if let Some(r) = self.organizations.get_mut(&org_id) {
                    r.billing_sync_key = Some(stored.clone());
                }
                tracing::info!(organization = %org_id, rotate, "billing sync key generated");
                stored
            }
        };
        Ok(key)
    }

    pub(crate) fn key_status(
        &self,
        org_id: CloudOrganizationId,
        now: DateTime<Utc>,
    ) -> Option<KeySyncStatus> {
        let key = self.organizations.get(&org_id)?.billing_sync_key.as_ref()?;
        Some(KeySyncStatus::of(
            self.ledger.latest_sync_date(org_id),
            key.revision_date,
            now,
        ))
    }

    // ----- recipient flows (spec §8.5, §8.6, §9, C3, C4, C7) --------------------------------

    /// C3: the offer as the signed-in user may see it, or the error text to show.
    /// The name of the organization an offer link was already redeemed on, for the page (the
    /// API answers a second redemption with the real cloud's "No unredeemed sponsorship offer
    /// exists for you."); `None` for a link that is not redeemed or does not verify.
    pub(crate) fn redeemed_on(&self, token: &str) -> Option<String> {
        let claims = self.signer().verify_offer(token)?;
        let row = self.ledger.get(claims.id)?;
        let sponsored = row.sponsored_organization_id?;
        Some(self.organizations.get(&sponsored).map_or_else(
            || "a Families organization".to_owned(),
            |o| o.org.name.clone(),
        ))
    }

    pub(crate) fn view_offer(&self, user: UserId, token: &str) -> Result<OfferView, String> {
        let user = self
            .user(user)
            .ok_or_else(|| RedeemError::NoOffer.to_string())?;
        let claims = self
            .signer()
            .verify_offer(token)
            .ok_or_else(|| RedeemError::BadToken.to_string())?;
        let row = self.ledger.get(claims.id);
        if !claims.valid_for(row, &user.email) {
            return Err(sponsorship_core::cloud::OFFER_EXPIRED_TEXT.to_owned());
        }
        let sponsor_name = row
            .and_then(|r| r.sponsoring_organization_id)
            .and_then(|id| self.organizations.get(&id))
            .map_or_else(|| "An organization".to_owned(), |o| o.org.name.clone());
        let families_orgs = user
            .owner_of
            .iter()
            .filter_map(|id| self.organizations.get(id))
            .filter(|o| o.org.plan_type.can_be_sponsored())
            .map(|o| {
                (
                    o.org.id,
                    o.org.name.clone(),
                    self.ledger.by_sponsored(o.org.id).is_some(),
                )
            })
            .collect();
        Ok(OfferView {
            sponsor_name,
            families_orgs,
        })
    }

    /// C4: redeems an offer token for a new or an existing Families organization.
    pub(crate) fn redeem(
        &mut self,
        user_id: UserId,
        token: &str,
        target: &RedeemTarget,
        now: DateTime<Utc>,
    ) -> Result<Redeemed, RedeemError> {
        let claims = self
            .signer()
            .verify_offer(token)
            .ok_or(RedeemError::BadToken)?;
        let user = self.user(user_id).ok_or(RedeemError::NoOffer)?;
        let email = user.email.clone();
        let (families, owned, created) = match target {
            RedeemTarget::Existing(id) => {
                let owned = self.owns(user_id, *id);
                // An organization the user does not own is "not yours", whether it exists or not.
                let org = self
                    .organizations
                    .get(id)
                    .filter(|_| owned)
                    .map(|r| r.org.clone())
                    .ok_or(RedeemError::NotOwner)?;
                (org, owned, false)
            }
            RedeemTarget::New(name) => {
                // Checked before creating anything, so a refused offer leaves no empty org.
                if !claims.valid_for(self.ledger.get(claims.id), &email) {
                    return Err(RedeemError::NoOffer);
                }
                let name = name.trim();
                let org = CloudOrganization {
                    id: CloudOrganizationId::new_random(),
                    name: if name.is_empty() {
                        format!("{email} Family")
                    } else {
                        name.chars().take(256).collect()
                    },
                    plan_type: PlanType::FamiliesAnnually,
                    enabled: true,
                    expiration_date: None,
                };
                (org, true, true)
            }
        };
        let row = self
            .ledger
            .redeem(&claims, &email, &families, owned, now)
            .cloned()?;
        if created {
            self.organizations.insert(
                families.id,
                OrgRecord {
                    org: families.clone(),
                    billing_sync_key: None,
                },
            );
            if let Some(u) = self.users.iter_mut().find(|u| u.id == user_id) {
                u.owner_of.insert(families.id);
            }
        }
        tracing::info!(sponsorship = %row.id, families = %families.id, "offer redeemed");
        Ok(self.redeemed(&row, &families))
    }

    fn redeemed(&self, row: &CloudSponsorship, families: &CloudOrganization) -> Redeemed {
        Redeemed {
            sponsorship_id: row.id,
            sponsored_organization_id: families.id,
            organization_name: families.name.clone(),
            sponsoring_organization_name: self.sponsor_name(row),
            valid_until: row.valid_until,
        }
    }

    pub(crate) fn sponsor_name(&self, row: &CloudSponsorship) -> String {
        row.sponsoring_organization_id
            .and_then(|id| self.organizations.get(&id))
            .map_or_else(
                || "(deleted organization)".to_owned(),
                |o| o.org.name.clone(),
            )
    }

    /// C7: the owner of a sponsored Families organization gives the sponsorship up.
    pub(crate) fn remove_sponsorship(
        &mut self,
        user: UserId,
        families: CloudOrganizationId,
        now: DateTime<Utc>,
    ) -> Result<(), RemoveError> {
        let owner = self.owns(user, families);
        self.ledger.remove_sponsorship(families, owner, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_keys_are_alphanumeric_and_differ() {
        let a = random_alphanumeric(30);
        let b = random_alphanumeric(30);
        assert_eq!(a.len(), 30);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert!(BillingSyncKey::parse(&a).is_ok());
    }

    #[test]
    fn the_registered_lookup_matches_same_email() {
        let users = [
            "kid@home.example",
            "Ünïcode@Bücher.example",
            "MiXeD@Case.Example",
        ];
        let set: HashSet<String> = users.iter().map(|u| u.to_lowercase()).collect();
        for probe in [
            "kid@home.example",
            "KID@HOME.EXAMPLE",
            "  kid@home.example ",
            "ünïcode@bücher.example",
            "ÜNÏCODE@BÜCHER.EXAMPLE",
            "mixed@case.example",
            "other@home.example",
            "kid@home.exampl",
        ] {
            let by_scan = users.iter().any(|u| same_email(u, probe.trim()));
            let by_set = set.contains(lowercase(probe.trim()).as_ref());
            assert_eq!(by_scan, by_set, "{probe}");
        }
        assert!(matches!(lowercase("a.b@c.example"), Cow::Borrowed(_)));
    }

    #[test]
    fn license_key_is_stable_per_org() {
        let id = CloudOrganizationId::new_random();
        assert_eq!(license_key_of(id), license_key_of(id));
        assert_ne!(
            license_key_of(id),
            license_key_of(CloudOrganizationId::new_random())
        );
    }
}
