//! The site's time zone: where times are shown and days and hours are bucketed.
//!
//! `[site] time_zone` names it (an IANA name, read from the system's zoneinfo, which Debian's
//! tzdata keeps current); without it the hub uses the system's zone. Nothing else in the hub
//! reads a zone: the core works in Unix milliseconds, and the web page and the analytics take
//! the zone from here.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use locker_core::Millis;

/// The zone of `[site] time_zone`, or the system's when the key is absent. A name the machine's
/// zoneinfo does not know (check-config only checks its shape) falls back to UTC, with a warning.
pub fn site_zone(name: Option<&str>) -> TimeZone {
    match name {
        Some(name) => TimeZone::get(name).unwrap_or_else(|e| {
            tracing::warn!(zone = name, error = %e, "the configured time zone is not in this machine's zoneinfo (is tzdata installed?); times are shown in UTC");
            TimeZone::UTC
        }),
        None => TimeZone::try_system().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the system time zone; times are shown in UTC");
            TimeZone::UTC
        }),
    }
}

/// A time as an instant jiff can place (times past jiff's range, which no clock gives, clamp).
pub fn instant(at: Millis) -> Timestamp {
    let ms = i64::try_from(at.0).unwrap_or(i64::MAX);
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_zone_is_used_and_an_unknown_one_falls_back_to_utc() {
        assert_eq!(site_zone(Some("Etc/GMT-3")).iana_name(), Some("Etc/GMT-3"));
        assert_eq!(site_zone(Some("Nowhere/Atlantis")), TimeZone::UTC);
    }
}
