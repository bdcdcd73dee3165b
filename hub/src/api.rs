//! The JSON API under `/api/v1/`: commands, compartments, banks, parcels, alerts, the audit
//! trail, staff accounts and the notification outbox (`docs/http-api.md`).
//!
//! Every call needs a signed-in session (the web page; state-changing calls then also need the
//! session's `X-CSRF-Token`) or `Authorization: Bearer <token>`, the integration token made at
//! first start in `DATA_DIR/api-token` (mode 0600). Commands go to the same engine as MQTT kiosk
//! requests, with the caller recorded as the actor of every staff action.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use axum::extract::Path as UrlPath;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use locker_core::{Command, Outcome, RegisterMode, RejectCode, Request};
use rand::RngCore;
use serde_json::{json, Value};

use crate::engine::Job;
use crate::web::auth::{self, json_error as error, Need, Principal};
use crate::web::pages::residents::register;
use crate::web::{ask, Web};

/// The HTTP status of a core refusal, for every JSON answer (one mapping). A request that names
/// a resource in its URL answers 404 for that resource's `unknown_*` code itself.
pub fn rejection_status(code: RejectCode) -> StatusCode {
    match code {
        RejectCode::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
        RejectCode::NotPermitted => StatusCode::FORBIDDEN,
        // The hub's disk refuses writes: try again later, nothing about the request.
        RejectCode::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::CONFLICT,
    }
}

/// Name of the actor recorded for actions taken with the API token.
pub const API_ACTOR: &str = "api-token";

pub fn router(state: Arc<Web>) -> Router {
    Router::new()
        .route("/api/v1/commands", post(command))
        .route("/api/v1/compartments", get(compartments))
        .route("/api/v1/banks", get(banks))
        .route("/api/v1/parcels", get(parcels))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/{id}/acknowledge", post(acknowledge_alert))
        .route("/api/v1/units", get(crate::web::pages::units::api_units))
        .route(
            "/api/v1/units/{bank}/{unit}/history",
            get(crate::web::pages::units::api_history),
        )
        .route("/api/v1/residents", get(residents).post(add_resident))
        .route("/api/v1/residents/{id}", post(edit_resident))
        .route(
            "/api/v1/residents/{id}/deactivate",
            post(deactivate_resident),
        )
        .route("/api/v1/carriers", get(carriers).post(add_carrier))
        .route("/api/v1/carriers/{id}/deactivate", post(deactivate_carrier))
        .route("/api/v1/carriers/{id}/codes", post(issue_carrier_code))
        .route(
            "/api/v1/carriers/{id}/codes/{code_ref}",
            delete(revoke_carrier_code),
        )
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/users", get(users).post(add_user))
        .route("/api/v1/outbox", get(outbox))
        .route("/api/v1/outbox/{id}", delete(outbox_done))
        .with_state(state)
}

/// The API token in `data_dir/api-token`, created (random, 0600) if missing.
pub fn load_or_create_token(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("api-token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    Ok(token)
}

#[allow(clippy::result_large_err)] // see web.rs
fn who(state: &Web, headers: &HeaderMap, need: Need) -> Result<Principal, Response> {
    auth::api(state, headers, need, false)
}

/// `POST /api/v1/commands`: one core command, e.g.
/// `{"request_id":"r1","type":"desk_check_in","resident":"r-101","tracking":"1Z..."}`.
/// The actor (`by`) is always the API token's, whatever the body says.
async fn command(State(state): State<Arc<Web>>, headers: HeaderMap, body: String) -> Response {
    // Signed in at all (and the CSRF header for a session) before the body is even read.
    let caller = match auth::api(&state, &headers, Need::Any, true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut value: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    let Some(object) = value.as_object_mut() else {
        return error(StatusCode::BAD_REQUEST, "body must be a JSON object");
    };
    object.insert("by".into(), json!({"kind": "staff", "id": caller.user}));
    let command: Command = match serde_json::from_value(value) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not a valid command: {e}"),
            )
        }
    };
    // Who may send it is the core's rule, the same for the pages and the kiosks.
    match ask::command(&state.jobs, caller.role, command).await {
        Ok(reply) => {
            let status = match &reply.outcome {
                Outcome::Rejected(r) => rejection_status(r.code),
                _ => StatusCode::OK,
            };
            (status, Json(reply)).into_response()
        }
        Err(e) => error(e.status, e.message),
    }
}

