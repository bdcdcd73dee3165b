//! Refrigerated units: current temperature per sensor, the alarm band, open alarms, and a
//! 24-hour chart drawn on the server as inline SVG from the recorded summaries (min/max range,
//! mean line, the band shaded, excursions in red). No JavaScript: the page is one request.
//!
//! Also the JSON behind it: `GET /api/v1/units` and `GET /api/v1/units/{bank}/{unit}/history`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use locker_core::{Millis, SummaryView, UnitView};
use serde::Serialize;

use jiff::tz::TimeZone;
use locker_app::engine::UnitHistory;

use crate::auth::{Api, Page, Staff};
use crate::error::{json_error, ApiError};
use crate::html::{self, escape};
use crate::Web;

/// Longest history the API serves in one answer (the store's live window holds about 30 days).
pub const MAX_HOURS: u64 = 24 * 31;
const HOUR: u64 = 3_600_000;

pub fn router() -> Router<Arc<Web>> {
    Router::new().route("/units", get(page))
}

async fn page(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Staff>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let zone = web.app.zone();
    let now = locker_app::clock::now();
    let since = Millis(now.0.saturating_sub(24 * HOUR));
    let body = match web.app.units(&p.actor(), Some(since)).await {
        Ok(r) if !r.units.is_empty() => r
            .units
            .iter()
            .zip(&r.history)
            .map(|(u, h)| unit_card(zone, u, h, r.now))
            .collect::<String>(),
        Ok(_) => "<p class=note>No refrigerated units are configured.</p>".to_owned(),
        Err(e) => format!("<p class=err>{}</p>", escape(&e.to_string())),
    };
    let body = format!(
        "<p class=note>Times are the site's local time ({}). Charts show the last 24 hours from \
         the recorded summaries: the shaded strip is the allowed band, the grey area the lowest \
         to highest reading of each interval, the line their mean; red marks an interval that \
         left the band.</p>{body}",
        escape(&zone_label(zone, now))
    );
    Html(html::page(&p, "/units", "Refrigerated units", &q, &body)).into_response()
}

fn zone_label(zone: &TimeZone, now: Millis) -> String {
    html::instant(now)
        .to_zoned_datetime(zone.clone())
        .strftime("%Z, UTC%:z")
        .to_string()
}

fn celsius(dc: i32) -> String {
    format!("{:.1} °C", f64::from(dc) / 10.0)
}

fn unit_card(zone: &TimeZone, u: &UnitView, history: &[SummaryView], now: Millis) -> String {
    let mut out = String::new();
    let state = if u.alerts.is_empty() {
        "<span class=online>OK</span>".to_owned()
    } else {
        u.alerts
            .iter()
            .map(|a| {
                format!(
                    "<li class=offline>{}: {}</li>",
                    escape(&format!("{:?}", a.kind)),
                    escape(&a.message)
                )
            })
            .collect::<String>()
    };
    let state = if u.alerts.is_empty() {
        state
    } else {
        format!("<ul>{state}</ul>")
    };
    let _ = write!(
        out,
        "<section class=unit><h2>{} <small>bank {} · unit {}</small></h2>\
         <table><tr><th>Band</th><td>{} to {} (an alarm after {} min outside; it clears {} \
         back inside)</td></tr><tr><th>Door</th><td>{}</td></tr>",
        escape(&u.name),
        escape(&u.bank),
        escape(&u.unit),
        celsius(u.min_decicelsius),
        celsius(u.max_decicelsius),
        u.alarm_after_ms / 60_000,
        celsius(u.hysteresis_decicelsius),
        if u.door_open { "open" } else { "closed" },
    );
    for s in &u.sensors {
        let reading = match (s.decicelsius, s.last_reading_at) {
            (Some(dc), Some(at)) => {
                let class = if dc > u.max_decicelsius || dc < u.min_decicelsius {
                    "offline"
                } else {
                    "online"
                };
                format!(
                    "<strong class={class}>{}</strong> at {}",
                    celsius(dc),
                    escape(&html::time_in(at, zone))
                )
            }
            _ => "no reading since the hub started".to_owned(),
        };
        let _ = write!(
            out,
            "<tr><th>Sensor {}</th><td>{reading}</td></tr>",
            escape(&s.sensor)
        );
    }
    if let Some(since) = u.excursion_since {
        let _ = write!(
            out,
            "<tr><th>Excursion</th><td class=offline>outside the band since {}</td></tr>",
            escape(&html::time_in(since, zone))
        );
    }
    let _ = write!(out, "<tr><th>Alarms</th><td>{state}</td></tr></table>");
    out.push_str(&chart(zone, u, history, now));
    out.push_str("</section>");
    out
}

