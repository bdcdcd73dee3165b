//! Refrigerated units with controlled time: alarm delay and hysteresis, door grace, a silent
//! sensor, a door left open, perishable parcels flagged, summaries instead of readings, and the
//! state rebuilt from facts alone.

mod common;

use common::*;
use locker_core::*;
use proptest::prelude::*;

const SECOND: u64 = 1_000;
/// The sensor reports every 30 s.
const POLL: u64 = 30 * SECOND;

/// The common site plus a fridge in bank A cooling door 4 (1.0..5.0 °C).
fn cold_layout() -> SiteLayout {
    let mut l = layout();
    l.units.push(UnitLayout {
        bank: "A".into(),
        id: "fridge".into(),
        name: "Grocery fridge".into(),
        doors: vec![4],
        min_decicelsius: 10,
        max_decicelsius: 50,
        hysteresis_decicelsius: 5,
        alarm_after_ms: 10 * MINUTE,
        door_grace_ms: 5 * MINUTE,
        door_open_limit_ms: 2 * MINUTE,
        excursion_limit_ms: 30 * MINUTE,
        summary_interval_ms: 15 * MINUTE,
        silent_after_ms: 60 * SECOND,
        sensors: vec![SensorLayout {
            id: "cabinet".into(),
            interval_ms: POLL,
        }],
    });
    l
}

fn site() -> Site {
    let mut s = Site::with_layout(cold_layout(), Policies::default(), "hub1", 7);
    s.tick(); // the hub starts watching its sensors
    s
}

fn reading(dc: i32, door_open: Option<bool>) -> Observation {
    Observation::UnitReading {
        bank: "A".into(),
        unit: "fridge".into(),
        sensor: "cabinet".into(),
        decicelsius: dc,
        door_open,
        device_alarms: Vec::new(),
    }
}

/// One reading, then the clock moves on by one poll interval (ticking on the way).
fn poll(s: &mut Site, dc: i32) -> Output {
    let mut out = s.obs(reading(dc, None));
    let t = s.advance(POLL);
    out.facts.extend(t.facts);
    out.effects.extend(t.effects);
    out
}

/// Readings of `dc` for `ms`; everything that came out.
fn hold(s: &mut Site, dc: i32, ms: u64) -> Output {
    let mut all = Output::default();
    for _ in 0..ms / POLL {
        let out = poll(s, dc);
        all.facts.extend(out.facts);
        all.effects.extend(out.effects);
    }
    all
}

fn open(s: &Site, kind: AlertKind) -> Vec<Alert> {
    s.alerts_of(kind)
}

fn refrigerated_delivery(s: &mut Site, resident: &str) -> Delivered {
    let mut request = drop_off_request("A", resident, Size::Medium, false);
    if let Request::StartDropOff { temperature, .. } = &mut request {
        *temperature = TempClass::Refrigerated;
    }
    let d = s.deliver_with(request, 1);
    assert_eq!(d.door, 4, "the refrigerated compartment");
    d
}

#[test]
fn too_warm_alarms_only_after_the_delay_and_a_short_excursion_never_does() {
    let mut s = site();
    hold(&mut s, 40, 5 * MINUTE);
    // Six and a half minutes warm, then back: no alarm.
    let out = hold(&mut s, 62, 6 * MINUTE + 30 * SECOND);
    assert!(!raised(&out, AlertKind::TooWarm));
    hold(&mut s, 45, 2 * MINUTE);
    assert!(open(&s, AlertKind::TooWarm).is_empty());

    // A long one: the alarm comes exactly `alarm_after` after the first warm reading.
    let start = s.now;
    let out = hold(&mut s, 70, 9 * MINUTE + 30 * SECOND);
    assert!(!raised(&out, AlertKind::TooWarm), "before the delay");
    s.obs(reading(71, None));
    let out = s.advance(30 * SECOND);
    assert_eq!(s.now, start.plus(10 * MINUTE));
    assert!(raised(&out, AlertKind::TooWarm), "{out:?}");
    let alert = &open(&s, AlertKind::TooWarm)[0];
    assert_eq!(alert.bank.as_deref(), Some("A"));
    let r = alert.unit.as_ref().expect("unit ref");
    assert_eq!(
        (r.unit.as_str(), r.sensor.as_deref()),
        ("fridge", Some("cabinet"))
    );
    assert_eq!(r.since, Some(start));
    assert!(
        alert.message.contains("Grocery fridge"),
        "{}",
        alert.message
    );
    // One alarm, not one per reading.
    hold(&mut s, 75, 5 * MINUTE);
    assert_eq!(open(&s, AlertKind::TooWarm).len(), 1);
    assert!(open(&s, AlertKind::TooCold).is_empty());
}

