//! The LAN web listener: the staff pages, the kiosk page, live updates, `/healthz`, and the JSON
//! API (`api.rs`), all behind one sign-in.
//!
//! Read it in this order: [`users`] (accounts, in the local never-synced table), [`session`]
//! (cookies and CSRF tokens), [`throttle`] (login throttling), [`auth`] (who is asking, roles,
//! the sign-in page), [`html`] (escaping and the page frame), [`ask`] (talking to the engine),
//! then one file per page under [`pages`], and [`live`] (server-sent events). Every asset is
//! embedded in the binary ([`assets`]): the page needs nothing from the internet.

// Handlers return `Result<_, Response>` so a refusal is an early return; axum's Response is
// large, and boxing it would only add noise on every route.
#![allow(clippy::result_large_err)]

pub mod analytics;
pub mod ask;
pub mod assets;
pub mod auth;
pub mod html;
pub mod live;
pub mod pages;
pub mod session;
pub mod throttle;
pub mod user_cli;
pub mod users;

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::broadcast;

use crate::engine::{Job, Snapshot};
use crate::status::{Health, HubStatus};

/// A bank as the page draws it: each door's place in the physical layout.
#[derive(Clone, Debug)]
pub struct BankInfo {
    pub id: String,
    pub name: String,
    pub location: String,
    /// door → (column, row) from the configuration (row 0: stacked in door order).
    pub places: BTreeMap<u16, (u16, u16)>,
}

/// Everything the web handlers share.
pub struct Web {
    pub status: Arc<HubStatus>,
    pub jobs: Sender<Job>,
    pub snapshot: Arc<RwLock<Snapshot>>,
    pub changes: broadcast::Sender<()>,
    pub api_token: String,
    pub users: users::Users,
    pub sessions: session::Sessions,
    pub throttle: throttle::Throttle,
    /// The bounded argon2 pool shared with MQTT logins.
    pub argon2: Arc<crate::broker::auth::Argon2Pool>,
    /// Served over TLS: cookies get the `Secure` attribute.
    pub secure: bool,
    pub site_name: String,
    pub banks: Vec<BankInfo>,
    pub data_dir: std::path::PathBuf,
}

impl Web {
    /// The banks of the configuration, for drawing.
    pub fn banks_of(config: &locker_config::Config) -> Vec<BankInfo> {
        config
            .banks
            .iter()
            .map(|b| BankInfo {
                id: b.id.clone(),
                name: b.name.clone(),
                location: b.location.clone(),
                places: b
                    .compartments
                    .iter()
                    .map(|c| (c.door, (c.column, c.row)))
                    .collect(),
            })
            .collect()
    }
}

/// The routes of the web listener (the JSON API is merged in by the daemon).
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/assets/{name}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
        .route("/events", get(live::events))
        .merge(pages::router())
        .with_state(web)
}

/// Liveness and a short summary. Answers without a session: monitoring needs it.
async fn healthz(State(web): State<Arc<Web>>) -> Json<Health> {
    Json(web.status.health())
}

/// Demo mode only: an admin and a kiosk account with passwords printed in the banner (the demo's
/// data is thrown away on exit).
pub async fn seed_demo_users(web: &Web) -> Result<(), String> {
    for (name, role, password) in [
        (
            "admin",
            users::Role::Admin,
            crate::demo::DEMO_ADMIN_PASSWORD,
        ),
        (
            "staff",
            users::Role::Staff,
            crate::demo::DEMO_ADMIN_PASSWORD,
        ),
        (
            "kiosk",
            users::Role::Kiosk,
            crate::demo::DEMO_ADMIN_PASSWORD,
        ),
    ] {
        if web.users.get(name).is_none() {
            web.users
                .put(users::User {
                    name: name.into(),
                    role,
                    hash: users::hash(password).await?,
                    active: true,
                })
                .await?;
        }
    }
    Ok(())
}
