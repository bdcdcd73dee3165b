//! Carriers: list (staff), add and deactivate, and issue and revoke their access codes (admins).
//!
//! A carrier code is a credential: the core records only its keyed hash, and the plaintext is
//! shown once, on the page that answers the "issue" form (never in a redirect URL, a log line or
//! a fact). Afterwards a code is named by its reference, the id of the fact that issued it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use locker_core::{
    CarrierId, CarrierView, Operator, Outcome, RejectCode, Request, MAX_CARRIER_CODE,
    MIN_CARRIER_CODE,
};
use rand::Rng;

use super::{bad_form, by, field, optional, run};
use crate::web::auth::{self, Need};
use crate::web::html::{self, escape};
use crate::web::users::Role;
use crate::web::{ask, Web};

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/carriers", get(page).post(add))
        .route("/carriers/{id}/deactivate", post(deactivate))
        .route("/carriers/{id}/codes", post(issue_form))
        .route("/carriers/{id}/codes/{code_ref}/revoke", post(revoke_form))
}

/// Generated codes: 8 digits, above the core's minimum, still quick on a keypad.
const GENERATED_DIGITS: usize = 8;

/// The directory's carriers with references to their live codes.
pub async fn list(web: &Web) -> Result<Vec<CarrierView>, ask::Unavailable> {
    ask::read(&web.jobs, |core, _| core.carriers()).await
}