#[test]
fn warm_alarm_clears_only_inside_the_band_by_the_hysteresis_margin() {
    let mut s = site();
    hold(&mut s, 60, 11 * MINUTE);
    assert_eq!(open(&s, AlertKind::TooWarm).len(), 1);
    // 4.8 °C is inside the band but within 0.5 °C of its top: still alarmed.
    hold(&mut s, 48, 2 * MINUTE);
    assert_eq!(open(&s, AlertKind::TooWarm).len(), 1);
    // Hovering at the threshold does not raise and clear over and over.
    for dc in [51, 49, 52, 47, 50] {
        poll(&mut s, dc);
    }
    assert_eq!(open(&s, AlertKind::TooWarm).len(), 1);
    let out = poll(&mut s, 45);
    assert!(out
        .effects
        .iter()
        .any(|e| matches!(e, Effect::ClearAlert { .. })));
    assert!(open(&s, AlertKind::TooWarm).is_empty());
}

#[test]
fn too_cold_alarms_after_the_delay_and_clears_with_hysteresis() {
    let mut s = site();
    let out = hold(&mut s, 5, 9 * MINUTE);
    assert!(!raised(&out, AlertKind::TooCold));
    let out = hold(&mut s, 3, 2 * MINUTE);
    assert!(raised(&out, AlertKind::TooCold));
    hold(&mut s, 12, 2 * MINUTE);
    assert_eq!(
        open(&s, AlertKind::TooCold).len(),
        1,
        "1.2 °C is within the margin"
    );
    hold(&mut s, 15, MINUTE);
    assert!(open(&s, AlertKind::TooCold).is_empty());
}

#[test]
fn readings_while_a_door_is_open_or_within_the_grace_after_it_closed_start_no_clock() {
    let mut s = site();
    hold(&mut s, 40, 2 * MINUTE);
    // Loading through the unit's own door: warm readings, door open for 90 s.
    for _ in 0..3 {
        s.obs(reading(80, Some(true)));
        s.advance(POLL);
    }
    s.obs(reading(80, Some(false)));
    let closed = s.now;
    // Warm for the whole grace period and then some: the clock starts only after the grace.
    let out = hold(&mut s, 80, 5 * MINUTE);
    assert!(!raised(&out, AlertKind::TooWarm));
    let out = hold(&mut s, 80, 9 * MINUTE + 30 * SECOND);
    assert!(
        !raised(&out, AlertKind::TooWarm),
        "10 min after the door closed is too early: the grace does not count"
    );
    let out = hold(&mut s, 80, MINUTE);
    assert!(raised(&out, AlertKind::TooWarm));
    let since = open(&s, AlertKind::TooWarm)[0]
        .unit
        .as_ref()
        .and_then(|u| u.since)
        .expect("since");
    assert!(since >= closed.plus(5 * MINUTE), "{since:?} {closed:?}");

    // A compartment door of the unit counts as well.
    let mut s = site();
    hold(&mut s, 40, MINUTE);
    s.opened("A", 4);
    hold(&mut s, 90, 3 * MINUTE);
    s.closed("A", 4);
    let out = hold(&mut s, 90, 14 * MINUTE);
    assert!(
        !raised(&out, AlertKind::TooWarm),
        "grace then less than alarm_after"
    );
    let out = hold(&mut s, 90, 2 * MINUTE);
    assert!(raised(&out, AlertKind::TooWarm));
}

