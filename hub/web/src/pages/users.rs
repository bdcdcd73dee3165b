//! Staff accounts (admins only): list, add, change role, deactivate, reset a password.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use locker_app::AppError;

use super::{back, bad_form, field};
use crate::auth::{Admin, FormPost, Page};
use crate::html::{self, escape};
use crate::Web;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/users", get(page).post(add))
        .route("/users/{name}", post(change))
}

async fn page(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Admin>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let accounts = match web.app.accounts(&p.actor()) {
        Ok(a) => a,
        Err(e) => return super::error_page("/", &e),
    };
    let csrf = html::csrf(&p);
    let rows: String = accounts
        .iter()
        .map(|u| {
            let n = html::url(&u.name);
            let opts: String = ["admin", "staff", "kiosk"]
                .iter()
                .map(|r| format!("<option{}>{r}</option>", if *r == u.role.as_str() { " selected" } else { "" }))
                .collect();
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><form method=post action=\"/users/{n}\" class=inline>{csrf}\
                 <select name=role>{opts}</select><label><input type=checkbox name=active value=yes{}> active</label>\
                 <input type=password name=password placeholder=\"new password (optional)\" autocomplete=new-password>\
                 <button>Save</button></form></td></tr>",
                escape(&u.name),
                u.role.as_str(),
                if u.active { "active" } else { "deactivated" },
                if u.active { " checked" } else { "" },
            )
        })
        .collect();
    let body = format!(
        "<table><tr><th>User</th><th>Role</th><th>State</th><th>Change</th></tr>{rows}</table>\
         <h2>Add a user</h2><form method=post action=/users class=inline>{csrf}<label>Name <input name=name required></label>\
         <select name=role><option>staff</option><option>admin</option><option>kiosk</option></select>\
         <label>Password <input type=password name=password required autocomplete=new-password></label><button>Add</button></form>"
    );
    Html(html::page(&p, "/users", "Users", &q, &body)).into_response()
}

async fn add(State(web): State<Arc<Web>>, post: FormPost<Admin>) -> Response {
    let (p, f) = (post.who, post.fields);
    let (name, role, password) = match (field(&f, "name"), field(&f, "role"), field(&f, "password"))
    {
        (Ok(n), Ok(r), Ok(pw)) => (n.to_owned(), r.to_owned(), pw.to_owned()),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return bad_form("/users", e),
    };
    match web
        .app
        .add_account(&p.actor(), &name, &role, &password)
        .await
    {
        Ok(_) => back("/users", Ok(format!("Added {name}"))),
        Err(e) => bad_form("/users", e.to_string()),
    }
}

async fn change(
    State(web): State<Arc<Web>>,
    Path(name): Path<String>,
    post: FormPost<Admin>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    let role = match field(&f, "role") {
        Ok(r) => r,
        Err(e) => return bad_form("/users", e),
    };
    let active = f.get("active").map(String::as_str) == Some("yes");
    let password = super::optional(&f, "password");
    match web
        .app
        .change_account(&p.actor(), &name, role, active, password)
        .await
    {
        Ok(_) => {
            // Role, password or state changed: the user signs in again.
            web.sessions.end_user(&name);
            back("/users", Ok(format!("Saved {name}")))
        }
        Err(e @ (AppError::Storage(_) | AppError::Stopping | AppError::Timeout)) => {
            back("/users", Err(e.to_string()))
        }
        Err(e) => bad_form("/users", e.to_string()),
    }
}
