//! Notifications: what waits in the outbox and how its delivery stands (the hub's own sender,
//! `[notify]`): failing ones first, with the reason, a link to fix the resident's contact, and
//! "try again now". Never a code.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use locker_app::notify::{DeliveryState, Waiting};

use super::{back, error_page};
use crate::auth::{FormPost, Page, Staff};
use crate::html::{self, escape};
use crate::Web;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/notifications", get(page))
        .route("/notifications/{id}/retry", post(retry))
}

/// How a notification's delivery stands, for a person.
pub fn state(w: &Waiting) -> String {
    let d = &w.delivery;
    match d.state {
        DeliveryState::Queued if d.attempts == 0 => "waiting to be sent".to_owned(),
        DeliveryState::Queued => "to be sent again".to_owned(),
        DeliveryState::Retrying => format!(
            "not sent yet ({} tries): {}",
            d.attempts,
            d.last_error.as_deref().unwrap_or("no reason given")
        ),
        DeliveryState::Failed => format!(
            "failed: {}",
            d.last_error.as_deref().unwrap_or("no reason given")
        ),
    }
}

async fn page(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Staff>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut waiting = match web.app.notifications(&p.actor()).await {
        Ok(w) => w,
        Err(e) => return error_page("/", &e),
    };
    // Failed first, then those being retried, then the rest, each oldest first.
    waiting.sort_by_key(|w| match w.delivery.state {
        DeliveryState::Failed => 0,
        DeliveryState::Retrying => 1,
        DeliveryState::Queued => 2,
    });
    let csrf = html::csrf(&p);
    let rows: String = waiting
        .iter()
        .map(|w| {
            let resident = w.resident.as_ref().map(|r| r.as_str()).unwrap_or("—");
            let parcels: String = w
                .parcels
                .iter()
                .map(|id| {
                    format!(
                        "<a href=\"/parcels/{}\">{}</a> ",
                        html::url(id.as_str()),
                        escape(id.as_str())
                    )
                })
                .collect();
            let failing = w.delivery.state != DeliveryState::Queued;
            // A carrier's new code: whom it is for links to the carriers, where its address is.
            let (who, contact) = match &w.carrier {
                Some(c) => (
                    format!("<a href=/carriers>carrier {}</a>", escape(c.as_str())),
                    "/carriers".to_owned(),
                ),
                None => (
                    format!("<a href=\"/residents?q={}\">{}</a>", html::url(resident), escape(resident)),
                    format!("/residents?q={}", html::url(resident)),
                ),
            };
            format!(
                "<tr{cls}><td>{who}</td><td>{k}</td><td>{parcels}</td><td>{s}</td><td>{next}</td>\
                 <td><form method=post action=\"/notifications/{id}/retry\" class=inline>{csrf}<button>Try again now</button></form>{fix}</td></tr>",
                cls = if failing { " class=failing" } else { "" },
                k = match (w.kind, &w.carrier) {
                    (Some(k), _) => format!("{k:?}"),
                    (None, Some(_)) => "CarrierCode".into(),
                    (None, None) => "unreadable".into(),
                },
                s = escape(&state(w)),
                next = if w.delivery.state == DeliveryState::Retrying {
                    web.time(locker_core::Millis(w.delivery.next_at_ms))
                } else {
                    String::new()
                },
                id = html::url(&w.id),
                fix = if failing {
                    format!(" <a href=\"{contact}\">Fix the contact</a>")
                } else {
                    String::new()
                },
            )
        })
        .collect();
    let failing = waiting
        .iter()
        .filter(|w| w.delivery.state != DeliveryState::Queued)
        .count();
    let body = format!(
        "<p>{n} waiting, {failing} not going out.</p>\
         <table><tr><th>Resident</th><th>Message</th><th>Parcels</th><th>State</th><th>Next try</th><th></th></tr>{rows}</table>{empty}",
        n = waiting.len(),
        empty = if waiting.is_empty() {
            "<p class=note>Nothing waits: every notification went out.</p>"
        } else {
            ""
        }
    );
    Html(html::page(&p, "/notifications", "Notifications", &q, &body)).into_response()
}

async fn retry(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    post: FormPost<Staff>,
) -> Response {
    let answer = web
        .app
        .retry_notification(&post.who.actor(), &id)
        .await
        .map(|()| "It goes out again at once".to_owned())
        .map_err(|e| e.to_string());
    back("/notifications", answer)
}