/// The 24-hour chart as inline SVG.
pub fn chart(zone: &TimeZone, u: &UnitView, history: &[SummaryView], now: Millis) -> String {
    const W: f64 = 720.0;
    const H: f64 = 240.0;
    const LEFT: f64 = 48.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 8.0;
    const BOTTOM: f64 = 24.0;
    let start = now.0.saturating_sub(24 * HOUR);
    let span = (now.0 - start).max(1) as f64;
    // The band with 2 °C to spare, widened to whatever was read.
    let lo = history
        .iter()
        .map(|s| s.min_decicelsius)
        .chain([u.min_decicelsius - 20])
        .min()
        .unwrap_or(0);
    let hi = history
        .iter()
        .map(|s| s.max_decicelsius)
        .chain([u.max_decicelsius + 20])
        .max()
        .unwrap_or(100);
    let (lo, hi) = (f64::from(lo), f64::from(hi.max(lo + 10)));
    let x = |t: u64| LEFT + (t.saturating_sub(start) as f64 / span) * (W - LEFT - RIGHT);
    let y = |dc: f64| TOP + (hi - dc) / (hi - lo) * (H - TOP - BOTTOM);
    let mut svg = format!(
        "<svg class=chart viewBox=\"0 0 {W} {H}\" width=100% role=img \
         aria-label=\"temperature of {} over the last 24 hours\" \
         style=\"max-width:{W}px;font:11px sans-serif\">",
        escape(&u.name)
    );
    // The allowed band.
    let _ = write!(
        svg,
        "<rect x={LEFT} y={:.1} width={:.1} height={:.1} fill=#d8efe0 />",
        y(f64::from(u.max_decicelsius)),
        W - LEFT - RIGHT,
        y(f64::from(u.min_decicelsius)) - y(f64::from(u.max_decicelsius)),
    );
    // Grid: a line per degree step, labelled.
    let step = if hi - lo > 200.0 { 50 } else { 10 };
    let mut t = (lo as i32).div_euclid(step) * step;
    while f64::from(t) <= hi {
        if f64::from(t) >= lo {
            let _ = write!(
                svg,
                "<line x1={LEFT} x2={:.1} y1={yy:.1} y2={yy:.1} stroke=#ddd />\
                 <text x={:.1} y={:.1} text-anchor=end>{}</text>",
                W - RIGHT,
                LEFT - 4.0,
                y(f64::from(t)) + 4.0,
                t / 10,
                yy = y(f64::from(t)),
            );
        }
        t += step;
    }
    // Hours on the site's wall clock, every 6 hours.
    let mut h = start - start % (6 * HOUR) + 6 * HOUR;
    while h < now.0 {
        let label = html::instant(Millis(h))
            .to_zoned_datetime(zone.clone())
            .strftime("%H:%M")
            .to_string();
        let _ = write!(
            svg,
            "<line x1={xx:.1} x2={xx:.1} y1={TOP} y2={:.1} stroke=#eee />\
             <text x={xx:.1} y={:.1} text-anchor=middle>{}</text>",
            H - BOTTOM,
            H - 8.0,
            escape(&label),
            xx = x(h),
        );
        h += 6 * HOUR;
    }
    let interval = u.summary_interval_ms.max(1);
    let mut sensors: Vec<&str> = history.iter().map(|s| s.sensor.as_str()).collect();
    sensors.sort_unstable();
    sensors.dedup();
    for (n, sensor) in sensors.iter().enumerate() {
        let points: Vec<&SummaryView> = history
            .iter()
            .filter(|s| s.sensor == *sensor && s.to.0 > start)
            .collect();
        // Runs of consecutive intervals: a gap (a silent sensor) is left visibly empty.
        let mut runs: Vec<Vec<&SummaryView>> = Vec::new();
        for s in points {
            match runs.last_mut() {
                Some(run)
                    if run
                        .last()
                        .is_some_and(|p| s.from.0 <= p.to.0 + interval / 2) =>
                {
                    run.push(s)
                }
                _ => runs.push(vec![s]),
            }
        }
        let colour = ["#1f5fa8", "#7a3fa0", "#2f7f6f"][n % 3];
        for run in &runs {
            let mid = |s: &SummaryView| x((s.from.0 + s.to.0) / 2);
            let upper: Vec<String> = run
                .iter()
                .map(|s| format!("{:.1},{:.1}", mid(s), y(f64::from(s.max_decicelsius))))
                .collect();
            let lower: Vec<String> = run
                .iter()
                .rev()
                .map(|s| format!("{:.1},{:.1}", mid(s), y(f64::from(s.min_decicelsius))))
                .collect();
            let mean: Vec<String> = run
                .iter()
                .map(|s| format!("{:.1},{:.1}", mid(s), y(f64::from(s.mean_decicelsius))))
                .collect();
            if run.len() > 1 {
                let _ = write!(
                    svg,
                    "<polygon points=\"{} {}\" fill=#bbb fill-opacity=0.5 />\
                     <polyline points=\"{}\" fill=none stroke={colour} stroke-width=2 />",
                    upper.join(" "),
                    lower.join(" "),
                    mean.join(" "),
                );
            } else if let Some(s) = run.first() {
                let _ = write!(
                    svg,
                    "<line x1={xx:.1} x2={xx:.1} y1={:.1} y2={:.1} stroke=#999 stroke-width=3 />\
                     <circle cx={xx:.1} cy={:.1} r=2.5 fill={colour} />",
                    y(f64::from(s.max_decicelsius)),
                    y(f64::from(s.min_decicelsius)),
                    y(f64::from(s.mean_decicelsius)),
                    xx = mid(s),
                );
            }
        }
        // Excursions: every interval that read outside the band, marked along the top edge
        // and at its extreme.
        for s in history.iter().filter(|s| s.sensor == *sensor) {
            let warm = s.max_decicelsius > u.max_decicelsius;
            let cold = s.min_decicelsius < u.min_decicelsius;
            if !(warm || cold) || s.to.0 <= start {
                continue;
            }
            let (x0, x1) = (x(s.from.0.max(start)), x(s.to.0.min(now.0)));
            let extreme = if warm {
                s.max_decicelsius
            } else {
                s.min_decicelsius
            };
            let _ = write!(
                svg,
                "<rect class=excursion x={x0:.1} y={TOP} width={:.1} height=5 fill=#c62828>\
                 <title>{} to {}: {} to {}</title></rect>\
                 <circle class=excursion cx={:.1} cy={:.1} r=3 fill=#c62828 />",
                (x1 - x0).max(1.5),
                escape(&html::time_in(s.from, zone)),
                escape(&html::time_in(s.to, zone)),
                celsius(s.min_decicelsius),
                celsius(s.max_decicelsius),
                (x0 + x1) / 2.0,
                y(f64::from(extreme)),
            );
        }
    }
    if history.is_empty() {
        let _ = write!(
            svg,
            "<text x={:.1} y={:.1} text-anchor=middle>no summaries recorded in the last 24 \
             hours yet (one every {} min)</text>",
            W / 2.0,
            H / 2.0,
            interval / 60_000
        );
    }
    svg.push_str("</svg>");
    svg
}