#[test]
fn a_silent_sensor_is_an_alarm_and_its_next_reading_clears_it() {
    let mut s = site();
    // Never heard since start: silence counts from the first tick. max(3 × 30 s, 60 s) = 90 s.
    let out = s.advance(80 * SECOND);
    assert!(!raised(&out, AlertKind::SensorSilent));
    assert_eq!(s.core.next_deadline(), Some(s.now.plus(10 * SECOND)));
    let out = s.advance(10 * SECOND);
    assert!(raised(&out, AlertKind::SensorSilent));
    let out = s.obs(reading(40, None));
    assert!(out
        .effects
        .iter()
        .any(|e| matches!(e, Effect::ClearAlert { .. })));
    assert!(open(&s, AlertKind::SensorSilent).is_empty());
    // A gap after readings: the hub never drops it silently.
    hold(&mut s, 40, 3 * MINUTE);
    // The last reading was 30 s ago.
    s.advance(50 * SECOND);
    assert!(open(&s, AlertKind::SensorSilent).is_empty());
    s.advance(10 * SECOND);
    let silent = open(&s, AlertKind::SensorSilent);
    assert_eq!(silent.len(), 1);
    assert!(
        silent[0].message.contains("no reading"),
        "{}",
        silent[0].message
    );
    // One alarm for one silence.
    s.advance(10 * MINUTE);
    assert_eq!(open(&s, AlertKind::SensorSilent).len(), 1);
}

#[test]
fn the_units_door_left_open_alarms_after_the_limit_and_clears_when_it_closes() {
    let mut s = site();
    s.obs(reading(40, Some(true)));
    let out = s.advance(110 * SECOND);
    assert!(!raised(&out, AlertKind::UnitDoorOpen));
    s.obs(reading(42, Some(true)));
    let out = s.advance(10 * SECOND);
    assert!(raised(&out, AlertKind::UnitDoorOpen));
    assert!(s.core.units()[0].door_open);
    s.obs(reading(44, Some(false)));
    assert!(open(&s, AlertKind::UnitDoorOpen).is_empty());
    assert!(!s.core.units()[0].door_open);
}

#[test]
fn device_alarms_of_the_controller_are_raised_and_cleared() {
    let mut s = site();
    let mut r = reading(40, None);
    if let Observation::UnitReading { device_alarms, .. } = &mut r {
        *device_alarms = vec!["probe_fault".into(), "x\u{7}".into()];
    }
    let out = s.obs(r);
    assert!(raised(&out, AlertKind::UnitDeviceAlarm));
    assert!(open(&s, AlertKind::UnitDeviceAlarm)[0]
        .message
        .contains("probe_fault"));
    s.obs(reading(40, None));
    assert!(open(&s, AlertKind::UnitDeviceAlarm).is_empty());
}

#[test]
fn a_long_excursion_flags_every_parcel_in_the_unit_once() {
    let mut s = site();
    hold(&mut s, 40, MINUTE);
    let cold = refrigerated_delivery(&mut s, "r1");
    let ambient = s.deliver("A", "r2", Size::Small, 1);
    // Past the grace of the delivery's door.
    hold(&mut s, 40, 6 * MINUTE);
    let start = s.now;
    let out = hold(&mut s, 65, 29 * MINUTE + 30 * SECOND);
    assert!(!raised(&out, AlertKind::PerishableAtRisk));
    assert!(s.parcel(&cold.parcels[0]).perishable.is_none());
    let out = hold(&mut s, 65, MINUTE);
    assert!(raised(&out, AlertKind::PerishableAtRisk), "{out:?}");
    let flag = s.parcel(&cold.parcels[0]).perishable.expect("flagged");
    assert_eq!(flag.unit, "fridge");
    assert_eq!(flag.since, start);
    assert!(s.parcel(&ambient.parcels[0]).perishable.is_none());
    let flagged: Vec<&Fact> = out
        .facts
        .iter()
        .filter(|f| matches!(f.kind, FactKind::PerishableFlagged { .. }))
        .collect();
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0].parcel.as_ref(), Some(&cold.parcels[0]));
    let alert = &open(&s, AlertKind::PerishableAtRisk)[0];
    assert!(
        alert.message.contains(cold.parcels[0].as_str()),
        "the alert names the parcel: {}",
        alert.message
    );
    // Not again for the same excursion.
    let out = hold(&mut s, 65, 10 * MINUTE);
    assert!(!has_fact(&out, |k| matches!(
        k,
        FactKind::PerishableFlagged { .. }
    )));
    assert_eq!(open(&s, AlertKind::PerishableAtRisk).len(), 1);
}

