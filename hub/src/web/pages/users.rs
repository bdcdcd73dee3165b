//! Staff accounts (admins only): list, add, change role, deactivate, reset a password.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};

use super::{back, bad_form, field};
use crate::web::auth::{self, Need};
use crate::web::html::{self, escape};
use crate::web::users::{self, Role, User};
use crate::web::Web;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/users", get(page).post(add))
        .route("/users/{name}", post(change))
}

async fn page(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let p = match auth::page(&web, &headers, Need::Admin) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let csrf = html::csrf(&p);
    let rows: String = web
        .users
        .list()
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

/// Validate and store a new account (shared with the JSON API).
pub async fn create(web: &Web, name: &str, role: &str, password: &str) -> Result<(), String> {
    users::check_name(name)?;
    let role = Role::parse(role).map_err(|r| r.message)?;
    users::check_password(password)?;
    if web.users.get(name).is_some() {
        return Err(format!("a user named {name} already exists"));
    }
    let hash = users::hash(password).await?;
    web.users
        .put(User {
            name: name.to_owned(),
            role,
            hash,
            active: true,
        })
        .await
}

async fn add(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let p = match auth::form(&web, &headers, &f, Need::Admin) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (name, role, password) = match (field(&f, "name"), field(&f, "role"), field(&f, "password"))
    {
        (Ok(n), Ok(r), Ok(pw)) => (n.to_owned(), r.to_owned(), pw.to_owned()),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return bad_form("/users", e),
    };
    match create(&web, &name, &role, &password).await {
        Ok(()) => {
            tracing::info!(by = %p.user, user = %name, role = %role, "staff account added");
            back("/users", Ok(format!("Added {name}")))
        }
        Err(e) => bad_form("/users", e),
    }
}

async fn change(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let p = match auth::form(&web, &headers, &f, Need::Admin) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(mut user) = web.users.get(&name) else {
        return bad_form("/users", format!("no user named {name}"));
    };
    user.role = match field(&f, "role").and_then(|r| Role::parse(r).map_err(|r| r.message)) {
        Ok(r) => r,
        Err(e) => return bad_form("/users", e),
    };
    user.active = f.get("active").map(String::as_str) == Some("yes");
    if name == p.user && (!user.active || user.role != Role::Admin) {
        return bad_form(
            "/users",
            "you cannot deactivate or demote yourself (ask another admin)".into(),
        );
    }
    if let Some(pw) = super::optional(&f, "password") {
        if let Err(e) = users::check_password(pw) {
            return bad_form("/users", e);
        }
        user.hash = match users::hash(pw).await {
            Ok(h) => h,
            Err(e) => return back("/users", Err(e)),
        };
    }
    match web.users.put(user).await {
        Ok(()) => {
            // Role, password or state changed: the user signs in again.
            web.sessions.end_user(&name);
            tracing::info!(by = %p.user, user = %name, "staff account changed");
            back("/users", Ok(format!("Saved {name}")))
        }
        Err(e) => back("/users", Err(e)),
    }
}
