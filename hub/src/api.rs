//! The JSON API under `/api/v1/` (the part that exists so far: commands, compartments, banks).
//!
//! Every call needs `Authorization: Bearer <token>`. The token is made at first start and kept
//! in `DATA_DIR/api-token` (mode 0600); integrations and the tests read it from there. Staff
//! sessions for the web page come later. Commands go to the same engine as MQTT kiosk requests,
//! with the caller recorded as the actor of every staff action.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::Path as UrlPath;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use locker_core::{Command, Input, Outcome};
use rand::RngCore;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::engine::{Job, ReplyTo, Snapshot};

/// Name of the actor recorded for actions taken with the API token.
pub const API_ACTOR: &str = "api-token";

#[derive(Clone)]
pub struct ApiState {
    pub token: Arc<String>,
    pub jobs: Sender<Job>,
    pub snapshot: Arc<RwLock<Snapshot>>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/commands", post(command))
        .route("/api/v1/compartments", get(compartments))
        .route("/api/v1/banks", get(banks))
        .route("/api/v1/parcels", get(parcels))
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

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `None` when the caller showed the API token; otherwise the 401 to answer with.
fn unauthorised(state: &ApiState, headers: &HeaderMap) -> Option<Response> {
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let want = state.token.as_bytes();
    let same = given.len() == want.len()
        && given
            .bytes()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    (!same).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token (Authorization: Bearer <DATA_DIR/api-token>)",
        )
    })
}

/// `POST /api/v1/commands`: one core command, e.g.
/// `{"request_id":"r1","type":"desk_check_in","resident":"r-101","tracking":"1Z..."}`.
/// The actor (`by`) is always the API token's, whatever the body says.
async fn command(State(state): State<ApiState>, headers: HeaderMap, body: String) -> Response {
    if let Some(r) = unauthorised(&state, &headers) {
        return r;
    }
    let mut value: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    let Some(object) = value.as_object_mut() else {
        return error(StatusCode::BAD_REQUEST, "body must be a JSON object");
    };
    object.insert("by".into(), json!({"kind": "staff", "id": API_ACTOR}));
    let command: Command = match serde_json::from_value(value) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not a valid command: {e}"),
            )
        }
    };
    let (tx, rx) = oneshot::channel();
    let job = Job::Input {
        input: Input::Command(command),
        reply: ReplyTo::Http(tx),
    };
    if state.jobs.send(job).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the hub is stopping");
    }
    match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(reply)) => {
            let status = match reply.outcome {
                Outcome::Rejected(_) => StatusCode::CONFLICT,
                _ => StatusCode::OK,
            };
            (status, Json(reply)).into_response()
        }
        _ => error(StatusCode::GATEWAY_TIMEOUT, "no answer from the engine"),
    }
}

async fn compartments(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorised(&state, &headers) {
        return r;
    }
    match state.snapshot.read() {
        Ok(s) => Json(s.compartments.clone()).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "state unavailable"),
    }
}

async fn banks(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorised(&state, &headers) {
        return r;
    }
    match state.snapshot.read() {
        Ok(s) => Json(s.banks.clone()).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "state unavailable"),
    }
}

/// `GET /api/v1/outbox`: notifications waiting to be sent, with their plaintext codes. This is
/// the hand-off point for a notifier (email, SMS, the cloud): it sends each one, then deletes it.
async fn outbox(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorised(&state, &headers) {
        return r;
    }
    let (tx, rx) = oneshot::channel();
    if state.jobs.send(Job::OutboxList(tx)).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the hub is stopping");
    }
    match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(Ok(items))) => Json(
            items
                .into_iter()
                .map(|(id, notification)| json!({"id": id, "notification": notification}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Ok(Ok(Err(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        _ => error(StatusCode::GATEWAY_TIMEOUT, "no answer from the engine"),
    }
}

/// `DELETE /api/v1/outbox/{id}`: the notification was handed off; its plaintext code is erased.
async fn outbox_done(
    State(state): State<ApiState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if let Some(r) = unauthorised(&state, &headers) {
        return r;
    }
    let (tx, rx) = oneshot::channel();
    if state
        .jobs
        .send(Job::OutboxDone {
            id: id.clone(),
            done: tx,
        })
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the hub is stopping");
    }
    match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(Ok(true))) => StatusCode::NO_CONTENT.into_response(),
        Ok(Ok(Ok(false))) => error(
            StatusCode::NOT_FOUND,
            format!("no notification {id} in the outbox"),
        ),
        Ok(Ok(Err(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        _ => error(StatusCode::GATEWAY_TIMEOUT, "no answer from the engine"),
    }
}

/// `GET /api/v1/parcels`: every parcel the hub has loaded, with where it is.
async fn parcels(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(r) = unauthorised(&state, &headers) {
        return r;
    }
    let (tx, rx) = oneshot::channel();
    if state.jobs.send(Job::Parcels(tx)).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the hub is stopping");
    }
    match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(list)) => Json(list).into_response(),
        _ => error(StatusCode::GATEWAY_TIMEOUT, "no answer from the engine"),
    }
}
