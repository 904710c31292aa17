//! The two server-rendered pages: the organization's **Billing → Subscription** (automatic
//! sync, "Manage billing sync", "Sync license", "Sync now") and the member's **Sponsored
//! Families**, plus a sign-in form that takes the same token as the API.
//!
//! HTML from embedded [minijinja] templates (auto-escaped), no script, no front-end framework:
//! plain forms with labels, real buttons and a visible focus ring, so the keyboard works
//! everywhere. Every form carries a CSRF token tied to the session; the session cookie is
//! `HttpOnly` and `SameSite=Strict`; responses forbid framing and scripts (CSP).
//!
//! The pages call the same operations as the API ([`SelfHostedApi`]), so a rule lives in one
//! place and a page shows the reference server's own error texts.

mod csrf;
mod view;

use std::sync::Arc;

use minijinja::{Environment, Value, context};
use sponsorship_core::ids::OrganizationId;

use crate::api::SelfHostedApi;
use crate::connections::ConnectionRequest;
use crate::host::{Host, User};
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::json::ApiError;
use crate::sponsorships::CreateSponsorship;

use csrf::{CsrfKey, cross_site};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "fs_session";

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("message.html", include_str!("templates/message.html")),
    (
        "sponsored_families.html",
        include_str!("templates/sponsored_families.html"),
    ),
    (
        "subscription.html",
        include_str!("templates/subscription.html"),
    ),
];

/// The pages of one host, mounted under a prefix (`""` for the site's root).
pub struct Pages<H> {
    api: Arc<SelfHostedApi<H>>,
    templates: Environment<'static>,
    csrf: CsrfKey,
    base: String,
    secure_cookie: bool,
    public_site: Option<String>,
}

impl<H> std::fmt::Debug for Pages<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A signed-in request: the user and the session token the forms are tied to.
struct Session {
    user: User,
    token: String,
}

