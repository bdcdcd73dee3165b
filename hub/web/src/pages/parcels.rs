//! Parcels: search by resident, carrier, tracking number, date and status; one parcel's
//! timeline from its facts; reassign, extend the hold, resend the code, desk check-in and desk
//! pickup.
//! (Marking a parcel returned is "remove parcels" on its compartment's page.)

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use locker_core::{
    CarrierId, HoldTarget, Location, Operator, ParcelId, ParcelView, Request, ResidentId,
};

use locker_app::engine::FactQuery;

use super::{bad_form, by, error_page, field, optional, run};
use crate::auth::{FormPost, Page, Staff};
use crate::html::{self, escape};
use crate::Web;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/parcels", get(list))
        .route("/parcels/check-in", post(check_in))
        .route("/parcels/{id}", get(one))
        .route("/parcels/{id}/reassign", post(reassign))
        .route("/parcels/{id}/hold", post(hold))
        .route("/parcels/{id}/desk-pickup", post(desk_pickup))
        .route("/parcels/{id}/resend-code", post(resend_code))
}

pub fn location(l: &Location) -> String {
    match l {
        Location::Compartment { bank, door } => format!("in {bank} door {door}"),
        Location::Desk => "at the desk".into(),
        Location::PickedUp => "picked up".into(),
        Location::Returned => "returned".into(),
        Location::Missing => "missing".into(),
        Location::Disputed { bank, door } => format!("disputed in {bank} door {door}"),
    }
}

fn status_key(p: &ParcelView) -> &'static str {
    match &p.location {
        Location::Compartment { .. } if p.expired => "overdue",
        Location::Compartment { .. } => "in_locker",
        Location::Desk => "desk",
        Location::PickedUp => "picked_up",
        Location::Returned => "returned",
        Location::Missing => "missing",
        Location::Disputed { .. } => "disputed",
    }
}

/// Does the parcel match the search form? Every given criterion must hold.
pub fn matches(web: &Web, p: &ParcelView, q: &HashMap<String, String>) -> Result<bool, String> {
    let has = |v: Option<&String>, s: &str| {
        v.is_none_or(|v| v.is_empty() || s.to_lowercase().contains(&v.to_lowercase()))
    };
    let resident = p.resident.as_ref().map(|r| r.as_str()).unwrap_or("");
    let carrier = p.carrier.as_ref().map(|c| c.as_str()).unwrap_or("");
    let tracking = p.tracking.as_deref().unwrap_or("");
    let mut ok = has(q.get("resident"), resident)
        && has(q.get("carrier"), carrier)
        && has(q.get("tracking"), tracking)
        && q.get("status")
            .is_none_or(|s| s.is_empty() || s == status_key(p));
    if let Some(from) = q.get("from").filter(|s| !s.is_empty()) {
        ok &= p.delivered_at >= web.parse_date(from)?;
    }
    if let Some(to) = q.get("to").filter(|s| !s.is_empty()) {
        ok &= p.delivered_at.0 < web.parse_date_end(to)?.0;
    }
    Ok(ok)
}

