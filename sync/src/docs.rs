//! The document model: which documents exist, how time-based facts are partitioned by month, which
//! partitions are "live" (loaded at start), when a partition expires, and each document's
//! automerge-repo id.
//!
//! Partitioning keeps every live document small: a month of parcels for a 400-unit building is
//! about 20,000 facts, while a year in one document would grow forever and take seconds to load.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// The time-partitioned document families. Site and directory are not partitioned: they hold the
/// (slowly changing) configuration of the building and its people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Parcels and the facts of their workflows (reserved, delivered, notified, picked up, ...),
    /// door events that belong to a workflow, staff actions on parcels.
    Parcels,
    /// Alerts raised and cleared (door forced, board offline, temperature out of range, ...).
    Alerts,
    /// Temperature summaries per interval (min/avg/max), never raw readings.
    Temperature,
    /// Requests from the cloud (written by the cloud only; see docs/sync.md).
    Requests,
}

impl Family {
    pub const ALL: [Family; 4] = [
        Family::Parcels,
        Family::Alerts,
        Family::Temperature,
        Family::Requests,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Parcels => "parcels",
            Family::Alerts => "alerts",
            Family::Temperature => "temperature",
            Family::Requests => "requests",
        }
    }
}

/// A calendar month (UTC), the unit of partitioning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    pub year: u16,
    /// 1..=12
    pub month: u8,
}

impl Month {
    /// The UTC month that contains `at_ms` (ms since the Unix epoch).
    pub fn of_ms(at_ms: u64) -> Month {
        let (year, month, _) = civil_from_days((at_ms / 86_400_000) as i64);
        Month {
            year: year.clamp(0, u16::MAX as i64) as u16,
            month: month as u8,
        }
    }

    /// Months since year 0, so that month arithmetic is plain subtraction.
    pub fn index(self) -> i64 {
        self.year as i64 * 12 + (self.month as i64 - 1)
    }

    pub fn from_index(index: i64) -> Month {
        Month {
            year: index.div_euclid(12).clamp(0, u16::MAX as i64) as u16,
            month: (index.rem_euclid(12) + 1) as u8,
        }
    }

    pub fn previous(self) -> Month {
        Month::from_index(self.index() - 1)
    }

    /// First ms of this month (UTC).
    pub fn start_ms(self) -> u64 {
        (days_from_civil(self.year as i64, self.month as i64, 1).max(0) as u64) * 86_400_000
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Names one document. Its string form (`site`, `directory`, `parcels-2026-11`, ...) is what the
/// store keys its index by and what logs and the web page show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocKey {
    /// Banks, compartments and their service state.
    Site,
    /// Residents, units, badges, carriers (codes and password hashes never go here).
    Directory,
    /// A time-partitioned document.
    Monthly(Family, Month),
}

impl DocKey {
    /// The partition of `family` that holds a fact that happened at `at_ms`.
    pub fn monthly(family: Family, at_ms: u64) -> DocKey {
        DocKey::Monthly(family, Month::of_ms(at_ms))
    }

    pub fn month(&self) -> Option<Month> {
        match self {
            DocKey::Monthly(_, m) => Some(*m),
            _ => None,
        }
    }

    /// Live documents are loaded at start and kept in memory: site, directory, and the current
    /// and previous month of every family (the previous month because a parcel delivered on the
    /// 31st is still in the locker on the 1st).
    pub fn is_live(&self, now_ms: u64) -> bool {
        match self.month() {
            None => true,
            Some(m) => {
                let now = Month::of_ms(now_ms).index();
                m.index() >= now - 1
            }
        }
    }

    /// A partition expires once all of it is older than `retention_months` full months.
    /// Site and directory never expire.
    pub fn is_expired(&self, now_ms: u64, retention_months: u32) -> bool {
        match self.month() {
            None => false,
            Some(m) => m.index() < Month::of_ms(now_ms).index() - retention_months as i64,
        }
    }

    /// The automerge-repo document id of this document at `site_id`: 16 bytes derived from the
    /// site and the name, so that every hub of a site and the cloud compute the same id for
    /// "parcels-2026-11" without talking to each other (automerge-repo ids are otherwise random
    /// and there would be two documents for one month). The UUID version/variant bits are set
    /// as for a random (v4) UUID because automerge-repo validates ids as UUIDs.
    pub fn document_id(&self, site_id: &str) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(b"locker-hub/document-id/v1\0");
        h.update(site_id.as_bytes());
        h.update(b"\0");
        h.update(self.to_string().as_bytes());
        let digest = h.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        id
    }
}