// --- JSON ---

/// A unit's alarm band in °C.
#[derive(Serialize)]
struct Band {
    min_c: f64,
    max_c: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    hysteresis_c: Option<f64>,
}

/// One sensor of a unit in `GET /api/v1/units`.
#[derive(Serialize)]
struct SensorJson<'a> {
    sensor: &'a str,
    temperature_c: Option<f64>,
    last_reading_at: Option<Millis>,
    interval_ms: u64,
    silent_after_ms: u64,
    device_alarms: &'a [String],
}

/// One unit in `GET /api/v1/units`.
#[derive(Serialize)]
struct UnitJson<'a> {
    bank: &'a str,
    unit: &'a str,
    name: &'a str,
    doors: &'a [u16],
    band: Band,
    alarm_after_ms: u64,
    door_grace_ms: u64,
    excursion_limit_ms: u64,
    summary_interval_ms: u64,
    door_open: bool,
    excursion_since: Option<Millis>,
    alarm: bool,
    alerts: Vec<crate::wire::AlertJson>,
    sensors: Vec<SensorJson<'a>>,
}

/// One summary in `GET /api/v1/units/{bank}/{unit}/history`.
#[derive(Serialize)]
struct SummaryJson<'a> {
    sensor: &'a str,
    from: Millis,
    to: Millis,
    count: u32,
    min_c: f64,
    max_c: f64,
    mean_c: f64,
    /// The interval left the band.
    excursion: bool,
}

/// The answer of `GET /api/v1/units/{bank}/{unit}/history`.
#[derive(Serialize)]
struct HistoryJson<'a> {
    bank: &'a str,
    unit: &'a str,
    since: Millis,
    band: Band,
    summary_interval_ms: u64,
    summaries: Vec<SummaryJson<'a>>,
}

fn celsius_of(dc: i32) -> f64 {
    f64::from(dc) / 10.0
}

fn unit_json(u: &UnitView) -> UnitJson<'_> {
    let c = celsius_of;
    UnitJson {
        bank: &u.bank,
        unit: &u.unit,
        name: &u.name,
        doors: &u.doors,
        band: Band {
            min_c: c(u.min_decicelsius),
            max_c: c(u.max_decicelsius),
            hysteresis_c: Some(c(u.hysteresis_decicelsius)),
        },
        alarm_after_ms: u.alarm_after_ms,
        door_grace_ms: u.door_grace_ms,
        excursion_limit_ms: u.excursion_limit_ms,
        summary_interval_ms: u.summary_interval_ms,
        door_open: u.door_open,
        excursion_since: u.excursion_since,
        alarm: !u.alerts.is_empty(),
        alerts: crate::wire::list(&u.alerts),
        sensors: u
            .sensors
            .iter()
            .map(|s| SensorJson {
                sensor: &s.sensor,
                temperature_c: s.decicelsius.map(c),
                last_reading_at: s.last_reading_at,
                interval_ms: s.interval_ms,
                silent_after_ms: s.silent_after_ms,
                device_alarms: &s.device_alarms,
            })
            .collect(),
    }
}