impl<H: Host> Pages<H> {
    /// The pages over `api`, at the site's root, with a random CSRF key (one process; replicas
    /// share a key with [`Pages::csrf_key`]).
    pub fn new(api: Arc<SelfHostedApi<H>>) -> Self {
        let mut templates = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(e) = templates.add_template(name, source) {
                tracing::error!(template = name, error = %e, "a page template does not parse");
            }
        }
        Self {
            api,
            templates,
            csrf: CsrfKey::random(),
            base: String::new(),
            secure_cookie: false,
            public_site: None,
        }
    }

    /// Where the host mounts the pages (`/admin`), for the links and form actions.
    #[must_use]
    pub fn mounted_at(mut self, prefix: &str) -> Self {
        prefix.trim_end_matches('/').clone_into(&mut self.base);
        self
    }

    /// The CSRF key, shared by the replicas of one site.
    #[must_use]
    pub fn csrf_key(mut self, key: [u8; 32]) -> Self {
        self.csrf = CsrfKey::from_bytes(key);
        self
    }

    /// Marks the session cookie `Secure` (a site served over HTTPS).
    #[must_use]
    pub fn secure_cookie(mut self, secure: bool) -> Self {
        self.secure_cookie = secure;
        self
    }

    /// The site people open (`vault.acme.example`, with `:port` when not the default), for a
    /// server behind a reverse proxy that neither keeps `Host` nor sets `X-Forwarded-Host`:
    /// a form's `Origin` must name it.
    #[must_use]
    pub fn public_site(mut self, site: &str) -> Self {
        self.public_site = Some(site.trim_end_matches('/').to_owned());
        self
    }

    /// Answers one request for a page or a form. `request.path` is relative to the mount.
    pub async fn handle(&self, request: &HttpRequest) -> HttpResponse {
        let segments = request.segments();
        let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
        let path: Vec<&str> = lower.iter().map(String::as_str).collect();
        if request.method == Method::Post
            && let Some((from, site)) = cross_site(request, self.public_site.as_deref())
        {
            tracing::warn!(
                origin = %from,
                site = %site,
                "a form from another site was refused (behind a reverse proxy: keep Host, set X-Forwarded-Host, or configure Pages::public_site)"
            );
            return self.message(
                403,
                None,
                "Refused",
                "This form was sent from another site.",
            );
        }
        let form = Form::parse(request);
        match (request.method, path.as_slice()) {
            (Method::Get, ["sign-in"]) => self.sign_in_page(200, None),
            (Method::Post, ["sign-in"]) => self.sign_in(&form).await,
            (Method::Get | Method::Post, _) => {
                let Some(session) = self.session(request).await else {
                    return HttpResponse::see_other(&format!("{}/sign-in", self.base));
                };
                if request.method == Method::Post
                    && !self.csrf.check(&session.token, form.get("csrf"))
                {
                    return self.message(
                        403,
                        Some(&session),
                        "Refused",
                        "The form has expired or was not sent from this site: reload the page and try again.",
                    );
                }
                self.signed_in(request, &session, &path, &segments, &form)
                    .await
            }
            _ => HttpResponse::empty(405),
        }
    }

    async fn signed_in(
        &self,
        request: &HttpRequest,
        session: &Session,
        path: &[&str],
        segments: &[String],
        form: &Form,
    ) -> HttpResponse {
        let org = |i: usize| {
            segments
                .get(i)
                .and_then(|s| s.parse().ok())
                .map(OrganizationId::from_uuid)
        };
        match (request.method, path) {
            (Method::Get, [] | ["sponsored-families"]) => {
                self.sponsored_families(session, 200, notice(request), None)
                    .await
            }
            (Method::Post, ["sign-out"]) => {
                HttpResponse::see_other(&format!("{}/sign-in", self.base))
                    .with_header("set-cookie", self.cookie("", 0))
            }
            (Method::Post, ["sponsored-families", "offer"]) => {
                let Some(org) = form.organization() else {
                    return self.not_found(session);
                };
                let email = form.get("email").unwrap_or_default().trim();
                let offer = CreateSponsorship::member_offer(email);
                match self
                    .api
                    .create_sponsorship(&session.user, org, &offer)
                    .await
                {
                    Ok(_) => self.to("/sponsored-families?notice=offered"),
                    Err(e) => self.sponsored_families(session, 400, None, Some(e)).await,
                }
            }
            (Method::Post, ["sponsored-families", "revoke"]) => {
                let Some(org) = form.organization() else {
                    return self.not_found(session);
                };
                match self.api.revoke_own_sponsorship(&session.user, org).await {
                    Ok(()) => self.to("/sponsored-families?notice=revoked"),
                    Err(e) => self.sponsored_families(session, 400, None, Some(e)).await,
                }
            }
            (Method::Get, ["organizations", _, "billing", "subscription"]) => match org(1) {
                Some(org) => {
                    self.subscription(session, org, 200, notice(request), None)
                        .await
                }
                None => self.not_found(session),
            },
            (Method::Post, ["organizations", _, "billing", action @ ..]) => {
                let Some(org) = org(1) else {
                    return self.not_found(session);
                };
                self.billing_action(session, org, action, form).await
            }
            _ => self.not_found(session),
        }
    }

    async fn billing_action(
        &self,
        session: &Session,
        org: OrganizationId,
        action: &[&str],
        form: &Form,
    ) -> HttpResponse {
        let user = &session.user;
        let done = match action {
            ["billing-sync"] => {
                let token = form.get("token").unwrap_or_default();
                let enabled = form.get("enabled").is_some();
                let request = ConnectionRequest::billing_sync(org, token, enabled);
                match self.api.stored_connection(org).await {
                    Ok(Some(_)) => self
                        .api
                        .update_connection(user, org, &request)
                        .await
                        .map(|_| "saved".to_owned()),
                    Ok(None) => self
                        .api
                        .create_connection(user, &request)
                        .await
                        .map(|_| "saved".to_owned()),
                    Err(e) => Err(e),
                }
            }
            ["billing-sync", "delete"] => self
                .api
                .delete_connection(user, org)
                .await
                .map(|()| "deleted".to_owned()),
            ["sync-license"] => self
                .api
                .sync_license(user, org)
                .await
                .map(|()| "license-synced".to_owned()),
            ["sync-now"] => self.api.sync_now(user, org).await.map(|report| {
                format!(
                    "synced&sent={}&updated={}&removed={}",
                    report.sent, report.updated, report.removed
                )
            }),
            _ => return self.not_found(session),
        };
        match done {
            Ok(code) => self.to(&format!(
                "/organizations/{org}/billing/subscription?notice={code}"
            )),
            Err(e) if e.status == 404 => self.not_found(session),
            Err(e) => self.subscription(session, org, 400, None, Some(e)).await,
        }
    }

    async fn sign_in(&self, form: &Form) -> HttpResponse {
        let token = form.get("token").unwrap_or_default().trim();
        // The token becomes the cookie's value: only characters a cookie value may hold.
        let cookie_safe = token
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'));
        let user = if token.is_empty() || !cookie_safe {
            None
        } else {
            match self.api.host().user_by_token(token).await {
                Ok(user) => user,
                Err(e) => {
                    tracing::error!(error = %e, "looking up a sign-in token failed");
                    return self.sign_in_page(
                        500,
                        Some("The server could not check the token; try again."),
                    );
                }
            }
        };
        if user.is_none() {
            return self.sign_in_page(
                400,
                Some("This token is not known: paste the access token you were given."),
            );
        }
        self.to("/sponsored-families")
            .with_header("set-cookie", self.cookie(token, 8 * 3600))
    }

    async fn session(&self, request: &HttpRequest) -> Option<Session> {
        let token = request.cookie(SESSION_COOKIE)?.to_owned();
        match self.api.host().user_by_token(&token).await {
            Ok(user) => user.map(|user| Session { user, token }),
            Err(e) => {
                tracing::error!(error = %e, "looking up a session failed");
                None
            }
        }
    }

    fn cookie(&self, value: &str, max_age: u32) -> String {
        let path = if self.base.is_empty() {
            "/"
        } else {
            &self.base
        };
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!(
            "{SESSION_COOKIE}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
        )
    }

    fn to(&self, path: &str) -> HttpResponse {
        HttpResponse::see_other(&format!("{}{path}", self.base))
    }

    fn render(&self, status: u16, name: &str, ctx: Value) -> HttpResponse {
        match self
            .templates
            .get_template(name)
            .and_then(|t| t.render(ctx))
        {
            Ok(html) => HttpResponse::html(status, html),
            Err(e) => {
                tracing::error!(template = name, error = %e, "a page did not render");
                HttpResponse::html(
                    500,
                    "<!doctype html><title>Error</title><p>The page could not be shown.</p>".into(),
                )
            }
        }
    }

    fn sign_in_page(&self, status: u16, error: Option<&str>) -> HttpResponse {
        self.render(
            status,
            "sign_in.html",
            context! { base => &self.base, error => error },
        )
    }

    fn message(
        &self,
        status: u16,
        session: Option<&Session>,
        heading: &str,
        text: &str,
    ) -> HttpResponse {
        let user = session.map(|s| view::UserView::of(&s.user));
        let csrf = session.map(|s| self.csrf.token(&s.token));
        self.render(
            status,
            "message.html",
            context! { base => &self.base, user => user, csrf => csrf, owned => Vec::<()>::new(), heading => heading, text => text },
        )
    }

    fn not_found(&self, session: &Session) -> HttpResponse {
        self.message(
            404,
            Some(session),
            "Not found",
            "There is no such page, or it is not yours to see.",
        )
    }

    async fn sponsored_families(
        &self,
        session: &Session,
        status: u16,
        notice: Option<String>,
        error: Option<ApiError>,
    ) -> HttpResponse {
        let page = match view::sponsored_families(&self.api, &session.user).await {
            Ok(page) => page,
            Err(e) => return self.message(500, Some(session), "Error", &e.user_message()),
        };
        self.render(
            status,
            "sponsored_families.html",
            context! {
                base => &self.base,
                user => view::UserView::of(&session.user),
                csrf => self.csrf.token(&session.token),
                owned => page.owned,
                organizations => page.organizations,
                notice => notice,
                error => error.map(|e| e.user_message()),
            },
        )
    }

    async fn subscription(
        &self,
        session: &Session,
        org: OrganizationId,
        status: u16,
        notice: Option<String>,
        error: Option<ApiError>,
    ) -> HttpResponse {
        let page = match view::subscription(&self.api, &session.user, org).await {
            Ok(page) => page,
            Err(e) if e.status == 404 => return self.not_found(session),
            Err(e) => return self.message(500, Some(session), "Error", &e.user_message()),
        };
        self.render(
            status,
            "subscription.html",
            context! {
                base => &self.base,
                user => view::UserView::of(&session.user),
                csrf => self.csrf.token(&session.token),
                owned => page.owned,
                org => page.org,
                sync => page.sync,
                notice => notice,
                error => error.map(|e| e.user_message()),
            },
        )
    }
}

