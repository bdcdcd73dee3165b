//! The bridge between the workflow core's facts and the state store, and between the
//! configuration and the core's view of the site.
//!
//! The store (`locker-sync`) is generic over [`Record`]; the core (`locker-core`) knows nothing of
//! storage. This module says which document each fact lives in.

use locker_config::{Config, SizeClass, TemperatureClass};
use locker_core::{
    BankLayout, CompartmentLayout, Fact, FactKind, Policies, SensorLayout, SiteLayout, Size,
    TempClass, UnitLayout,
};
use locker_sync::{DocKey, Family, Record};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A core fact as the store keeps it (the id's string form is cached: the store asks for it often).
#[derive(Clone, Debug)]
pub struct StoredFact {
    id: String,
    pub fact: Fact,
}

impl From<Fact> for StoredFact {
    fn from(fact: Fact) -> Self {
        StoredFact {
            id: fact.id.to_string(),
            fact,
        }
    }
}

impl Serialize for StoredFact {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.fact.serialize(s)
    }
}

impl<'de> Deserialize<'de> for StoredFact {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Fact::deserialize(d).map(StoredFact::from)
    }
}

impl Record for StoredFact {
    fn id(&self) -> &str {
        &self.id
    }

    fn at_ms(&self) -> u64 {
        self.fact.at.0
    }

    fn document(&self) -> DocKey {
        document_of(&self.fact)
    }
}

/// The document a fact lives in.
pub fn document_of(fact: &Fact) -> DocKey {
    {
        use FactKind::*;
        match &fact.kind {
            // Who lives here and who delivers: slowly changing, never partitioned.
            ResidentRegistered { .. }
            | ResidentsRegistered { .. }
            | ResidentDeactivated { .. }
            | BadgeRegistered { .. }
            | BadgeRevoked { .. }
            | CarrierRegistered { .. }
            | CarrierCodeIssued { .. }
            | CarrierCodeRevoked { .. }
            | CarrierRevoked { .. }
            | TrackingPreAdvised { .. }
            | VacationHoldSet { .. }
            | VacationHoldCleared { .. }
            // The rent roll's imports and reviews: a few facts a day at most.
            | ResidentOffRoll { .. }
            | RollImported { .. }
            | RollReviewQueued { .. }
            | RollReviewResolved { .. }
            | RollLinked { .. } => DocKey::Directory,
            // The banks' service state.
            ServiceChanged { .. } | BankOnline | BankOffline | DoorsUnreachable { .. } => {
                DocKey::Site
            }
            AlertRaised { .. } | AlertCleared { .. } => DocKey::monthly(Family::Alerts, fact.at.0),
            // One summary per sensor per interval: its own monthly partition, so a year of
            // summaries never weighs on the parcel documents loaded at start.
            TemperatureSummary { .. } => DocKey::monthly(Family::Temperature, fact.at.0),
            // What the cloud asks, in a document only the cloud writes.
            RemoteRequested { .. } => DocKey::monthly(Family::Requests, fact.at.0),
            // Everything else is part of a parcel's or a door's story.
            _ => DocKey::monthly(Family::Parcels, fact.at.0),
        }
    }
}

/// The core's view of the site's banks, compartments and refrigerated units.
pub fn site_layout(config: &Config) -> SiteLayout {
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    // The config keeps -50..30 °C, so tenths of a degree always fit.
    let deci = |c: f64| (c * 10.0).round() as i32;
    let units = config
        .banks
        .iter()
        .flat_map(|b| {
            b.units.iter().map(move |u| UnitLayout {
                bank: b.id.clone(),
                id: u.id.clone(),
                name: u.name.clone(),
                doors: b
                    .compartments
                    .iter()
                    .filter(|c| c.unit.as_deref() == Some(u.id.as_str()))
                    .map(|c| c.door)
                    .collect(),
                min_decicelsius: deci(u.min_c),
                max_decicelsius: deci(u.max_c),
                hysteresis_decicelsius: deci(u.hysteresis_c),
                alarm_after_ms: ms(u.alarm_after),
                door_grace_ms: ms(u.door_grace),
                door_open_limit_ms: ms(u.door_open_limit),
                excursion_limit_ms: ms(u.excursion_limit),
                summary_interval_ms: ms(u.summary_interval),
                silent_after_ms: ms(u.silent_after),
                sensors: u
                    .sensors
                    .iter()
                    .map(|s| SensorLayout {
                        id: s.id.clone(),
                        interval_ms: ms(s.interval),
                    })
                    .collect(),
            })
        })
        .collect();
    SiteLayout {
        units,
        banks: config
            .banks
            .iter()
            .map(|b| BankLayout {
                id: b.id.clone(),
                compartments: b
                    .compartments
                    .iter()
                    .map(|c| CompartmentLayout {
                        door: c.door,
                        size: size(c.size),
                        temperature: temperature(c.temperature),
                        accessible: c.accessible,
                        out_of_service: c.out_of_service,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The core's policies from the configuration (what the configuration does not set keeps the
/// core's documented default).
pub fn policies(config: &Config) -> Policies {
    let p = &config.policies;
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Policies {
        pin_length: p.pin_length,
        hold_ambient_ms: ms(p.hold.ambient),
        hold_refrigerated_ms: ms(p.hold.refrigerated),
        hold_frozen_ms: ms(p.hold.frozen),
        reminder_offsets_ms: p.reminders.iter().map(|d| ms(*d)).collect(),
        expiring_notice_ms: ms(p.expiring_notice),
        max_vacation_hold_ms: ms(p.max_vacation_hold),
        reservation_timeout_ms: ms(p.reservation_timeout),
        door_ajar_ms: ms(p.door_ajar_after),
        unlock_deadline_ms: ms(p.unlock_deadline),
        alert_grace_ms: ms(p.alert_grace),
        wrong_code_limit: p.lockout.max_failures,
        wrong_code_window_ms: ms(p.lockout.window),
        lockout_base_ms: ms(p.lockout.base_lockout),
        lockout_max_ms: ms(p.lockout.max_lockout),
        lockout_check_ms: ms(p.lockout.check_every),
        carrier_open_reservations: p.carrier_open_reservations,
        carrier_overflows_per_hour: p.carrier_overflows_per_hour,
        execute_remote_requests: config.sync.as_ref().is_some_and(|s| s.execute_requests),
        remote_open_max_age_ms: config
            .sync
            .as_ref()
            .map_or(10 * 60_000, |s| ms(s.remote_open_max_age)),
        remote_opens_per_hour: config.sync.as_ref().map_or(10, |s| s.remote_opens_per_hour),
        move_out_grace_ms: ms(config.import.move_out_grace),
        units: config.import.units.iter().cloned().collect(),
        ..Policies::default()
    }
}

fn size(s: SizeClass) -> Size {
    match s {
        SizeClass::XS => Size::ExtraSmall,
        SizeClass::S => Size::Small,
        SizeClass::M => Size::Medium,
        SizeClass::L => Size::Large,
        SizeClass::XL => Size::ExtraLarge,
        SizeClass::Bulk => Size::Bulk,
    }
}

fn temperature(t: TemperatureClass) -> TempClass {
    match t {
        TemperatureClass::Ambient => TempClass::Ambient,
        TemperatureClass::Refrigerated => TempClass::Refrigerated,
        TemperatureClass::Frozen => TempClass::Frozen,
    }
}
