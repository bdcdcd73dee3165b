//! The numbers behind the analytics page, computed from the core's facts and views by one pure
//! function ([`compute`]), so they can be tested with hand-made facts and a fixed time zone.
//!
//! Everything is bucketed on the site's wall clock: a parcel delivered at 00:30 local time counts
//! for that local day and hour, whatever UTC says. The work is one pass over the facts of the
//! window (not the whole record), plus the current compartments: the page stays fast with a year
//! of history loaded.

use std::collections::{BTreeSet, HashMap};

use jiff::tz::TimeZone;
use locker_core::{
    CompartmentStatus, CompartmentView, Fact, FactKind, Millis, ParcelId, Size, UnlockPurpose,
};

use crate::time as html;

pub const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;
/// Deliveries per day, utilisation and pickup times cover this many days.
pub const DAYS: u64 = 30;
/// The heatmap covers whole weeks, so every cell counts the same number of days. Four weeks is
/// always inside the store's live window (this month and the previous one).
pub const HEATMAP_WEEKS: u64 = 4;

pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// What the analytics page shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Analytics {
    /// The last [`DAYS`] local days, oldest first (today last): date and parcels received.
    pub per_day: Vec<(String, u32)>,
    /// Parcels received by local weekday (Monday first) and hour, over [`HEATMAP_WEEKS`] weeks.
    pub heatmap: [[u32; 24]; 7],
    pub sizes: Vec<SizeUse>,
    /// Median time from delivery to pickup of the parcels picked up in the window.
    pub pickup_median_ms: Option<u64>,
    pub pickups: usize,
    /// Parcels in a compartment whose hold has run out.
    pub overdue: usize,
}

/// Utilisation of one size class.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeUse {
    pub size: Size,
    pub total: usize,
    /// Compartments holding parcels now.
    pub occupied: usize,
    /// Share of compartment-time that held parcels over the window, 0..=1.
    pub average: f64,
}

/// The site's local calendar day (days since 1970-01-01 on the wall clock) and the milliseconds
/// into it. Across a DST change a local day is 23 or 25 hours: each instant still lands in the
/// day and hour its wall clock shows.
pub fn local(at: Millis, tz: &TimeZone) -> (i64, u64) {
    let ts = html::instant(at);
    let offset = i64::from(tz.to_offset(ts).seconds()) * 1000;
    let wall = ts.as_millisecond().saturating_add(offset);
    (
        wall.div_euclid(DAY_MS as i64),
        wall.rem_euclid(DAY_MS as i64) as u64,
    )
}

/// `YYYY-MM-DD` of a local day number.
pub fn date(day: i64) -> String {
    let d = jiff::civil::Date::new(1970, 1, 1)
        .ok()
        .and_then(|e| e.checked_add(jiff::Span::new().days(day)).ok());
    d.map(|d| d.to_string()).unwrap_or_default()
}

