//! `locker-web`: the LAN web listener. The staff pages, the kiosk page, live updates,
//! `/healthz`, and the JSON API (`api.rs`), all behind one sign-in, as thin adapters over the
//! application layer (`locker_app::App`): they parse a form, a query or a JSON body, call one
//! service with the signed-in caller, and render the answer.
//!
//! Read it in this order: [`session`] (cookies and CSRF tokens), [`throttle`] (login
//! throttling), [`auth`] (who is asking: the typed extractors `Page<N>`, `FormPost<N>` and
//! `Api<N>`, the sign-in page), [`error`] (the one mapping of application errors to HTTP
//! statuses), [`html`] (escaping and the page frame), then one file per page under [`pages`],
//! [`api`], and [`live`] (server-sent events). Every asset is embedded in the binary
//! ([`assets`]): the page needs nothing from the internet. Connections are bounded before
//! sign-in by `locker-net`, which the daemon uses for MQTT too.

// Handlers return `Result<_, Response>` so a refusal is an early return; axum's Response is
// large, and boxing it would only add noise on every route.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod assets;
pub mod auth;
pub mod error;
pub mod html;
pub mod import;
pub mod live;
pub mod pages;
pub mod session;
pub mod throttle;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use locker_app::health::{Health, HealthSource};
use locker_app::App;

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
    /// The application's services.
    pub app: App,
    /// Where `/healthz` and the system page read the hub's health.
    pub health: Arc<dyn HealthSource>,
    pub api_token: String,
    pub sessions: session::Sessions,
    pub throttle: throttle::Throttle,
    /// Served over TLS: cookies get the `Secure` attribute.
    pub secure: bool,
    pub site_name: String,
    pub banks: Vec<BankInfo>,
    pub data_dir: std::path::PathBuf,
    /// Set when a second hub can pair with this one (`[sync] listen` over TLS).
    pub pairing: Option<Pairing>,
    /// Rent-roll previews waiting to be applied from the Residents page.
    pub imports: import::Staged,
}

/// What a second hub needs to join this one, besides the one-time code.
#[derive(Clone, Debug)]
pub struct Pairing {
    /// This hub's sync address, as the other hub dials it.
    pub url: String,
    /// SHA-256 of this hub's certificate.
    pub fingerprint: String,
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

impl Web {
    /// `2025-03-01 14:05 CET`: a time on the site's wall clock.
    pub fn time(&self, at: locker_core::Millis) -> String {
        html::time_in(at, self.app.zone())
    }

    /// `2025-03-01` → the start of that day on the site's wall clock.
    pub fn parse_date(&self, s: &str) -> Result<locker_core::Millis, String> {
        html::parse_date_in(s, self.app.zone())
    }

    /// `2025-03-01` → the end (exclusive) of that day on the site's wall clock: the start of
    /// the next, whatever the clocks did.
    pub fn parse_date_end(&self, s: &str) -> Result<locker_core::Millis, String> {
        html::parse_date_end_in(s, self.app.zone())
    }
}

/// Every route of the web listener: pages, the JSON API, live updates, `/healthz`.
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/assets/{name}", get(assets::serve))
        .route("/favicon.ico", get(assets::favicon))
        .route("/events", get(live::events))
        .merge(pages::router())
        .merge(api::router())
        .merge(import::router())
        .with_state(web)
}

/// Liveness and a short summary. Answers without a session: monitoring needs it.
async fn healthz(State(web): State<Arc<Web>>) -> Json<Health> {
    Json(web.health.health())
}
