//! Who is asking: a staff session (cookie) or an integration (API bearer token), what their role
//! allows, and the CSRF check for state-changing requests. Also the login and logout pages.
//!
//! Nothing but `/login`, `/healthz` and the embedded assets answers without one of the two.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde_json::json;

use super::html::{self, escape};
use super::session::{self, same};
use super::users::Role;
use super::Web;
use crate::api::API_ACTOR;

/// Cookie that carries the login form's CSRF token (double-submit: no session exists yet).
const LOGIN_CSRF: &str = "lh_login_csrf";

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    /// Recorded as the actor of every staff action.
    pub user: String,
    pub role: Role,
    /// The session's CSRF token; `None` for the API token (no cookie, so no CSRF risk).
    pub csrf: Option<String>,
    session: Option<String>,
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Any signed-in user, kiosk tablets included.
    Any,
    /// Admins and staff.
    Staff,
    Admin,
}

impl Need {
    fn allows(self, role: Role) -> bool {
        match self {
            Need::Any => true,
            Need::Staff => role.is_staff(),
            Need::Admin => role == Role::Admin,
        }
    }
}

/// The caller, from the session cookie or the `Authorization: Bearer` API token.
pub fn principal(web: &Web, headers: &HeaderMap) -> Option<Principal> {
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        // The integration token acts with admin rights under its own name.
        return same(token, &web.api_token).then(|| Principal {
            user: API_ACTOR.to_owned(),
            role: Role::Admin,
            csrf: None,
            session: None,
        });
    }
    let token = session::cookie(headers, session::COOKIE)?;
    let s = web.sessions.get(token)?;
    // A deactivated account loses its sessions at once (also ended on deactivation).
    if !web.users.get(&s.user).is_some_and(|u| u.active) {
        web.sessions.end(token);
        return None;
    }
    Some(Principal {
        user: s.user,
        role: s.role,
        csrf: Some(s.csrf),
        session: Some(token.to_owned()),
    })
}

/// For pages: the caller, or a redirect to the login page / a 403 page.
pub fn page(web: &Web, headers: &HeaderMap, need: Need) -> Result<Principal, Response> {
    let Some(p) = principal(web, headers) else {
        return Err(Redirect::to("/login").into_response());
    };
    if !need.allows(p.role) {
        return Err(forbidden_page(&p, need));
    }
    Ok(p)
}

/// For form posts: a session whose CSRF token matches the form's `csrf` field, with the role.
pub fn form(
    web: &Web,
    headers: &HeaderMap,
    fields: &HashMap<String, String>,
    need: Need,
) -> Result<Principal, Response> {
    let Some(p) = principal(web, headers) else {
        return Err((
            StatusCode::UNAUTHORIZED,
            Html(html::bare(
                "Signed out",
                "<p>Your session has ended. <a href=/login>Sign in</a> again.</p>",
            )),
        )
            .into_response());
    };
    let given = fields.get("csrf").map(String::as_str).unwrap_or("");
    match &p.csrf {
        Some(want) if same(given, want) => {}
        // Forms are for browsers; the API token uses the JSON API.
        _ => return Err(csrf_refused()),
    }
    if !need.allows(p.role) {
        return Err(forbidden_page(&p, need));
    }
    Ok(p)
}

/// For the JSON API: the caller with the role; a cookie session must also send `X-CSRF-Token`
/// on anything that changes state.
pub fn api(
    web: &Web,
    headers: &HeaderMap,
    need: Need,
    changes_state: bool,
) -> Result<Principal, Response> {
    let Some(p) = principal(web, headers) else {
        return Err(json_error(
            StatusCode::UNAUTHORIZED,
            "sign in, or send the API token (Authorization: Bearer <DATA_DIR/api-token>)",
        ));
    };
    if changes_state {
        if let Some(want) = &p.csrf {
            let given = headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !same(given, want) {
                return Err(json_error(
                    StatusCode::FORBIDDEN,
                    "missing or wrong X-CSRF-Token header (a signed-in page sends its token)",
                ));
            }
        }
    }
    if !need.allows(p.role) {
        return Err(json_error(
            StatusCode::FORBIDDEN,
            format!("the {} role may not do this", p.role.as_str()),
        ));
    }
    Ok(p)
}

pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(html::bare(
            "Form expired",
            "<p>The form's security token is missing or out of date (CSRF check). Go back, reload the page and try again.</p>",
        )),
    )
        .into_response()
}

