//! A synthetic fact shaped like the workflow core's (id `<ms>-<hub>-<counter>`, time, actor,
//! optional bank/door/parcel, a tagged kind), so the store's tests and benchmark do not depend
//! on the core.
#![allow(dead_code)]

use locker_sync::{DocKey, Family, Record};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub id: String,
    pub at_ms: u64,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parcel: Option<String>,
    pub kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Kind {
    Reserved {
        size: String,
    },
    Delivered {
        carrier: String,
        code_hash: String,
    },
    Notified {
        unit: String,
    },
    PickedUp {
        method: String,
    },
    Returned,
    Alert {
        what: String,
    },
    Temperature {
        unit: u32,
        min: f64,
        avg: f64,
        max: f64,
    },
    CompartmentService {
        in_service: bool,
    },
    Resident {
        unit: String,
        name: String,
    },
}

impl Record for Fact {
    fn id(&self) -> &str {
        &self.id
    }
    fn at_ms(&self) -> u64 {
        self.at_ms
    }
    fn document(&self) -> DocKey {
        match self.kind {
            Kind::CompartmentService { .. } => DocKey::Site,
            Kind::Resident { .. } => DocKey::Directory,
            Kind::Alert { .. } => DocKey::monthly(Family::Alerts, self.at_ms),
            Kind::Temperature { .. } => DocKey::monthly(Family::Temperature, self.at_ms),
            _ => DocKey::monthly(Family::Parcels, self.at_ms),
        }
    }
}

pub fn fact_id(at_ms: u64, hub: &str, counter: u64) -> String {
    format!("{at_ms:015}-{hub}-{counter}")
}

/// Makes facts with unique ids for one hub.
pub struct Gen {
    pub hub: String,
    pub counter: u64,
}

impl Gen {
    pub fn new(hub: &str) -> Gen {
        Gen {
            hub: hub.to_string(),
            counter: 0,
        }
    }

    pub fn fact(
        &mut self,
        at_ms: u64,
        parcel: Option<&str>,
        door: Option<u32>,
        kind: Kind,
    ) -> Fact {
        self.counter += 1;
        Fact {
            id: fact_id(at_ms, &self.hub, self.counter),
            at_ms,
            actor: format!("{}/actor", self.hub),
            bank: door.map(|_| "bank-a".to_string()),
            door,
            parcel: parcel.map(str::to_string),
            kind,
        }
    }

    /// The four facts of a parcel's life: reserved, delivered, notified, picked up.
    pub fn parcel_life(
        &mut self,
        at_ms: u64,
        parcel: &str,
        door: u32,
        picked_up: bool,
    ) -> Vec<Fact> {
        let mut v = vec![
            self.fact(
                at_ms,
                Some(parcel),
                Some(door),
                Kind::Reserved { size: "M".into() },
            ),
            self.fact(
                at_ms + 20_000,
                Some(parcel),
                Some(door),
                Kind::Delivered {
                    carrier: "ups".into(),
                    code_hash: format!("{:064x}", at_ms),
                },
            ),
            self.fact(
                at_ms + 21_000,
                Some(parcel),
                None,
                Kind::Notified { unit: "4B".into() },
            ),
        ];
        if picked_up {
            v.push(self.fact(
                at_ms + 3_600_000,
                Some(parcel),
                Some(door),
                Kind::PickedUp {
                    method: "pin".into(),
                },
            ));
        }
        v
    }
}

/// 2026-11-15T12:00:00Z
pub const NOV_15: u64 = 1_794_744_000_000;
pub const DAY: u64 = 86_400_000;

pub fn opts_at(now_ms: u64) -> locker_sync::StoreOptions {
    locker_sync::StoreOptions {
        now_ms: Some(now_ms),
        ..Default::default()
    }
}

/// A store of the site "maple" in `dir` for `hub`, at `NOV_15`.
pub fn open_maple(dir: &std::path::Path, hub: &str) -> locker_sync::Store<Fact> {
    let opts = locker_sync::StoreOptions {
        site_id: Some("maple".into()),
        now_ms: Some(NOV_15),
        ..Default::default()
    };
    locker_sync::Store::open(dir, hub, opts).unwrap().0
}

/// A session of `hub` with `peer` for tests: 5 s reply timeout, no requests documents wanted;
/// messages over `offload_bytes` are handed out to be merged elsewhere.
pub fn session_cfg(
    hub: &str,
    peer: &str,
    offload_bytes: Option<usize>,
) -> locker_sync::SessionConfig {
    locker_sync::SessionConfig {
        peer_id: format!("peer-{hub}"),
        storage_id: hub.into(),
        name: peer.into(),
        reply_timeout_ms: 5_000,
        want_requests: false,
        months_back: 24,
        offload_bytes,
    }
}