/// Monday-first index of a local day number (1970-01-01 was a Thursday).
fn weekday(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// Where the window starts: [`DAYS`] days before `now`, or the heatmap's weeks if longer.
pub fn window_start(now: Millis) -> Millis {
    Millis(
        now.0
            .saturating_sub(DAYS.max(HEATMAP_WEEKS * 7) * DAY_MS + DAY_MS),
    )
}

/// Compute the page's numbers.
///
/// * `facts`: the facts since [`window_start`], in fold (time) order;
/// * `compartments`: every compartment as it is now;
/// * `parcel`: a parcel's delivery time and whether its hold has run out.
pub fn compute<'a>(
    now: Millis,
    tz: &TimeZone,
    facts: impl IntoIterator<Item = &'a Fact>,
    compartments: &[CompartmentView],
    parcel: &dyn Fn(&ParcelId) -> Option<(Millis, bool)>,
) -> Analytics {
    let (today, _) = local(now, tz);
    let first_day = today - (DAYS as i64 - 1);
    let first_heat_day = today - (HEATMAP_WEEKS * 7) as i64 + 1;
    let since = Millis(now.0.saturating_sub(DAYS * DAY_MS));

    let mut per_day = vec![0u32; DAYS as usize];
    let mut heatmap = [[0u32; 24]; 7];
    // Unlock → (compartment, purpose), to know what a door opening meant.
    let mut unlocks: HashMap<&str, (&str, u16, &UnlockPurpose)> = HashMap::new();
    let mut picked: BTreeSet<&ParcelId> = BTreeSet::new();
    let mut waits: Vec<u64> = Vec::new();
    // Occupancy changes per compartment in the utilisation window: (at, +/-parcels).
    let mut moves: HashMap<(&str, u16), Vec<(u64, i64)>> = HashMap::new();

    let mut received = |at: Millis, n: usize| {
        let (day, ms) = local(at, tz);
        if day >= first_day && day <= today {
            per_day[(day - first_day) as usize] += n as u32;
        }
        if day >= first_heat_day && day <= today {
            heatmap[weekday(day)][(ms / HOUR_MS) as usize] += n as u32;
        }
    };
    let mut picked_up = |at: Millis, parcels: &'a [ParcelId], waits: &mut Vec<u64>| {
        if at < since {
            return;
        }
        for p in parcels {
            if picked.insert(p) {
                if let Some((delivered, _)) = parcel(p) {
                    waits.push(at.0.saturating_sub(delivered.0));
                }
            }
        }
    };

    for f in facts {
        let here = f.bank.as_deref().zip(f.door);
        // How many parcels this fact put into (+) or took out of (-) which compartment.
        let mut change: Option<((&str, u16), i64)> = None;
        match &f.kind {
            FactKind::DeliveryCompleted { parcels, .. } => {
                received(f.at, parcels.len());
                change = here.map(|k| (k, parcels.len() as i64));
            }
            FactKind::ParcelAtDesk { .. } => received(f.at, 1),
            FactKind::UnlockSent {
                unlock, purpose, ..
            } => {
                if let Some((bank, door)) = here {
                    unlocks.insert(unlock.as_str(), (bank, door, purpose));
                }
            }
            FactKind::DoorOpened { unlock: Some(u) }
            | FactKind::UnlockResolved {
                unlock: u,
                opened: true,
            } => match unlocks.get(u.as_str()) {
                Some((bank, door, UnlockPurpose::Pickup { parcels, .. })) => {
                    picked_up(f.at, parcels, &mut waits);
                    change = Some(((*bank, *door), -(parcels.len() as i64)));
                }
                Some((bank, door, UnlockPurpose::Removal { parcels, .. })) => {
                    change = Some(((*bank, *door), -(parcels.len() as i64)));
                }
                _ => {}
            },
            FactKind::ParcelsPickedUpAtDesk { parcels } => picked_up(f.at, parcels, &mut waits),
            FactKind::AuditFoundEmpty { missing } => {
                change = here.map(|k| (k, -(missing.len() as i64)));
            }
            FactKind::AuditFoundParcel { to_desk: false, .. } => change = here.map(|k| (k, 1)),
            _ => {}
        }
        if let Some((key, delta)) = change {
            if f.at >= since {
                moves.entry(key).or_default().push((f.at.0, delta));
            }
        }
    }

    // Utilisation: walk each compartment's changes forward from the count it must have had at
    // the window's start (now's count minus what the window changed).
    let window = now.0.saturating_sub(since.0).max(1);
    let mut sizes: Vec<SizeUse> = Vec::new();
    let mut held_ms: HashMap<Size, u64> = HashMap::new();
    let mut overdue = 0;
    for c in compartments {
        let occupied = matches!(
            c.status,
            CompartmentStatus::Occupied | CompartmentStatus::Expired | CompartmentStatus::Disputed
        );
        match sizes.iter_mut().find(|s| s.size == c.size) {
            Some(s) => {
                s.total += 1;
                s.occupied += usize::from(occupied);
            }
            None => sizes.push(SizeUse {
                size: c.size,
                total: 1,
                occupied: usize::from(occupied),
                average: 0.0,
            }),
        }
        overdue += c
            .parcels
            .iter()
            .filter(|p| parcel(p).is_some_and(|(_, expired)| expired))
            .count();
        let changes = moves
            .get(&(c.bank.as_str(), c.door))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let net: i64 = changes.iter().map(|(_, d)| d).sum();
        let mut count = (c.parcels.len() as i64 - net).max(0);
        let mut from = since.0;
        let mut held = 0u64;
        for (at, delta) in changes {
            if count > 0 {
                held += at.saturating_sub(from);
            }
            from = *at;
            count = (count + delta).max(0);
        }
        if count > 0 {
            held += now.0.saturating_sub(from);
        }
        *held_ms.entry(c.size).or_default() += held;
    }
    for s in &mut sizes {
        let held = held_ms.get(&s.size).copied().unwrap_or(0) as f64;
        s.average = (held / (s.total as f64 * window as f64)).min(1.0);
    }
    sizes.sort_by_key(|s| s.size);

    Analytics {
        per_day: per_day
            .into_iter()
            .enumerate()
            .map(|(i, n)| (date(first_day + i as i64), n))
            .collect(),
        heatmap,
        sizes,
        pickup_median_ms: median(&mut waits),
        pickups: waits.len(),
        overdue,
    }
}

