//! System: version, uptime, MQTT clients, banks and their drivers' health, storage size, sync.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use locker_core::Role;

use crate::auth::{Admin, FormPost, Page, Staff};
use crate::html::{self, escape};
use crate::Web;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/system", get(page))
        .route("/system/pair", post(pair))
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
    Page(p, ..): Page<Staff>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let h = web.health.health();
    let banks: String = h
        .banks
        .online_ids
        .iter()
        .map(|b| (b, "online"))
        .chain(h.banks.offline_ids.iter().map(|b| (b, "offline")))
        .map(|(b, s)| format!("<tr><td>{}</td><td class={s}>{s}</td></tr>", escape(b)))
        .collect();
    let adapters: String = h
        .drivers
        .banks
        .iter()
        .map(|a| {
            let state = match a.online {
                Some(true) if a.silent_boards.is_empty() => "online".to_owned(),
                Some(true) => format!(
                    "online; silent boards: {}",
                    a.silent_boards
                        .iter()
                        .map(u8::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(false) => "every board silent".to_owned(),
                None => "starting".to_owned(),
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&a.bank),
                escape(&state),
                a.poll_cycles,
                a.last_cycle_ms
                    .map(|ms| format!("{ms:.1} ms"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let buses: String = h
        .drivers
        .buses
        .iter()
        .map(|b| {
            format!(
                "<tr><td>{}</td><td>{}</td><td class={}>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&b.bus),
                b.protocol,
                if b.port_open { "online" } else { "offline" },
                if b.port_open { "open" } else { "closed" },
                b.requests,
                b.timeouts,
                b.checksum_errors,
                b.exceptions,
                b.retries,
                b.reopens,
                escape(
                    &b.last_error
                        .as_ref()
                        .map(|e| format!(
                            "{} ({})",
                            e.message,
                            web.time(locker_core::Millis(e.at_ms))
                        ))
                        .unwrap_or_default()
                ),
            )
        })
        .collect();
    let drivers = if buses.is_empty() {
        String::new()
    } else {
        format!(
            "<h2>Buses</h2><table><tr><th>Bus</th><th>Protocol</th><th>Port</th><th>Requests</th>\
             <th>Timeouts</th><th>Checksum errors</th><th>Exceptions</th><th>Retries</th>\
             <th>Reopens</th><th>Last error</th></tr>{buses}</table>\
             <h2>Bank adapters</h2><table><tr><th>Bank</th><th>Boards</th><th>Poll cycles</th>\
             <th>Last cycle</th></tr>{adapters}</table>"
        )
    };
    let sync = match &h.sync {
        None => "<p>Sync: not configured (the hub works on its own).</p>".to_owned(),
        Some(s) => {
            let peers: String = s
                .peers
                .iter()
                .map(|p| {
                    format!(
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                         <td>{} / {}</td><td>{}</td></tr>",
                        escape(&p.url),
                        escape(&p.kind),
                        escape(&p.state),
                        p.documents_pending,
                        p.last_sync_ms
                            .map(|ms| web.time(locker_core::Millis(ms)))
                            .unwrap_or_else(|| "never".into()),
                        p.bytes_in,
                        p.bytes_out,
                        escape(p.last_error.as_deref().unwrap_or("")),
                    )
                })
                .collect();
            let docs: String = s
                .documents
                .iter()
                .map(|d| {
                    format!(
                        "<tr><td>{}</td><td><code>{}</code></td></tr>",
                        escape(&d.name),
                        escape(&d.url)
                    )
                })
                .collect();
            format!(
                "<h2>Sync</h2><table><tr><th>Peer</th><th>Kind</th><th>State</th>\
                 <th>Documents pending</th><th>Last sync</th><th>Bytes in / out</th>\
                 <th>Last error</th></tr>{peers}</table>\
                 <h2>Synced documents</h2><table><tr><th>Document</th><th>URL</th></tr>{docs}</table>"
            )
        }
    };
    let pairing = match &web.pairing {
        Some(_) if p.role == Role::Admin => {
            let open = locker_app::pairing::open_until(&web.data_dir, locker_app::clock::now().0)
                .map(|until| {
                    format!(
                        " A code is open until {}; a new one replaces it.",
                        escape(&web.time(locker_core::Millis(until)))
                    )
                })
                .unwrap_or_default();
            format!(
                "<h2>Pair a second hub</h2><p>A second mail room's hub joins this site with a \
                 one-time code.{open}</p><form method=post action=/system/pair class=inline>{}\
                 <button>Show a pairing code</button></form>",
                html::csrf(&p)
            )
        }
        _ => String::new(),
    };
    let body = format!(
        "<table><tr><th>Version</th><td>{}</td></tr><tr><th>Up</th><td>{} s</td></tr>\
         <tr><th>MQTT clients</th><td>{}</td></tr><tr><th>Storage</th><td>{:.1} MiB in {}</td></tr>\
         </table>{sync}{pairing}\
         <h2>Banks and drivers</h2><table><tr><th>Bank</th><th>Controller / driver</th></tr>{banks}</table>{drivers}",
        h.version,
        h.uptime_s,
        h.broker.clients_connected,
        storage_bytes(&web.data_dir) as f64 / 1_048_576.0,
        escape(&web.data_dir.display().to_string()),
    );
    Html(html::page(&p, "/system", "System", &q, &body)).into_response()
}

/// Open a pairing and show its code, once (it is not kept: only its hash is).
async fn pair(State(web): State<Arc<Web>>, post: FormPost<Admin>) -> Response {
    let p = post.who;
    let Some(pairing) = &web.pairing else {
        return super::bad_form(
            "/system",
            "this hub does not accept a second hub: set `[sync] listen` (without \
             `allow_plaintext`) and restart it"
                .to_owned(),
        );
    };
    let opened = match web.app.open_pairing(&p.actor(), &web.data_dir) {
        Ok(o) => o,
        Err(e) => return super::error_page("/system", &e),
    };
    let command = format!(
        "locker-hub init --join {} --code {} --fingerprint {}",
        pairing.url, opened.code, pairing.fingerprint
    );
    let body = format!(
        "<p>Pairing code: <strong class=code id=pairing-code>{}</strong></p>\
         <p>Valid until {}, for one hub; {} wrong codes close it.</p>\
         <p>This hub's certificate: SHA-256 <code id=pairing-fingerprint>{}</code></p>\
         <p>On the second hub, before its first start (its <code>[site] id</code> must be this \
         site's), run:</p><pre id=pairing-command>{}</pre>\
         <p>then give it <code>hubs = [\"{}\"]</code> in <code>[sync]</code> and start it.</p>",
        escape(&opened.code),
        escape(&web.time(locker_core::Millis(opened.expires_ms))),
        locker_app::pairing::MAX_TRIES,
        escape(&pairing.fingerprint),
        escape(&command),
        escape(&pairing.url),
    );
    Html(html::page(
        &p,
        "/system",
        "Pair a second hub",
        &HashMap::new(),
        &body,
    ))
    .into_response()
}
