//! System: version, uptime, MQTT clients, banks and their drivers' health, storage size, sync.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::web::auth::{self, Need};
use crate::web::html::{self, escape};
use crate::web::Web;

pub fn router() -> Router<Arc<Web>> {
    Router::new().route("/system", get(page))
}

/// Bytes used by the data directory (the redb file and the token), walked one level deep.
pub fn storage_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
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
    let h = web.status.health();
    let banks: String = h
        .banks
        .online_ids
        .iter()
        .map(|b| (b, "online"))
        .chain(h.banks.offline_ids.iter().map(|b| (b, "offline")))
        .map(|(b, s)| format!("<tr><td>{}</td><td class={s}>{s}</td></tr>", escape(b)))
        .collect();
    let body = format!(
        "<table><tr><th>Version</th><td>{}</td></tr><tr><th>Up</th><td>{} s</td></tr>\
         <tr><th>MQTT clients</th><td>{}</td></tr><tr><th>Storage</th><td>{:.1} MiB in {}</td></tr>\
         <tr><th>Sync peers</th><td>none configured</td></tr></table>\
         <h2>Banks and drivers</h2><table><tr><th>Bank</th><th>Controller / driver</th></tr>{banks}</table>",
        h.version,
        h.uptime_s,
        h.broker.clients_connected,
        storage_bytes(&web.data_dir) as f64 / 1_048_576.0,
        escape(&web.data_dir.display().to_string()),
    );
    Html(html::page(&p, "/system", "System", &q, &body)).into_response()
}