/// The median (the mean of the middle two for an even count), in O(n).
pub fn median(values: &mut [u64]) -> Option<u64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let (_, upper, _) = values.select_nth_unstable(n / 2);
    let upper = *upper;
    if n % 2 == 1 {
        return Some(upper);
    }
    // The lower middle is the largest of the half below.
    let lower = values[..n / 2].iter().copied().max().unwrap_or(upper);
    Some(lower + (upper - lower) / 2)
}

/// `3 h 20 min`, `2 d 4 h`, `45 min`.
pub fn duration(ms: u64) -> String {
    let min = ms / 60_000;
    let (d, h, m) = (min / 1440, min / 60 % 24, min % 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

pub fn size_name(s: Size) -> &'static str {
    match s {
        Size::ExtraSmall => "XS",
        Size::Small => "S",
        Size::Medium => "M",
        Size::Large => "L",
        Size::ExtraLarge => "XL",
        Size::Bulk => "bulk",
    }
}

/// The charts that export as CSV, by the name in `/analytics/{name}.csv`.
pub const CHARTS: [&str; 4] = ["deliveries", "heatmap", "utilisation", "pickup"];

/// One chart as CSV (RFC 4180, header first). `None` for an unknown chart.
pub fn csv(a: &Analytics, chart: &str) -> Option<String> {
    let mut out = String::new();
    match chart {
        "deliveries" => {
            out.push_str("date,parcels\r\n");
            for (d, n) in &a.per_day {
                out.push_str(&format!("{d},{n}\r\n"));
            }
        }
        "heatmap" => {
            out.push_str("weekday");
            for h in 0..24 {
                out.push_str(&format!(",{h:02}"));
            }
            out.push_str("\r\n");
            for (d, row) in a.heatmap.iter().enumerate() {
                out.push_str(WEEKDAYS[d]);
                for n in row {
                    out.push_str(&format!(",{n}"));
                }
                out.push_str("\r\n");
            }
        }
        "utilisation" => {
            out.push_str("size,compartments,occupied_now,average_30d\r\n");
            for s in &a.sizes {
                out.push_str(&format!(
                    "{},{},{},{:.3}\r\n",
                    size_name(s.size),
                    s.total,
                    s.occupied,
                    s.average
                ));
            }
        }
        "pickup" => {
            out.push_str("median_minutes_delivery_to_pickup,pickups_30d,overdue_now\r\n");
            out.push_str(&format!(
                "{},{},{}\r\n",
                a.pickup_median_ms
                    .map(|m| format!("{:.1}", m as f64 / 60_000.0))
                    .unwrap_or_default(),
                a.pickups,
                a.overdue
            ));
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use locker_core::{
        Actor, CredentialKind, DeskReason, FactId, ReservationId, ResidentId, TempClass, UnlockId,
    };

    const H: u64 = HOUR_MS;
    /// 2024-03-04 00:00 UTC, a Monday.
    const MONDAY: u64 = 1_709_510_400_000;

    fn fact(at: u64, seq: u64, door: Option<u16>, kind: FactKind) -> Fact {
        Fact {
            id: FactId {
                ms: at,
                hub: "h".into(),
                seq,
            },
            at: Millis(at),
            actor: Actor::System,
            bank: door.map(|_| "A".to_owned()),
            door,
            parcel: None,
            kind,
        }
    }

    fn delivered(at: u64, seq: u64, door: u16, parcels: &[&str]) -> Fact {
        fact(
            at,
            seq,
            Some(door),
            FactKind::DeliveryCompleted {
                reservation: ReservationId(format!("res{seq}")),
                resident: ResidentId("r1".into()),
                parcels: parcels.iter().map(|p| ParcelId((*p).into())).collect(),
            },
        )
    }

    fn pickup(at: u64, seq: u64, door: u16, unlock: &str, parcels: &[&str]) -> [Fact; 2] {
        [
            fact(
                at,
                seq,
                Some(door),
                FactKind::UnlockSent {
                    unlock: UnlockId(unlock.into()),
                    purpose: UnlockPurpose::Pickup {
                        resident: ResidentId("r1".into()),
                        parcels: parcels.iter().map(|p| ParcelId((*p).into())).collect(),
                        method: CredentialKind::Pin,
                        code: None,
                    },
                    attempt: 1,
                },
            ),
            fact(
                at + 1000,
                seq + 1,
                Some(door),
                FactKind::DoorOpened {
                    unlock: Some(UnlockId(unlock.into())),
                },
            ),
        ]
    }

    fn comp(door: u16, size: Size, parcels: &[&str]) -> CompartmentView {
        CompartmentView {
            bank: "A".into(),
            door,
            size,
            temperature: TempClass::Ambient,
            accessible: false,
            status: if parcels.is_empty() {
                CompartmentStatus::Free
            } else {
                CompartmentStatus::Occupied
            },
            out_of_service: false,
            door_open: false,
            resident: None,
            parcels: parcels.iter().map(|p| ParcelId((*p).into())).collect(),
            reservation: None,
            pending_unlock: None,
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [5]), Some(5));
        assert_eq!(median(&mut [9, 1, 5]), Some(5));
        assert_eq!(median(&mut [10, 2, 8, 4]), Some(6));
    }

    #[test]
    fn days_hours_and_weekdays_follow_the_wall_clock() {
        let utc = TimeZone::UTC;
        assert_eq!(local(Millis(MONDAY), &utc), (19_786, 0));
        assert_eq!(date(19_786), "2024-03-04");
        assert_eq!(weekday(19_786), 0, "a Monday");
        // 23:30 UTC on Monday is 01:30 on Tuesday at UTC+2.
        let plus2 = TimeZone::fixed(jiff::tz::offset(2));
        let (day, ms) = local(Millis(MONDAY + 23 * H + 30 * 60_000), &plus2);
        assert_eq!(
            (date(day), weekday(day), ms / H),
            ("2024-03-05".into(), 1, 1)
        );
    }

    #[test]
    fn known_counts_heatmap_cells_median_and_overdue() {
        let plus2 = TimeZone::fixed(jiff::tz::offset(2));
        // "Now" is Friday 2024-03-08 12:00 UTC (14:00 local).
        let now = Millis(MONDAY + 4 * 24 * H + 12 * H);
        let mut facts = vec![
            // Monday 08:10 local (06:10 UTC): two parcels into door 1.
            delivered(MONDAY + 6 * H + 10 * 60_000, 1, 1, &["p1", "p2"]),
            // Monday 23:30 UTC = Tuesday 01:30 local: one parcel into door 2.
            delivered(MONDAY + 23 * H + 30 * 60_000, 3, 2, &["p3"]),
            // A desk parcel on Wednesday 10:00 local.
            fact(
                MONDAY + 2 * 24 * H + 8 * H,
                4,
                None,
                FactKind::ParcelAtDesk {
                    resident: ResidentId("r1".into()),
                    carrier: None,
                    tracking: None,
                    size: None,
                    temperature: TempClass::Ambient,
                    reason: DeskReason::CheckIn,
                },
            ),
        ];
        // p1 and p2 picked up 2 h after delivery; p3 after 10 h.
        facts.extend(pickup(
            MONDAY + 8 * H + 10 * 60_000 - 1000,
            10,
            1,
            "u1",
            &["p1", "p2"],
        ));
        facts.extend(pickup(
            MONDAY + 33 * H + 30 * 60_000 - 1000,
            20,
            2,
            "u2",
            &["p3"],
        ));
        // The desk parcel handed over after 4 h; the same parcel twice counts once.
        let desk = FactKind::ParcelsPickedUpAtDesk {
            parcels: vec![ParcelId("p4".into())],
        };
        facts.push(fact(MONDAY + 2 * 24 * H + 12 * H, 30, None, desk.clone()));
        facts.push(fact(MONDAY + 2 * 24 * H + 13 * H, 31, None, desk));
        // p5 is in door 3 since Thursday 12:00 UTC and overdue.
        facts.push(delivered(MONDAY + 3 * 24 * H + 12 * H, 40, 3, &["p5"]));
        facts.sort_by(|a, b| a.id.cmp(&b.id));
        let delivered_at: HashMap<&str, (u64, bool)> = [
            ("p1", (MONDAY + 6 * H + 10 * 60_000, false)),
            ("p2", (MONDAY + 6 * H + 10 * 60_000, false)),
            ("p3", (MONDAY + 23 * H + 30 * 60_000, false)),
            ("p4", (MONDAY + 2 * 24 * H + 8 * H, false)),
            ("p5", (MONDAY + 3 * 24 * H + 12 * H, true)),
        ]
        .into_iter()
        .collect();
        let lookup = |p: &ParcelId| {
            delivered_at
                .get(p.as_str())
                .map(|(at, expired)| (Millis(*at), *expired))
        };
        let comps = [
            comp(1, Size::Small, &[]),
            comp(2, Size::Small, &[]),
            comp(3, Size::Medium, &["p5"]),
            comp(4, Size::Medium, &[]),
        ];
        let a = compute(now, &plus2, &facts, &comps, &lookup);

        // Per day, local dates: Mon 2, Tue 1, Wed 1 (desk), Thu 1, Fri (today) 0.
        assert_eq!(a.per_day.len(), DAYS as usize);
        assert_eq!(a.per_day.last(), Some(&("2024-03-08".to_owned(), 0)));
        let tail: Vec<u32> = a.per_day[a.per_day.len() - 5..]
            .iter()
            .map(|d| d.1)
            .collect();
        assert_eq!(tail, [2, 1, 1, 1, 0]);
        assert_eq!(a.per_day[a.per_day.len() - 5].0, "2024-03-04");

        // Heatmap cells in local time.
        assert_eq!(a.heatmap[0][8], 2, "Monday 08:00");
        assert_eq!(a.heatmap[1][1], 1, "Tuesday 01:00, not Monday 23:00");
        assert_eq!(a.heatmap[0][23], 0);
        assert_eq!(a.heatmap[2][10], 1, "Wednesday 10:00 at the desk");
        assert_eq!(a.heatmap[3][14], 1, "Thursday 14:00");
        assert_eq!(a.heatmap.iter().flatten().sum::<u32>(), 5);

        // Waits: 2 h, 2 h, 10 h, 4 h → median 3 h.
        assert_eq!(a.pickups, 4);
        assert_eq!(a.pickup_median_ms, Some(3 * H));
        assert_eq!(a.overdue, 1);

        // Now: one M of two occupied, no S.
        let s = &a.sizes[0];
        let m = &a.sizes[1];
        assert_eq!((s.size, s.total, s.occupied), (Size::Small, 2, 0));
        assert_eq!((m.size, m.total, m.occupied), (Size::Medium, 2, 1));
        // Over 30 days: door 1 held parcels 2 h, door 2 10 h; door 3 24 h.
        let window = (DAYS * 24 * H) as f64;
        assert!((s.average - (12.0 * H as f64) / (2.0 * window)).abs() < 1e-9);
        assert!((m.average - (24.0 * H as f64) / (2.0 * window)).abs() < 1e-9);

        let csv_days = csv(&a, "deliveries").expect("chart");
        assert!(csv_days.starts_with("date,parcels\r\n"));
        assert!(csv_days.contains("2024-03-04,2\r\n"));
        let heat = csv(&a, "heatmap").expect("chart");
        assert!(heat.lines().nth(1).is_some_and(|l| l.starts_with("Mon,0,")));
        assert_eq!(heat.lines().count(), 8);
        assert!(csv(&a, "pickup").expect("chart").ends_with("180.0,4,1\r\n"));
        assert!(csv(&a, "utilisation")
            .expect("chart")
            .contains("M,2,1,0.017\r\n"));
        assert!(csv(&a, "nonsense").is_none());
    }

    #[test]
    fn a_parcel_held_since_before_the_window_counts_from_the_window_start() {
        let utc = TimeZone::UTC;
        let now = Millis(MONDAY + 40 * 24 * H);
        // Delivered 40 days ago (outside the window), still there: occupied the whole window.
        let a = compute(
            now,
            &utc,
            std::iter::empty(),
            &[comp(1, Size::Large, &["old"])],
            &|_: &ParcelId| Some((Millis(MONDAY), false)),
        );
        assert_eq!(a.sizes[0].occupied, 1);
        assert!((a.sizes[0].average - 1.0).abs() < 1e-9);
        assert_eq!(a.per_day.iter().map(|d| d.1).sum::<u32>(), 0);
        assert_eq!(a.pickup_median_ms, None);
    }

    /// A year of history at a busy site: 300 compartments, 150 parcels a day, each delivered,
    /// unlocked and collected; the window's facts are read through a range, as the engine does.
    #[test]
    fn a_year_of_history_costs_only_the_window() {
        let now = Millis(MONDAY + 365 * 24 * H);
        let mut facts = std::collections::BTreeMap::new();
        let mut delivered_at = HashMap::new();
        let mut seq = 0;
        for day in 0..365u64 {
            for i in 0..150u64 {
                let at = MONDAY + day * 24 * H + 8 * H + i * 240_000;
                let door = ((day * 150 + i) % 300) as u16 + 1;
                let id = format!("p{day}-{i}");
                delivered_at.insert(ParcelId(id.clone()), (Millis(at), false));
                let d = delivered(at, seq, door, &[id.as_str()]);
                let [sent, opened] = pickup(
                    at + 5 * H,
                    seq + 1,
                    door,
                    &format!("u{seq}"),
                    &[id.as_str()],
                );
                for f in [d, sent, opened] {
                    facts.insert(f.id.clone(), f);
                }
                seq += 2;
            }
        }
        let comps: Vec<CompartmentView> = (1..=300).map(|d| comp(d, Size::Small, &[])).collect();
        let lookup = |p: &ParcelId| delivered_at.get(p).copied();
        let started = std::time::Instant::now();
        let from = FactId {
            ms: window_start(now).0,
            hub: String::new(),
            seq: 0,
        };
        let a = compute(
            now,
            &TimeZone::UTC,
            facts.range(from..).map(|(_, f)| f),
            &comps,
            &lookup,
        );
        let took = started.elapsed();
        assert_eq!(
            a.per_day[..DAYS as usize - 1]
                .iter()
                .map(|d| d.1)
                .sum::<u32>(),
            29 * 150
        );
        assert_eq!(a.pickup_median_ms, Some(5 * H + 1000));
        // About 30 ms unoptimised, a few in release: generous for a busy machine, but a
        // quadratic step over the window's 14,000 facts would not fit.
        assert!(took < std::time::Duration::from_millis(500), "{took:?}");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(45 * 60_000), "45 min");
        assert_eq!(duration(3 * H + 20 * 60_000), "3 h 20 min");
        assert_eq!(duration(52 * H), "2 d 4 h");
    }
}