/// A fresh code from the OS-seeded generator the hub uses for every secret (`rand::rng()`, as
/// the engine's entropy), each digit uniform.
fn generate() -> String {
    let mut rng = rand::rng();
    (0..GENERATED_DIGITS)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// The outcome of issuing a code: the plaintext (to show once) and its reference.
pub struct Issued {
    pub code: String,
    pub code_ref: String,
}

/// Why issuing failed, and whether it was the caller's input (4xx) or the core's refusal.
pub enum IssueError {
    Input(String),
    Refused(String),
    Unavailable(ask::Unavailable),
}

/// Issue `typed`, or a generated code, to `carrier`.
pub async fn issue(
    web: &Web,
    role: Role,
    by: Operator,
    carrier: &str,
    typed: Option<&str>,
) -> Result<Issued, IssueError> {
    // A generated code that happens to be in use is drawn again; a typed one is the admin's to fix.
    for _ in 0..3 {
        let code = typed.map(str::to_owned).unwrap_or_else(generate);
        let request = Request::IssueCarrierCode {
            by: by.clone(),
            carrier: CarrierId(carrier.to_owned()),
            code: code.clone(),
        };
        let reply = ask::command(&web.jobs, role, ask::new_command("web", request))
            .await
            .map_err(IssueError::Unavailable)?;
        match reply.outcome {
            Outcome::Rejected(r) if typed.is_none() && r.code == RejectCode::AlreadyExists => {
                continue
            }
            Outcome::Rejected(r) if r.code == RejectCode::InvalidInput => {
                return Err(IssueError::Input(r.message))
            }
            Outcome::Rejected(r) => return Err(IssueError::Refused(r.message)),
            _ => {}
        }
        let lookup = code.clone();
        let code_ref = ask::read(&web.jobs, move |core, _| core.carrier_code_ref(&lookup))
            .await
            .map_err(IssueError::Unavailable)?
            .unwrap_or_default();
        return Ok(Issued { code, code_ref });
    }
    Err(IssueError::Refused(
        "could not draw an unused code; try again".into(),
    ))
}

async fn page(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = match auth::page(&web, &headers, Need::Staff) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let all = match list(&web).await {
        Ok(l) => l,
        Err(e) => return (e.status, e.message).into_response(),
    };
    let admin = p.role == Role::Admin;
    let csrf = html::csrf(&p);
    let rows: String = all
        .iter()
        .map(|c| {
            let u = html::url(c.carrier.as_str());
            let codes: String = c
                .codes
                .iter()
                .map(|code| {
                    let revoke = if admin {
                        format!(
                            " <form method=post action=\"/carriers/{u}/codes/{r}/revoke\" class=inline data-confirm=\"Revoke this code?\">{csrf}<button class=danger>Revoke</button></form>",
                            r = html::url(&code.code_ref)
                        )
                    } else {
                        String::new()
                    };
                    format!(
                        "<li data-code-ref=\"{r}\">issued {t} <small>(ref {r})</small>{revoke}</li>",
                        r = escape(&code.code_ref),
                        t = html::time(code.issued_at)
                    )
                })
                .collect();
            let actions = match (admin, c.revoked) {
                (false, _) => String::new(),
                (true, false) => format!(
                    "<form method=post action=\"/carriers/{u}/codes\" class=inline>{csrf}\
                     <input name=code inputmode=numeric pattern=\"[0-9]{{{MIN_CARRIER_CODE},{MAX_CARRIER_CODE}}}\" placeholder=\"code (blank: generate)\" autocomplete=off>\
                     <button>Issue code</button></form>\
                     <form method=post action=\"/carriers/{u}/deactivate\" class=inline data-confirm=\"Deactivate {id}? Its codes stop working.\">{csrf}<button class=danger>Deactivate</button></form>",
                    id = escape(c.carrier.as_str())
                ),
                (true, true) => "<span class=note>register again to reinstate</span>".into(),
            };
            format!(
                "<tr data-carrier=\"{id}\"><td>{id}</td><td>{name}</td><td>{state}</td><td><ul>{codes}</ul>{none}</td><td>{actions}</td></tr>",
                id = escape(c.carrier.as_str()),
                name = escape(&c.name),
                state = if c.revoked { "deactivated" } else { "active" },
                none = if c.codes.is_empty() { "no live codes" } else { "" },
            )
        })
        .collect();
    let add = if admin {
        format!(
            "<h2>Add or reinstate a carrier</h2><form method=post action=/carriers class=inline>{csrf}\
             <label>Carrier id <input name=carrier required maxlength=64></label>\
             <label>Name <input name=name required maxlength=100></label><button>Add</button></form>"
        )
    } else {
        "<p class=note>Admins add carriers and issue or revoke their codes.</p>".into()
    };
    let body = format!(
        "<table><tr><th>Carrier</th><th>Name</th><th>State</th><th>Live access codes</th><th></th></tr>{rows}</table>\
         {add}<script src=/assets/app.js defer></script>"
    );
    Html(html::page(&p, "/carriers", "Carriers", &q, &body)).into_response()
}

async fn add(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let p = match auth::form(&web, &headers, &f, Need::Admin) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (id, name) = match (field(&f, "carrier"), field(&f, "name")) {
        (Ok(i), Ok(n)) => (i, n),
        (Err(e), _) | (_, Err(e)) => return bad_form("/carriers", e),
    };
    let request = Request::RegisterCarrier {
        by: by(&p),
        carrier: CarrierId(id.to_owned()),
        name: name.to_owned(),
    };
    run(
        &web,
        &p,
        "/carriers",
        request,
        &format!("Saved carrier {id}"),
    )
    .await
}

async fn deactivate(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let p = match auth::form(&web, &headers, &f, Need::Admin) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let request = Request::RevokeCarrier {
        by: by(&p),
        carrier: CarrierId(id.clone()),
    };
    run(&web, &p, "/carriers", request, &format!("Deactivated {id}")).await
}

/// Issue a code and show it once. The answer is a page, not a redirect, so the code is in no URL,
/// and it must not be cached.
async fn issue_form(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let p = match auth::form(&web, &headers, &f, Need::Admin) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match issue(&web, p.role, by(&p), &id, optional(&f, "code")).await {
        Ok(issued) => {
            tracing::info!(by = %p.user, carrier = %id, code_ref = %issued.code_ref, "carrier code issued");
            let body = format!(
                "<p>The new access code for carrier <b>{id}</b>:</p><p class=code data-code>{code}</p>\
                 <p class=err role=alert>This is the only time the code is shown. Give it to the carrier now; \
                 the hub keeps only a keyed hash of it.</p><p class=note>Reference {r}.</p>\
                 <p><a href=/carriers>Back to carriers</a></p>",
                id = escape(&id),
                code = escape(&issued.code),
                r = escape(&issued.code_ref),
            );
            (
                [(header::CACHE_CONTROL, "no-store")],
                Html(html::page(
                    &p,
                    "/carriers",
                    "Carrier code issued",
                    &HashMap::new(),
                    &body,
                )),
            )
                .into_response()
        }
        Err(IssueError::Input(e)) => bad_form("/carriers", e),
        Err(IssueError::Refused(e)) => super::back("/carriers", Err(e)),
        Err(IssueError::Unavailable(e)) => (e.status, e.message).into_response(),
    }
}

async fn revoke_form(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path((id, code_ref)): Path<(String, String)>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let p = match auth::form(&web, &headers, &f, Need::Admin) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let request = Request::RevokeCarrierCodeRef {
        by: by(&p),
        carrier: CarrierId(id.clone()),
        code_ref,
    };
    run(
        &web,
        &p,
        "/carriers",
        request,
        &format!("Revoked a code of {id}"),
    )
    .await
}

/// Status for a failed issue in the JSON API.
pub fn issue_status(e: &IssueError) -> StatusCode {
    match e {
        IssueError::Input(_) => StatusCode::UNPROCESSABLE_ENTITY,
        IssueError::Refused(_) => StatusCode::CONFLICT,
        IssueError::Unavailable(u) => u.status,
    }
}
