//! Refrigerated units: temperature alarms with a delay and hysteresis, silent sensors, a door
//! left open, perishable parcels flagged after a long excursion, and per-interval summaries.
//!
//! Readings are raw telemetry: they are never recorded one by one. What they lead to is: an alarm
//! raised or cleared (`AlertRaised` with a [`UnitRef`], `AlertCleared`), a parcel flagged
//! (`PerishableFlagged`) and one `TemperatureSummary` per sensor per interval. The clocks that
//! readings drive (how long a sensor has been outside the band, the running summary, when the
//! unit's door opened) are kept in memory in [`Live`]. After a restart the excursion clock resumes
//! from the open alarm's `since`, so an excursion that was already alarmed still flags its
//! parcels on time; an excursion that had not alarmed yet starts again with the next reading.
//!
//! * **Too warm / too cold**: a reading outside `min..max` starts the clock, unless a door of the
//!   unit is open or closed less than `door_grace` ago (loading lets warm air in). The alarm is
//!   raised once the readings have stayed outside for `alarm_after`; a reading back inside the
//!   band before that stops the clock. An alarm clears only when a reading is back inside the
//!   band by the hysteresis margin.
//! * **Sensor silent**: no reading for `max(3 × interval, silent_after)`, counted from the last
//!   reading or, for a sensor never heard, from the first tick. The next reading clears it.
//! * **Door left open**: the unit's own door (its controller's door input) open longer than
//!   `door_open_limit`. Compartment doors have their own door-ajar alarm.
//! * **Perishable**: an excursion longer than `excursion_limit` flags every parcel then in the
//!   unit's compartments, each with a fact, and one alert names them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::{Core, Subject, Tx};
use crate::fact::{Actor, AlertKind, FactKind, UnitRef};
use crate::ids::{AlertId, FactId, Millis, ParcelId};
use crate::layout::UnitLayout;
use crate::state::Alert;

/// (bank, unit, sensor)
type SensorKey = (String, String, String);
/// (bank, unit)
type UnitKey = (String, String);

/// At most this many device alarm names are kept from one reading, each at most this long: they
/// come from outside and end up in alert messages.
const DEVICE_ALARMS_MAX: usize = 8;
const DEVICE_ALARM_LEN: usize = 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Warm,
    Cold,
}

impl Side {
    fn kind(self) -> AlertKind {
        match self {
            Side::Warm => AlertKind::TooWarm,
            Side::Cold => AlertKind::TooCold,
        }
    }
}

/// What readings drive, kept in memory (readings are not facts).
#[derive(Clone, Debug, Default)]
pub(crate) struct Live {
    sensors: BTreeMap<SensorKey, SensorLive>,
    units: BTreeMap<UnitKey, UnitLive>,
}

#[derive(Clone, Debug, Default)]
struct SensorLive {
    last_at: Option<Millis>,
    last_decicelsius: Option<i32>,
    /// When the hub started watching a sensor it has not heard yet (silence counts from here).
    watch_since: Option<Millis>,
    device_alarms: Vec<String>,
    /// The excursion clock: the first counted reading outside the band, and which side.
    out: Option<(Millis, Side)>,
    running: Option<Running>,
}

#[derive(Clone, Copy, Debug)]
struct Running {
    from: Millis,
    count: u32,
    min: i32,
    max: i32,
    sum: i64,
}

#[derive(Clone, Debug, Default)]
struct UnitLive {
    /// The unit's own door, as its controller reports it.
    door_open_since: Option<Millis>,
    door_closed_at: Option<Millis>,
}

/// A refrigerated unit as the staff page and the API show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitView {
    pub bank: String,
    pub unit: String,
    pub name: String,
    pub doors: Vec<u16>,
    pub min_decicelsius: i32,
    pub max_decicelsius: i32,
    pub hysteresis_decicelsius: i32,
    pub alarm_after_ms: u64,
    pub door_grace_ms: u64,
    pub excursion_limit_ms: u64,
    pub summary_interval_ms: u64,
    /// The unit's own door (from its controller), or a compartment door of the unit, is open.
    pub door_open: bool,
    /// Start of the current excursion (the earliest of its sensors'), if one is under way.
    pub excursion_since: Option<Millis>,
    pub sensors: Vec<SensorView>,
    /// Open alarms of this unit.
    pub alerts: Vec<Alert>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorView {
    pub sensor: String,
    pub decicelsius: Option<i32>,
    pub last_reading_at: Option<Millis>,
    pub interval_ms: u64,
    pub silent_after_ms: u64,
    pub device_alarms: Vec<String>,
}

