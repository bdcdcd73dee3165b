//! The audit log: every fact, newest first, filtered by date, actor, bank and parcel, as a page
//! or as CSV. Staff actions carry the signed-in user's name as their actor.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use locker_app::engine::FactQuery;
use locker_core::Fact;

use crate::auth::{Api, Page, Principal, Staff};
use crate::html::{self, escape};
use crate::Web;

/// At most this many rows per export (newest first).
pub const LIMIT: usize = 5000;
/// At most this many rows on the page: 5000 rows made a page of over 1 MB, five times the page
/// budget, and slow on a tablet. Older rows are one filter or the CSV away.
const PAGE_ROWS: usize = 200;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/audit", get(page))
        .route("/audit.csv", get(csv))
}

/// Who did it, for people.
pub use locker_app::engine::actor_name as actor;

/// The fact's kind and its details, e.g. `door_opened {"unlock":"…"}`.
pub fn what(f: &Fact) -> String {
    // A rent roll's registrations come a thousand to a fact: named by id, not in full.
    if let locker_core::FactKind::ResidentsRegistered { residents } = &f.kind {
        let ids: Vec<&str> = residents.iter().map(|r| r.resident.as_str()).collect();
        return format!(
            "residents_registered {} from the rent roll: {}",
            ids.len(),
            ids.join(", ")
        );
    }
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

/// The audit query from the page's or the API's parameters; a bad date is an error that names
/// the field. Dates are days on the site's wall clock; `to` includes its whole day.
pub fn query(web: &Web, q: &HashMap<String, String>) -> Result<FactQuery, String> {
    let get = |k: &str| {
        q.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let from = get("from")
        .map(|d| web.parse_date(&d).map_err(|e| format!("from: {e}")))
        .transpose()?;
    let until = get("to")
        .map(|d| web.parse_date_end(&d).map_err(|e| format!("to: {e}")))
        .transpose()?;
    Ok(FactQuery {
        from,
        until,
        actor: get("actor"),
        bank: get("bank"),
        parcel: get("parcel"),
        ..FactQuery::default()
    })
}

/// The facts the query asks for, or why not (`400` for a bad query).
async fn facts(
    web: &Web,
    who: &Principal,
    q: &HashMap<String, String>,
) -> Result<Vec<Fact>, (StatusCode, String)> {
    let query = query(web, q).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    web.app
        .facts(&who.actor(), query, LIMIT)
        .await
        .map_err(|e| (crate::error::status(&e), e.to_string()))
}

async fn page(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Staff>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (rows, err, status) = match facts(&web, &p, &q).await {
        Ok(list) => (
            list.iter()
                .take(PAGE_ROWS)
                .map(|f| {
                    format!(
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        web.time(f.at),
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
    Api(who, ..): Api<Staff>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match facts(&web, &who, &q).await {
        Ok(list) => {
            let mut out = String::from("id,at_utc,at_ms,actor,bank,door,parcel,what\r\n");
            for f in &list {
                out += &[
                    cell(&f.id.to_string()),
                    cell(&web.time(f.at)),
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
        Err((s, e)) => crate::error::json_error(s, e),
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