/// The automerge-repo text form of a document id (base58check, as in `automerge:<id>` URLs).
pub fn document_id_string(id: &[u8; 16]) -> String {
    bs58::encode(id).with_check().into_string()
}

impl fmt::Display for DocKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocKey::Site => f.write_str("site"),
            DocKey::Directory => f.write_str("directory"),
            DocKey::Monthly(family, m) => write!(f, "{}-{}", family.as_str(), m),
        }
    }
}

impl FromStr for DocKey {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<DocKey, StoreError> {
        let bad = || StoreError::BadDocName(s.to_string());
        match s {
            "site" => return Ok(DocKey::Site),
            "directory" => return Ok(DocKey::Directory),
            _ => {}
        }
        // <family>-YYYY-MM
        let (rest, mm) = s.rsplit_once('-').ok_or_else(bad)?;
        let (family, yyyy) = rest.rsplit_once('-').ok_or_else(bad)?;
        let family = Family::ALL
            .into_iter()
            .find(|f| f.as_str() == family)
            .ok_or_else(bad)?;
        if yyyy.len() != 4 || mm.len() != 2 {
            return Err(bad());
        }
        let year: u16 = yyyy.parse().map_err(|_| bad())?;
        let month: u8 = mm.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(DocKey::Monthly(family, Month { year, month }))
    }
}

// Howard Hinnant's civil calendar algorithms (public domain): days since 1970-01-01 <-> y/m/d.
// Written out here so the store needs no date crate for one conversion.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_of_known_instants() {
        // 2026-11-30T23:59:59.999Z and one ms later
        assert_eq!(Month::of_ms(1_796_083_199_999).to_string(), "2026-11");
        assert_eq!(Month::of_ms(1_796_083_200_000).to_string(), "2026-12");
        assert_eq!(Month::of_ms(0).to_string(), "1970-01");
        // leap day 2028-02-29T12:00Z
        assert_eq!(Month::of_ms(1_835_438_400_000).to_string(), "2028-02");
        let m = Month {
            year: 2027,
            month: 1,
        };
        assert_eq!(m.previous().to_string(), "2026-12");
        assert_eq!(Month::of_ms(m.start_ms()), m);
        assert_eq!(Month::of_ms(m.start_ms() - 1), m.previous());
    }

    #[test]
    fn names_round_trip_and_bad_names_are_rejected() {
        for key in [
            DocKey::Site,
            DocKey::Directory,
            DocKey::Monthly(
                Family::Temperature,
                Month {
                    year: 2026,
                    month: 3,
                },
            ),
        ] {
            assert_eq!(key.to_string().parse::<DocKey>().ok(), Some(key));
        }
        for bad in [
            "",
            "parcels",
            "parcels-2026-13",
            "parcels-26-01",
            "foo-2026-01",
            "site-2026-01",
        ] {
            assert!(bad.parse::<DocKey>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn live_window_and_retention() {
        let now = Month {
            year: 2026,
            month: 1,
        }
        .start_ms()
            + 5;
        let doc = |y, m| DocKey::Monthly(Family::Parcels, Month { year: y, month: m });
        assert!(doc(2026, 1).is_live(now));
        assert!(
            doc(2025, 12).is_live(now),
            "previous month stays live across the year end"
        );
        assert!(!doc(2025, 11).is_live(now));
        assert!(DocKey::Site.is_live(now));
        assert!(!doc(2024, 1).is_expired(now, 24));
        assert!(doc(2023, 12).is_expired(now, 24));
        assert!(!DocKey::Directory.is_expired(now, 0));
    }

    #[test]
    fn document_ids_are_stable_per_site_and_name() {
        let a = DocKey::Site.document_id("site-a");
        assert_eq!(a, DocKey::Site.document_id("site-a"));
        assert_ne!(a, DocKey::Site.document_id("site-b"));
        assert_ne!(a, DocKey::Directory.document_id("site-a"));
        assert_eq!(a[6] >> 4, 4, "UUID version nibble");
        assert_eq!(a[8] >> 6, 0b10, "UUID variant bits");
        let text = document_id_string(&a);
        let back = bs58::decode(&text).with_check(None).into_vec().unwrap();
        assert_eq!(back, a);
    }
}
