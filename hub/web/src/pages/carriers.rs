//! Carriers: list (staff), add and deactivate, and issue and revoke their access codes (admins).
//!
//! A carrier code is a credential: the core records only its keyed hash, and the plaintext is
//! shown once, on the page that answers the "issue" form (never in a redirect URL, a log line or
//! a fact). Afterwards a code is named by its reference, the id of the fact that issued it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use locker_app::AppError;
use locker_core::{CarrierId, RejectCode, Request, Role, MAX_CARRIER_CODE, MIN_CARRIER_CODE};

use super::{bad_form, by, error_page, field, optional, run};
use crate::auth::{Admin, FormPost, Page, Staff};
use crate::html::{self, escape};
use crate::Web;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/carriers", get(page).post(add))
        .route("/carriers/{id}/deactivate", post(deactivate))
        .route("/carriers/{id}/codes", post(issue_form))
        .route("/carriers/{id}/codes/send", post(send_form))
        .route("/carriers/{id}/codes/{code_ref}/revoke", post(revoke_form))
}

async fn page(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Staff>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let all = match web.app.carriers(&p.actor()).await {
        Ok(l) => l,
        Err(e) => return error_page("/", &e),
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
                        t = web.time(code.issued_at)
                    )
                })
                .collect();
            let actions = match (admin, c.revoked) {
                (false, _) => String::new(),
                (true, false) => format!(
                    "{send}<form method=post action=\"/carriers/{u}/codes\" class=inline>{csrf}\
                     <input name=code inputmode=numeric pattern=\"[0-9]{{{MIN_CARRIER_CODE},{MAX_CARRIER_CODE}}}\" placeholder=\"code (blank: generate)\" autocomplete=off>\
                     <button>Issue code</button></form>\
                     <form method=post action=\"/carriers/{u}/deactivate\" class=inline data-confirm=\"Deactivate {id}? Its codes stop working.\">{csrf}<button class=danger>Deactivate</button></form>",
                    id = escape(c.carrier.as_str()),
                    send = match &c.email {
                        Some(email) => format!(
                            "<form method=post action=\"/carriers/{u}/codes/send\" class=inline data-confirm=\"Email a new code to {e}?\">{csrf}<button>Email a new code</button></form>",
                            e = escape(email)
                        ),
                        None => String::new(),
                    }
                ),
                (true, true) => "<span class=note>register again to reinstate</span>".into(),
            };
            format!(
                "<tr data-carrier=\"{id}\"><td>{id}</td><td>{name}<br><small>{email}</small></td><td>{state}</td><td><ul>{codes}</ul>{none}</td><td>{actions}</td></tr>",
                id = escape(c.carrier.as_str()),
                name = escape(&c.name),
                email = escape(c.email.as_deref().unwrap_or("no email for codes")),
                state = if c.revoked { "deactivated" } else { "active" },
                none = if c.codes.is_empty() { "no live codes" } else { "" },
            )
        })
        .collect();
    let add = if admin {
        format!(
            "<h2>Add or reinstate a carrier</h2><form method=post action=/carriers class=inline>{csrf}\
             <label>Carrier id <input name=carrier required maxlength=64></label>\
             <label>Name <input name=name required maxlength=100></label>\
             <label>Email for codes <input name=email type=email maxlength=254 placeholder=\"blank: keep\"></label><button>Save</button></form>"
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

async fn add(State(web): State<Arc<Web>>, post: FormPost<Admin>) -> Response {
    let (p, f) = (post.who, post.fields);
    let (id, name) = match (field(&f, "carrier"), field(&f, "name")) {
        (Ok(i), Ok(n)) => (i, n),
        (Err(e), _) | (_, Err(e)) => return bad_form("/carriers", e),
    };
    let request = Request::RegisterCarrier {
        by: by(&p),
        carrier: CarrierId(id.to_owned()),
        name: name.to_owned(),
        email: optional(&f, "email").map(str::to_owned),
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
    Path(id): Path<String>,
    post: FormPost<Admin>,
) -> Response {
    let p = post.who;
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
    Path(id): Path<String>,
    post: FormPost<Admin>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    match web
        .app
        .issue_carrier_code(&p.actor(), &id, optional(&f, "code"))
        .await
    {
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
        Err(e) if e.code() == Some(RejectCode::InvalidInput) => {
            bad_form("/carriers", e.to_string())
        }
        Err(e @ (AppError::Rejected(_) | AppError::Conflict(_))) => {
            super::back("/carriers", Err(e.to_string()))
        }
        Err(e) => error_page("/carriers", &e),
    }
}

/// Draw a code and email it to the carrier: nobody at the page sees it.
async fn send_form(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    post: FormPost<Admin>,
) -> Response {
    let p = post.who;
    let request = Request::SendCarrierCode {
        by: by(&p),
        carrier: CarrierId(id.clone()),
    };
    run(
        &web,
        &p,
        "/carriers",
        request,
        &format!("A new code for {id} is in the outbox for its email address"),
    )
    .await
}

async fn revoke_form(
    State(web): State<Arc<Web>>,
    Path((id, code_ref)): Path<(String, String)>,
    post: FormPost<Admin>,
) -> Response {
    let p = post.who;
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
