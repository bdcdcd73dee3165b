//! Who is asking: a staff session (cookie) or an integration (API bearer token), what their role
//! allows, and the CSRF check for state-changing requests. Also the login and logout pages.
//!
//! Nothing but `/login`, `/healthz` and the embedded assets answers without one of the two.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use locker_app::Actor;
use locker_core::{Need, Role};

use super::error::json_error;
use super::html::{self, escape};
use super::session::{self, same};
use super::Web;

/// Name of the actor recorded for actions taken with the API token.
pub const API_ACTOR: &str = "api-token";

/// Cookie that carries the login form's CSRF token (double-submit: no session exists yet).
const LOGIN_CSRF: &str = "lh_login_csrf";

pub use super::session::Principal;

/// What a route needs of its caller, as a type: `Page<Staff>`, `Api<Admin>`, `FormPost<Any>`.
pub trait Needs: Send + Sync + 'static {
    const NEED: Need;
}

/// Any signed-in caller, kiosk tablets included.
pub struct Any;
/// Admins and staff.
pub struct Staff;
/// Admins only.
pub struct Admin;

impl Needs for Any {
    const NEED: Need = Need::Kiosk;
}
impl Needs for Staff {
    const NEED: Need = Need::Staff;
}
impl Needs for Admin {
    const NEED: Need = Need::Admin;
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
    if web.app.active_account(&s.user).is_none() {
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

/// A page's caller (`GET`): not signed in is a redirect to the login page, a role that does
/// not meet `N` a 403 page.
pub struct Page<N: Needs>(pub Principal, pub PhantomData<N>);

impl<N: Needs> FromRequestParts<Arc<Web>> for Page<N> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Arc<Web>) -> Result<Self, Response> {
        let Some(p) = principal(web, &parts.headers) else {
            return Err(Redirect::to("/login").into_response());
        };
        if !p.role.meets(N::NEED) {
            return Err(forbidden_page(&p, N::NEED));
        }
        Ok(Page(p, PhantomData))
    }
}

/// A form post's caller and fields: a session whose CSRF token matches the form's `csrf` field,
/// with a role that meets `N`.
pub struct FormPost<N: Needs> {
    pub who: Principal,
    pub fields: HashMap<String, String>,
    _need: PhantomData<N>,
}

impl<N: Needs> FromRequest<Arc<Web>> for FormPost<N> {
    type Rejection = Response;

    async fn from_request(req: Request, web: &Arc<Web>) -> Result<Self, Response> {
        let p = principal(web, req.headers());
        let Form(fields) = Form::<HashMap<String, String>>::from_request(req, web)
            .await
            .map_err(IntoResponse::into_response)?;
        let Some(p) = p else {
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
        if !p.role.meets(N::NEED) {
            return Err(forbidden_page(&p, N::NEED));
        }
        Ok(FormPost {
            who: p,
            fields,
            _need: PhantomData,
        })
    }
}

/// A form post with a file (`multipart/form-data`, the rent-roll upload): like [`FormPost`],
/// the session's CSRF token must be in the form's `csrf` field, which must come before the
/// file, so nothing is read from a caller who is not allowed. One file, up to
/// `crate::import::MAX_UPLOAD` bytes.
pub struct FilePost<N: Needs> {
    pub who: Principal,
    pub fields: HashMap<String, String>,
    /// The file's name as the browser gave it, and its bytes (`None`: no file chosen).
    pub file: Option<(String, Vec<u8>)>,
    _need: PhantomData<N>,
}

impl<N: Needs> FromRequest<Arc<Web>> for FilePost<N> {
    type Rejection = Response;

    async fn from_request(req: Request, web: &Arc<Web>) -> Result<Self, Response> {
        let signed_out = || {
            (
                StatusCode::UNAUTHORIZED,
                Html(html::bare(
                    "Signed out",
                    "<p>Your session has ended. <a href=/login>Sign in</a> again.</p>",
                )),
            )
                .into_response()
        };
        let Some(p) = principal(web, req.headers()) else {
            return Err(signed_out());
        };
        // Nothing is read for a caller whose role may not post here.
        if !p.role.meets(N::NEED) {
            return Err(forbidden_page(&p, N::NEED));
        }
        let bad = |m: String| {
            (
                StatusCode::BAD_REQUEST,
                Html(html::bare(
                    "Upload refused",
                    &format!("<p>{}</p>", escape(&m)),
                )),
            )
                .into_response()
        };
        let mut form = axum::extract::Multipart::from_request(req, web)
            .await
            .map_err(|e| bad(format!("the form could not be read: {}", e.body_text())))?;
        let mut fields = HashMap::new();
        let mut file = None;
        let mut checked = false;
        loop {
            let field = match form.next_field().await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(bad(format!("the upload broke off: {}", e.body_text()))),
            };
            let name = field.name().unwrap_or("").to_owned();
            if let Some(file_name) = field.file_name().map(str::to_owned) {
                if !checked {
                    return Err(csrf_refused());
                }
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| bad(format!("the file could not be read: {}", e.body_text())))?;
                if file.is_some() {
                    return Err(bad("send one file".into()));
                }
                if !bytes.is_empty() || !file_name.is_empty() {
                    file = Some((file_name, bytes.to_vec()));
                }
                continue;
            }
            let text = field
                .text()
                .await
                .map_err(|e| bad(format!("the form could not be read: {}", e.body_text())))?;
            if name == "csrf" {
                match &p.csrf {
                    Some(want) if same(&text, want) => checked = true,
                    _ => return Err(csrf_refused()),
                }
            }
            fields.insert(name, text);
        }
        if !checked {
            return Err(csrf_refused());
        }
        Ok(FilePost {
            who: p,
            fields,
            file,
            _need: PhantomData,
        })
    }
}

/// A JSON API caller with a role that meets `N`; a cookie session must also send
/// `X-CSRF-Token` on anything but `GET` and `HEAD`.
pub struct Api<N: Needs>(pub Principal, pub PhantomData<N>);

impl<N: Needs> Api<N> {
    pub fn actor(&self) -> Actor {
        self.0.actor()
    }
}

impl<N: Needs> FromRequestParts<Arc<Web>> for Api<N> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Arc<Web>) -> Result<Self, Response> {
        let changes_state = !matches!(parts.method, Method::GET | Method::HEAD);
        api(web, &parts.headers, N::NEED, changes_state).map(|p| Api(p, PhantomData))
    }
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
    if !p.role.meets(need) {
        return Err(json_error(
            StatusCode::FORBIDDEN,
            format!("the {} role may not do this", p.role.as_str()),
        ));
    }
    Ok(p)
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

/// The 403 page for a signed-in caller whose role does not meet `need`.
pub fn forbidden_page(p: &Principal, need: Need) -> Response {
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
    let none_yet = if web.app.no_accounts() {
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
    ConnectInfo(locker_net::Peer(peer)): ConnectInfo<locker_net::Peer>,
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
    let verified = match web.app.sign_in(user, password).await {
        Ok(v) => v,
        Err(locker_app::passwords::Busy) => {
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
pub async fn logout(State(web): State<Arc<Web>>, post: FormPost<Any>) -> Response {
    if let Some(token) = &post.who.session {
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
