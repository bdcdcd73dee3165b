//! The audit log: every fact, newest first, filtered by date, actor, bank and parcel, as a page
//! or as CSV. Staff actions carry the signed-in user's name as their actor.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use locker_core::{Actor, Fact};

use crate::engine::{FactFilter, Job};
use crate::web::auth::{self, Need};
use crate::web::html::{self, escape};
use crate::web::{ask, Web};

/// At most this many rows per export (newest first).
const LIMIT: usize = 5000;
/// At most this many rows on the page: 5000 rows made a page of over 1 MB, five times the page
/// budget, and slow on a tablet. Older rows are one filter or the CSV away.
const PAGE_ROWS: usize = 200;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/audit", get(page))
        .route("/audit.csv", get(csv))
}

pub fn actor(a: &Actor) -> String {
    match a {
        Actor::Carrier { id } => format!("carrier {id}"),
        Actor::Resident { id } => format!("resident {id}"),
        Actor::Staff { id } => format!("staff {id}"),
        Actor::Cloud => "cloud".into(),
        Actor::Controller => "controller".into(),
        Actor::System => "hub".into(),
    }
}

/// The fact's kind and its details, e.g. `door_opened {"unlock":"…"}`.
pub fn what(f: &Fact) -> String {
    match serde_json::to_value(&f.kind) {
        Ok(serde_json::Value::Object(mut m)) => {
            let kind = m
                .remove("type")
                .and_then(|t| t.as_str().map(str::to_owned))
                .unwrap_or_default();
            if m.is_empty() {
                kind
            } else {
                format!("{kind} {}", serde_json::Value::Object(m))
            }
        }
        Ok(other) => other.to_string(),
        Err(e) => format!("(unprintable: {e})"),
    }
}

/// Build the filter from the query; a bad date is an error that names the field.
pub fn filter(q: &HashMap<String, String>) -> Result<FactFilter, String> {
    let get = |k: &str| {
        q.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let from = get("from")
        .map(|d| html::parse_date(&d).map_err(|e| format!("from: {e}")))
        .transpose()?;
    let to = get("to")
        .map(|d| html::parse_date(&d).map_err(|e| format!("to: {e}")))
        .transpose()?;
    let who = get("actor").map(|a| a.to_lowercase());
    let bank = get("bank");
    let parcel = get("parcel");
    Ok(Box::new(move |f: &Fact| {
        from.is_none_or(|t| f.at >= t)
            && to.is_none_or(|t| f.at.0 < t.0 + 86_400_000)
            && who
                .as_ref()
                .is_none_or(|w| actor(&f.actor).to_lowercase().contains(w))
            && bank
                .as_ref()
                .is_none_or(|b| f.bank.as_deref() == Some(b.as_str()))
            && parcel
                .as_ref()
                .is_none_or(|p| f.parcel.as_ref().is_some_and(|x| x.as_str() == p))
    }))
}

pub async fn facts(
    web: &Web,
    q: &HashMap<String, String>,
) -> Result<Vec<Fact>, (StatusCode, String)> {
    let keep = filter(q).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    ask::job(&web.jobs, |reply| Job::Facts {
        keep,
        limit: LIMIT,
        reply,
    })
    .await
    .map_err(|e| (e.status, e.message))
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
    let (rows, err, status) = match facts(&web, &q).await {
        Ok(list) => (
            list.iter()
                .take(PAGE_ROWS)
                .map(|f| {
                    format!(
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        html::time(f.at),
                        escape(&actor(&f.actor)),
                        escape(f.bank.as_deref().unwrap_or("")),
                        f.door.map(|d| d.to_string()).unwrap_or_default(),
                        escape(f.parcel.as_ref().map(|p| p.as_str()).unwrap_or("")),
                        escape(&what(f)),
                    )
                })
                .collect::<String>(),
            if list.len() > PAGE_ROWS {
                format!(
                    "<p class=note>Showing the newest {PAGE_ROWS} of {}{} entries: narrow the filter, or download the CSV.</p>",
                    if list.len() >= LIMIT { "at least " } else { "" },
                    list.len()
                )
            } else {
                String::new()
            },
            StatusCode::OK,
        ),
        Err((s, e)) => (String::new(), format!("<p class=err role=alert>{}</p>", escape(&e)), if s == StatusCode::BAD_REQUEST { s } else { StatusCode::OK }),
    };
    let v = |k: &str| escape(q.get(k).map(String::as_str).unwrap_or(""));
    let qs: String = ["from", "to", "actor", "bank", "parcel"]
        .iter()
        .filter_map(|k| q.get(*k).map(|v| format!("{k}={}&", html::url(v))))
        .collect();
    let body = format!(
        "<form method=get class=inline><label>from <input type=date name=from value=\"{}\"></label>\
         <label>to <input type=date name=to value=\"{}\"></label><input name=actor placeholder=actor value=\"{}\">\
         <input name=bank placeholder=bank value=\"{}\"><input name=parcel placeholder=parcel value=\"{}\"><button>Filter</button>\
         <a href=\"/audit.csv?{qs}\">CSV</a></form>{err}\
         <table class=audit><tr><th>When</th><th>Who</th><th>Bank</th><th>Door</th><th>Parcel</th><th>What</th></tr>{rows}</table>",
        v("from"), v("to"), v("actor"), v("bank"), v("parcel"),
    );
    (
        status,
        Html(html::page(&p, "/audit", "Audit log", &q, &body)),
    )
        .into_response()
}

/// A CSV field: quoted when it has a comma, quote or line break; a leading `=`, `+`, `-` or `@`
/// is prefixed with `'` so a spreadsheet does not run it as a formula.
fn cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

async fn csv(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = auth::api(&web, &headers, Need::Staff, false) {
        return r;
    }
    match facts(&web, &q).await {
        Ok(list) => {
            let mut out = String::from("id,at_utc,at_ms,actor,bank,door,parcel,what\r\n");
            for f in &list {
                out += &[
                    cell(&f.id.to_string()),
                    cell(&html::time(f.at)),
                    f.at.0.to_string(),
                    cell(&actor(&f.actor)),
                    cell(f.bank.as_deref().unwrap_or("")),
                    f.door.map(|d| d.to_string()).unwrap_or_default(),
                    cell(f.parcel.as_ref().map(|p| p.as_str()).unwrap_or("")),
                    cell(&what(f)),
                ]
                .join(",");
                out += "\r\n";
            }
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"audit.csv\"",
                    ),
                ],
                out,
            )
                .into_response()
        }
        Err((s, e)) => auth::json_error(s, e),
    }
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=cmd()"), "'=cmd()");
    }
}
