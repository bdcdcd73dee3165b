//! Who this hub is (`[site]`): identity, where it keeps its state, and its local time zone.
//!
//! ```toml
//! [site]
//! id = "maple-court"                  # required: lowercase letters, digits and '-'
//! name = "Maple Court Apartments"     # default: the id
//! data_dir = "/var/lib/locker-hub"    # default shown
//! time_zone = "America/New_York"      # IANA name; default: the system's zone
//! retention_months = 24               # audit history kept on the hub, 1 to 120; default 24
//! storage_reserve_mib = 64             # below this much free space, requests are refused; default 64
//! ```

use std::path::PathBuf;

use crate::diagnostics::did_you_mean;
use crate::raw::{Ctx, Table};

/// Where state is kept unless `data_dir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/locker-hub";
/// Months of audit history kept on the hub unless `retention_months` says otherwise.
pub const DEFAULT_RETENTION_MONTHS: u32 = 24;

/// The site this hub serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Stable identifier (lowercase letters, digits, `-`); part of MQTT topics and sync ids.
    pub id: String,
    /// Human name shown on the web page; defaults to the id.
    pub name: String,
    /// Directory for the redb state store and other durable files.
    pub data_dir: PathBuf,
    /// IANA time-zone name (`Europe/Berlin`) for the times the web page shows and the days and
    /// hours analytics buckets by; `None`: the system's zone.
    pub time_zone: Option<String>,
    /// Months of history (deliveries, pickups, alerts) kept on the hub; older monthly documents
    /// are deleted locally (the cloud may keep more).
    pub retention_months: u32,
    /// Free space (MiB) kept in reserve in the data directory's filesystem: below it, requests
    /// that need recording are refused with a clear reply (the reserve takes the observations and
    /// unlocks already under way); 0 turns the check off.
    pub storage_reserve_mib: u32,
    /// This hub's own id, in every fact id it makes. `None`: the id its data directory was made
    /// with, or a new random one (`<site>_<8 hex>`) for a new data directory.
    pub hub_id: Option<String>,
}

/// Top-level areas of IANA zone names, plus the legacy aliases tzdata still ships.
const TZ_AREAS: [&str; 16] = [
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
    "Etc",
    "US",
    "Canada",
    "Mexico",
    "Brazil",
    "Chile",
];

pub(crate) fn read(root: &mut Table, cx: &mut Ctx) -> Option<Site> {
    let mut t = root.require(cx, "site")?.table(cx)?;
    let id = t.require(cx, "id").and_then(|item| {
        let id = item.str(cx)?;
        match check_site_id(id) {
            Ok(()) => Some(id.to_owned()),
            Err(message) => {
                cx.error(&item.span(), item.key(), message);
                None
            }
        }
    });
    let name = t.opt_string(cx, "name");
    let hub_id = match t.get("hub_id") {
        None => Some(None),
        Some(item) => item.str(cx).and_then(|h| match check_hub_id(h) {
            Ok(()) => Some(Some(h.to_owned())),
            Err(message) => {
                cx.error(&item.span(), item.key(), message);
                None
            }
        }),
    };
    let data_dir = match t.get("data_dir") {
        None => Some(PathBuf::from(DEFAULT_DATA_DIR)),
        Some(item) => item.path(cx),
    };
    let time_zone = match t.get("time_zone") {
        None => Some(None),
        Some(item) => item.str(cx).and_then(|tz| match check_time_zone(tz) {
            Ok(()) => Some(Some(tz.to_owned())),
            Err(message) => {
                cx.error(&item.span(), item.key(), message);
                None
            }
        }),
    };
    let retention_months = t.int_or(
        cx,
        "retention_months",
        1..=120,
        i64::from(DEFAULT_RETENTION_MONTHS),
    ) as u32;
    let storage_reserve_mib = t.int_or(cx, "storage_reserve_mib", 0..=100_000, 64) as u32;
    t.finish(cx);
    let id = id?;
    Some(Site {
        retention_months,
        storage_reserve_mib,
        name: name.unwrap_or_else(|| id.clone()),
        id,
        data_dir: data_dir?,
        time_zone: time_zone?,
        hub_id: hub_id?,
    })
}

fn check_site_id(id: &str) -> Result<(), String> {
    let shape_ok = !id.is_empty()
        && id.len() <= 63
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if shape_ok {
        Ok(())
    } else {
        Err(format!(
            "site id `{id}` must be 1-63 lowercase letters, digits or '-' (not at either end), \
             e.g. `maple-court`"
        ))
    }
}

/// A hub id is part of every fact id (`<ms>-<hub>-<seq>`): 1 to 40 letters, digits, `_` or `.`.
fn check_hub_id(h: &str) -> Result<(), String> {
    let ok = !h.is_empty()
        && h.len() <= 40
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if h == "cloud" {
        // The cloud's facts carry this author (docs/sync.md): a hub named so could not be told
        // apart from it.
        Err("`cloud` is the author name of the cloud's facts; choose another hub id".into())
    } else if ok {
        Ok(())
    } else {
        Err(format!(
            "`{h}` must be 1 to 40 letters, digits, '_' or '.' (it is part of every fact id)"
        ))
    }
}

/// Checks the shape of an IANA name (`Area/Location[/Sub]`, `UTC`, `Etc/GMT+5`). The hub
/// carries no zone database here, so this catches typos, not zones that do not exist.
fn check_time_zone(tz: &str) -> Result<(), String> {
    if matches!(tz, "UTC" | "GMT") {
        return Ok(());
    }
    let mut parts = tz.split('/');
    let area = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let part_ok = |p: &&str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
    };
    if !TZ_AREAS.contains(&area) {
        let hint = match did_you_mean(area, TZ_AREAS) {
            Some(close) => format!(" (did you mean `{close}`?)"),
            None => String::new(),
        };
        return Err(format!(
            "`{tz}` is not an IANA time-zone name{hint}: write e.g. `Europe/Berlin`, \
             `America/New_York` or `UTC`"
        ));
    }
    if rest.is_empty() || !rest.iter().all(part_ok) {
        return Err(format!(
            "`{tz}` is not an IANA time-zone name: expected `{area}/City`, e.g. `Europe/Berlin`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_ids() {
        assert!(check_site_id("maple-court").is_ok());
        assert!(check_site_id("b12").is_ok());
        assert!(check_site_id("").is_err());
        assert!(check_site_id("Maple").is_err());
        assert!(check_site_id("-x").is_err());
        assert!(check_site_id("a_b").is_err());
        assert!(check_site_id(&"a".repeat(64)).is_err());
    }

    #[test]
    fn time_zones() {
        for ok in [
            "UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
            "America/Port-au-Prince",
            "US/Eastern",
        ] {
            assert_eq!(check_time_zone(ok), Ok(()), "{ok}");
        }
        assert!(check_time_zone("europe/berlin")
            .unwrap_err()
            .contains("did you mean `Europe`"));
        assert!(check_time_zone("Europe").is_err());
        assert!(check_time_zone("Europe/").is_err());
        assert!(check_time_zone("CET+1").is_err());
        assert!(check_time_zone("Europe/Ber lin").is_err());
    }
}