async fn list(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Staff>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut parcels = match web.app.parcels(&p.actor()).await {
        Ok(list) => list,
        Err(e) => return error_page("/", &e),
    };
    let mut error = String::new();
    parcels.retain(|x| match matches(&web, x, &q) {
        Ok(m) => m,
        Err(e) => {
            error = e;
            false
        }
    });
    parcels.sort_by_key(|p| std::cmp::Reverse(p.delivered_at));
    let v = |k: &str| escape(q.get(k).map(String::as_str).unwrap_or(""));
    let statuses = [
        "",
        "in_locker",
        "overdue",
        "desk",
        "picked_up",
        "returned",
        "missing",
        "disputed",
    ];
    let options: String = statuses
        .iter()
        .map(|s| {
            let sel = if q.get("status").map(String::as_str).unwrap_or("") == *s {
                " selected"
            } else {
                ""
            };
            format!(
                "<option value=\"{s}\"{sel}>{}</option>",
                if s.is_empty() { "any status" } else { s }
            )
        })
        .collect();
    let rows: String = parcels
        .iter()
        .take(500)
        .map(|x| {
            format!(
                "<tr data-parcel=\"{id}\"><td><a href=\"/parcels/{u}\">{id}</a></td><td>{r}</td><td>{c}</td><td>{t}</td><td>{d}</td><td>{l}</td></tr>",
                id = escape(x.id.as_str()),
                u = html::url(x.id.as_str()),
                r = escape(x.resident.as_ref().map(|r| r.as_str()).unwrap_or("—")),
                c = escape(x.carrier.as_ref().map(|c| c.as_str()).unwrap_or("—")),
                t = escape(x.tracking.as_deref().unwrap_or("—")),
                d = web.time(x.delivered_at),
                l = escape(&location(&x.location)),
            )
        })
        .collect();
    let err = if error.is_empty() {
        String::new()
    } else {
        format!("<p class=err role=alert>{}</p>", escape(&error))
    };
    let csrf = html::csrf(&p);
    let body = format!(
        "<form method=get class=inline><input name=resident placeholder=resident value=\"{}\">\
         <input name=carrier placeholder=carrier value=\"{}\"><input name=tracking placeholder=\"tracking number\" value=\"{}\">\
         <label>from <input type=date name=from value=\"{}\"></label><label>to <input type=date name=to value=\"{}\"></label>\
         <select name=status>{options}</select><button>Search</button></form>{err}\
         <table><tr><th>Parcel</th><th>Resident</th><th>Carrier</th><th>Tracking</th><th>Delivered</th><th>Where</th></tr>{rows}</table>\
         <h2>Desk check-in</h2><p class=note>A parcel that did not go into a locker.</p>\
         <form method=post action=/parcels/check-in class=inline>{csrf}<label>Resident <input name=resident required></label>\
         <label>Tracking <input name=tracking></label><label>Carrier <input name=carrier></label><button>Check in</button></form>",
        v("resident"), v("carrier"), v("tracking"), v("from"), v("to"),
    );
    Html(html::page(&p, "/parcels", "Parcels", &q, &body)).into_response()
}

async fn one(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Staff>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let who = p.actor();
    let all = match web.app.parcels(&who).await {
        Ok(list) => list,
        Err(e) => return error_page("/parcels", &e),
    };
    let Some(x) = all.into_iter().find(|x| x.id.as_str() == id) else {
        return (
            StatusCode::NOT_FOUND,
            Html(html::bare(
                "No such parcel",
                &format!(
                    "<p>No parcel {}.</p><p><a href=/parcels>Parcels</a></p>",
                    escape(&id)
                ),
            )),
        )
            .into_response();
    };
    let about = FactQuery {
        about_parcel: Some(id.clone()),
        ..FactQuery::default()
    };
    let facts = match web.app.facts(&who, about, 200).await {
        Ok(f) => f,
        Err(e) => return error_page("/parcels", &e),
    };
    let timeline: String = facts
        .iter()
        .rev()
        .map(|f| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                web.time(f.at),
                escape(&super::audit::actor(&f.actor)),
                escape(&super::audit::what(f))
            )
        })
        .collect();
    // Its notifications still in the outbox, and how they stand (never their codes).
    let notices: String = web
        .app
        .notifications(&who)
        .await
        .unwrap_or_default()
        .iter()
        .filter(|w| w.parcels.iter().any(|p| p.as_str() == id))
        .map(|w| {
            format!(
                "<li>{:?}: {}</li>",
                w.kind.unwrap_or(locker_core::NotifyKind::Delivered),
                escape(&super::notifications::state(w))
            )
        })
        .collect();
    let notices = if notices.is_empty() {
        "<p class=note>Every notification about it went out (or none is due).</p>".to_owned()
    } else {
        format!("<ul>{notices}</ul><p><a href=/notifications>All notifications</a></p>")
    };
    let csrf = html::csrf(&p);
    let u = html::url(&id);
    let body = format!(
        "<table><tr><th>Resident</th><td>{r}</td></tr><tr><th>Carrier</th><td>{c}</td></tr><tr><th>Tracking</th><td>{t}</td></tr>\
         <tr><th>Where</th><td>{l}</td></tr><tr><th>Delivered</th><td>{d}</td></tr><tr><th>Hold until</th><td>{h}</td></tr></table>\
         <h2>Notifications</h2>{notices}\
         <h2>Timeline</h2><table class=timeline><tr><th>When</th><th>Who</th><th>What</th></tr>{timeline}</table>\
         <h2>Actions</h2>\
         <form method=post action=\"/parcels/{u}/reassign\" class=inline>{csrf}<label>Reassign to resident <input name=to required></label><button>Reassign</button></form>\
         <form method=post action=\"/parcels/{u}/hold\" class=inline>{csrf}<label>Hold until <input type=date name=until required></label><button>Extend hold</button></form>\
         <form method=post action=\"/parcels/{u}/desk-pickup\" class=inline>{csrf}<button>Picked up at the desk</button></form>\
         <form method=post action=\"/parcels/{u}/resend-code\" class=inline>{csrf}<button>Resend the code to the resident</button></form>",
        r = escape(x.resident.as_ref().map(|r| r.as_str()).unwrap_or("—")),
        c = escape(x.carrier.as_ref().map(|c| c.as_str()).unwrap_or("—")),
        t = escape(x.tracking.as_deref().unwrap_or("—")),
        l = escape(&location(&x.location)),
        d = web.time(x.delivered_at),
        h = x.hold_until.or(x.expires_at).map(|t| web.time(t)).unwrap_or_else(|| "—".into()),
    );
    Html(html::page(
        &p,
        "/parcels",
        &format!("Parcel {id}"),
        &q,
        &body,
    ))
    .into_response()
}