async fn compartments(State(state): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if let Err(r) = who(&state, &headers, Need::Staff) {
        return r;
    }
    match state.snapshot.read() {
        Ok(s) => Json(s.compartments.clone()).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "state unavailable"),
    }
}

async fn banks(State(state): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if let Err(r) = who(&state, &headers, Need::Staff) {
        return r;
    }
    match state.snapshot.read() {
        Ok(s) => Json(s.banks.clone()).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "state unavailable"),
    }
}

/// `GET /api/v1/outbox`: notifications waiting to be sent, with their plaintext codes. This is
/// the hand-off point for a notifier (email, SMS, the cloud): it sends each one, then deletes it.
async fn outbox(State(state): State<Arc<Web>>, headers: HeaderMap) -> Response {
    // Plaintext pickup codes: the integration token and admins only.
    if let Err(r) = who(&state, &headers, Need::Admin) {
        return r;
    }
    match ask::job(&state.jobs, Job::OutboxList).await {
        Ok(Ok(items)) => Json(
            items
                .into_iter()
                .map(|(id, notification)| json!({"id": id, "notification": notification}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(e.status, e.message),
    }
}

/// `DELETE /api/v1/outbox/{id}`: the notification was handed off; its plaintext code is erased.
async fn outbox_done(
    State(state): State<Arc<Web>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if let Err(r) = auth::api(&state, &headers, Need::Admin, true) {
        return r;
    }
    let key = id.clone();
    match ask::job(&state.jobs, |done| Job::OutboxDone { id: key, done }).await {
        Ok(Ok(true)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Ok(false)) => error(
            StatusCode::NOT_FOUND,
            format!("no notification {id} in the outbox"),
        ),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(e.status, e.message),
    }
}

/// `GET /api/v1/parcels`: every parcel the hub has loaded, with where it is.
async fn parcels(State(state): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if let Err(r) = who(&state, &headers, Need::Staff) {
        return r;
    }
    match ask::job(&state.jobs, Job::Parcels).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => error(e.status, e.message),
    }
}

/// `GET /api/v1/alerts`: the open alerts.
async fn alerts(State(state): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if let Err(r) = who(&state, &headers, Need::Staff) {
        return r;
    }
    match ask::job(&state.jobs, Job::Alerts).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => error(e.status, e.message),
    }
}

/// `GET /api/v1/audit?from=&to=&actor=&bank=&parcel=`: facts, newest first (as the audit page).
async fn audit(
    State(state): State<Arc<Web>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = who(&state, &headers, Need::Staff) {
        return r;
    }
    match crate::web::pages::audit::facts(&state, &q).await {
        Ok(list) => Json(list).into_response(),
        Err((status, e)) => error(status, e),
    }
}

/// `GET /api/v1/users` (admins): names, roles and whether active; never the hashes.
async fn users(State(state): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if let Err(r) = who(&state, &headers, Need::Admin) {
        return r;
    }
    let list: Vec<Value> = state
        .users
        .list()
        .into_iter()
        .map(|u| json!({"name": u.name, "role": u.role, "active": u.active}))
        .collect();
    Json(list).into_response()
}

/// `POST /api/v1/users` (admins): `{"name": "ann", "role": "staff", "password": "..."}`.
/// This is what `locker-hub user add` calls on the running hub.
async fn add_user(State(state): State<Arc<Web>>, headers: HeaderMap, body: String) -> Response {
    let caller = match auth::api(&state, &headers, Need::Admin, true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let value: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    let text = |k: &str| value.get(k).and_then(Value::as_str);
    let (Some(name), Some(role), Some(password)) = (text("name"), text("role"), text("password"))
    else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name, role and password are required strings",
        );
    };
    match crate::web::pages::users::create(&state, name, role, password).await {
        Ok(()) => {
            tracing::info!(by = %caller.user, user = name, role, "staff account added");
            (
                StatusCode::CREATED,
                Json(json!({"name": name, "role": role})),
            )
                .into_response()
        }
        Err(e) if e.contains("already exists") => error(StatusCode::CONFLICT, e),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

/// A staff request through the core, answered as JSON: 200 with the reply, 409 with the core's
/// refusal.
async fn directory_command(
    state: &Web,
    caller: &Principal,
    request: Request,
    ok: StatusCode,
) -> Response {
    match ask::command(&state.jobs, caller.role, ask::new_command("api", request)).await {
        Ok(reply) => match reply.outcome {
            Outcome::Rejected(r) => error(rejection_status(r.code), r.message),
            _ => (ok, Json(reply)).into_response(),
        },
        Err(e) => error(e.status, e.message),
    }
}

/// The body as a JSON object, or the 4xx that says why not.
#[allow(clippy::result_large_err)] // see web.rs
fn object(body: &str) -> Result<serde_json::Map<String, Value>, Response> {
    match serde_json::from_str(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(error(StatusCode::BAD_REQUEST, "body must be a JSON object")),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("body is not JSON: {e}"),
        )),
    }
}

