//! The LAN web listener. For now: `GET /healthz` and a plain status page at `/`; the staff
//! pages come with the workflows.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};

use crate::status::{Health, HubStatus};

/// The routes of the web listener.
pub fn router(status: Arc<HubStatus>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .with_state(status)
}

/// Liveness and a short summary. Answers without a session: monitoring needs it.
async fn healthz(State(status): State<Arc<HubStatus>>) -> Json<Health> {
    Json(status.health())
}

/// A server-rendered status page: which banks are online and how many clients are connected.
async fn index(State(status): State<Arc<HubStatus>>) -> Html<String> {
    let h = status.health();
    let banks: String = h
        .banks
        .online_ids
        .iter()
        .map(|b| format!("<li>{} <strong>online</strong></li>", escape(b)))
        .chain(
            h.banks
                .offline_ids
                .iter()
                .map(|b| format!("<li>{} <strong>offline</strong></li>", escape(b))),
        )
        .collect();
    Html(format!(
        "<!doctype html><html lang=en><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width\"><title>locker-hub</title>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:2em auto\">\
         <h1>locker-hub {}</h1><p>Up {} s. MQTT clients connected: {}.</p>\
         <h2>Banks ({} of {} online)</h2><ul>{banks}</ul>\
         <p><a href=\"/healthz\">/healthz</a> (JSON)</p></body></html>",
        h.version, h.uptime_s, h.broker.clients_connected, h.banks.online, h.banks.configured
    ))
}

/// Bank ids come from the configuration, but escape them anyway: it costs nothing.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