async fn check_in(State(web): State<Arc<Web>>, post: FormPost<Staff>) -> Response {
    let (p, f) = (post.who, post.fields);
    let resident = match field(&f, "resident") {
        Ok(r) => ResidentId(r.to_owned()),
        Err(e) => return bad_form("/parcels", e),
    };
    let request = Request::DeskCheckIn {
        by: by(&p),
        resident,
        tracking: optional(&f, "tracking").map(str::to_owned),
        carrier: optional(&f, "carrier").map(|c| CarrierId(c.to_owned())),
    };
    run(&web, &p, "/parcels", request, "Checked in at the desk").await
}

async fn reassign(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    post: FormPost<Staff>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    let to = format!("/parcels/{}", html::url(&id));
    let resident = match field(&f, "to") {
        Ok(r) => ResidentId(r.to_owned()),
        Err(e) => return bad_form(&to, e),
    };
    let request = Request::ReassignParcels {
        by: by(&p),
        parcels: vec![ParcelId(id)],
        to: resident,
    };
    run(&web, &p, &to, request, "Reassigned").await
}

async fn hold(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    post: FormPost<Staff>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    let to = format!("/parcels/{}", html::url(&id));
    let until = match field(&f, "until").and_then(|d| web.parse_date_end(d)) {
        // Held through the end of the chosen day.
        Ok(end) => locker_core::Millis(end.0 - 1),
        Err(e) => return bad_form(&to, e),
    };
    let request = Request::SetVacationHold {
        by: by(&p),
        target: HoldTarget::Parcel {
            parcel: ParcelId(id),
        },
        until,
    };
    run(&web, &p, &to, request, "Hold extended").await
}

/// A button on the parcel's page that needs nothing but the parcel: `make` builds the request
/// from the signed-in operator and the parcel.
async fn parcel_action(
    web: Arc<Web>,
    id: String,
    post: FormPost<Staff>,
    make: impl FnOnce(Operator, ParcelId) -> Request,
    done: &str,
) -> Response {
    let p = post.who;
    let to = format!("/parcels/{}", html::url(&id));
    let request = make(by(&p), ParcelId(id));
    run(&web, &p, &to, request, done).await
}

async fn resend_code(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    post: FormPost<Staff>,
) -> Response {
    let make = |by, parcel| Request::ResendCode { by, parcel };
    parcel_action(web, id, post, make, "Code sent again").await
}

async fn desk_pickup(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    post: FormPost<Staff>,
) -> Response {
    let make = |by, parcel| Request::DeskPickup {
        by,
        parcels: vec![parcel],
    };
    parcel_action(web, id, post, make, "Handed over at the desk").await
}
