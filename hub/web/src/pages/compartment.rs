//! One compartment: what it holds, and the staff actions on it (open with a reason, out of
//! service and back, remove parcels as returned or to the package room), plus "open all" for a
//! whole bank (admins only, confirmed).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use locker_core::{Disposition, Request};

use super::{bad_form, by, field, run};
use crate::auth::{Admin, FormPost, Page, Staff};
use crate::html::{self, escape};
use crate::Web;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/compartments/{bank}/{door}", get(page))
        .route("/compartments/{bank}/{door}/open", post(open))
        .route("/compartments/{bank}/{door}/service", post(service))
        .route("/compartments/{bank}/{door}/remove", post(remove))
        .route("/banks/{bank}/open-all", post(open_all))
}

fn here(bank: &str, door: u16) -> String {
    format!("/compartments/{}/{door}", html::url(bank))
}

async fn page(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Staff>,
    Path((bank, door)): Path<(String, u16)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let view = match web.app.snapshot(&p.actor()) {
        Ok(s) => s
            .compartments
            .into_iter()
            .find(|c| c.bank == bank && c.door == door),
        Err(e) => return super::error_page("/", &e),
    };
    let Some(c) = view else {
        return (
            StatusCode::NOT_FOUND,
            Html(html::bare(
                "No such compartment",
                &format!(
                    "<p>Bank {} has no door {door}.</p><p><a href=/>Dashboard</a></p>",
                    escape(&bank)
                ),
            )),
        )
            .into_response();
    };
    let csrf = html::csrf(&p);
    let parcels: String = c
        .parcels
        .iter()
        .map(|id| {
            format!(
                "<li><a href=\"/parcels/{}\">{}</a></li>",
                html::url(id.as_str()),
                escape(id.as_str())
            )
        })
        .collect();
    let act = here(&bank, door);
    let service = if c.out_of_service {
        format!("<form method=post action=\"{act}/service\" class=inline>{csrf}<input type=hidden name=out_of_service value=no>\
                 <label>Reason <input name=reason required></label><button>Back in service</button></form>")
    } else {
        format!("<form method=post action=\"{act}/service\" class=inline>{csrf}<input type=hidden name=out_of_service value=yes>\
                 <label>Reason <input name=reason required></label><button class=danger>Take out of service</button></form>")
    };
    let mut body = format!(
        "<table><tr><th>Bank</th><td>{b}</td></tr><tr><th>Door</th><td>{door}</td></tr>\
         <tr><th>Size</th><td>{size:?}</td></tr><tr><th>Temperature</th><td>{temp:?}</td></tr>\
         <tr><th>Status</th><td>{status:?}{open}</td></tr><tr><th>Resident</th><td>{res}</td></tr>\
         <tr><th>Parcels</th><td><ul>{parcels}</ul></td></tr></table>\
         <h2>Open the door</h2><form method=post action=\"{act}/open\" class=inline>{csrf}\
         <label>Reason <input name=reason required></label><button>Open door {door}</button></form>\
         <h2>Service</h2>{service}\
         <h2>Remove parcels</h2><form method=post action=\"{act}/remove\" class=inline>{csrf}\
         <select name=disposition><option value=return_to_sender>returned to sender</option>\
         <option value=package_room>to the package room</option></select>\
         <label>Reason <input name=reason required></label><button>Open and remove</button></form>",
        b = escape(&bank),
        size = c.size,
        temp = c.temperature,
        status = c.status,
        open = if c.door_open { " (door open)" } else { "" },
        res = c
            .resident
            .as_ref()
            .map(|r| escape(r.as_str()))
            .unwrap_or_else(|| "—".into()),
    );
    if p.role == locker_core::Role::Admin {
        body += &format!(
            "<h2>Whole bank</h2><form method=post action=\"/banks/{b}/open-all\" class=inline \
             data-confirm=\"Open EVERY door of bank {be}?\">{csrf}<label>Reason <input name=reason required></label>\
             <label><input type=checkbox name=confirm value=yes required> I am at the bank</label>\
             <button class=danger>Open all doors</button></form>",
            b = html::url(&bank),
            be = escape(&bank),
        );
    }
    Html(html::page(
        &p,
        "/",
        &format!("{bank} door {door}"),
        &q,
        &body,
    ))
    .into_response()
}

async fn open(
    State(web): State<Arc<Web>>,
    Path((bank, door)): Path<(String, u16)>,
    post: FormPost<Staff>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    let to = here(&bank, door);
    let reason = match field(&f, "reason") {
        Ok(r) => r.to_owned(),
        Err(e) => return bad_form(&to, e),
    };
    let request = Request::StaffOpenDoor {
        by: by(&p),
        bank,
        door,
        reason,
    };
    run(&web, &p, &to, request, "Door opened").await
}

async fn service(
    State(web): State<Arc<Web>>,
    Path((bank, door)): Path<(String, u16)>,
    post: FormPost<Staff>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    let to = here(&bank, door);
    let (reason, oos) = match (field(&f, "reason"), field(&f, "out_of_service")) {
        (Ok(r), Ok("yes")) => (r.to_owned(), true),
        (Ok(r), Ok("no")) => (r.to_owned(), false),
        (Err(e), _) | (_, Err(e)) => return bad_form(&to, e),
        (_, Ok(other)) => {
            return bad_form(
                &to,
                format!("out_of_service must be yes or no, not {other:?}"),
            )
        }
    };
    let done = if oos {
        "Taken out of service"
    } else {
        "Back in service"
    };
    let request = Request::SetOutOfService {
        by: by(&p),
        bank,
        door,
        out_of_service: oos,
        reason,
    };
    run(&web, &p, &to, request, done).await
}

async fn remove(
    State(web): State<Arc<Web>>,
    Path((bank, door)): Path<(String, u16)>,
    post: FormPost<Staff>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    let to = here(&bank, door);
    let disposition = match field(&f, "disposition") {
        Ok("return_to_sender") => Disposition::ReturnToSender,
        Ok("package_room") => Disposition::PackageRoom,
        Ok(other) => {
            return bad_form(
                &to,
                format!("disposition must be return_to_sender or package_room, not {other:?}"),
            )
        }
        Err(e) => return bad_form(&to, e),
    };
    let reason = match field(&f, "reason") {
        Ok(r) => r.to_owned(),
        Err(e) => return bad_form(&to, e),
    };
    let request = Request::RemoveParcels {
        by: by(&p),
        bank,
        door,
        disposition,
        reason,
    };
    run(&web, &p, &to, request, "Removal started").await
}

async fn open_all(
    State(web): State<Arc<Web>>,
    Path(bank): Path<String>,
    post: FormPost<Admin>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    let to = "/";
    if f.get("confirm").map(String::as_str) != Some("yes") {
        return bad_form(to, "tick the confirmation box to open every door".into());
    }
    let reason = match field(&f, "reason") {
        Ok(r) => r.to_owned(),
        Err(e) => return bad_form(to, e),
    };
    let request = Request::StaffOpenBank {
        by: by(&p),
        bank,
        reason,
    };
    run(&web, &p, to, request, "Opening every door").await
}
