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
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use locker_app::AppError;
use locker_core::{
    AlertId, CarrierId, Command, Outcome, RegisterMode, RejectCode, Reply, Request, ResidentId,
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{Admin, Any, Api, Staff};
use crate::error::{json_error as error, rejection_status, ApiError};
use crate::wire::{
    self, AlertJson, BankJson, CarrierJson, CompartmentJson, OutboxItemJson, ParcelJson, ReplyJson,
    ResidentJson,
};
use crate::Web;

/// Every JSON answer: the value, or the error with its one status.
type ApiResult<T> = Result<T, ApiError>;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/api/v1/commands", post(command))
        .route("/api/v1/compartments", get(compartments))
        .route("/api/v1/banks", get(banks))
        .route("/api/v1/parcels", get(parcels))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/{id}/acknowledge", post(acknowledge_alert))
        .route("/api/v1/units", get(crate::pages::units::api_units))
        .route(
            "/api/v1/units/{bank}/{unit}/history",
            get(crate::pages::units::api_history),
        )
        .route(
            "/api/v1/residents",
            get(residents)
                .post(add_resident)
                .merge(crate::import::put_residents()),
        )
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

/// The body as `T`: `400` for a body that is not JSON, `422` for JSON of the wrong shape (the
/// message names the field). An empty body is `{}`.
#[allow(clippy::result_large_err)] // see lib.rs
fn body<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, Response> {
    let body = if body.trim().is_empty() { "{}" } else { body };
    let value: Value = serde_json::from_str(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(error(StatusCode::BAD_REQUEST, "body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
}

/// `POST /api/v1/commands`: one core command, e.g.
/// `{"request_id":"r1","type":"desk_check_in","resident":"r-101","tracking":"1Z..."}`.
/// The actor (`by`) is always the caller's, whatever the body says; who may send which command
/// is the core's rule (the pages and kiosks are held to the same).
async fn command(State(web): State<Arc<Web>>, Api(caller, ..): Api<Any>, body: String) -> Response {
    let mut value: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    let Some(object) = value.as_object_mut() else {
        return error(StatusCode::BAD_REQUEST, "body must be a JSON object");
    };
    let who = caller.actor();
    let by = match serde_json::to_value(who.operator()) {
        Ok(by) => by,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    object.insert("by".into(), by);
    let command: Command = match serde_json::from_value(value) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("not a valid command: {e}"),
            )
        }
    };
    let request_id = command.request_id.clone();
    match web.app.command(&who, command).await {
        Ok(reply) => Json(ReplyJson::from(&reply)).into_response(),
        // The core's refusal, as the kiosks get it, with its one status.
        Err(AppError::Rejected(r)) => (
            rejection_status(r.code),
            Json(ReplyJson::from(&Reply {
                request_id,
                outcome: Outcome::Rejected(r),
            })),
        )
            .into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

async fn compartments(
    State(web): State<Arc<Web>>,
    Api(who, ..): Api<Staff>,
) -> ApiResult<Response> {
    let snapshot = web.app.snapshot(&who.actor())?;
    Ok(Json(wire::list::<_, CompartmentJson>(&snapshot.compartments)).into_response())
}

async fn banks(State(web): State<Arc<Web>>, Api(who, ..): Api<Staff>) -> ApiResult<Response> {
    let snapshot = web.app.snapshot(&who.actor())?;
    Ok(Json(wire::list::<_, BankJson>(&snapshot.banks)).into_response())
}

/// `GET /api/v1/outbox`: notifications waiting to be sent, with their plaintext codes. This is
/// the hand-off point for a notifier (email, SMS, the cloud): it sends each one, then deletes it.
/// Plaintext pickup codes: the integration token and admins only.
async fn outbox(State(web): State<Arc<Web>>, Api(who, ..): Api<Admin>) -> ApiResult<Response> {
    let records: std::collections::BTreeMap<String, locker_app::notify::Delivery> = web
        .app
        .deliveries(&who.actor())
        .await?
        .into_iter()
        .collect();
    let items: Vec<OutboxItemJson> = web
        .app
        .outbox(&who.actor())
        .await?
        .into_iter()
        .map(|(id, pending)| {
            let delivery = records.get(&id).map(wire::DeliveryJson::from);
            OutboxItemJson {
                delivery,
                ..OutboxItemJson::from((id, pending))
            }
        })
        .collect();
    Ok(Json(items).into_response())
}

/// `DELETE /api/v1/outbox/{id}`: the notification was handed off; its plaintext code is erased.
async fn outbox_done(
    State(web): State<Arc<Web>>,
    Api(who, ..): Api<Admin>,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<StatusCode> {
    web.app.outbox_done(&who.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/parcels`: every parcel the hub has loaded, with where it is.
async fn parcels(State(web): State<Arc<Web>>, Api(who, ..): Api<Staff>) -> ApiResult<Response> {
    let parcels = web.app.parcels(&who.actor()).await?;
    Ok(Json(wire::list::<_, ParcelJson>(&parcels)).into_response())
}

/// `GET /api/v1/alerts`: the open alerts.
async fn alerts(State(web): State<Arc<Web>>, Api(who, ..): Api<Staff>) -> ApiResult<Response> {
    let alerts = web.app.alerts(&who.actor()).await?;
    Ok(Json(wire::list::<_, AlertJson>(&alerts)).into_response())
}

/// `GET /api/v1/audit?from=&to=&actor=&bank=&parcel=`: facts, newest first (as the audit page).
async fn audit(
    State(web): State<Arc<Web>>,
    Api(who, ..): Api<Staff>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = match crate::pages::audit::query(&web, &q) {
        Ok(query) => query,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match web
        .app
        .facts(&who.actor(), query, crate::pages::audit::LIMIT)
        .await
    {
        Ok(list) => Json(list).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

/// `GET /api/v1/users` (admins): names, roles and whether active; never the hashes.
async fn users(State(web): State<Arc<Web>>, Api(who, ..): Api<Admin>) -> ApiResult<Response> {
    Ok(Json(web.app.accounts(&who.actor())?).into_response())
}

/// The body of `POST /api/v1/users` (also what `locker-hub user add` sends).
#[derive(Debug, Deserialize, Serialize)]
pub struct NewUser {
    pub name: String,
    pub role: String,
    pub password: String,
}

/// `POST /api/v1/users` (admins): `{"name": "ann", "role": "staff", "password": "..."}`.
/// This is what `locker-hub user add` calls on the running hub.
async fn add_user(State(web): State<Arc<Web>>, Api(who, ..): Api<Admin>, raw: String) -> Response {
    let new: NewUser = match body(&raw) {
        Ok(n) => n,
        Err(r) => return r,
    };
    match web
        .app
        .add_account(&who.actor(), &new.name, &new.role, &new.password)
        .await
    {
        Ok(view) => (StatusCode::CREATED, Json(view)).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

/// A request through the core, answered with `ok` and the reply, or the refusal's status.
async fn run(web: &Web, who: &locker_app::Actor, request: Request, ok: StatusCode) -> Response {
    match web.app.request(who, "api", request).await {
        Ok(reply) => (ok, Json(ReplyJson::from(&reply))).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

/// The body of an acknowledgement.
#[derive(Deserialize, Serialize)]
struct Acknowledgement {
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/v1/alerts/{id}/acknowledge` (staff): `{"note": "..."}`, the note optional.
async fn acknowledge_alert(
    State(web): State<Arc<Web>>,
    Api(caller, ..): Api<Staff>,
    UrlPath(id): UrlPath<String>,
    raw: String,
) -> Response {
    let ack: Acknowledgement = match body(&raw) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let who = caller.actor();
    let request = Request::AcknowledgeAlert {
        by: who.operator(),
        alert: AlertId(id),
        note: ack.note,
    };
    // The alert is the resource the URL names: an unknown one is 404.
    match web.app.request(&who, "api", request).await {
        Ok(reply) => Json(ReplyJson::from(&reply)).into_response(),
        Err(e) => ApiError(e.not_found_if(RejectCode::UnknownAlert)).into_response(),
    }
}

/// `GET /api/v1/residents` (staff): the directory's residents, deactivated ones included.
async fn residents(State(web): State<Arc<Web>>, Api(who, ..): Api<Staff>) -> ApiResult<Response> {
    let residents = web.app.residents(&who.actor()).await?;
    Ok(Json(wire::list::<_, ResidentJson>(&residents)).into_response())
}

/// The body of `POST /api/v1/residents` and `/residents/{id}`.
#[derive(Deserialize, Serialize)]
struct ResidentBody {
    #[serde(default)]
    resident: Option<String>,
    unit: String,
    #[serde(default)]
    accessible: bool,
    /// Left out: unchanged; `""`: cleared.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    notify: Option<String>,
    #[serde(default)]
    secondary_email: Option<String>,
    #[serde(default)]
    secondary_phone: Option<String>,
}

impl ResidentBody {
    fn contact(&self) -> locker_core::Contact {
        locker_core::Contact {
            name: self.name.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            language: self.language.clone(),
            notify: self.notify.clone(),
            secondary_email: self.secondary_email.clone(),
            secondary_phone: self.secondary_phone.clone(),
        }
    }
}

/// `POST /api/v1/residents` (staff): `{"resident": "r-101", "unit": "101", "accessible": false}`.
async fn add_resident(
    State(web): State<Arc<Web>>,
    Api(caller, ..): Api<Staff>,
    raw: String,
) -> Response {
    let b: ResidentBody = match body(&raw) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(id) = b.resident.clone() else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "resident is a required string",
        );
    };
    match web
        .app
        .register_resident(
            &caller.actor(),
            id.trim(),
            &b.unit,
            b.accessible,
            RegisterMode::Add,
            b.contact(),
        )
        .await
    {
        Ok(reply) => (StatusCode::CREATED, Json(ReplyJson::from(&reply))).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

/// `POST /api/v1/residents/{id}` (staff): `{"unit": "201", "accessible": true}`; reactivates a
/// deactivated resident.
async fn edit_resident(
    State(web): State<Arc<Web>>,
    Api(caller, ..): Api<Staff>,
    UrlPath(id): UrlPath<String>,
    raw: String,
) -> Response {
    let b: ResidentBody = match body(&raw) {
        Ok(b) => b,
        Err(r) => return r,
    };
    // The resident is the resource the URL names: an unknown one is 404.
    match web
        .app
        .register_resident(
            &caller.actor(),
            &id,
            &b.unit,
            b.accessible,
            RegisterMode::Update,
            b.contact(),
        )
        .await
    {
        Ok(reply) => Json(ReplyJson::from(&reply)).into_response(),
        Err(e) => ApiError(e.not_found_if(RejectCode::UnknownResident)).into_response(),
    }
}

/// `POST /api/v1/residents/{id}/deactivate` (staff).
async fn deactivate_resident(
    State(web): State<Arc<Web>>,
    Api(caller, ..): Api<Staff>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let who = caller.actor();
    let request = Request::DeactivateResident {
        by: who.operator(),
        resident: ResidentId(id),
    };
    run(&web, &who, request, StatusCode::OK).await
}

/// `GET /api/v1/carriers` (staff): carriers and the references of their live codes.
async fn carriers(State(web): State<Arc<Web>>, Api(who, ..): Api<Staff>) -> ApiResult<Response> {
    let carriers = web.app.carriers(&who.actor()).await?;
    Ok(Json(wire::list::<_, CarrierJson>(&carriers)).into_response())
}

/// The body of `POST /api/v1/carriers`.
#[derive(Deserialize, Serialize)]
struct CarrierBody {
    carrier: String,
    name: String,
    #[serde(default)]
    email: Option<String>,
}

/// `POST /api/v1/carriers` (admins): `{"carrier": "ups", "name": "UPS", "email":
/// "codes@ups.example"}` (`email` optional: where codes sent with `{"send": true}` go; left out
/// it is kept, `""` clears it); reinstates a deactivated carrier.
async fn add_carrier(
    State(web): State<Arc<Web>>,
    Api(caller, ..): Api<Admin>,
    raw: String,
) -> Response {
    let b: CarrierBody = match body(&raw) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let who = caller.actor();
    let request = Request::RegisterCarrier {
        by: who.operator(),
        carrier: CarrierId(b.carrier.trim().to_owned()),
        name: b.name.trim().to_owned(),
        email: b.email,
    };
    run(&web, &who, request, StatusCode::CREATED).await
}

/// `POST /api/v1/carriers/{id}/deactivate` (admins): its codes stop working.
async fn deactivate_carrier(
    State(web): State<Arc<Web>>,
    Api(caller, ..): Api<Admin>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let who = caller.actor();
    let request = Request::RevokeCarrier {
        by: who.operator(),
        carrier: CarrierId(id),
    };
    run(&web, &who, request, StatusCode::OK).await
}

/// The body of `POST /api/v1/carriers/{id}/codes`.
#[derive(Deserialize, Serialize)]
struct CodeBody {
    #[serde(default)]
    code: Option<String>,
    /// Draw a code and email it to the carrier: the answer names only its reference.
    #[serde(default)]
    send: bool,
}

/// The answer to issuing a code: the only time the plaintext is given out.
#[derive(Serialize)]
struct IssuedCode {
    carrier: String,
    code: String,
    code_ref: String,
}

/// `POST /api/v1/carriers/{id}/codes` (admins): `{"code": "12345678"}` or `{}` to generate one.
/// Answers 201 `{"carrier", "code", "code_ref"}`: the only time the plaintext is given out.
/// `{"send": true}`: the hub draws a code and emails it to the carrier's address; the answer is
/// the command's reply, `carrier_code_sent` with the reference only.
async fn issue_carrier_code(
    State(web): State<Arc<Web>>,
    Api(caller, ..): Api<Admin>,
    UrlPath(id): UrlPath<String>,
    raw: String,
) -> Response {
    let b: CodeBody = match body(&raw) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if b.send {
        if b.code.is_some() {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "a code that is sent is drawn by the hub: give either code or send",
            );
        }
        let who = caller.actor();
        let request = Request::SendCarrierCode {
            by: who.operator(),
            carrier: CarrierId(id),
        };
        return run(&web, &who, request, StatusCode::CREATED).await;
    }
    let typed = b.code.as_deref().map(str::trim);
    match web
        .app
        .issue_carrier_code(&caller.actor(), &id, typed)
        .await
    {
        Ok(issued) => {
            tracing::info!(by = %caller.user, carrier = %id, code_ref = %issued.code_ref, "carrier code issued");
            (
                StatusCode::CREATED,
                [(header::CACHE_CONTROL, "no-store")],
                Json(IssuedCode {
                    carrier: id,
                    code: issued.code,
                    code_ref: issued.code_ref,
                }),
            )
                .into_response()
        }
        Err(e) => ApiError(e).into_response(),
    }
}

/// `DELETE /api/v1/carriers/{id}/codes/{code_ref}` (admins): revoke a code by its reference.
async fn revoke_carrier_code(
    State(web): State<Arc<Web>>,
    Api(caller, ..): Api<Admin>,
    UrlPath((id, code_ref)): UrlPath<(String, String)>,
) -> Response {
    let who = caller.actor();
    let request = Request::RevokeCarrierCodeRef {
        by: who.operator(),
        carrier: CarrierId(id),
        code_ref,
    };
    // The code (and its carrier) is the resource the URL names: unknown is 404.
    match web.app.request(&who, "api", request).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError(
            e.not_found_if(RejectCode::UnknownCarrier)
                .not_found_if(RejectCode::InvalidInput),
        )
        .into_response(),
    }
}

/// Every JSON example in `docs/http-api.md` parses as the type it shows and survives a round
/// trip: request bodies as the handlers read them, answers as the hub writes them.
#[cfg(test)]
mod doc_examples {
    use super::*;
    use serde::de::DeserializeOwned;

    fn kept(example: &Value, back: &Value, path: &str) -> Result<(), String> {
        match (example, back) {
            (Value::Object(e), Value::Object(b)) => e.iter().try_for_each(|(k, v)| {
                let w = b
                    .get(k)
                    .ok_or_else(|| format!("{path}.{k} is dropped by the type"))?;
                kept(v, w, &format!("{path}.{k}"))
            }),
            (Value::Array(e), Value::Array(b)) if e.len() == b.len() => e
                .iter()
                .zip(b)
                .try_for_each(|(v, w)| kept(v, w, &format!("{path}[]"))),
            (e, b) if e == b => Ok(()),
            (e, b) => Err(format!("{path} was {e} and came back as {b}")),
        }
    }

    fn round_trip<T: DeserializeOwned + Serialize>(example: &Value) -> Result<(), String> {
        let typed: T = serde_json::from_value(example.clone()).map_err(|e| e.to_string())?;
        let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
        kept(example, &back, "$")
    }

    /// What an example is, by what it says.
    fn check(example: &Value) -> Result<&'static str, String> {
        let has = |k: &str| example.get(k).is_some();
        let kind = |t: &str| example.get("type").and_then(Value::as_str) == Some(t);
        let location = [
            "compartment",
            "desk",
            "picked_up",
            "returned",
            "missing",
            "disputed",
        ];
        if has("id") && has("notification") {
            round_trip::<OutboxItemJson>(example).map(|()| "OutboxItemJson")
        } else if location.iter().any(|t| kind(t)) && !has("request_id") {
            round_trip::<crate::wire::LocationJson>(example).map(|()| "Location")
        } else if has("request_id")
            && [
                "size_suggested",
                "reserved",
                "parcel_confirmed",
                "drop_off_cancelled",
                "locker_full",
                "opening",
                "checked_in",
                "audit",
                "accepted",
                "carrier_code_sent",
                "rejected",
            ]
            .iter()
            .any(|t| kind(t))
        {
            round_trip::<ReplyJson>(example).map(|()| "ReplyJson")
        } else if has("request_id") {
            // The body of POST /api/v1/commands: the hub adds `by` itself.
            let mut body = example.clone();
            if let Some(o) = body.as_object_mut() {
                o.insert("by".into(), serde_json::json!({"kind": "cloud"}));
            }
            round_trip::<Command>(&body).map(|()| "Command")
        } else if has("error") {
            round_trip::<crate::error::ErrorBody>(example).map(|()| "ErrorBody")
        } else if has("note") {
            round_trip::<Acknowledgement>(example).map(|()| "Acknowledgement")
        } else if has("name") && has("role") {
            round_trip::<NewUser>(example).map(|()| "NewUser")
        } else if has("carrier") && has("name") {
            round_trip::<CarrierBody>(example).map(|()| "CarrierBody")
        } else if has("residents") {
            round_trip::<crate::import::RollBody>(example).map(|()| "RollBody")
        } else if has("decision") {
            round_trip::<crate::import::Decision>(example).map(|()| "Decision")
        } else if has("unit") {
            round_trip::<ResidentBody>(example).map(|()| "ResidentBody")
        } else if has("code") || has("send") || example.as_object().is_some_and(|o| o.is_empty()) {
            round_trip::<CodeBody>(example).map(|()| "CodeBody")
        } else {
            Err("no type for this example: say in this test what it shows".into())
        }
    }

    #[test]
    fn every_example_parses_as_its_type_and_round_trips() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/http-api.md");
        let doc = std::fs::read_to_string(path).expect("docs/http-api.md");
        let mut problems = Vec::new();
        let mut checked = Vec::new();
        let mut lines = doc.lines().enumerate();
        let mut annotated: Option<String> = None;
        while let Some((i, line)) = lines.next() {
            if let Some(k) = line
                .trim()
                .strip_prefix("<!-- example: ")
                .and_then(|r| r.strip_suffix(" -->"))
            {
                annotated = Some(k.to_owned());
                continue;
            }
            if line.trim() == "```json" {
                let text: String = lines
                    .by_ref()
                    .map(|(_, l)| l)
                    .take_while(|l| l.trim() != "```")
                    .collect::<Vec<_>>()
                    .join("\n");
                let result = serde_json::from_str::<Value>(&text)
                    .map_err(|e| e.to_string())
                    .and_then(|v| match annotated.take().as_deref() {
                        Some("Health") => round_trip::<locker_app::health::Health>(&v),
                        Some("ParcelJson") => round_trip::<crate::wire::ParcelJson>(&v),
                        other => Err(format!("no example type {other:?} before the block")),
                    });
                match result {
                    Ok(()) => checked.push("block"),
                    Err(e) => problems.push(format!("docs/http-api.md:{}: {e}", i + 1)),
                }
                continue;
            }
            annotated = None;
            // Inline examples: `{…}` in backticks, and `-d '{…}'` in a curl line.
            let spans = line.split('`').skip(1).step_by(2).chain(
                line.split("-d '")
                    .skip(1)
                    .filter_map(|r| r.split('\'').next()),
            );
            for span in spans {
                let span = span.trim();
                if !span.starts_with('{') && !span.starts_with("[{") {
                    continue;
                }
                let v = match serde_json::from_str::<Value>(span) {
                    Ok(v) => v,
                    // A schematic shape says so with an ellipsis (`{"code": …}`); anything else
                    // that does not parse is a broken example.
                    Err(_) if span.contains('…') || span.contains("...") => continue,
                    Err(e) => {
                        problems.push(format!(
                            "docs/http-api.md:{}: {span}: not JSON ({e}); mark a schematic \
                             shape with …",
                            i + 1
                        ));
                        continue;
                    }
                };
                let items = match v {
                    Value::Array(items) => items,
                    one => vec![one],
                };
                for item in items {
                    match check(&item) {
                        Ok(kind) => checked.push(kind),
                        Err(e) => problems.push(format!("docs/http-api.md:{}: {span}: {e}", i + 1)),
                    }
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert!(
            checked.len() >= 12,
            "only {} examples found: {checked:?}",
            checked.len()
        );
    }
}