fn forbidden_page(p: &Principal, need: Need) -> Response {
    let what = match need {
        Need::Admin => "an admin",
        _ => "staff",
    };
    (
        StatusCode::FORBIDDEN,
        Html(html::bare(
            "Not allowed",
            &format!(
                "<p>Signed in as {} ({}). This needs {what}.</p><p><a href=/>Back</a></p>",
                escape(&p.user),
                p.role.as_str()
            ),
        )),
    )
        .into_response()
}

/// `GET /login`.
pub async fn login_page(State(web): State<Arc<Web>>) -> Response {
    login_form(&web, None, StatusCode::OK)
}

fn login_form(web: &Web, error: Option<&str>, status: StatusCode) -> Response {
    let token = session::random_token();
    let none_yet = if web.users.list().is_empty() {
        "<p class=note>No staff accounts exist yet. On the hub, run <code>locker-hub user add NAME --role admin</code>.</p>"
    } else {
        ""
    };
    let err = error
        .map(|e| format!("<p class=err role=alert>{}</p>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<form method=post action=/login class=login>{none_yet}{err}\
         <input type=hidden name=csrf value=\"{token}\">\
         <label>User <input name=user autocomplete=username required autofocus></label>\
         <label>Password <input name=password type=password autocomplete=current-password required></label>\
         <button>Sign in</button></form>"
    );
    (
        status,
        [(
            header::SET_COOKIE,
            session::set_cookie(LOGIN_CSRF, &token, web.secure, Some(3600)),
        )],
        Html(html::bare("Sign in", &body)),
    )
        .into_response()
}

/// `POST /login`: throttled; a good password starts a session.
pub async fn login(
    State(web): State<Arc<Web>>,
    ConnectInfo(crate::conn_limit::Peer(peer)): ConnectInfo<crate::conn_limit::Peer>,
    headers: HeaderMap,
    Form(fields): Form<HashMap<String, String>>,
) -> Response {
    let cookie = session::cookie(&headers, LOGIN_CSRF).unwrap_or("");
    let given = fields.get("csrf").map(String::as_str).unwrap_or("");
    if cookie.is_empty() || !same(cookie, given) {
        return login_form(
            &web,
            Some("The sign-in form expired (CSRF check). Try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let user = fields.get("user").map(|u| u.trim()).unwrap_or("");
    let password = fields.get("password").map(String::as_str).unwrap_or("");
    if user.is_empty() || password.is_empty() {
        return login_form(
            &web,
            Some("Enter a user name and a password."),
            StatusCode::BAD_REQUEST,
        );
    }
    let source = peer.ip();
    if let Err(wait) = web.throttle.check(user, source) {
        return login_form(
            &web,
            Some(&format!(
                "Too many wrong passwords. Try again in {wait} seconds."
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let verified = match web.users.verify(&web.argon2, user, password).await {
        Ok(v) => v,
        Err(crate::broker::auth::Busy) => {
            return login_form(
                &web,
                Some("The hub is busy checking other sign-ins. Try again in a moment."),
                StatusCode::SERVICE_UNAVAILABLE,
            );
        }
    };
    let Some(account) = verified else {
        web.throttle.failed(user, source);
        tracing::warn!(user, "web sign-in refused");
        return login_form(
            &web,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
        );
    };
    web.throttle.succeeded(user, source);
    tracing::info!(user, role = account.role.as_str(), "web sign-in");
    let token = web.sessions.create(&account.name, account.role);
    let home = if account.role == Role::Kiosk {
        "/kiosk"
    } else {
        "/"
    };
    (
        [
            (
                header::SET_COOKIE,
                session::set_cookie(session::COOKIE, &token, web.secure, None),
            ),
            (header::LOCATION, home.to_owned()),
        ],
        StatusCode::SEE_OTHER,
    )
        .into_response()
}

/// `POST /logout` (with the CSRF token, so a third-party page cannot sign staff out).
pub async fn logout(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(fields): Form<HashMap<String, String>>,
) -> Response {
    let p = match form(&web, &headers, &fields, Need::Any) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(token) = &p.session {
        web.sessions.end(token);
    }
    (
        [
            (
                header::SET_COOKIE,
                session::set_cookie(session::COOKIE, "", web.secure, Some(0)),
            ),
            (header::LOCATION, "/login".to_owned()),
        ],
        StatusCode::SEE_OTHER,
    )
        .into_response()
}