/// `POST /api/v1/alerts/{id}/acknowledge` (staff): `{"note": "..."}`, the note optional.
async fn acknowledge_alert(
    State(state): State<Arc<Web>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> Response {
    let caller = match auth::api(&state, &headers, Need::Staff, true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let body = if body.trim().is_empty() { "{}" } else { &body };
    let m = match object(body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let note = match m.get("note") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return error(StatusCode::UNPROCESSABLE_ENTITY, "note must be a string"),
    };
    let request = Request::AcknowledgeAlert {
        by: ask::staff(&caller.user),
        alert: locker_core::AlertId(id),
        note,
    };
    match ask::command(&state.jobs, caller.role, ask::new_command("api", request)).await {
        Ok(reply) => match reply.outcome {
            Outcome::Rejected(r) if r.code == locker_core::RejectCode::UnknownAlert => {
                error(StatusCode::NOT_FOUND, r.message)
            }
            Outcome::Rejected(r) if r.code == locker_core::RejectCode::InvalidInput => {
                error(StatusCode::UNPROCESSABLE_ENTITY, r.message)
            }
            Outcome::Rejected(r) => error(StatusCode::CONFLICT, r.message),
            _ => Json(reply).into_response(),
        },
        Err(e) => error(e.status, e.message),
    }
}

/// `GET /api/v1/residents` (staff): the directory's residents, deactivated ones included.
async fn residents(State(state): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if let Err(r) = who(&state, &headers, Need::Staff) {
        return r;
    }
    match crate::web::pages::residents::list(&state).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => error(e.status, e.message),
    }
}

/// The `unit` and `accessible` of a resident body.
#[allow(clippy::result_large_err)] // see web.rs
fn unit_and_reach(m: &serde_json::Map<String, Value>) -> Result<(String, bool), Response> {
    let Some(unit) = m.get("unit").and_then(Value::as_str) else {
        return Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unit is a required string",
        ));
    };
    let accessible = match m.get("accessible") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "accessible must be true or false",
            ))
        }
    };
    Ok((unit.trim().to_owned(), accessible))
}

/// `POST /api/v1/residents` (staff): `{"resident": "r-101", "unit": "101", "accessible": false}`.
async fn add_resident(State(state): State<Arc<Web>>, headers: HeaderMap, body: String) -> Response {
    let caller = match auth::api(&state, &headers, Need::Staff, true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let m = match object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(id) = m.get("resident").and_then(Value::as_str) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "resident is a required string",
        );
    };
    let (unit, accessible) = match unit_and_reach(&m) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let by = ask::staff(&caller.user);
    let request = register(by, id.trim(), &unit, accessible, RegisterMode::Add);
    directory_command(&state, &caller, request, StatusCode::CREATED).await
}