#[test]
fn summaries_are_one_fact_per_interval_not_one_per_reading() {
    let mut s = site();
    let interval = 15 * MINUTE;
    // Move to the start of an interval.
    let to_boundary = interval - s.now.0 % interval;
    s.advance(to_boundary);
    // Silence from the move is not what this test is about.
    let from = s.now;
    let mut facts = 0;
    for (i, dc) in [30, 40, 50, 20].into_iter().cycle().take(30).enumerate() {
        let out = s.obs(reading(dc, None));
        facts += out.facts.iter().filter(|f| !is_alert(f)).count();
        assert!(i < 30);
        s.now = s.now.plus(POLL);
    }
    assert_eq!(facts, 0, "readings are not recorded one by one");
    // The first reading of the next interval closes the previous one.
    let out = s.obs(reading(40, None));
    let summaries: Vec<&FactKind> = out
        .facts
        .iter()
        .map(|f| &f.kind)
        .filter(|k| matches!(k, FactKind::TemperatureSummary { .. }))
        .collect();
    assert_eq!(summaries.len(), 1);
    let FactKind::TemperatureSummary {
        unit,
        sensor,
        from: f,
        to,
        count,
        min_decicelsius,
        max_decicelsius,
        mean_decicelsius,
    } = summaries[0]
    else {
        unreachable!()
    };
    assert_eq!((unit.as_str(), sensor.as_str()), ("fridge", "cabinet"));
    assert_eq!((*f, *to), (from, from.plus(interval)));
    assert_eq!(*count, 30);
    assert_eq!((*min_decicelsius, *max_decicelsius), (20, 50));
    // 8 × (30+40+50+20) minus the two readings cut off (50, 20) over 30 readings.
    assert_eq!(
        *mean_decicelsius,
        ((8 * 140 - 70) as f64 / 30.0).round() as i32
    );
    // A sensor that stops: the tick after the interval ends writes what it has.
    s.now = s.now.plus(interval);
    let out = s.tick();
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::TemperatureSummary { count: 1, .. }
    )));
    let history = s.core.unit_summaries("A", "fridge", from);
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].from, from);
}

fn is_alert(f: &Fact) -> bool {
    matches!(
        f.kind,
        FactKind::AlertRaised { .. } | FactKind::AlertCleared { .. }
    )
}

#[test]
fn state_after_a_restart_is_rebuilt_from_facts_and_the_excursion_clock_resumes() {
    let mut s = site();
    hold(&mut s, 40, MINUTE);
    let cold = refrigerated_delivery(&mut s, "r1");
    hold(&mut s, 40, 6 * MINUTE);
    let start = s.now;
    hold(&mut s, 70, 12 * MINUTE);
    assert_eq!(open(&s, AlertKind::TooWarm).len(), 1);
    let before_alerts = s.core.alerts();
    let before_parcels = s.core.parcels();

    // The same facts, folded in reverse, give the same state.
    let mut reversed = s.log.clone();
    reversed.reverse();
    let fresh = Core::new(cold_layout(), s.policies.clone(), KEY, "hub1", reversed);
    assert_eq!(fresh.alerts(), before_alerts);
    assert_eq!(fresh.parcels(), before_parcels);
    assert_eq!(fresh.units()[0].alerts, s.core.units()[0].alerts);

    s.restart();
    assert_eq!(s.core.alerts(), before_alerts);
    assert_eq!(s.core.units()[0].excursion_since, Some(start));
    // Still warm after the restart: the parcel is flagged 30 min after the excursion began,
    // not 30 min after the restart.
    s.tick();
    hold(&mut s, 70, 30 * MINUTE - 12 * MINUTE - 30 * SECOND);
    assert!(s.parcel(&cold.parcels[0]).perishable.is_none());
    hold(&mut s, 70, MINUTE);
    let flag = s.parcel(&cold.parcels[0]).perishable.expect("flagged");
    assert_eq!(flag.since, start);
    // No second alarm for the excursion already alarmed.
    assert_eq!(open(&s, AlertKind::TooWarm).len(), 1);
    s.restart();
    assert_eq!(
        s.parcel(&cold.parcels[0]).perishable.map(|f| f.since),
        Some(start)
    );
}

