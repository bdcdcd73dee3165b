//! The staff pages and the kiosk page, one file each, and what their form handlers share.

pub mod alerts;
pub mod analytics;
pub mod audit;
pub mod carriers;
pub mod compartment;
pub mod dashboard;
pub mod kiosk;
pub mod notifications;
pub mod parcels;
pub mod residents;
pub mod system;
pub mod units;
pub mod users;

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use locker_app::AppError;
use locker_core::{Outcome, RejectCode, Request};

use super::auth::Principal;
use super::html::url;
use super::Web;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .merge(dashboard::router())
        .merge(compartment::router())
        .merge(parcels::router())
        .merge(alerts::router())
        .merge(notifications::router())
        .merge(units::router())
        .merge(analytics::router())
        .merge(residents::router())
        .merge(carriers::router())
        .merge(audit::router())
        .merge(kiosk::router())
        .merge(users::router())
        .merge(system::router())
}

/// A required form field, trimmed; the error names the field.
pub fn field<'a>(fields: &'a HashMap<String, String>, name: &str) -> Result<&'a str, String> {
    match fields.get(name).map(|v| v.trim()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(format!("{name} is required")),
    }
}

/// An optional form field (absent or blank is `None`).
pub fn optional<'a>(fields: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// Back to `to` with a message: `ok` or `err` in the query, shown by the page frame.
pub fn back(to: &str, result: Result<String, String>) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    let (key, msg) = match result {
        Ok(m) => ("ok", m),
        Err(m) => ("err", m),
    };
    // A bad form gets a 4xx only when it never reached the core; see `run`.
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("{to}{sep}{key}={}", url(&msg)))],
    )
        .into_response()
}

/// A form that could not be understood: 400 with the message (and a link back).
pub fn bad_form(to: &str, message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        super::html::bare(
            "Check the form",
            &format!(
                "<p class=err role=alert>{}</p><p><a href=\"{}\">Back</a></p>",
                super::html::escape(&message),
                super::html::escape(to)
            ),
        ),
    )
        .into_response()
}

/// Run a staff action through the core under the signed-in user's name, then go back to `to`
/// saying what happened (the core's refusal, word for word, if it refused).
pub async fn run(web: &Web, p: &Principal, to: &str, request: Request, done: &str) -> Response {
    let answer = web.app.request(&p.actor(), "web", request).await;
    respond(to, answer, done, &[])
}

/// A page's answer to a core request's result: 400 with the reason when the core refused the
/// form's input (`invalid_input`, `already_exists`, or one of `input_codes`), otherwise back to
/// `to` saying what happened.
pub fn respond(
    to: &str,
    answer: Result<locker_core::Reply, AppError>,
    done: &str,
    input_codes: &[RejectCode],
) -> Response {
    match answer {
        Err(AppError::Rejected(r))
            if matches!(r.code, RejectCode::InvalidInput | RejectCode::AlreadyExists)
                || input_codes.contains(&r.code) =>
        {
            bad_form(to, r.message)
        }
        Ok(reply) => back(to, Ok(format!("{done}{}", describe(&reply.outcome)))),
        Err(e) => back(to, Err(e.to_string())),
    }
}

/// What an accepted outcome means for a person, after "Done": the doors opening, the parcel.
pub fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Opening { bank, doors, .. } => format!(
            " (opening bank {bank} door{} {})",
            if doors.len() == 1 { "" } else { "s" },
            doors
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Outcome::CheckedIn { parcel } => format!(" (parcel {parcel})"),
        _ => String::new(),
    }
}

/// An application error as a page: the status of the one mapping, the message, a link back.
pub fn error_page(to: &str, e: &AppError) -> Response {
    (
        crate::error::status(e),
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        super::html::bare(
            "Not done",
            &format!(
                "<p class=err role=alert>{}</p><p><a href=\"{}\">Back</a></p>",
                super::html::escape(&e.to_string()),
                super::html::escape(to)
            ),
        ),
    )
        .into_response()
}

/// Actions taken on the page are recorded under the signed-in user.
pub fn by(p: &Principal) -> locker_core::Operator {
    p.actor().operator()
}
