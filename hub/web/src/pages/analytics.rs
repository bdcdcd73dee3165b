//! Analytics: deliveries per day, the busiest hours of the week, utilisation per size class,
//! time from delivery to pickup and overdue parcels, each exportable as CSV. The numbers come
//! from [`locker_app::analytics::compute`], run on the engine thread over the window's facts; the
//! charts are inline SVG drawn here (no script, no chart library).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use locker_app::analytics::{self, CHARTS, DAYS, HEATMAP_WEEKS, WEEKDAYS};

use super::error_page;
use crate::auth::{Page, Staff};
use crate::html::{self, escape};
use crate::Web;

pub fn router() -> Router<Arc<Web>> {
    Router::new()
        .route("/analytics", get(page))
        .route("/analytics/{file}", get(export))
}

async fn page(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Staff>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let a = match web.app.analytics(&p.actor()).await {
        Ok(a) => a,
        Err(e) => return error_page("/", &e),
    };
    let csv = |chart: &str| format!("<a href=\"/analytics/{chart}.csv\" download>CSV</a>");
    let zone = escape(web.app.zone().iana_name().unwrap_or("UTC"));
    let sizes: String = a
        .sizes
        .iter()
        .map(|s| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{} of {} ({}%)</td><td>{:.0}%</td></tr>",
                analytics::size_name(s.size),
                s.total,
                s.occupied,
                s.total,
                s.occupied * 100 / s.total.max(1),
                s.average * 100.0
            )
        })
        .collect();
    let median = a
        .pickup_median_ms
        .map(analytics::duration)
        .unwrap_or_else(|| "—".into());
    let body = format!(
        "<p class=note>Times are the site's local time ({zone}).</p>\
         <div class=tiles><div><b>{median}</b>median time from delivery to pickup ({pickups} pickups, last {DAYS} days) {c_pick}</div>\
         <div><b>{overdue}</b>overdue parcels now</div></div>\
         <h2>Parcels received per day, last {DAYS} days {c_days}</h2>{bars}\
         <h2>Busiest hours of the week, last {HEATMAP_WEEKS} weeks {c_heat}</h2>{heat}\
         <h2>Utilisation per size class {c_use}</h2>\
         <table><tr><th>Size</th><th>Compartments</th><th>Occupied now</th><th>Average, last {DAYS} days</th></tr>{sizes}</table>",
        pickups = a.pickups,
        overdue = a.overdue,
        c_pick = csv("pickup"),
        c_days = csv("deliveries"),
        c_heat = csv("heatmap"),
        c_use = csv("utilisation"),
        bars = bar_chart(&a.per_day),
        heat = heatmap(&a.heatmap),
    );
    Html(html::page(&p, "/analytics", "Analytics", &q, &body)).into_response()
}

/// `GET /analytics/{chart}.csv`: one chart's numbers as a CSV download.
async fn export(
    State(web): State<Arc<Web>>,
    Page(p, ..): Page<Staff>,
    Path(file): Path<String>,
) -> Response {
    let chart = file.strip_suffix(".csv").unwrap_or("");
    if !CHARTS.contains(&chart) {
        return (
            StatusCode::NOT_FOUND,
            format!(
                "no chart {file:?}; the CSV exports are {}",
                CHARTS.map(|c| format!("{c}.csv")).join(", ")
            ),
        )
            .into_response();
    }
    let a = match web.app.analytics(&p.actor()).await {
        Ok(a) => a,
        Err(e) => return error_page("/analytics", &e),
    };
    let Some(body) = analytics::csv(&a, chart) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{chart}.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// Bars with the count on hover (`<title>`), a date under every seventh, and the scale's top.
fn bar_chart(days: &[(String, u32)]) -> String {
    const W: usize = 20;
    const H: u32 = 120;
    let max = days.iter().map(|d| d.1).max().unwrap_or(0).max(1);
    let mut svg = format!(
        "<svg class=chart role=img aria-label=\"parcels received per day\" viewBox=\"0 0 {} {}\">",
        // Room on the right for the last date's label.
        days.len() * W + 40 + 16,
        H + 30
    );
    svg += &format!("<text x=0 y=10>{max}</text><line x1=36 x2=36 y1=0 y2={H} />");
    for (i, (date, n)) in days.iter().enumerate() {
        let h = n * H / max;
        let x = 40 + i * W;
        svg += &format!(
            "<rect class=bar x={x} y={} width={} height={h}><title>{}: {n}</title></rect>",
            H - h,
            W - 4,
            escape(date)
        );
        if (days.len() - 1 - i).is_multiple_of(7) {
            // MM-DD is enough under a 30-day axis.
            svg += &format!(
                "<text x={x} y={}>{}</text>",
                H + 14,
                escape(date.get(5..).unwrap_or(date))
            );
        }
    }
    svg + "</svg>"
}

/// A 7×24 grid, darker for busier hours, with the count on hover.
fn heatmap(cells: &[[u32; 24]; 7]) -> String {
    const C: usize = 22;
    let max = cells.iter().flatten().copied().max().unwrap_or(0).max(1);
    let mut svg = format!(
        "<svg class=\"chart heat\" role=img aria-label=\"parcels received by weekday and hour\" viewBox=\"0 0 {} {}\">",
        40 + 24 * C,
        7 * C + 20
    );
    for (h, x) in (0..24).map(|h| (h, 40 + h * C)).step_by(3) {
        svg += &format!("<text x={x} y={}>{h:02}</text>", 7 * C + 14);
    }
    for (d, row) in cells.iter().enumerate() {
        let y = d * C;
        svg += &format!("<text x=0 y={}>{}</text>", y + 15, WEEKDAYS[d]);
        for (h, n) in row.iter().enumerate() {
            // A faint floor keeps empty hours visible as cells.
            let opacity = 0.06 + 0.94 * f64::from(*n) / f64::from(max);
            svg += &format!(
                "<rect x={} y={y} width={} height={} fill-opacity=\"{opacity:.2}\"><title>{} {h:02}:00–{h:02}:59: {n}</title></rect>",
                40 + h * C,
                C - 2,
                C - 2,
                WEEKDAYS[d]
            );
        }
    }
    svg + "</svg>"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_every_bucket_and_escape_nothing_unexpected() {
        let days: Vec<(String, u32)> = (1..=30).map(|d| (format!("2024-03-{d:02}"), d)).collect();
        let svg = bar_chart(&days);
        assert_eq!(svg.matches("<rect class=bar").count(), 30);
        assert!(svg.contains("<title>2024-03-30: 30</title>"));
        // The tallest bar fills the chart; the last day is labelled.
        assert!(svg.contains("y=0 width=16 height=120"));
        assert!(svg.contains(">03-30</text>"));
        let mut cells = [[0u32; 24]; 7];
        cells[1][1] = 4;
        let svg = heatmap(&cells);
        assert_eq!(svg.matches("<rect").count(), 7 * 24);
        assert!(svg.contains("fill-opacity=\"1.00\"><title>Tue 01:00–01:59: 4</title>"));
    }
}