/// One recorded summary of a sensor's readings over `[from, to)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryView {
    pub sensor: String,
    pub from: Millis,
    pub to: Millis,
    pub count: u32,
    pub min_decicelsius: i32,
    pub max_decicelsius: i32,
    pub mean_decicelsius: i32,
}

fn celsius(dc: i32) -> String {
    format!("{:.1} °C", f64::from(dc) / 10.0)
}

fn minutes(ms: u64) -> String {
    if ms < 120_000 {
        format!("{} s", ms / 1000)
    } else {
        format!("{} min", ms / 60_000)
    }
}

fn skey(u: &UnitLayout, sensor: &str) -> SensorKey {
    (u.bank.clone(), u.id.clone(), sensor.to_owned())
}

fn ukey(u: &UnitLayout) -> UnitKey {
    (u.bank.clone(), u.id.clone())
}

impl Core {
    /// One reading of a unit's sensor. Readings of units or sensors the layout does not know
    /// change nothing (the shell refuses them before they get here, with a warning).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn unit_reading(
        &mut self,
        tx: &mut Tx,
        bank: &str,
        unit: &str,
        sensor: &str,
        decicelsius: i32,
        door_open: Option<bool>,
        device_alarms: Vec<String>,
    ) {
        let Some(layout) = self.ctx.site.unit(bank, unit).cloned() else {
            return;
        };
        if layout.sensor(sensor).is_none() {
            return;
        }
        let now = tx.now;
        self.clear_unit_alerts(tx, AlertKind::SensorSilent, &layout, Some(sensor));
        if let Some(open) = door_open {
            self.unit_door(tx, &layout, open);
        }
        self.device_alarms(tx, &layout, sensor, device_alarms);
        self.summarise(tx, &layout, sensor, Some(decicelsius));
        let live = self.cold.sensors.entry(skey(&layout, sensor)).or_default();
        live.last_at = Some(now);
        live.last_decicelsius = Some(decicelsius);
        self.judge(tx, &layout, sensor, decicelsius);
        // With a zero delay, the alarm is due with this very reading.
        self.unit_timers(tx, &layout);
    }

    /// Compare a reading with the band: clear alarms that are back inside by the hysteresis
    /// margin, and start, keep or stop the excursion clock.
    fn judge(&mut self, tx: &mut Tx, u: &UnitLayout, sensor: &str, dc: i32) {
        let side = if dc > u.max_decicelsius {
            Some(Side::Warm)
        } else if dc < u.min_decicelsius {
            Some(Side::Cold)
        } else {
            None
        };
        let h = u.hysteresis_decicelsius.max(0);
        for s in [Side::Warm, Side::Cold] {
            let back = match s {
                Side::Warm => dc <= u.max_decicelsius - h,
                Side::Cold => dc >= u.min_decicelsius + h,
            };
            if back && !self.unit_alerts(s.kind(), u, Some(sensor)).is_empty() {
                self.clear_unit_alerts(tx, s.kind(), u, Some(sensor));
            }
        }
        let grace = self.in_grace(u, tx.now);
        let alarmed = |core: &Core, s: Side| core.alarm_since(s, u, sensor);
        let out = match side {
            Some(s) => {
                let running = self
                    .cold
                    .sensors
                    .get(&skey(u, sensor))
                    .and_then(|l| l.out)
                    .filter(|(_, o)| *o == s)
                    .or_else(|| alarmed(self, s).map(|t| (t, s)));
                match running {
                    Some(r) => Some(r),
                    // Loading warms the cabinet for a while: such readings start no clock.
                    None if grace => None,
                    None => Some((tx.now, s)),
                }
            }
            // Inside the band: the excursion lasts while an alarm waits for the margin.
            None => [Side::Warm, Side::Cold]
                .into_iter()
                .find_map(|s| alarmed(self, s).map(|t| (t, s))),
        };
        if let Some(live) = self.cold.sensors.get_mut(&skey(u, sensor)) {
            live.out = out;
        }
    }

    /// When the open too-warm or too-cold alarm of a sensor says its excursion began.
    fn alarm_since(&self, side: Side, u: &UnitLayout, sensor: &str) -> Option<Millis> {
        self.unit_alerts(side.kind(), u, Some(sensor))
            .into_iter()
            .map(|a| a.unit.as_ref().and_then(|r| r.since).unwrap_or(a.raised_at))
            .min()
    }

    /// A door of the unit is open, or closed less than `door_grace` ago.
    fn in_grace(&self, u: &UnitLayout, now: Millis) -> bool {
        let recent = |closed: Option<Millis>| closed.is_some_and(|t| now < t.plus(u.door_grace_ms));
        let unit = self.cold.units.get(&ukey(u));
        if unit.is_some_and(|l| l.door_open_since.is_some() || recent(l.door_closed_at)) {
            return true;
        }
        u.doors.iter().any(|d| {
            self.state
                .comps
                .get(&(u.bank.clone(), *d))
                .is_some_and(|c| c.door_open || recent(c.closed_at))
        })
    }

    fn unit_door(&mut self, tx: &mut Tx, u: &UnitLayout, open: bool) {
        let live = self.cold.units.entry(ukey(u)).or_default();
        if open {
            live.door_open_since.get_or_insert(tx.now);
        } else {
            if live.door_open_since.take().is_some() {
                live.door_closed_at = Some(tx.now);
            }
            // Also after a restart, when memory no longer knows the door was open.
            self.clear_unit_alerts(tx, AlertKind::UnitDoorOpen, u, None);
        }
    }

    fn device_alarms(&mut self, tx: &mut Tx, u: &UnitLayout, sensor: &str, alarms: Vec<String>) {
        let mut alarms: Vec<String> = alarms
            .into_iter()
            .map(|a| {
                a.chars()
                    .filter(|c| !c.is_control())
                    .take(DEVICE_ALARM_LEN)
                    .collect::<String>()
            })
            .filter(|a| !a.trim().is_empty())
            .take(DEVICE_ALARMS_MAX)
            .collect();
        alarms.sort();
        alarms.dedup();
        let open = !self
            .unit_alerts(AlertKind::UnitDeviceAlarm, u, Some(sensor))
            .is_empty();
        if alarms.is_empty() && open {
            self.clear_unit_alerts(tx, AlertKind::UnitDeviceAlarm, u, Some(sensor));
        } else if !alarms.is_empty() && !open {
            let message = format!(
                "{} ({}/{}): the controller behind sensor {sensor} reports {}",
                u.name,
                u.bank,
                u.id,
                alarms.join(", ")
            );
            self.raise_unit_alert(
                tx,
                AlertKind::UnitDeviceAlarm,
                u,
                Some(sensor),
                None,
                message,
            );
        }
        self.cold
            .sensors
            .entry(skey(u, sensor))
            .or_default()
            .device_alarms = alarms;
    }

    /// Add a reading to the running summary of its interval, first writing the summary of an
    /// interval that has ended. With no reading (a tick), only writes what has ended.
    fn summarise(&mut self, tx: &mut Tx, u: &UnitLayout, sensor: &str, reading: Option<i32>) {
        let interval = u.summary_interval_ms.max(1);
        let start = Millis(tx.now.0 / interval * interval);
        let key = skey(u, sensor);
        let live = self.cold.sensors.entry(key.clone()).or_default();
        let ended = live
            .running
            .filter(|r| r.from.plus(interval) <= tx.now || r.from > start);
        if ended.is_some() {
            live.running = None;
        }
        if let Some(dc) = reading {
            let r = live.running.get_or_insert(Running {
                from: start,
                count: 0,
                min: dc,
                max: dc,
                sum: 0,
            });
            r.count += 1;
            r.min = r.min.min(dc);
            r.max = r.max.max(dc);
            r.sum += i64::from(dc);
        }
        let Some(r) = ended else { return };
        // A summary already recorded for this interval (the hub restarted at a boundary) wins.
        if self
            .state
            .summarized
            .get(&key)
            .is_some_and(|to| *to > r.from)
        {
            return;
        }
        let mean = (r.sum as f64 / f64::from(r.count.max(1))).round() as i32;
        self.record(
            tx,
            Actor::System,
            Subject::bank(&u.bank),
            FactKind::TemperatureSummary {
                unit: u.id.clone(),
                sensor: sensor.to_owned(),
                from: r.from,
                to: r.from.plus(interval),
                count: r.count,
                min_decicelsius: r.min,
                max_decicelsius: r.max,
                mean_decicelsius: mean,
            },
        );
    }

    /// Everything time-driven for every unit.
    pub(crate) fn cold_timers(&mut self, tx: &mut Tx) {
        let units = self.ctx.site.units.clone();
        for u in &units {
            for s in &u.sensors {
                self.summarise(tx, u, &s.id, None);
            }
            self.unit_timers(tx, u);
        }
    }

    /// Alarms that are due, silence, the door, and perishable flags, for one unit.
    fn unit_timers(&mut self, tx: &mut Tx, u: &UnitLayout) {
        let now = tx.now;
        for s in &u.sensors {
            let live = self.cold.sensors.entry(skey(u, &s.id)).or_default();
            let heard = live.last_at.or(live.watch_since);
            let (out, last) = (live.out, live.last_decicelsius);
            let Some(heard) = heard else {
                // Never heard and never looked: silence counts from now.
                live.watch_since = Some(now);
                continue;
            };
            if let Some((since, side)) = out {
                if now >= since.plus(u.alarm_after_ms)
                    && self.unit_alerts(side.kind(), u, Some(&s.id)).is_empty()
                {
                    let (what, limit) = match side {
                        Side::Warm => ("above", u.max_decicelsius),
                        Side::Cold => ("below", u.min_decicelsius),
                    };
                    let message = format!(
                        "{} ({}/{}) sensor {} has read {what} {} for {} (last {})",
                        u.name,
                        u.bank,
                        u.id,
                        s.id,
                        celsius(limit),
                        minutes(now.0.saturating_sub(since.0)),
                        last.map(celsius).unwrap_or_else(|| "-".into()),
                    );
                    self.raise_unit_alert(tx, side.kind(), u, Some(&s.id), Some(since), message);
                }
            }
            let silent_after = u.silent_after(s);
            if now >= heard.plus(silent_after)
                && self
                    .unit_alerts(AlertKind::SensorSilent, u, Some(&s.id))
                    .is_empty()
            {
                let message = format!(
                    "{} ({}/{}) sensor {} has sent no reading for {}: its temperature is unknown",
                    u.name,
                    u.bank,
                    u.id,
                    s.id,
                    minutes(now.0.saturating_sub(heard.0)),
                );
                self.raise_unit_alert(
                    tx,
                    AlertKind::SensorSilent,
                    u,
                    Some(&s.id),
                    Some(heard),
                    message,
                );
            }
        }
        if let Some(since) = self
            .cold
            .units
            .get(&ukey(u))
            .and_then(|l| l.door_open_since)
        {
            if now >= since.plus(u.door_open_limit_ms)
                && self
                    .unit_alerts(AlertKind::UnitDoorOpen, u, None)
                    .is_empty()
            {
                let message = format!(
                    "{} ({}/{}): its door has been open for {}",
                    u.name,
                    u.bank,
                    u.id,
                    minutes(now.0.saturating_sub(since.0))
                );
                self.raise_unit_alert(tx, AlertKind::UnitDoorOpen, u, None, Some(since), message);
            }
        }
        if let Some(since) = self.excursion_since(u) {
            if now >= since.plus(u.excursion_limit_ms) {
                self.flag_perishables(tx, u, since);
            }
        }
    }

    /// Flag every parcel in the unit not yet flagged for this excursion, and name them to staff.
    fn flag_perishables(&mut self, tx: &mut Tx, u: &UnitLayout, since: Millis) {
        let found = self.unflagged(u, since);
        if found.is_empty() {
            return;
        }
        for (door, parcel) in &found {
            self.record(
                tx,
                Actor::System,
                Subject::door(&u.bank, *door).parcel(parcel),
                FactKind::PerishableFlagged {
                    unit: u.id.clone(),
                    since,
                },
            );
        }
        let names: Vec<String> = found
            .iter()
            .map(|(d, p)| format!("{p} (door {d})"))
            .collect();
        let message = format!(
            "{} ({}/{}) has been outside {}..{} for {}: check or replace the perishable parcels {}",
            u.name,
            u.bank,
            u.id,
            celsius(u.min_decicelsius),
            celsius(u.max_decicelsius),
            minutes(tx.now.0.saturating_sub(since.0)),
            names.join(", ")
        );
        self.raise_unit_alert(
            tx,
            AlertKind::PerishableAtRisk,
            u,
            None,
            Some(since),
            message,
        );
    }

    /// Parcels in the unit's compartments not flagged for the excursion that began at `since`.
    fn unflagged(&self, u: &UnitLayout, since: Millis) -> Vec<(u16, ParcelId)> {
        u.doors
            .iter()
            .flat_map(|d| {
                self.state
                    .parcels_at(&u.bank, *d)
                    .into_iter()
                    .filter(|p| {
                        !p.perishable
                            .as_ref()
                            .is_some_and(|(unit, s)| *unit == u.id && *s >= since)
                    })
                    .map(|p| (*d, p.id.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Start of the unit's current excursion: the earliest of its sensors' clocks, or of its
    /// open temperature alarms (after a restart, before the next reading).
    fn excursion_since(&self, u: &UnitLayout) -> Option<Millis> {
        u.sensors
            .iter()
            .filter_map(|s| {
                let live = self
                    .cold
                    .sensors
                    .get(&skey(u, &s.id))
                    .and_then(|l| l.out)
                    .map(|(t, _)| t);
                let alarmed = [Side::Warm, Side::Cold]
                    .into_iter()
                    .filter_map(|side| self.alarm_since(side, u, &s.id))
                    .min();
                match (live, alarmed) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            })
            .min()
    }

    /// When `tick` next has something to do for the units.
    pub(crate) fn cold_deadlines(&self) -> Vec<Millis> {
        let mut d = Vec::new();
        for u in &self.ctx.site.units {
            for s in &u.sensors {
                let live = self.cold.sensors.get(&skey(u, &s.id));
                match live.and_then(|l| l.last_at.or(l.watch_since)) {
                    // Start watching it now.
                    None => d.push(Millis(0)),
                    Some(t) => {
                        if self
                            .unit_alerts(AlertKind::SensorSilent, u, Some(&s.id))
                            .is_empty()
                        {
                            d.push(t.plus(u.silent_after(s)));
                        }
                    }
                }
                if let Some((since, side)) = live.and_then(|l| l.out) {
                    if self.unit_alerts(side.kind(), u, Some(&s.id)).is_empty() {
                        d.push(since.plus(u.alarm_after_ms));
                    }
                }
                if let Some(r) = live.and_then(|l| l.running) {
                    d.push(r.from.plus(u.summary_interval_ms.max(1)));
                }
            }
            if let Some(since) = self
                .cold
                .units
                .get(&ukey(u))
                .and_then(|l| l.door_open_since)
            {
                if self
                    .unit_alerts(AlertKind::UnitDoorOpen, u, None)
                    .is_empty()
                {
                    d.push(since.plus(u.door_open_limit_ms));
                }
            }
            if let Some(since) = self.excursion_since(u) {
                if !self.unflagged(u, since).is_empty() {
                    d.push(since.plus(u.excursion_limit_ms));
                }
            }
        }
        d
    }

    /// Open alerts of a kind for a unit (and one of its sensors, if given).
    fn unit_alerts(&self, kind: AlertKind, u: &UnitLayout, sensor: Option<&str>) -> Vec<&Alert> {
        self.state
            .alerts
            .values()
            .filter(|a| a.kind == kind && a.bank.as_deref() == Some(u.bank.as_str()))
            .filter(|a| {
                a.unit.as_ref().is_some_and(|r| {
                    r.unit == u.id && (sensor.is_none() || r.sensor.as_deref() == sensor)
                })
            })
            .collect()
    }

    fn raise_unit_alert(
        &mut self,
        tx: &mut Tx,
        kind: AlertKind,
        u: &UnitLayout,
        sensor: Option<&str>,
        since: Option<Millis>,
        message: String,
    ) {
        self.record(
            tx,
            Actor::System,
            Subject::bank(&u.bank),
            FactKind::AlertRaised {
                alert: kind,
                message,
                unit: Some(UnitRef {
                    unit: u.id.clone(),
                    sensor: sensor.map(str::to_owned),
                    since,
                }),
            },
        );
    }

    fn clear_unit_alerts(
        &mut self,
        tx: &mut Tx,
        kind: AlertKind,
        u: &UnitLayout,
        sensor: Option<&str>,
    ) {
        let ids: Vec<AlertId> = self
            .unit_alerts(kind, u, sensor)
            .into_iter()
            .map(|a| a.id.clone())
            .collect();
        for alert in ids {
            self.record(
                tx,
                Actor::System,
                Subject::bank(&u.bank),
                FactKind::AlertCleared { alert, note: None },
            );
        }
    }

    // --- views ---

    /// Every refrigerated unit with its latest readings and open alarms, in layout order.
    pub fn units(&self) -> Vec<UnitView> {
        self.ctx
            .site
            .units
            .iter()
            .map(|u| {
                let unit_door = self
                    .cold
                    .units
                    .get(&ukey(u))
                    .is_some_and(|l| l.door_open_since.is_some());
                let comp_door = u.doors.iter().any(|d| {
                    self.state
                        .comps
                        .get(&(u.bank.clone(), *d))
                        .is_some_and(|c| c.door_open)
                });
                let mut alerts: Vec<Alert> = Vec::new();
                for kind in [
                    AlertKind::TooWarm,
                    AlertKind::TooCold,
                    AlertKind::SensorSilent,
                    AlertKind::UnitDoorOpen,
                    AlertKind::UnitDeviceAlarm,
                    AlertKind::PerishableAtRisk,
                ] {
                    alerts.extend(self.unit_alerts(kind, u, None).into_iter().cloned());
                }
                alerts.sort_by(|a, b| a.id.cmp(&b.id));
                UnitView {
                    bank: u.bank.clone(),
                    unit: u.id.clone(),
                    name: u.name.clone(),
                    doors: u.doors.clone(),
                    min_decicelsius: u.min_decicelsius,
                    max_decicelsius: u.max_decicelsius,
                    hysteresis_decicelsius: u.hysteresis_decicelsius,
                    alarm_after_ms: u.alarm_after_ms,
                    door_grace_ms: u.door_grace_ms,
                    excursion_limit_ms: u.excursion_limit_ms,
                    summary_interval_ms: u.summary_interval_ms,
                    door_open: unit_door || comp_door,
                    excursion_since: self.excursion_since(u),
                    sensors: u
                        .sensors
                        .iter()
                        .map(|s| {
                            let live = self.cold.sensors.get(&skey(u, &s.id));
                            SensorView {
                                sensor: s.id.clone(),
                                decicelsius: live.and_then(|l| l.last_decicelsius),
                                last_reading_at: live.and_then(|l| l.last_at),
                                interval_ms: s.interval_ms,
                                silent_after_ms: u.silent_after(s),
                                device_alarms: live
                                    .map(|l| l.device_alarms.clone())
                                    .unwrap_or_default(),
                            }
                        })
                        .collect(),
                    alerts,
                }
            })
            .collect()
    }

    /// The recorded summaries of a unit whose interval ends after `since`, oldest first. Only
    /// loaded facts are searched (the store's live window: this month and the last).
    pub fn unit_summaries(&self, bank: &str, unit: &str, since: Millis) -> Vec<SummaryView> {
        // Summaries are recorded when their interval ends, so their ids start at `to`.
        let from = FactId {
            ms: since.0,
            hub: String::new(),
            seq: 0,
        };
        self.facts
            .range(from..)
            .filter(|(_, f)| f.bank.as_deref() == Some(bank))
            .filter_map(|(_, f)| match &f.kind {
                FactKind::TemperatureSummary {
                    unit: u,
                    sensor,
                    from,
                    to,
                    count,
                    min_decicelsius,
                    max_decicelsius,
                    mean_decicelsius,
                } if u == unit && *to > since => Some(SummaryView {
                    sensor: sensor.clone(),
                    from: *from,
                    to: *to,
                    count: *count,
                    min_decicelsius: *min_decicelsius,
                    max_decicelsius: *max_decicelsius,
                    mean_decicelsius: *mean_decicelsius,
                }),
                _ => None,
            })
            .collect()
    }
}