/// The notice of a redirect after a form, from a fixed list (nothing of the query is shown).
fn notice(request: &HttpRequest) -> Option<String> {
    let number = |name: &str| {
        request
            .query_param(name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(match request.query_param("notice")?.as_str() {
        "offered" => "Offered. The cloud e-mails the offer at the next sync; until then it shows Requested.".into(),
        "revoked" => "Revoked. The cloud is told at the next sync.".into(),
        "saved" => "Billing sync token saved.".into(),
        "deleted" => "Billing sync deleted. Sponsorships stay; they are not synced until a token is saved again.".into(),
        "license-synced" => "License synced.".into(),
        "synced" => format!(
            "Synced: {} sent, {} updated, {} removed.",
            number("sent"),
            number("updated"),
            number("removed")
        ),
        _ => return None,
    })
}

/// A `application/x-www-form-urlencoded` body.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(request: &HttpRequest) -> Self {
        let is_form = request.header_value("content-type").is_some_and(|c| {
            c.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        if request.method != Method::Post || !is_form {
            return Self(Vec::new());
        }
        Self(
            url::form_urlencoded::parse(&request.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn organization(&self) -> Option<OrganizationId> {
        self.get("organization")?
            .parse()
            .ok()
            .map(OrganizationId::from_uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::TEMPLATES;

    #[test]
    fn every_template_parses() {
        let mut env = minijinja::Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
