//! Site policies (`[policies]`): how long packages are held, when residents are reminded,
//! how pickup codes look and how guessing them is throttled.
//!
//! Every key is optional; the defaults are shown:
//!
//! ```toml
//! [policies]
//! hold = { ambient = "5d", refrigerated = "24h", frozen = "24h" }
//! reminders = ["24h", "72h"]            # after delivery; only those before the hold ends are sent
//! pin_length = 6                        # 4 to 10 digits
//! lockout = { max_failures = 5, window = "15m", base_lockout = "1m", max_lockout = "1h", check_every = "15s" }
//! reservation_timeout = "3m"            # a reserved door is released if nothing is dropped off
//! door_ajar_after = "60s"               # alert when a door stays open this long
//! unlock_deadline = "3s"                # an unlock not on the wire by then is dropped, never sent late
//! alert_grace = "30s"                   # outages and unknown unlocks shorter than this raise no alert
//! max_vacation_hold = "30d"             # longest hold a resident may ask for
//! carrier_open_reservations = 3         # drop-offs one carrier may have in progress at once
//! carrier_overflows_per_hour = 20       # parcels one carrier may send to the desk as overflow
//! ```

use std::time::Duration;

use crate::bank::TemperatureClass;
use crate::duration;
use crate::raw::{Ctx, Table};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);

/// Site-wide rules for the locker workflows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies {
    /// How long a delivered package waits before it is due back, per temperature class.
    pub hold: HoldTimes,
    /// Reminder times after delivery, strictly increasing.
    pub reminders: Vec<Duration>,
    /// How long before a parcel's hold ends its resident is told, with the code (0: never).
    pub expiring_notice: Duration,
    /// Digits in a pickup PIN (4 to 10).
    pub pin_length: u8,
    /// Throttling of wrong pickup codes.
    pub lockout: Lockout,
    /// How long a door reserved for a drop-off stays reserved.
    pub reservation_timeout: Duration,
    /// How long a door may stay open before a "door ajar" alert.
    pub door_ajar_after: Duration,
    /// How long after it was asked for an unlock may still go on the wire (default 3 s); later
    /// it is dropped and the person is told to try again. An unlock is never re-sent.
    pub unlock_deadline: Duration,
    /// A bank offline, doors unreachable or an unlock nobody could confirm raise their staff
    /// alert only once they have lasted this long (default 30 s), or at once when someone at the
    /// lockers is turned away by them.
    pub alert_grace: Duration,
    /// Longest vacation hold a resident may request.
    pub max_vacation_hold: Duration,
    /// Drop-offs one carrier may have in progress at once, site-wide (default 3).
    pub carrier_open_reservations: u32,
    /// Parcels one carrier may send to the desk as overflow (no compartment fits) within an hour
    /// (default 20); past it, drop-offs are refused and the carrier hands parcels in at the desk.
    pub carrier_overflows_per_hour: u32,
}

/// Hold time per temperature class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldTimes {
    /// Ordinary compartments (default 5 days).
    pub ambient: Duration,
    /// Refrigerated compartments (default 24 hours: perishables).
    pub refrigerated: Duration,
    /// Frozen compartments (default 24 hours).
    pub frozen: Duration,
}

impl HoldTimes {
    /// The hold time for a compartment of the given class.
    pub fn for_class(&self, class: TemperatureClass) -> Duration {
        match class {
            TemperatureClass::Ambient => self.ambient,
            TemperatureClass::Refrigerated => self.refrigerated,
            TemperatureClass::Frozen => self.frozen,
        }
    }
}

/// Lockout after repeated wrong pickup codes: after `max_failures` failures within
/// `window`, the bank's keypad is locked for `base_lockout`, doubling on each further lockout up
/// to `max_lockout`. A lockout slows guessing without shutting residents out: while locked, one
/// code is checked per `check_every` after the last wrong one (times the lockout level, at most
/// four times), and a right code for a parcel at that bank still opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Wrong codes tolerated within the window (default 5).
    pub max_failures: u32,
    /// Sliding window the failures are counted in (default 15 minutes).
    pub window: Duration,
    /// First lockout length (default 1 minute).
    pub base_lockout: Duration,
    /// Longest lockout (default 1 hour).
    pub max_lockout: Duration,
    /// While locked, how long after a wrong code the next code is checked (default 15 s).
    pub check_every: Duration,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            hold: HoldTimes {
                ambient: 5 * DAY,
                refrigerated: DAY,
                frozen: DAY,
            },
            reminders: vec![DAY, 3 * DAY],
            expiring_notice: DAY,
            pin_length: 6,
            lockout: Lockout {
                max_failures: 5,
                window: 15 * MINUTE,
                base_lockout: MINUTE,
                max_lockout: HOUR,
                check_every: Duration::from_secs(15),
            },
            reservation_timeout: 3 * MINUTE,
            door_ajar_after: MINUTE,
            unlock_deadline: Duration::from_secs(3),
            alert_grace: Duration::from_secs(30),
            max_vacation_hold: 30 * DAY,
            carrier_open_reservations: 3,
            carrier_overflows_per_hour: 20,
        }
    }
}

