//! The dashboard: open alerts, then each bank as a grid of its compartments in their physical
//! columns, coloured by state, updated live over server-sent events (see `live.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use locker_core::{Alert, BankView, CompartmentStatus, CompartmentView, TempClass};

use crate::auth::{Api, Page, Staff};
use crate::html::{self, escape};
use crate::{BankInfo, Web};

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/", get(page))
        .route("/dashboard/live", get(fragment))
}

async fn page(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Staff>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let who = p.actor();
    let alerts = match web.app.alerts(&who).await {
        Ok(a) => a,
        Err(e) => return super::error_page("/", &e),
    };
    let body = format!(
        "<div data-live=/dashboard/live>{}</div>\
         <p class=legend>{}</p><script src=/assets/app.js defer></script>",
        render(&web, &who, &alerts),
        legend()
    );
    Html(html::page(&p, "/", &web.site_name, &q, &body)).into_response()
}

/// The live part of the dashboard, fetched again on every "changed" event.
async fn fragment(State(web): State<Arc<Web>>, Api(p, ..): Api<Staff>) -> Response {
    let who = p.actor();
    match web.app.alerts(&who).await {
        Ok(alerts) => Html(render(&web, &who, &alerts)).into_response(),
        Err(e) => super::error_page("/", &e),
    }
}

fn legend() -> String {
    [
        ("s-free", "free"),
        ("s-reserved", "reserved"),
        ("s-occupied", "occupied"),
        ("s-expired", "overdue"),
        ("door open", "door open"),
        ("s-out_of_service", "out of service"),
        ("s-disputed", "fault / disputed"),
        ("s-offline", "offline (bank or its board)"),
    ]
    .iter()
    .map(|(c, n)| format!("<span class=\"door {c}\" style=\"display:inline-block;width:auto;min-height:0\">{n}</span>"))
    .chain(std::iter::once(" ❄ refrigerated, ❄❄ frozen".to_owned()))
    .collect()
}

/// Alerts, sync status and every bank's grid. Public so the benchmark can time it.
pub fn render(web: &Web, who: &locker_app::Actor, alerts: &[Alert]) -> String {
    let snapshot = web.app.snapshot(who).unwrap_or_default();
    render_parts(
        web.app.zone(),
        &web.banks,
        &snapshot.compartments,
        &snapshot.banks,
        alerts,
        &sync_line(web),
    )
}

pub fn render_parts(
    zone: &jiff::tz::TimeZone,
    infos: &[BankInfo],
    compartments: &[CompartmentView],
    banks: &[BankView],
    alerts: &[Alert],
    sync_note: &str,
) -> String {
    let mut out = String::with_capacity(16 * 1024);
    if alerts.is_empty() {
        out += "<p class=note>No open alerts.</p>";
    } else {
        out += "<ul class=alerts>";
        for a in alerts {
            let place = match (&a.bank, a.door) {
                (Some(b), Some(d)) => format!("{} door {d}: ", escape(b)),
                (Some(b), None) => format!("{}: ", escape(b)),
                _ => String::new(),
            };
            out += &format!(
                "<li>{place}{} <a href=/alerts>acknowledge</a></li>",
                escape(&a.message)
            );
        }
        out += "</ul>";
    }
    out += sync_note;
    let online: HashMap<&str, &BankView> = banks.iter().map(|b| (b.bank.as_str(), b)).collect();
    out += "<div class=banks>";
    for info in infos {
        let view = online.get(info.id.as_str());
        let state = match view {
            Some(b) if b.online => "<span class=online>online</span>",
            _ => "<span class=offline>offline</span>",
        };
        let locked = view
            .and_then(|b| b.keypad_locked_until)
            .map(|t| format!(" · keypad locked until {}", html::time_in(t, zone)))
            .unwrap_or_default();
        out += &format!(
            "<section class=bank data-bank=\"{id}\"><h2>{name} <small>{state}{locked}</small></h2>",
            id = escape(&info.id),
            name = escape(&info.name),
        );
        // Columns left to right; within a column by row (or door number when rows are not set).
        let mut cols: BTreeMap<u16, Vec<(u16, &CompartmentView)>> = BTreeMap::new();
        for c in compartments.iter().filter(|c| c.bank == info.id) {
            let (col, row) = info.places.get(&c.door).copied().unwrap_or((0, 0));
            let key = if row == 0 { c.door } else { row };
            cols.entry(col).or_default().push((key, c));
        }
        out += "<div class=cols>";
        for doors in cols.values_mut() {
            doors.sort_by_key(|(k, c)| (*k, c.door));
            out += "<div class=col>";
            for (_, c) in doors.iter() {
                out += &door(c);
            }
            out += "</div>";
        }
        out += "</div></section>";
    }
    out += "</div>";
    out
}

fn status_name(s: CompartmentStatus) -> &'static str {
    match s {
        CompartmentStatus::Free => "free",
        CompartmentStatus::Reserved => "reserved",
        CompartmentStatus::Occupied => "occupied",
        CompartmentStatus::Expired => "expired",
        CompartmentStatus::Disputed => "disputed",
        CompartmentStatus::OutOfService => "out_of_service",
        CompartmentStatus::Offline => "offline",
    }
}

fn door(c: &CompartmentView) -> String {
    let status = status_name(c.status);
    let label = match c.status {
        CompartmentStatus::Expired => "overdue",
        CompartmentStatus::OutOfService => "out of service",
        other => status_name(other),
    };
    let open = if c.door_open { " open" } else { "" };
    let open_text = if c.door_open { " · open" } else { "" };
    // Cooled compartments are marked, so staff see at a glance where groceries belong.
    let cold = match c.temperature {
        TempClass::Ambient => "",
        TempClass::Refrigerated => " ❄",
        TempClass::Frozen => " ❄❄",
    };
    format!(
        "<a class=\"door s-{status}{open}\" data-door={d} data-status={status} href=\"/compartments/{b}/{d}\" \
         title=\"{size:?} {temp:?}\"><b>{d}{cold}</b>{label}{open_text}</a>",
        d = c.door,
        b = html::url(&c.bank),
        size = c.size,
        temp = c.temperature,
    )
}

/// One line on the links: none configured, or each peer's state.
fn sync_line(web: &Web) -> String {
    let Some(sync) = web.health.health().sync else {
        return "<p class=note>Sync: not configured (the hub works on its own).</p>".into();
    };
    let peers: Vec<String> = sync
        .peers
        .iter()
        .map(|p| {
            let state = match (p.state.as_str(), p.caught_up) {
                ("connected", true) => "up to date".to_owned(),
                ("connected", false) => format!("catching up ({} documents)", p.documents_pending),
                (other, _) => other.replace('_', " "),
            };
            format!("{} {}: {state}", escape(&p.kind), escape(&p.url))
        })
        .collect();
    format!(
        "<p class=note>Sync: {} (details on <a href=/system>System</a>).</p>",
        if peers.is_empty() {
            "starting".to_owned()
        } else {
            peers.join("; ")
        }
    )
}
