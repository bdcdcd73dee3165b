//! Building pages: escaping, the page frame and navigation, flash messages, and times.
//!
//! Pages are plain Rust strings. Everything that did not come from this file is escaped with
//! [`escape`] on the way in; there is no template engine to keep the binary and the build small.

use std::collections::HashMap;

use jiff::tz::TimeZone;
use locker_core::Millis;

use super::session::Principal;
use locker_core::Role;

/// Escape text for HTML element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Percent-encode a query-string value.
pub fn url(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const HEAD: &str = "<!doctype html><html lang=en><meta charset=utf-8>\
<meta name=viewport content=\"width=device-width,initial-scale=1\">\
<link rel=stylesheet href=/assets/app.css>";

/// A page without navigation (sign-in, errors).
pub fn bare(title: &str, body: &str) -> String {
    format!(
        "{HEAD}<title>{t} · locker-hub</title><body class=bare><main><h1>{t}</h1>{body}</main></body></html>",
        t = escape(title)
    )
}

/// The hidden CSRF field every form carries.
pub fn csrf(p: &Principal) -> String {
    format!(
        "<input type=hidden name=csrf value=\"{}\">",
        escape(p.csrf.as_deref().unwrap_or(""))
    )
}

/// A staff page: navigation, flash message (`ok`/`err` in the query), then `body`.
pub fn page(
    p: &Principal,
    active: &str,
    title: &str,
    query: &HashMap<String, String>,
    body: &str,
) -> String {
    let mut nav = String::new();
    let mut links = vec![
        ("/", "Dashboard"),
        ("/parcels", "Parcels"),
        ("/residents", "Residents"),
        ("/carriers", "Carriers"),
        ("/analytics", "Analytics"),
        ("/alerts", "Alerts"),
        ("/notifications", "Notifications"),
        ("/units", "Refrigerated units"),
        ("/audit", "Audit log"),
        ("/kiosk", "Kiosk"),
        ("/system", "System"),
    ];
    if p.role == Role::Admin {
        links.push(("/users", "Users"));
    }
    for (href, name) in links {
        let cur = if href == active {
            " aria-current=page"
        } else {
            ""
        };
        nav += &format!("<a href={href}{cur}>{name}</a>");
    }
    let flash = match (query.get("ok"), query.get("err")) {
        (_, Some(e)) => format!("<p class=err role=alert>{}</p>", escape(e)),
        (Some(m), _) => format!("<p class=ok role=status>{}</p>", escape(m)),
        _ => String::new(),
    };
    format!(
        "{HEAD}<title>{t} · locker-hub</title><meta name=csrf content=\"{c}\">\
         <body><header><nav>{nav}</nav><form method=post action=/logout class=who>{cf}\
         <span>{u} ({r})</span><button>Sign out</button></form></header>\
         <main><h1>{t}</h1>{flash}{body}</main></body></html>",
        t = escape(title),
        c = escape(p.csrf.as_deref().unwrap_or("")),
        cf = csrf(p),
        u = escape(&p.user),
        r = p.role.as_str(),
    )
}

/// A time as an instant jiff can place.
pub use locker_app::time::instant;

/// `2025-03-01 14:05 CET`: a time on the wall clock of `tz`, with its abbreviation (pages call
/// `Web::time`, which passes the site's zone).
pub fn time_in(at: Millis, tz: &TimeZone) -> String {
    instant(at)
        .to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// `2025-03-01` (as an `<input type=date>` sends it) → the start of that day in `tz`.
pub fn parse_date_in(s: &str, tz: &TimeZone) -> Result<Millis, String> {
    start_of(parse_civil(s)?, tz).ok_or_else(|| not_a_date(s))
}

/// `2025-03-01` → the start of the next day in `tz`: the end (exclusive) of that day, which is
/// 23 or 25 hours after its start on the days the clocks change.
pub fn parse_date_end_in(s: &str, tz: &TimeZone) -> Result<Millis, String> {
    let date = parse_civil(s)?;
    date.tomorrow()
        .ok()
        .and_then(|next| start_of(next, tz))
        .ok_or_else(|| not_a_date(s))
}

fn not_a_date(s: &str) -> String {
    format!("{s:?} is not a date (YYYY-MM-DD)")
}

fn parse_civil(s: &str) -> Result<jiff::civil::Date, String> {
    let bad = || not_a_date(s);
    let mut parts = s.trim().split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let y: i16 = y.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    let d: i8 = d.parse().map_err(|_| bad())?;
    if !(1970..=9999).contains(&y) {
        return Err(bad());
    }
    // Rejects month 13 and 30 February alike.
    jiff::civil::Date::new(y, m, d).map_err(|_| bad())
}

/// The first instant of `date` on the wall clock of `tz`.
fn start_of(date: jiff::civil::Date, tz: &TimeZone) -> Option<Millis> {
    let start = date.to_zoned_datetime(tz.clone()).ok()?;
    u64::try_from(start.timestamp().as_millisecond())
        .ok()
        .map(Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn dates_round_trip() {
        let utc = TimeZone::UTC;
        assert_eq!(time_in(Millis(0), &utc), "1970-01-01 00:00 UTC");
        // 2024-02-29 12:34 UTC
        assert_eq!(
            time_in(Millis(1_709_210_040_000), &utc),
            "2024-02-29 12:34 UTC"
        );
        let day = parse_date_in("2024-02-29", &utc).expect("a date");
        assert_eq!(time_in(day, &utc), "2024-02-29 00:00 UTC");
        assert!(parse_date_in("2024-13-01", &utc).is_err());
        assert!(parse_date_in("2023-02-29", &utc).is_err());
        assert!(parse_date_in("yesterday", &utc).is_err());
    }

    #[test]
    fn times_are_shown_on_the_sites_wall_clock() {
        // A fixed offset needs no zoneinfo files on the machine running the test.
        let plus2 = TimeZone::fixed(jiff::tz::offset(2));
        assert_eq!(
            time_in(Millis(1_709_210_040_000), &plus2),
            "2024-02-29 14:34 +02"
        );
        // Midnight there is 22:00 UTC the day before.
        let day = parse_date_in("2024-03-01", &plus2).expect("a date");
        assert_eq!(time_in(day, &TimeZone::UTC), "2024-02-29 22:00 UTC");
    }

    #[test]
    fn a_day_ends_when_the_next_begins_also_when_the_clocks_change() {
        // Central Europe: the clocks go forward on 2024-03-31 (a 23-hour day) and back on
        // 2024-10-27 (25 hours). A POSIX rule needs no zoneinfo files.
        let cet = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("rule");
        let hours = |d: &str| {
            let start = parse_date_in(d, &cet).expect("start").0;
            let end = parse_date_end_in(d, &cet).expect("end").0;
            (end - start) / 3_600_000
        };
        assert_eq!(hours("2024-03-30"), 24);
        assert_eq!(hours("2024-03-31"), 23);
        assert_eq!(hours("2024-10-27"), 25);
        assert_eq!(
            time_in(parse_date_end_in("2024-03-31", &cet).expect("end"), &cet),
            "2024-04-01 00:00 CEST"
        );
        assert!(parse_date_end_in("2024-02-30", &cet).is_err());
    }

    #[test]
    fn url_encodes_reserved_characters() {
        assert_eq!(url("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
