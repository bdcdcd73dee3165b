//! Alerts: the open ones (acknowledge), and the history from the facts (raised and cleared).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use locker_core::{AlertId, FactKind, Request, ALERT_NOTE_MAX};

use super::{bad_form, by, optional, run};
use crate::engine::Job;
use crate::web::auth::{self, Need};
use crate::web::html::{self, escape};
use crate::web::{ask, Web};

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/alerts", get(page))
        .route("/alerts/{id}/acknowledge", post(acknowledge))
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
    let open = ask::job(&web.jobs, Job::Alerts).await.unwrap_or_default();
    let csrf = html::csrf(&p);
    let rows: String = open
        .iter()
        .map(|a| {
            format!(
                "<tr><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td><td><form method=post action=\"/alerts/{}/acknowledge\" class=inline>{csrf}\
                 <input name=note maxlength={ALERT_NOTE_MAX} placeholder=\"note (optional)\" aria-label=\"note\"><button>Acknowledge</button></form></td></tr>",
                html::time(a.raised_at),
                a.kind,
                escape(&match (&a.bank, a.door) { (Some(b), Some(d)) => format!("{b} door {d}"), (Some(b), None) => b.clone(), _ => String::new() }),
                escape(&a.message),
                html::url(a.id.as_str()),
            )
        })
        .collect();
    let keep: crate::engine::FactFilter = Box::new(|f| {
        matches!(
            f.kind,
            FactKind::AlertRaised { .. } | FactKind::AlertCleared { .. }
        )
    });
    let history = ask::job(&web.jobs, |reply| Job::Facts {
        keep,
        limit: 200,
        reply,
    })
    .await
    .unwrap_or_default();
    let hist: String = history
        .iter()
        .map(|f| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                html::time(f.at),
                escape(&super::audit::actor(&f.actor)),
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
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let p = match auth::form(&web, &headers, &f, Need::Staff) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let note = optional(&f, "note").map(str::to_owned);
    // The core has the last word; this only answers an oversized form with a 400, not a redirect.
    if let Some(n) = &note {
        if n.chars().count() > ALERT_NOTE_MAX {
            return bad_form(
                "/alerts",
                format!("the note is too long (at most {ALERT_NOTE_MAX} characters)"),
            );
        }
    }
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
