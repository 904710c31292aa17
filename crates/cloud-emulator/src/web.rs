//! The recipient's redemption web page and the owners' organization page: small server-rendered
//! HTML forms, no JavaScript. Offer links look like
//! `{base}/redeem?token=…&email=…[&register=true]`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use sponsorship_core::cloud::KeySyncStatus;
use sponsorship_core::ids::{CloudOrganizationId, UserId};
use sponsorship_core::plan::ProductTier;

use crate::server::Shared;
use crate::state::{RedeemTarget, Redeemed};

const COOKIE: &str = "emu_session";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login_page).post(login))
        .route("/register", post(register))
        .route("/logout", post(logout))
        .route("/redeem", get(redeem_page).post(redeem))
        .route("/web/organizations/{id}", get(organization_page))
        .route(
            "/web/organizations/{id}/remove-sponsorship",
            post(remove_sponsorship),
        )
}

type Shr = State<Arc<Shared>>;
type Fields = Form<HashMap<String, String>>;

/// HTML-escapes text for element content and quoted attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t} · Cloud emulator</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f3f6f9;color:#1b2029;margin:0}}
header{{background:#175ddc;color:#fff;padding:14px 24px;font-weight:600;font-size:18px}}
main{{max-width:640px;margin:24px auto;background:#fff;border:1px solid #d7dde5;border-radius:8px;padding:24px 28px}}
h1{{font-size:22px;margin-top:0}} label{{display:block;margin:10px 0 4px}}
input[type=email],input[type=password],input[type=text]{{width:100%;padding:8px;box-sizing:border-box;border:1px solid #aab4c0;border-radius:4px}}
button{{background:#175ddc;color:#fff;border:0;border-radius:4px;padding:9px 16px;margin-top:12px;font-size:15px;cursor:pointer}}
button.secondary{{background:#5a6470}} .choice{{display:flex;gap:8px;align-items:center;margin:6px 0}}
.error{{background:#fdecec;border:1px solid #d13b3b;color:#8a1111;padding:10px 12px;border-radius:4px;margin:12px 0}}
.success{{background:#e8f6ec;border:1px solid #2e9b4f;color:#145c2b;padding:10px 12px;border-radius:4px;margin:12px 0}}
.badge{{display:inline-block;background:#fff3cd;border:1px solid #c99a06;color:#6b5000;border-radius:10px;padding:1px 8px;font-size:13px}}
table{{border-collapse:collapse;width:100%}} td,th{{border-bottom:1px solid #e1e6ec;padding:6px;text-align:left;font-size:14px}}
.columns{{display:flex;gap:28px}} .columns>form{{flex:1}} .muted{{color:#5a6470;font-size:14px}}
</style></head>
<body><header>Cloud emulator · Families for Enterprise</header><main>
<h1>{t}</h1>
{body}
</main></body></html>"#,
        t = esc(title),
    ))
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn current_user(shared: &Shared, headers: &HeaderMap) -> Option<(UserId, String)> {
    let token = session_cookie(headers)?;
    shared.read(|s, _| s.session_user(&token).map(|u| (u.id, u.email.clone())))
}

/// Only local paths, never `//host` (no open redirect).
fn local_next(next: Option<&String>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.clone(),
        _ => "/".to_owned(),
    }
}

fn signed_in_redirect(token: &str, next: &str) -> Response {
    let mut resp = Redirect::to(next).into_response();
    if let Ok(v) =
        HeaderValue::from_str(&format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax"))
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

fn auth_forms(email: &str, next: &str, register_first: bool, error: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(e) = error {
        let _ = write!(body, r#"<div class="error" id="error">{}</div>"#, esc(e));
    }
    let login = format!(
        r#"<form method="post" action="/login" id="login-form"><h2>Sign in</h2>
<input type="hidden" name="next" value="{next}">
<label for="email">E-mail</label><input type="email" id="email" name="email" value="{email}" required>
<label for="password">Password</label><input type="password" id="password" name="password" required>
<button type="submit" id="login-submit">Sign in</button></form>"#,
        next = esc(next),
        email = esc(email),
    );
    let register = format!(
        r#"<form method="post" action="/register" id="register-form"><h2>Create account</h2>
<input type="hidden" name="next" value="{next}">
<label for="register-email">E-mail</label><input type="email" id="register-email" name="email" value="{email}" required>
<label for="register-password">Password</label><input type="password" id="register-password" name="password" required>
<button type="submit" id="register-submit">Create account</button></form>"#,
        next = esc(next),
        email = esc(email),
    );
    let (a, b) = if register_first {
        (register, login)
    } else {
        (login, register)
    };
    let _ = write!(body, r#"<div class="columns">{a}{b}</div>"#);
    body
}

async fn index(State(shared): Shr, headers: HeaderMap) -> Response {
    let Some((user, email)) = current_user(&shared, &headers) else {
        return page("Sign in", &auth_forms("", "/", false, None)).into_response();
    };
    let orgs = shared.read(|s, _| {
        s.user(user)
            .map(|u| {
                u.owner_of
                    .iter()
                    .filter_map(|id| s.organizations.get(id))
                    .map(|o| (o.org.id, o.org.name.clone(), o.org.plan_type.display_name()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    });
    let mut body = format!(
        r#"<p>Signed in as <b id="user">{}</b>.</p><h2>Your organizations</h2><ul>"#,
        esc(&email)
    );
    for (id, name, plan) in &orgs {
        let _ = write!(
            body,
            r#"<li><a href="/web/organizations/{id}">{}</a> <span class="muted">{}</span></li>"#,
            esc(name),
            esc(plan)
        );
    }
    if orgs.is_empty() {
        body.push_str("<li class=\"muted\">None yet.</li>");
    }
    body.push_str(r#"</ul><form method="post" action="/logout"><button class="secondary" type="submit">Sign out</button></form>"#);
    page("Your account", &body).into_response()
}

async fn login_page(Query(q): Query<HashMap<String, String>>) -> Response {
    let next = local_next(q.get("next"));
    page("Sign in", &auth_forms("", &next, false, None)).into_response()
}

async fn login(State(shared): Shr, Form(f): Fields) -> Response {
    let next = local_next(f.get("next"));
    let email = f.get("email").cloned().unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    match shared.write_volatile_at(|s, now| s.login_at(&email, &password, now)) {
        Ok((token, _)) => signed_in_redirect(&token, &next),
        Err(true) => (
            StatusCode::TOO_MANY_REQUESTS,
            page(
                "Sign in",
                &auth_forms(&email, &next, false, Some(THROTTLED_TEXT)),
            ),
        )
            .into_response(),
        Err(false) => (
            StatusCode::BAD_REQUEST,
            page(
                "Sign in",
                &auth_forms(
                    &email,
                    &next,
                    false,
                    Some("Username or password is incorrect. Try again."),
                ),
            ),
        )
            .into_response(),
    }
}

/// Shown when sign-ins are throttled.
pub(crate) const THROTTLED_TEXT: &str =
    "Too many failed sign-in attempts for this account. Wait a minute, then try again.";

/// Shown when the seed does not allow registration.
const REGISTRATION_CLOSED: &str =
    "Registration is closed on this reference cloud (its seed does not set allowRegistration).";

async fn register(State(shared): Shr, Form(f): Fields) -> Response {
    let next = local_next(f.get("next"));
    let email = f.get("email").cloned().unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    // Nothing is written unless an account is created.
    let created = shared.try_write(|s, _| {
        if s.allow_registration {
            s.register(&email, &password)
        } else {
            Err(REGISTRATION_CLOSED.to_owned())
        }
    });
    match created {
        Ok(_) => match shared.write_volatile(|s| s.login(&email, &password)) {
            Some((token, _)) => signed_in_redirect(&token, &next),
            None => Redirect::to("/login").into_response(),
        },
        Err(message) => (
            StatusCode::BAD_REQUEST,
            page(
                "Create account",
                &auth_forms(&email, &next, true, Some(&message)),
            ),
        )
            .into_response(),
    }
}

async fn logout(State(shared): Shr, headers: HeaderMap) -> Response {
    if let Some(token) = session_cookie(&headers) {
        shared.write_volatile(|s| s.sessions.remove(&token));
    }
    let mut resp = Redirect::to("/").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("emu_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
    );
    resp
}

fn redeem_url(token: &str, email: &str) -> String {
    let mut url = url::Url::parse("http://x/redeem").unwrap_or_else(|_| unreachable!());
    url.query_pairs_mut()
        .append_pair("token", token)
        .append_pair("email", email);
    format!("/redeem?{}", url.query().unwrap_or_default())
}

fn offer_form(
    shared: &Shared,
    user: UserId,
    email: &str,
    token: &str,
    error: Option<&str>,
) -> (StatusCode, Html<String>) {
    let signed_in = format!(
        r#"<p class="muted">Signed in as <b id="user">{}</b>.</p>"#,
        esc(email)
    );
    let error_box = error
        .map(|e| format!(r#"<div class="error" id="error">{}</div>"#, esc(e)))
        .unwrap_or_default();
    let redeemed = shared.read(|s, _| s.redeemed_on(token));
    let viewed = match redeemed {
        Some(on) => Err(format!(
            "This offer was already redeemed, on {on}: each offer can be redeemed once."
        )),
        None => shared.read(|s, _| s.view_offer(user, token)),
    };
    match viewed {
        Err(message) => (
            StatusCode::BAD_REQUEST,
            page(
                "Sponsored Families plan",
                &format!(
                    r#"{signed_in}{error_box}<div class="error" id="offer-error">{}</div>
<form method="post" action="/logout"><button class="secondary" type="submit">Sign out</button></form>"#,
                    esc(&message)
                ),
            ),
        ),
        Ok(view) => {
            let mut choices = String::from(
                r#"<div class="choice"><input type="radio" name="target" value="new" id="target-new" checked>
<label for="target-new">Create a new Families organization named</label></div>
<input type="text" id="new-name" name="newName" placeholder="My family">"#,
            );
            for (id, name, sponsored) in &view.families_orgs {
                let _ = write!(
                    choices,
                    r#"<div class="choice"><input type="radio" name="target" value="{id}" id="target-{id}">
<label for="target-{id}">Use my existing organization <b>{}</b>{}</label></div>"#,
                    esc(name),
                    if *sponsored {
                        " <span class=\"muted\">(already sponsored)</span>"
                    } else {
                        ""
                    }
                );
            }
            let body = format!(
                r#"{signed_in}{error_box}<p id="sponsor"><b>{sponsor}</b> is sponsoring a free Bitwarden Families plan for you.</p>
<form method="post" action="/redeem" id="redeem-form"><input type="hidden" name="token" value="{token}">
{choices}
<button type="submit" id="redeem-submit">Accept offer</button></form>"#,
                sponsor = esc(&view.sponsor_name),
                token = esc(token),
            );
            (
                if error.is_some() {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::OK
                },
                page("Accept your sponsored Families plan", &body),
            )
        }
    }
}

async fn redeem_page(
    State(shared): Shr,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let token = q.get("token").cloned().unwrap_or_default();
    let email = q.get("email").cloned().unwrap_or_default();
    let Some((user, user_email)) = current_user(&shared, &headers) else {
        let register = q.get("register").is_some_and(|v| v == "true");
        let next = redeem_url(&token, &email);
        let body = format!(
            r"<p>Sign in or create an account with <b>{}</b> to accept the offer.</p>{}",
            esc(&email),
            auth_forms(&email, &next, register, None)
        );
        return page("Accept your sponsored Families plan", &body).into_response();
    };
    // Signed in with another account than the offer's: say so, next to the C3 text.
    let hint = (!email.trim().is_empty()
        && !sponsorship_core::email::same_email(&email, &user_email))
    .then(|| {
        format!("This offer was sent to {email}, but you are signed in as {user_email}. Sign out and sign in as {email}.")
    });
    offer_form(&shared, user, &user_email, &token, hint.as_deref()).into_response()
}

fn success(r: &Redeemed) -> String {
    format!(
        r#"<div class="success" id="success">Your Families organization <b id="families-name">{}</b> is now sponsored by <b>{}</b>.</div>
<p>Valid until <b id="valid-until">{}</b>. <span class="badge" id="awaiting-sync">Awaiting sync</span></p>
<p class="muted">The sponsoring organization's self-hosted server shows the sponsorship as active after its next sync.</p>
<p><a href="/web/organizations/{}" id="org-link">Open {}</a></p>"#,
        esc(&r.organization_name),
        esc(&r.sponsoring_organization_name),
        r.valid_until
            .map(|v| v.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        r.sponsored_organization_id,
        esc(&r.organization_name),
    )
}

async fn redeem(State(shared): Shr, headers: HeaderMap, Form(f): Fields) -> Response {
    let token = f.get("token").cloned().unwrap_or_default();
    let Some((user, email)) = current_user(&shared, &headers) else {
        return Redirect::to(&format!(
            "/login?next={}",
            url::form_urlencoded::byte_serialize(redeem_url(&token, "").as_bytes())
                .collect::<String>()
        ))
        .into_response();
    };
    let target = match f.get("target").map(String::as_str) {
        Some("new") | None => RedeemTarget::New(f.get("newName").cloned().unwrap_or_default()),
        Some(id) => match id.parse::<CloudOrganizationId>() {
            Ok(id) => RedeemTarget::Existing(id),
            Err(_) => RedeemTarget::Existing(CloudOrganizationId::from_uuid(uuid::Uuid::nil())),
        },
    };
    match shared.write(|s, now| s.redeem(user, &token, &target, now)) {
        Ok(r) => page("Sponsorship redeemed", &success(&r)).into_response(),
        Err(e) => offer_form(&shared, user, &email, &token, Some(&e.to_string())).into_response(),
    }
}

fn no_such_organization() -> Response {
    (
        StatusCode::NOT_FOUND,
        page("Not found", "<p>No such organization.</p>"),
    )
        .into_response()
}

async fn organization_page(
    State(shared): Shr,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some((user, _)) = current_user(&shared, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let Ok(org) = id.parse::<CloudOrganizationId>() else {
        return no_such_organization();
    };
    let html = shared.read(|s, now| {
        let record = s.owned_org(user, org).ok()?;
        let mut body = format!(
            r"<p>Plan: {}</p>",
            esc(record.org.plan_type.display_name())
        );
        if record.org.plan_type.product_tier() == ProductTier::Families {
            match s.ledger.by_sponsored(org) {
                Some(row) => {
                    let _ = write!(
                        body,
                        r#"<p id="sponsorship">Sponsored by <b>{}</b> until {}{}{}</p>
<form method="post" action="/web/organizations/{org}/remove-sponsorship"><button class="secondary" id="remove-sponsorship" type="submit">Remove sponsorship</button></form>"#,
                        esc(&s.sponsor_name(row)),
                        row.valid_until.map(|v| v.format("%Y-%m-%d").to_string()).unwrap_or_default(),
                        if row.to_delete { " · <b>removal requested</b>" } else { "" },
                        if row.awaiting_sync() { r#" <span class="badge" id="awaiting-sync">Awaiting sync</span>"# } else { "" },
                    );
                }
                None => body.push_str(r#"<p id="sponsorship">Not sponsored.</p>"#),
            }
        } else {
                let status = s.key_status(org, now);
                let text = match &status {
                    None => "No billing sync token yet.".to_owned(),
                    Some(KeySyncStatus::NeverSynced) => "Billing sync token generated; no sync yet.".to_owned(),
                    Some(st) => st.message().unwrap_or_default(),
                };
                let _ = write!(body, r#"<h2>Billing sync</h2><p id="key-status">{}</p><h2>Sponsorships</h2><table><tr><th>Recipient</th><th>State</th><th>Valid until</th><th></th></tr>"#, esc(&text));
                for row in s.ledger.of_organization(org) {
                    let state = if row.to_delete {
                        "Revoked"
                    } else if row.is_redeemed() {
                        "Redeemed"
                    } else {
                        "Offered"
                    };
                    let _ = write!(
                        body,
                        "<tr><td>{}</td><td>{state}</td><td>{}</td><td>{}</td></tr>",
                        esc(row.friendly_name.as_deref().or(row.offered_to_email.as_deref()).unwrap_or("")),
                        row.valid_until.map(|v| v.format("%Y-%m-%d").to_string()).unwrap_or_default(),
                        if row.awaiting_sync() { r#"<span class="badge">Awaiting sync</span>"# } else { "" },
                    );
                }
                body.push_str("</table>");
        }
        Some(page(&record.org.name, &body))
    });
    match html {
        Some(h) => h.into_response(),
        None => no_such_organization(),
    }
}

async fn remove_sponsorship(
    State(shared): Shr,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some((user, _)) = current_user(&shared, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let Ok(org) = id.parse::<CloudOrganizationId>() else {
        return no_such_organization();
    };
    match shared.write(|s, now| s.remove_sponsorship(user, org, now)) {
        Ok(()) => Redirect::to(&format!("/web/organizations/{org}")).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            page(
                "Remove sponsorship",
                &format!(
                    r#"<div class="error" id="error">{}</div>"#,
                    esc(&e.to_string())
                ),
            ),
        )
            .into_response(),
    }
}
