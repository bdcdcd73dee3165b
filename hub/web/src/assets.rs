//! Embedded static assets: the stylesheet and the two small scripts. Nothing is loaded from a CDN.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("assets/app.css");
/// Dashboard live updates (SSE) and confirmations.
const APP_JS: &str = include_str!("assets/app.js");
/// The kiosk's on-screen keypad.
const KIOSK_JS: &str = include_str!("assets/kiosk.js");
/// The tab icon. Browsers ask for `/favicon.ico` on every page; without it each page load logged
/// a 404 in the browser console.
const ICON_SVG: &str = include_str!("assets/icon.svg");

/// `GET /assets/{name}`: public (the sign-in page needs the stylesheet; nothing secret here).
pub async fn serve(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "kiosk.js" => (KIOSK_JS, "text/javascript; charset=utf-8"),
        "icon.svg" => (ICON_SVG, "image/svg+xml"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// `GET /favicon.ico`: the SVG icon (browsers accept SVG whatever the name says).
pub async fn favicon() -> Response {
    serve(Path("icon.svg".to_owned())).await
}
