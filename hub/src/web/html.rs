//! Building pages: escaping, the page frame and navigation, flash messages, and times.
//!
//! Pages are plain Rust strings. Everything that did not come from this file is escaped with
//! [`escape`] on the way in; there is no template engine to keep the binary and the build small.

use std::collections::HashMap;

use locker_core::Millis;

use super::auth::Principal;
use super::users::Role;

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
        ("/alerts", "Alerts"),
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

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01 (`days_from_civil`).
fn days(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2025-03-01 14:05` (UTC: the hub has no time-zone database; the page says so).
pub fn time(at: Millis) -> String {
    let secs = (at.0 / 1000) as i64;
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", s / 3600, s % 3600 / 60)
}

/// `2025-03-01` (as an `<input type=date>` sends it) → the start of that UTC day.
pub fn parse_date(s: &str) -> Result<Millis, String> {
    let bad = || format!("{s:?} is not a date (YYYY-MM-DD)");
    let mut parts = s.trim().split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let y: i64 = y.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    let d: u32 = d.parse().map_err(|_| bad())?;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok(Millis((days(y, m, d) * 86_400_000) as u64))
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
        assert_eq!(time(Millis(0)), "1970-01-01 00:00");
        // 2024-02-29 12:34 UTC
        assert_eq!(time(Millis(1_709_210_040_000)), "2024-02-29 12:34");
        let day = parse_date("2024-02-29").expect("a date");
        assert_eq!(time(day), "2024-02-29 00:00");
        assert!(parse_date("2024-13-01").is_err());
        assert!(parse_date("yesterday").is_err());
    }

    #[test]
    fn url_encodes_reserved_characters() {
        assert_eq!(url("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
