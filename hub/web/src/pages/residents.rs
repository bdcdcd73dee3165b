//! Residents: list and search, add, edit (unit, contact, accessible reach) and deactivate (moved
//! out).
//! Every change is a core request recorded under the signed-in user's name, through the same
//! service as the JSON API (`/api/v1/residents`); the core checks it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use locker_core::{RegisterMode, RejectCode, Request, ResidentId, ResidentView};

use super::{bad_form, by, error_page, field, respond, run};
use crate::auth::{FormPost, Page, Staff};
use crate::html::{self, escape};
use crate::Web;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/residents", get(page).post(add))
        .route("/residents/{id}", post(edit))
        .route("/residents/{id}/deactivate", post(deactivate))
}

/// Does a resident match the search text (id or unit, any case)?
fn matches(r: &ResidentView, q: &str) -> bool {
    let q = q.to_lowercase();
    r.resident.as_str().to_lowercase().contains(&q) || r.unit.to_lowercase().contains(&q)
}

/// Residents listed per page.
const PAGE_ROWS: usize = 150;

async fn page(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Staff>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let all = match web.app.residents(&p.actor()).await {
        Ok(l) => l,
        Err(e) => return error_page("/", &e),
    };
    let search = q.get("q").map(|s| s.trim()).unwrap_or("");
    let show_all = q.get("all").is_some_and(|v| v == "yes");
    let csrf = html::csrf(&p);
    let shown: Vec<&ResidentView> = all
        .iter()
        .filter(|r| (show_all || r.active) && matches(r, search))
        .collect();
    // A page of rows: each carries its own edit form, so a big building's full list would be
    // far over the 200 KB page budget on a cheap tablet.
    let pages = shown.len().div_ceil(PAGE_ROWS).max(1);
    let page_no = q
        .get("page")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let rows: String = shown
        .iter()
        .skip((page_no - 1) * PAGE_ROWS)
        .take(PAGE_ROWS)
        .map(|r| {
            let u = html::url(r.resident.as_str());
            let deactivate = if r.active {
                format!(
                    "<form method=post action=\"/residents/{u}/deactivate\" class=inline data-confirm=\"Deactivate {id}? They get no new parcels.\">{csrf}<button class=danger>Deactivate</button></form>",
                    id = escape(r.resident.as_str())
                )
            } else {
                String::new()
            };
            format!(
                "<tr data-resident=\"{id}\"><td>{id}</td><td>{state}</td><td>{hold}</td><td>{badges}</td><td>\
                 <form method=post action=\"/residents/{u}\" class=inline>{csrf}\
                 <label>Unit <input name=unit value=\"{unit}\" required maxlength=32 size=6></label>\
                 <label>Email <input name=email type=email value=\"{email}\" maxlength=254 size=18></label>\
                 <label>Phone <input name=phone type=tel value=\"{phone}\" maxlength=16 size=12></label>\
                 <label>Language <select name=language><option value=en{en}>English<option value=es{es}>Español</select></label>\
                 <label><input type=checkbox name=accessible value=yes{acc}> accessible reach</label>\
                 <button>{save}</button></form>{deactivate}</td></tr>",
                id = escape(r.resident.as_str()),
                state = if r.active { "active" } else { "deactivated" },
                hold = r.hold_until.map(|t| web.time(t)).unwrap_or_else(|| "—".into()),
                badges = r.badges,
                unit = escape(&r.unit),
                email = escape(r.email.as_deref().unwrap_or("")),
                phone = escape(r.phone.as_deref().unwrap_or("")),
                en = if r.language.as_deref() == Some("es") { "" } else { " selected" },
                es = if r.language.as_deref() == Some("es") { " selected" } else { "" },
                acc = if r.accessible { " checked" } else { "" },
                save = if r.active { "Save" } else { "Save and reactivate" },
            )
        })
        .collect();
    let more = if pages > 1 {
        let link = |n: usize, label: &str| {
            format!(
                "<a href=\"/residents?q={}{}&page={n}\">{label}</a>",
                html::url(search),
                if show_all { "&all=yes" } else { "" }
            )
        };
        format!(
            "<p class=note>Page {page_no} of {pages}. {} {}</p>",
            if page_no > 1 {
                link(page_no - 1, "← previous")
            } else {
                String::new()
            },
            if page_no < pages {
                link(page_no + 1, "next →")
            } else {
                String::new()
            },
        )
    } else {
        String::new()
    };
    let body = format!(
        "<form method=get class=inline><input name=q placeholder=\"resident or unit\" value=\"{s}\">\
         <label><input type=checkbox name=all value=yes{all}> include deactivated</label><button>Search</button></form>\
         <p class=note>{n} of {total} residents.</p>\
         <table><tr><th>Resident</th><th>State</th><th>Vacation hold until</th><th>Badges</th><th>Change</th></tr>{rows}</table>{more}\
         <h2>Add a resident</h2><form method=post action=/residents class=inline>{csrf}\
         <label>Resident id <input name=resident required maxlength=64></label>\
         <label>Unit <input name=unit required maxlength=32></label>\
         <label>Email <input name=email type=email maxlength=254></label>\
         <label>Phone <input name=phone type=tel maxlength=16 placeholder=+15551234567></label>\
         <label>Language <select name=language><option value=en>English<option value=es>Español</select></label>\
         <label><input type=checkbox name=accessible value=yes> accessible reach</label><button>Add</button></form>\
         <script src=/assets/app.js defer></script>",
        s = escape(search),
        all = if show_all { " checked" } else { "" },
        n = shown.len(),
        total = all.len(),
    );
    Html(html::page(&p, "/residents", "Residents", &q, &body)).into_response()
}