#[test]
fn readings_of_unknown_units_or_sensors_change_nothing() {
    let mut s = site();
    for (unit, sensor) in [("freezer", "cabinet"), ("fridge", "door-probe")] {
        let out = s.obs(Observation::UnitReading {
            bank: "A".into(),
            unit: unit.into(),
            sensor: sensor.into(),
            decicelsius: 400,
            door_open: Some(true),
            device_alarms: vec!["x".into()],
        });
        assert!(out.facts.is_empty() && out.effects.is_empty());
    }
    assert!(s.core.units()[0].sensors[0].decicelsius.is_none());
}

#[derive(Clone, Debug)]
enum Act {
    Read(i32, Option<bool>),
    Wait(u64),
    Door(bool),
    Deliver,
    Restart,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        6 => (-20i32..120, proptest::option::of(any::<bool>())).prop_map(|(t, d)| Act::Read(t, d)),
        3 => (1u64..20 * MINUTE).prop_map(Act::Wait),
        1 => any::<bool>().prop_map(Act::Door),
        1 => Just(Act::Deliver),
        1 => Just(Act::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Folding the same facts in any order gives the same state, and a unit never has two open
    /// alarms of one kind for one sensor.
    #[test]
    fn cold_chain_facts_fold_to_the_same_state_in_any_order(
        acts in proptest::collection::vec(act(), 1..120),
        seed in any::<u64>(),
    ) {
        let mut s = site();
        for a in &acts {
            match a {
                Act::Read(t, d) => { s.obs(reading(*t, *d)); }
                Act::Wait(ms) => { s.advance(*ms); }
                Act::Door(true) => { s.opened("A", 4); }
                Act::Door(false) => { s.closed("A", 4); }
                Act::Deliver => {
                    if s.compartment("A", 4).parcels.is_empty() && !s.compartment("A", 4).door_open {
                        refrigerated_delivery(&mut s, "r1");
                    }
                }
                Act::Restart => s.restart(),
            }
            let mut kinds = std::collections::BTreeSet::new();
            for a in s.core.units()[0].alerts.iter().filter(|a| a.kind != AlertKind::PerishableAtRisk) {
                let key = (a.kind, a.unit.as_ref().and_then(|u| u.sensor.clone()));
                prop_assert!(kinds.insert(key), "two open {:?} alarms", a.kind);
            }
        }
        // Shuffle deterministically from the seed.
        let mut log = s.log.clone();
        let mut x = seed | 1;
        for i in (1..log.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            log.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let fresh = Core::new(cold_layout(), s.policies.clone(), KEY, "hub1", log);
        prop_assert_eq!(fresh.alerts(), s.core.alerts());
        prop_assert_eq!(fresh.parcels(), s.core.parcels());
        prop_assert_eq!(fresh.compartments(), s.core.compartments());
        prop_assert_eq!(&fresh.units()[0].alerts, &s.core.units()[0].alerts);
        prop_assert_eq!(
            fresh.unit_summaries("A", "fridge", Millis(0)),
            s.core.unit_summaries("A", "fridge", Millis(0))
        );
    }
}