/// `GET /api/v1/units`
pub async fn api_units(State(web): State<Arc<Web>>, Api(who, ..): Api<Staff>) -> Response {
    match web.app.units(&who.actor(), None).await {
        Ok(r) => Json(r.units.iter().map(unit_json).collect::<Vec<_>>()).into_response(),
        Err(e) => ApiError(e).into_response(),
    }
}

/// `GET /api/v1/units/{bank}/{unit}/history?hours=24`
pub async fn api_history(
    State(web): State<Arc<Web>>,
    Api(who, ..): Api<Staff>,
    Path((bank, unit)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let hours = match q.get("hours").map(|h| h.trim().parse::<u64>()) {
        None => 24,
        Some(Ok(h)) if (1..=MAX_HOURS).contains(&h) => h,
        Some(_) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("hours must be a whole number from 1 to {MAX_HOURS}"),
            )
        }
    };
    let answer = web
        .app
        .unit_history(&who.actor(), &bank, &unit, hours)
        .await;
    match answer {
        Ok(UnitHistory {
            unit: u,
            summaries,
            since,
        }) => {
            let c = celsius_of;
            Json(HistoryJson {
                bank: &u.bank,
                unit: &u.unit,
                since,
                band: Band {
                    min_c: c(u.min_decicelsius),
                    max_c: c(u.max_decicelsius),
                    hysteresis_c: None,
                },
                summary_interval_ms: u.summary_interval_ms,
                summaries: summaries
                    .iter()
                    .map(|s| SummaryJson {
                        sensor: &s.sensor,
                        from: s.from,
                        to: s.to,
                        count: s.count,
                        min_c: c(s.min_decicelsius),
                        max_c: c(s.max_decicelsius),
                        mean_c: c(s.mean_decicelsius),
                        excursion: s.max_decicelsius > u.max_decicelsius
                            || s.min_decicelsius < u.min_decicelsius,
                    })
                    .collect(),
            })
            .into_response()
        }
        Err(e) => ApiError(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use locker_core::{SensorView, UnitView};

    fn unit() -> UnitView {
        UnitView {
            bank: "B".into(),
            unit: "fridge".into(),
            name: "Grocery <fridge>".into(),
            doors: vec![9],
            min_decicelsius: 10,
            max_decicelsius: 50,
            hysteresis_decicelsius: 5,
            alarm_after_ms: 600_000,
            door_grace_ms: 300_000,
            excursion_limit_ms: 1_800_000,
            summary_interval_ms: 900_000,
            door_open: false,
            excursion_since: None,
            sensors: vec![SensorView {
                sensor: "cabinet".into(),
                decicelsius: Some(35),
                last_reading_at: Some(Millis(0)),
                interval_ms: 5_000,
                silent_after_ms: 60_000,
                device_alarms: vec![],
            }],
            alerts: vec![],
        }
    }

    fn summary(from: u64, min: i32, max: i32) -> SummaryView {
        SummaryView {
            sensor: "cabinet".into(),
            from: Millis(from),
            to: Millis(from + 900_000),
            count: 180,
            min_decicelsius: min,
            max_decicelsius: max,
            mean_decicelsius: (min + max) / 2,
        }
    }

    #[test]
    fn the_chart_shades_the_band_draws_the_mean_and_marks_only_excursions_in_red() {
        let now = 1_700_000_000_000;
        let start = now - 2 * HOUR;
        let history: Vec<SummaryView> = (0..8)
            .map(|i| {
                let from = start + i * 900_000;
                if i == 5 {
                    summary(from, 40, 72)
                } else {
                    summary(from, 30, 40)
                }
            })
            .collect();
        let svg = chart(&TimeZone::UTC, &unit(), &history, Millis(now));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<rect class=excursion").count(), 1);
        assert!(svg.contains("fill=#d8efe0"), "the band");
        assert!(svg.contains("Grocery &lt;fridge&gt;"), "names are escaped");
        // A gap splits the line: two runs, two lines.
        let mut gappy = history.clone();
        gappy.remove(3);
        let svg = chart(&TimeZone::UTC, &unit(), &gappy, Millis(now));
        assert_eq!(svg.matches("<polyline").count(), 2);
        // Nothing recorded yet says so.
        assert!(chart(&TimeZone::UTC, &unit(), &[], Millis(now)).contains("no summaries"));
    }
}