/// `POST /api/v1/residents/{id}` (staff): `{"unit": "201", "accessible": true}`; reactivates a
/// deactivated resident.
async fn edit_resident(
    State(state): State<Arc<Web>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> Response {
    let caller = match auth::api(&state, &headers, Need::Staff, true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let m = match object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (unit, accessible) = match unit_and_reach(&m) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let by = ask::staff(&caller.user);
    let request = register(by, &id, &unit, accessible, RegisterMode::Update);
    // The resident is the resource named by the URL: an unknown one is 404.
    match ask::command(&state.jobs, caller.role, ask::new_command("api", request)).await {
        Ok(reply) => match reply.outcome {
            Outcome::Rejected(r) if r.code == RejectCode::UnknownResident => {
                error(StatusCode::NOT_FOUND, r.message)
            }
            Outcome::Rejected(r) => error(rejection_status(r.code), r.message),
            _ => Json(reply).into_response(),
        },
        Err(e) => error(e.status, e.message),
    }
}

/// `POST /api/v1/residents/{id}/deactivate` (staff).
async fn deactivate_resident(
    State(state): State<Arc<Web>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let caller = match auth::api(&state, &headers, Need::Staff, true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let request = Request::DeactivateResident {
        by: ask::staff(&caller.user),
        resident: locker_core::ResidentId(id),
    };
    directory_command(&state, &caller, request, StatusCode::OK).await
}

/// `GET /api/v1/carriers` (staff): carriers and the references of their live codes.
async fn carriers(State(state): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if let Err(r) = who(&state, &headers, Need::Staff) {
        return r;
    }
    match crate::web::pages::carriers::list(&state).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => error(e.status, e.message),
    }
}

/// `POST /api/v1/carriers` (admins): `{"carrier": "ups", "name": "UPS"}`; reinstates a
/// deactivated carrier.
async fn add_carrier(State(state): State<Arc<Web>>, headers: HeaderMap, body: String) -> Response {
    let caller = match auth::api(&state, &headers, Need::Admin, true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let m = match object(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::trim);
    let (Some(id), Some(name)) = (text("carrier"), text("name")) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "carrier and name are required strings",
        );
    };
    let request = Request::RegisterCarrier {
        by: ask::staff(&caller.user),
        carrier: locker_core::CarrierId(id.to_owned()),
        name: name.to_owned(),
    };
    directory_command(&state, &caller, request, StatusCode::CREATED).await
}

/// `POST /api/v1/carriers/{id}/deactivate` (admins): its codes stop working.
async fn deactivate_carrier(
    State(state): State<Arc<Web>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let caller = match auth::api(&state, &headers, Need::Admin, true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let request = Request::RevokeCarrier {
        by: ask::staff(&caller.user),
        carrier: locker_core::CarrierId(id),
    };
    directory_command(&state, &caller, request, StatusCode::OK).await
}

/// `POST /api/v1/carriers/{id}/codes` (admins): `{"code": "12345678"}` or `{}` to generate one.
/// Answers 201 `{"carrier", "code", "code_ref"}`: the only time the plaintext is given out.
async fn issue_carrier_code(
    State(state): State<Arc<Web>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> Response {
    let caller = match auth::api(&state, &headers, Need::Admin, true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let body = if body.trim().is_empty() { "{}" } else { &body };
    let m = match object(body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let typed = match m.get("code") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim()),
        Some(_) => return error(StatusCode::UNPROCESSABLE_ENTITY, "code must be a string"),
    };
    use crate::web::pages::carriers::{issue, issue_status, IssueError};
    match issue(&state, caller.role, ask::staff(&caller.user), &id, typed).await {
        Ok(issued) => {
            tracing::info!(by = %caller.user, carrier = %id, code_ref = %issued.code_ref, "carrier code issued");
            (
                StatusCode::CREATED,
                [(axum::http::header::CACHE_CONTROL, "no-store")],
                Json(json!({"carrier": id, "code": issued.code, "code_ref": issued.code_ref})),
            )
                .into_response()
        }
        Err(e) => {
            let status = issue_status(&e);
            match e {
                IssueError::Input(m) | IssueError::Refused(m) => error(status, m),
                IssueError::Unavailable(u) => error(u.status, u.message),
            }
        }
    }
}

/// `DELETE /api/v1/carriers/{id}/codes/{code_ref}` (admins): revoke a code by its reference.
async fn revoke_carrier_code(
    State(state): State<Arc<Web>>,
    headers: HeaderMap,
    UrlPath((id, code_ref)): UrlPath<(String, String)>,
) -> Response {
    let caller = match auth::api(&state, &headers, Need::Admin, true) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let request = Request::RevokeCarrierCodeRef {
        by: ask::staff(&caller.user),
        carrier: locker_core::CarrierId(id),
        code_ref,
    };
    match ask::command(&state.jobs, caller.role, ask::new_command("api", request)).await {
        Ok(reply) => match reply.outcome {
            Outcome::Rejected(r) => error(StatusCode::NOT_FOUND, r.message),
            _ => StatusCode::NO_CONTENT.into_response(),
        },
        Err(e) => error(e.status, e.message),
    }
}
