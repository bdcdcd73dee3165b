//! Alerts: the open ones (acknowledge), and the history from the facts (raised and cleared).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use locker_core::{AlertId, FactKind, Request, ALERT_NOTE_MAX};

use locker_app::engine::{actor_name, FactQuery};

use super::{by, error_page, optional, run};
use crate::auth::{FormPost, Page, Staff};
use crate::html::{self, escape};
use crate::Web;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/alerts", get(page))
        .route("/alerts/{id}/acknowledge", post(acknowledge))
}

async fn page(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Staff>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let who = p.actor();
    let open = match web.app.alerts(&who).await {
        Ok(open) => open,
        Err(e) => return error_page("/", &e),
    };
    let csrf = html::csrf(&p);
    let rows: String = open
        .iter()
        .map(|a| {
            format!(
                "<tr><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td><td><form method=post action=\"/alerts/{}/acknowledge\" class=inline>{csrf}\
                 <input name=note maxlength={ALERT_NOTE_MAX} placeholder=\"note (optional)\" aria-label=\"note\"><button>Acknowledge</button></form></td></tr>",
                web.time(a.raised_at),
                a.kind,
                escape(&match (&a.bank, a.door) { (Some(b), Some(d)) => format!("{b} door {d}"), (Some(b), None) => b.clone(), _ => String::new() }),
                escape(&a.message),
                html::url(a.id.as_str()),
            )
        })
        .collect();
    let alerts_only = FactQuery {
        alerts_only: true,
        ..FactQuery::default()
    };
    let history = match web.app.facts(&who, alerts_only, 200).await {
        Ok(h) => h,
        Err(e) => return error_page("/", &e),
    };
    let hist: String = history
        .iter()
        .map(|f| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                web.time(f.at),
                escape(&actor_name(&f.actor)),
                escape(&super::audit::what(f)),
                match &f.kind {
                    FactKind::AlertCleared { note: Some(n), .. } => escape(n),
                    _ => String::new(),
                }
            )
        })
        .collect();
    let body = format!(
        "<table><tr><th>Raised</th><th>Kind</th><th>Where</th><th>What</th><th></th></tr>{rows}</table>{}\
         <h2>History</h2><table><tr><th>When</th><th>Who</th><th>What</th><th>Note</th></tr>{hist}</table>",
        if open.is_empty() { "<p class=note>No open alerts.</p>" } else { "" }
    );
    Html(html::page(&p, "/alerts", "Alerts", &q, &body)).into_response()
}

async fn acknowledge(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    post: FormPost<Staff>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    // The core checks the note: too long or garbled is a 400 with its reason (`run`).
    let note = optional(&f, "note").map(str::to_owned);
    run(
        &web,
        &p,
        "/alerts",
        Request::AcknowledgeAlert {
            by: by(&p),
            alert: AlertId(id),
            note,
        },
        "Acknowledged",
    )
    .await
}