pub(crate) fn read(root: &mut Table, cx: &mut Ctx) -> Option<Policies> {
    let defaults = Policies::default();
    let Some(item) = root.get("policies") else {
        return Some(defaults);
    };
    let mut t = item.table(cx)?;
    let before = cx.problem_count();
    if let Some(old) = t.get("unlock_retries") {
        cx.error(
            &old.span(),
            old.key(),
            "unlock_retries is no longer supported: an unlock is never re-sent, since a second \
             pulse can open a door nobody is standing at any more; remove it (unlock_deadline \
             bounds how late an unlock may go out)",
        );
    }

    let second = Duration::from_secs(1);
    let hold = match t.get("hold") {
        None => defaults.hold,
        Some(h) => match h.table(cx) {
            None => defaults.hold,
            Some(mut h) => {
                let d = defaults.hold;
                let hold = HoldTimes {
                    ambient: h.duration_within(cx, "ambient", d.ambient, MINUTE, 365 * DAY),
                    refrigerated: h.duration_within(
                        cx,
                        "refrigerated",
                        d.refrigerated,
                        MINUTE,
                        365 * DAY,
                    ),
                    frozen: h.duration_within(cx, "frozen", d.frozen, MINUTE, 365 * DAY),
                };
                h.finish(cx);
                hold
            }
        },
    };

    let reminders = match t.get("reminders") {
        None => defaults.reminders.clone(),
        Some(list) => read_reminders(&list, cx, hold),
    };

    let pin_length = t.int_or(cx, "pin_length", 4..=10, i64::from(defaults.pin_length)) as u8;

    let lockout = match t.get("lockout") {
        None => defaults.lockout,
        Some(l) => match l.table(cx) {
            None => defaults.lockout,
            Some(mut l) => {
                let d = defaults.lockout;
                let max_failures =
                    l.int_or(cx, "max_failures", 1..=100, i64::from(d.max_failures)) as u32;
                let window = l.duration_within(cx, "window", d.window, second, DAY);
                let base_lockout =
                    l.duration_within(cx, "base_lockout", d.base_lockout, second, DAY);
                let max_item = l.get("max_lockout").map(|i| i.loc());
                let max_lockout = l.duration_within(cx, "max_lockout", d.max_lockout, second, DAY);
                if max_lockout < base_lockout {
                    let loc = max_item.unwrap_or_else(|| l.loc());
                    cx.error_at(
                        &loc,
                        format!(
                            "max_lockout ({}) is shorter than base_lockout ({})",
                            duration::format(max_lockout),
                            duration::format(base_lockout)
                        ),
                    );
                }
                let check_every =
                    l.duration_within(cx, "check_every", d.check_every, second, 10 * MINUTE);
                l.finish(cx);
                Lockout {
                    max_failures,
                    window,
                    base_lockout,
                    max_lockout,
                    check_every,
                }
            }
        },
    };

    let expiring_notice = t.duration_within(
        cx,
        "expiring_notice",
        defaults.expiring_notice,
        Duration::ZERO,
        30 * DAY,
    );
    let policies = Policies {
        hold,
        reminders,
        expiring_notice,
        pin_length,
        lockout,
        reservation_timeout: t.duration_within(
            cx,
            "reservation_timeout",
            defaults.reservation_timeout,
            10 * second,
            HOUR,
        ),
        door_ajar_after: t.duration_within(
            cx,
            "door_ajar_after",
            defaults.door_ajar_after,
            5 * second,
            HOUR,
        ),
        unlock_deadline: t.duration_within(
            cx,
            "unlock_deadline",
            defaults.unlock_deadline,
            Duration::from_millis(500),
            Duration::from_secs(30),
        ),
        alert_grace: t.duration_within(
            cx,
            "alert_grace",
            defaults.alert_grace,
            Duration::ZERO,
            HOUR,
        ),
        max_vacation_hold: t.duration_within(
            cx,
            "max_vacation_hold",
            defaults.max_vacation_hold,
            DAY,
            365 * DAY,
        ),
        carrier_open_reservations: t.int_or(
            cx,
            "carrier_open_reservations",
            1..=100,
            i64::from(defaults.carrier_open_reservations),
        ) as u32,
        carrier_overflows_per_hour: t.int_or(
            cx,
            "carrier_overflows_per_hour",
            1..=10_000,
            i64::from(defaults.carrier_overflows_per_hour),
        ) as u32,
    };
    t.finish(cx);
    (cx.problem_count() == before).then_some(policies)
}

/// Reminders must be positive, strictly increasing, and come before the ambient hold ends
/// (a reminder after the package is due back would never be sent).
fn read_reminders(list: &crate::raw::Item, cx: &mut Ctx, hold: HoldTimes) -> Vec<Duration> {
    let Some(items) = list.array(cx) else {
        return Vec::new();
    };
    let mut out: Vec<Duration> = Vec::new();
    for item in &items {
        let Some(d) = item.duration(cx) else {
            continue;
        };
        if d.is_zero() {
            cx.error(
                &item.span(),
                item.key(),
                "a reminder must come after delivery (not 0)",
            );
        } else if let Some(prev) = out.last().filter(|prev| **prev >= d) {
            cx.error(
                &item.span(),
                item.key(),
                format!(
                    "reminders must be in increasing order: {} comes after {}",
                    duration::format(d),
                    duration::format(*prev)
                ),
            );
        } else if d >= hold.ambient {
            cx.error(
                &item.span(),
                item.key(),
                format!(
                    "reminder at {} is not before the ambient hold ends ({}); it would never be sent",
                    duration::format(d),
                    duration::format(hold.ambient)
                ),
            );
        } else {
            out.push(d);
        }
    }
    out
}
