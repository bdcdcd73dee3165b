//! The kiosk page, for banks without a screen of their own: a touch-friendly carrier drop-off
//! and resident pickup on a tablet. It sends the same requests as an MQTT kiosk to the same
//! core, so the same rules and keypad lockouts apply. Kiosk tablets sign in with a `kiosk`
//! account, which can use nothing but this page.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use locker_core::{Outcome, Recipient, RejectCode, Request, ReservationId, Size};

use locker_app::AppError;

use super::field;
use crate::auth::{Any, FormPost, Page, Principal};
use crate::error::status;
use crate::html::{self, escape};
use crate::Web;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/kiosk", get(banks))
        .route("/kiosk/{bank}", get(home))
        .route("/kiosk/{bank}/pickup", get(pickup_form).post(pickup))
        .route("/kiosk/{bank}/deliver", get(deliver_form).post(deliver))
        .route("/kiosk/{bank}/confirm", axum::routing::post(confirm))
        .route("/kiosk/{bank}/cancel", axum::routing::post(cancel))
}

fn screen(bank: &str, title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <link rel=stylesheet href=/assets/app.css><title>{t} · kiosk</title><body class=kiosk><main>\
         <p class=note>Locker {b}</p><h1>{t}</h1>{body}<p><a href=\"/kiosk/{u}\">Start again</a></p></main>\
         <script src=/assets/kiosk.js defer></script></body></html>",
        t = escape(title),
        b = escape(bank),
        u = html::url(bank),
    )
}

fn known(web: &Web, bank: &str) -> bool {
    web.banks.iter().any(|b| b.id == bank)
}

fn unknown(bank: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(html::bare(
            "No such bank",
            &format!(
                "<p>There is no bank {}.</p><p><a href=/kiosk>Banks</a></p>",
                escape(bank)
            ),
        )),
    )
        .into_response()
}

async fn banks(State(web): State<Arc<Web>>, _who: Page<Any>) -> Response {
    let links: String = web
        .banks
        .iter()
        .map(|b| {
            format!(
                "<a href=\"/kiosk/{}\">{}<br><small>{}</small></a>",
                html::url(&b.id),
                escape(&b.name),
                escape(&b.location)
            )
        })
        .collect();
    Html(screen(
        "",
        "Which locker is this tablet at?",
        &format!("<div class=choices>{links}</div>"),
    ))
    .into_response()
}

async fn home(State(web): State<Arc<Web>>, _who: Page<Any>, Path(bank): Path<String>) -> Response {
    if !known(&web, &bank) {
        return unknown(&bank);
    }
    let u = html::url(&bank);
    Html(screen(&bank, "Welcome", &format!(
        "<div class=choices><a href=\"/kiosk/{u}/pickup\">Collect a parcel</a><a href=\"/kiosk/{u}/deliver\">Deliver a parcel</a></div>"
    ))).into_response()
}

fn keypad(target: &str) -> String {
    let keys: String = [
        "1", "2", "3", "4", "5", "6", "7", "8", "9", "clr", "0", "del",
    ]
    .iter()
    .map(|k| {
        let label = match *k {
            "clr" => "Clear",
            "del" => "⌫",
            d => d,
        };
        format!("<button type=button data-key={k}>{label}</button>")
    })
    .collect();
    format!("<div class=keypad data-for={target}>{keys}</div>")
}

fn pin_screen(p: &Principal, bank: &str, error: Option<&str>) -> String {
    let err = error
        .map(|e| format!("<p class=err role=alert>{}</p>", escape(e)))
        .unwrap_or_default();
    screen(bank, "Collect a parcel", &format!(
        "{err}<form method=post action=\"/kiosk/{u}/pickup\">{csrf}<label>Your PIN \
         <input id=pin name=pin inputmode=numeric autocomplete=off required></label>{pad}<button>Open my locker</button></form>",
        u = html::url(bank),
        csrf = html::csrf(p),
        pad = keypad("pin"),
    ))
}

async fn pickup_form(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Any>,
    Path(bank): Path<String>,
) -> Response {
    if !known(&web, &bank) {
        return unknown(&bank);
    }
    Html(pin_screen(&p, &bank, None)).into_response()
}

/// The status of a kiosk screen that shows a refusal: a locked keypad is "too many requests";
/// everything else has the one status of its code (`crate::error::rejection_status`).
fn refused_status(code: RejectCode) -> StatusCode {
    if code == RejectCode::KeypadLocked {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        crate::error::rejection_status(code)
    }
}