async fn add(State(web): State<Arc<Web>>, post: FormPost<Staff>) -> Response {
    let (p, f) = (post.who, post.fields);
    let (id, unit) = match (field(&f, "resident"), field(&f, "unit")) {
        (Ok(i), Ok(u)) => (i, u),
        (Err(e), _) | (_, Err(e)) => return bad_form("/residents", e),
    };
    let accessible = f.get("accessible").is_some_and(|v| v == "yes");
    let contact = contact_fields(&f, false);
    let answer = web
        .app
        .register_resident(&p.actor(), id, unit, accessible, RegisterMode::Add, contact)
        .await;
    respond("/residents", answer, &format!("Added {id}"), &[])
}

/// The contact a form gives. A field not in the form is left as it is; an empty one is not set
/// (`clear_empty: false`, adding) or cleared (`true`, editing a resident's row).
fn contact_fields(
    f: &std::collections::HashMap<String, String>,
    clear_empty: bool,
) -> locker_core::Contact {
    let given = |name: &str| {
        f.get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| clear_empty || !v.is_empty())
    };
    locker_core::Contact {
        email: given("email"),
        phone: given("phone"),
        language: given("language"),
    }
}

async fn edit(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    post: FormPost<Staff>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    let unit = match field(&f, "unit") {
        Ok(u) => u,
        Err(e) => return bad_form("/residents", e),
    };
    let accessible = f.get("accessible").is_some_and(|v| v == "yes");
    let answer = web
        .app
        .register_resident(
            &p.actor(),
            &id,
            unit,
            accessible,
            RegisterMode::Update,
            contact_fields(&f, true),
        )
        .await;
    let saved = format!("Saved {id}");
    respond("/residents", answer, &saved, &[RejectCode::UnknownResident])
}

async fn deactivate(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    post: FormPost<Staff>,
) -> Response {
    let p = post.who;
    let request = Request::DeactivateResident {
        by: by(&p),
        resident: ResidentId(id.clone()),
    };
    run(
        &web,
        &p,
        "/residents",
        request,
        &format!("Deactivated {id}"),
    )
    .await
}
