//! Identifiers and time.
//!
//! Everything that names a thing in the core is a small string newtype so it serialises as a plain
//! JSON string. `FactId` is special: it orders facts, and that order is the fold order on every
//! replica.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Wall-clock milliseconds since the Unix epoch, supplied by the shell. The core never reads a clock.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    /// `self + ms`, saturating so a huge configured duration cannot wrap into the past.
    pub fn plus(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }
    };
}

string_id!(
    /// A resident in the directory.
    ResidentId
);
string_id!(
    /// A carrier (delivery company or courier) in the directory.
    CarrierId
);
string_id!(
    /// A staff user, authenticated by the shell before it builds a command.
    StaffId
);
string_id!(
    /// A parcel; random, so ids from two replicas never collide.
    ParcelId
);
string_id!(
    /// A drop-off reservation; random, and used by the kiosk as the handle for its session.
    ReservationId
);
string_id!(
    /// One unlock decision; retries of the same decision reuse it.
    UnlockId
);
string_id!(
    /// One issued pickup credential (a PIN and its QR token).
    CodeId
);
string_id!(
    /// Client-chosen request id used for idempotency.
    RequestId
);
string_id!(
    /// An alert; equal to the id of the fact that raised it (or `conflict-<fact id>` for conflicts
    /// found while folding, so every replica derives the same id).
    AlertId
);

/// Globally unique, time-ordered fact id: `<ms, 13 digits>-<hub id>-<counter, 12 digits>`.
///
/// Ordering compares `(ms, hub, seq)`. Because hub ids only contain characters that sort after
/// `-` (see [`sanitize_hub_id`]), the string form sorts the same way, so a store may sort by the
/// string too.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FactId {
    pub ms: u64,
    pub hub: String,
    pub seq: u64,
}

impl Ord for FactId {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.ms, &self.hub, self.seq).cmp(&(other.ms, &other.hub, other.seq))
    }
}

impl PartialOrd for FactId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for FactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:013}-{}-{:012}", self.ms, self.hub, self.seq)
    }
}

/// Why a string is not a fact id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fact id {input:?}: {why}")]
pub struct FactIdError {
    pub input: String,
    pub why: &'static str,
}

impl FromStr for FactId {
    type Err = FactIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| FactIdError {
            input: s.to_owned(),
            why,
        };
        let (ms, rest) = s
            .split_once('-')
            .ok_or_else(|| err("expected <ms>-<hub>-<counter>"))?;
        let (hub, seq) = rest
            .rsplit_once('-')
            .ok_or_else(|| err("expected <ms>-<hub>-<counter>"))?;
        let ms = ms
            .parse()
            .map_err(|_| err("milliseconds are not a number"))?;
        let seq = seq.parse().map_err(|_| err("counter is not a number"))?;
        if hub.is_empty() || sanitize_hub_id(hub) != hub {
            return Err(err("hub id must be non-empty [A-Za-z0-9_.]"));
        }
        Ok(FactId {
            ms,
            hub: hub.to_owned(),
            seq,
        })
    }
}

impl Serialize for FactId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FactId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Hub ids go into fact ids, so they are restricted to `[A-Za-z0-9_.]`; anything else becomes
/// `_`. The daemon should validate its configured id; this is the last line of defence so a bad id
/// can never produce unparsable or mis-sorting fact ids.
pub fn sanitize_hub_id(hub: &str) -> String {
    let s: String = hub
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "hub".to_owned()
    } else {
        s
    }
}

/// The request id a request from the cloud (a `remote_requested` fact) runs under.
pub fn remote_request_id(fact: &FactId) -> RequestId {
    RequestId(format!("remote-{fact}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fact_id_round_trips_and_string_order_matches_struct_order() {
        let ids = [
            FactId {
                ms: 5,
                hub: "ab".into(),
                seq: 2,
            },
            FactId {
                ms: 5,
                hub: "abc".into(),
                seq: 1,
            },
            FactId {
                ms: 5,
                hub: "ab".into(),
                seq: 10,
            },
            FactId {
                ms: 4,
                hub: "z".into(),
                seq: 99,
            },
        ];
        for id in &ids {
            let parsed: FactId = id.to_string().parse().expect("own ids parse");
            assert_eq!(&parsed, id);
        }
        let mut by_struct = ids.to_vec();
        by_struct.sort();
        let mut by_string: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        by_string.sort();
        let strings: Vec<String> = by_struct.iter().map(|i| i.to_string()).collect();
        assert_eq!(strings, by_string);
    }

    #[test]
    fn malformed_fact_ids_are_rejected_with_reason() {
        for bad in ["", "12", "x-hub-1", "1-hub-x", "1--1", "1-h b-1"] {
            let e = bad.parse::<FactId>().expect_err(bad);
            assert!(e.to_string().contains("invalid fact id"), "{e}");
        }
    }

    #[test]
    fn hub_ids_are_sanitised() {
        assert_eq!(sanitize_hub_id("mail-room 1"), "mail_room_1");
        assert_eq!(sanitize_hub_id(""), "hub");
    }
}