/// A refusal in words for the person at the kiosk.
fn refusal(code: RejectCode, message: &str, until: Option<locker_core::Millis>) -> String {
    match (code, until) {
        (RejectCode::KeypadLocked, Some(t)) => {
            let now = locker_app::clock::now();
            let seconds = t.0.saturating_sub(now.0).div_ceil(1000).max(1);
            format!(
                "Too many wrong codes: the keypad is locked for a moment. Try again in {seconds} \
                 second{}.",
                if seconds == 1 { "" } else { "s" }
            )
        }
        (RejectCode::BadCredential, _) => {
            "That code is not right. Please check it and try again.".into()
        }
        _ => message.to_owned(),
    }
}

async fn pickup(
    State(web): State<Arc<Web>>,
    Path(bank): Path<String>,
    post: FormPost<Any>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    if !known(&web, &bank) {
        return unknown(&bank);
    }
    let pin = match field(&f, "pin") {
        Ok(pin) => pin.to_owned(),
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(pin_screen(&p, &bank, Some("Enter your PIN."))),
            )
                .into_response()
        }
    };
    let outcome = match ask(
        &web,
        &p,
        Request::PickupByPin {
            bank: bank.clone(),
            pin,
        },
    )
    .await
    {
        Ok(o) => o,
        Err(e) => {
            return (
                status(&e),
                Html(pin_screen(&p, &bank, Some(&e.to_string()))),
            )
                .into_response()
        }
    };
    match outcome {
        Outcome::Opening { doors, parcels, .. } => {
            let list = doors
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            Html(screen(&bank, "Your locker is open", &format!(
                "<p class=big data-doors=\"{list}\">Door {list}</p><p>{} parcel{} for you. Please close the door when you are done.</p>",
                parcels.len(), if parcels.len() == 1 { "" } else { "s" }
            ))).into_response()
        }
        Outcome::Rejected(r) => {
            let status = refused_status(r.code);
            (
                status,
                Html(pin_screen(
                    &p,
                    &bank,
                    Some(&refusal(r.code, &r.message, r.until)),
                )),
            )
                .into_response()
        }
        other => Html(screen(
            &bank,
            "Done",
            &format!("<p>{}</p>", escape(&format!("{other:?}"))),
        ))
        .into_response(),
    }
}

fn deliver_screen(p: &Principal, bank: &str, error: Option<&str>) -> String {
    let err = error
        .map(|e| format!("<p class=err role=alert>{}</p>", escape(e)))
        .unwrap_or_default();
    let sizes: String = [
        ("m", "Medium"),
        ("xs", "Extra small"),
        ("s", "Small"),
        ("l", "Large"),
        ("xl", "Extra large"),
        ("bulk", "Bulk"),
    ]
    .iter()
    .map(|(v, n)| format!("<option value={v}>{n}</option>"))
    .collect();
    screen(bank, "Deliver a parcel", &format!(
        "{err}<form method=post action=\"/kiosk/{u}/deliver\">{csrf}\
         <label>Carrier code <input id=code name=carrier_code type=password inputmode=numeric autocomplete=off required></label>\
         <label>Flat / unit <input id=unit name=unit inputmode=numeric required></label>\
         <label>Parcel size <select name=size>{sizes}</select></label>\
         <label>Tracking number (optional) <input name=tracking></label><button>Open a locker</button></form>",
        u = html::url(bank),
        csrf = html::csrf(p),
    ))
}

async fn deliver_form(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Any>,
    Path(bank): Path<String>,
) -> Response {
    if !known(&web, &bank) {
        return unknown(&bank);
    }
    Html(deliver_screen(&p, &bank, None)).into_response()
}

async fn deliver(
    State(web): State<Arc<Web>>,
    Path(bank): Path<String>,
    post: FormPost<Any>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    if !known(&web, &bank) {
        return unknown(&bank);
    }
    let bad = |m: String| {
        (
            StatusCode::BAD_REQUEST,
            Html(deliver_screen(&p, &bank, Some(&m))),
        )
            .into_response()
    };
    let (code, unit) = match (field(&f, "carrier_code"), field(&f, "unit")) {
        (Ok(c), Ok(u)) => (c.to_owned(), u.to_owned()),
        (Err(e), _) | (_, Err(e)) => return bad(e),
    };
    let size: Size = match serde_json::from_value(serde_json::Value::String(
        f.get("size").cloned().unwrap_or_else(|| "m".into()),
    )) {
        Ok(s) => s,
        Err(_) => return bad("size must be one of xs, s, m, l, xl, bulk".into()),
    };
    let tracking = super::optional(&f, "tracking").map(str::to_owned);
    let request = Request::StartDropOff {
        bank: bank.clone(),
        carrier_code: code,
        recipient: Recipient::Unit { unit },
        size: Some(size),
        dimensions: None,
        temperature: Default::default(),
        share: false,
        tracking: tracking.clone(),
    };
    let outcome = match ask(&web, &p, request).await {
        Ok(o) => o,
        Err(e) => {
            return (
                status(&e),
                Html(deliver_screen(&p, &bank, Some(&e.to_string()))),
            )
                .into_response()
        }
    };
    match outcome {
        Outcome::Reserved {
            reservation, door, ..
        } => {
            let csrf = html::csrf(&p);
            let u = html::url(&bank);
            let r = escape(reservation.as_str());
            let t = escape(tracking.as_deref().unwrap_or(""));
            Html(screen(&bank, "Put the parcel in", &format!(
                "<p class=big data-door={door}>Door {door} is open</p><p>Put the parcel in, tap Done, then close the door.</p>\
                 <form method=post action=\"/kiosk/{u}/confirm\">{csrf}<input type=hidden name=reservation value=\"{r}\">\
                 <input type=hidden name=tracking value=\"{t}\"><button>Done: the parcel is in</button></form>\
                 <form method=post action=\"/kiosk/{u}/cancel\">{csrf}<input type=hidden name=reservation value=\"{r}\">\
                 <button class=danger>Cancel</button></form>"
            ))).into_response()
        }
        Outcome::LockerFull { parcel } => Html(screen(
            &bank,
            "The locker is full",
            &format!(
                "<p>Please take parcel {} to the front desk.</p>",
                escape(parcel.as_str())
            ),
        ))
        .into_response(),
        Outcome::Rejected(r) => {
            let status = refused_status(r.code);
            (
                status,
                Html(deliver_screen(
                    &p,
                    &bank,
                    Some(&refusal(r.code, &r.message, r.until)),
                )),
            )
                .into_response()
        }
        other => Html(screen(
            &bank,
            "Done",
            &format!("<p>{}</p>", escape(&format!("{other:?}"))),
        ))
        .into_response(),
    }
}

async fn confirm(
    State(web): State<Arc<Web>>,
    Path(bank): Path<String>,
    post: FormPost<Any>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    let reservation = match field(&f, "reservation") {
        Ok(r) => ReservationId(r.to_owned()),
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(screen(
                    &bank,
                    "Something is missing",
                    &format!("<p>{}</p>", escape(&e)),
                )),
            )
                .into_response()
        }
    };
    let tracking = super::optional(&f, "tracking").map(str::to_owned);
    let outcome = ask(
        &web,
        &p,
        Request::ConfirmParcel {
            reservation,
            tracking,
        },
    )
    .await;
    match outcome {
        Ok(Outcome::ParcelConfirmed { parcel, .. }) => Html(screen(&bank, "Thank you", &format!(
            "<p class=big>Please close the door.</p><p>Parcel {} is recorded; the resident will be told when the door is closed.</p>",
            escape(parcel.as_str())
        ))).into_response(),
        Ok(Outcome::Rejected(r)) => (refused_status(r.code), Html(screen(&bank, "Not recorded", &format!("<p class=err>{}</p>", escape(&r.message))))).into_response(),
        Ok(_) => Html(screen(&bank, "Done", "<p>Please close the door.</p>")).into_response(),
        Err(e) => (status(&e), Html(screen(&bank, "Not recorded", &format!("<p class=err>{}</p>", escape(&e.to_string()))))).into_response(),
    }
}

async fn cancel(
    State(web): State<Arc<Web>>,
    Path(bank): Path<String>,
    post: FormPost<Any>,
) -> Response {
    let (p, f) = (post.who, post.fields);
    let reservation = match field(&f, "reservation") {
        Ok(r) => ReservationId(r.to_owned()),
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(screen(
                    &bank,
                    "Something is missing",
                    &format!("<p>{}</p>", escape(&e)),
                )),
            )
                .into_response()
        }
    };
    let not_cancelled = |status: StatusCode, why: &str| {
        (
            status,
            Html(screen(
                &bank,
                "Not cancelled",
                &format!("<p class=err>{}</p>", escape(why)),
            )),
        )
            .into_response()
    };
    match ask(&web, &p, Request::CancelDropOff { reservation }).await {
        Ok(Outcome::Rejected(r)) => not_cancelled(refused_status(r.code), &r.message),
        Ok(_) => Html(screen(&bank, "Cancelled", "<p>Please close the door.</p>")).into_response(),
        Err(e) => not_cancelled(status(&e), &e.to_string()),
    }
}

/// Ask the core for a kiosk request as the signed-in tablet: its outcome, a refusal included
/// (the screens put it in words); `Err` only when the hub could not answer.
async fn ask(web: &Web, p: &Principal, request: Request) -> Result<Outcome, AppError> {
    match web.app.request(&p.actor(), "kiosk-web", request).await {
        Ok(reply) => Ok(reply.outcome),
        Err(AppError::Rejected(r)) => Ok(Outcome::Rejected(r)),
        Err(e) => Err(e),
    }
}
