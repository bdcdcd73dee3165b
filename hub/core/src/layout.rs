//! What the core is told about the site: banks and compartments, and the policies that drive the
//! workflows. The daemon maps its own configuration into these types; the core does not read files.

use serde::{Deserialize, Serialize};

/// Compartment and parcel size classes, smallest first (the derived order is used to pick the
/// smallest compartment that fits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    /// XS: envelopes and small boxes.
    #[serde(alias = "xs")]
    ExtraSmall,
    #[serde(alias = "s")]
    Small,
    #[serde(alias = "m")]
    Medium,
    #[serde(alias = "l")]
    Large,
    #[serde(alias = "xl")]
    ExtraLarge,
    /// Oversized items (a bulk compartment or cage).
    Bulk,
}

/// Temperature class of a compartment, and the class a parcel needs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TempClass {
    #[default]
    Ambient,
    Refrigerated,
    Frozen,
}

/// One compartment (door) of a bank.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompartmentLayout {
    pub door: u16,
    pub size: Size,
    #[serde(default)]
    pub temperature: TempClass,
    /// Within reach for residents flagged as needing accessible reach.
    #[serde(default)]
    pub accessible: bool,
    /// Out of service from configuration; staff can change it later with a fact.
    #[serde(default)]
    pub out_of_service: bool,
}

/// One locker bank with its own controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankLayout {
    pub id: String,
    pub compartments: Vec<CompartmentLayout>,
}

/// All banks at the site, and their refrigerated units.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteLayout {
    pub banks: Vec<BankLayout>,
    #[serde(default)]
    pub units: Vec<UnitLayout>,
}

/// A refrigerated or frozen unit: one cooled cabinet of a bank, the compartments it cools, its
/// alarm band and its sensors. Temperatures in tenths of a degree Celsius, durations in ms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitLayout {
    pub bank: String,
    pub id: String,
    pub name: String,
    /// Doors of the compartments this unit cools.
    pub doors: Vec<u16>,
    pub min_decicelsius: i32,
    pub max_decicelsius: i32,
    /// An alarm clears only once a reading is this far back inside the band.
    pub hysteresis_decicelsius: i32,
    /// Outside the band continuously this long before an alarm.
    pub alarm_after_ms: u64,
    /// Readings this long after a door of the unit closed (or while one is open) do not start
    /// the alarm clock: loading lets warm air in.
    pub door_grace_ms: u64,
    /// The unit's own door open this long raises an alarm.
    pub door_open_limit_ms: u64,
    /// An excursion this long flags every parcel in the unit to staff.
    pub excursion_limit_ms: u64,
    /// One summary (min/max/mean) per sensor per interval of this length.
    pub summary_interval_ms: u64,
    /// Least silence before a sensor-silent alarm (it also waits three sensor intervals).
    pub silent_after_ms: u64,
    pub sensors: Vec<SensorLayout>,
}

/// A sensor of a unit and how often it reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorLayout {
    pub id: String,
    pub interval_ms: u64,
}

impl UnitLayout {
    /// How long a sensor may stay quiet before it counts as silent: three of its intervals, and
    /// never less than the unit's floor (one late reading is not an alarm).
    pub fn silent_after(&self, sensor: &SensorLayout) -> u64 {
        sensor
            .interval_ms
            .saturating_mul(3)
            .max(self.silent_after_ms)
            .max(1)
    }

    pub fn sensor(&self, id: &str) -> Option<&SensorLayout> {
        self.sensors.iter().find(|s| s.id == id)
    }
}

impl SiteLayout {
    pub fn bank(&self, bank: &str) -> Option<&BankLayout> {
        self.banks.iter().find(|b| b.id == bank)
    }

    pub fn compartment(&self, bank: &str, door: u16) -> Option<&CompartmentLayout> {
        self.bank(bank)?
            .compartments
            .iter()
            .find(|c| c.door == door)
    }

    pub fn unit(&self, bank: &str, unit: &str) -> Option<&UnitLayout> {
        self.units.iter().find(|u| u.bank == bank && u.id == unit)
    }

    /// Every `(bank, door)` in layout order.
    pub fn doors(&self) -> impl Iterator<Item = (&str, &CompartmentLayout)> {
        self.banks
            .iter()
            .flat_map(|b| b.compartments.iter().map(move |c| (b.id.as_str(), c)))
    }
}

/// Outer dimensions of a parcel, or inner dimensions of a size class, in millimetres.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimensions {
    pub length_mm: u32,
    pub width_mm: u32,
    pub height_mm: u32,
}

impl Dimensions {
    /// Sorted edges, so a parcel fits whichever way round it is put in.
    fn sorted(self) -> [u32; 3] {
        let mut d = [self.length_mm, self.width_mm, self.height_mm];
        d.sort_unstable();
        d
    }

    pub fn fits_in(self, inner: Dimensions) -> bool {
        let (a, b) = (self.sorted(), inner.sorted());
        a.iter().zip(b.iter()).all(|(x, y)| x <= y)
    }
}

/// The largest parcel a size class takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeLimit {
    pub size: Size,
    pub max: Dimensions,
}

/// Allowed temperature range of a class, in tenths of a degree Celsius (integers keep facts `Eq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TempRange {
    pub min_decicelsius: i32,
    pub max_decicelsius: i32,
}

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Site policies; every duration is in milliseconds. `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policies {
    /// Digits in a pickup PIN (clamped to 4..=12).
    pub pin_length: u8,
    pub hold_ambient_ms: u64,
    pub hold_refrigerated_ms: u64,
    pub hold_frozen_ms: u64,
    /// Reminders go out at these offsets after delivery (while the parcel has not expired).
    pub reminder_offsets_ms: Vec<u64>,
    /// A vacation hold may not end later than this far from the moment it is set.
    pub max_vacation_hold_ms: u64,
    /// How long before a parcel's hold ends its resident is told, with the code (0: never).
    pub expiring_notice_ms: u64,
    /// A reservation whose door was never opened is released after this long.
    pub reservation_timeout_ms: u64,
    /// Door open for longer than this raises a "door ajar" alert.
    pub door_ajar_ms: u64,
    /// An unlock may go on the wire only this long after it was decided (the person who asked
    /// is still at the door); later it is dropped and reported not sent.
    pub unlock_deadline_ms: u64,
    /// How long after an unlock's deadline the controller's answer may take; with none by
    /// then the outcome is unknown (never assumed failed, never re-sent).
    pub unlock_ack_timeout_ms: u64,
    /// Bank offline, doors unreachable and unknown unlocks raise their staff alert only once
    /// they have lasted this long (what matters to a person at the lockers is told at once).
    pub alert_grace_ms: u64,
    /// After the lock acknowledged, the door must be seen open within this, or the unlock lapses.
    pub open_window_ms: u64,
    /// Wrong credentials at one bank within `wrong_code_window_ms` that lock its keypad.
    pub wrong_code_limit: u32,
    pub wrong_code_window_ms: u64,
    /// First lockout length; each further lockout doubles it, up to `lockout_max_ms`.
    pub lockout_base_ms: u64,
    pub lockout_max_ms: u64,
    /// A bank with no wrong credential for this long starts again at the first lockout length.
    pub lockout_reset_ms: u64,
    /// While a keypad is locked, the next credential is checked this long after the last wrong
    /// one (times the lockout level, at most four times); checked and right, it opens.
    pub lockout_check_ms: u64,
    /// Reservations one carrier may hold open at once, site-wide (a carrier fills one door at a
    /// time; a flood of drop-off requests with one code is refused instead of emptying the bank).
    pub carrier_open_reservations: u32,
    /// Parcels one carrier may send to the desk as overflow within an hour; past it a drop-off
    /// is refused and the carrier hands the parcels in at the desk, where staff check them in.
    pub carrier_overflows_per_hour: u32,
    /// Size classes from smallest; used to suggest a size from dimensions.
    pub size_limits: Vec<SizeLimit>,
    pub refrigerated_range: TempRange,
    pub frozen_range: TempRange,
    /// This hub runs the site's remote requests (one hub per site does).
    pub execute_remote_requests: bool,
    /// A remote open older than this is refused.
    pub remote_open_max_age_ms: u64,
    /// Remote opens accepted per hour for the site; past it they are refused.
    pub remote_opens_per_hour: u32,
    /// A resident a rent roll brought in and who is missing from it is moved out at the first
    /// import this long after one first found them missing.
    pub move_out_grace_ms: u64,
    /// The building's units, for the roll import's check (empty: any unit).
    pub units: std::collections::BTreeSet<String>,
}

impl Default for Policies {
    fn default() -> Self {
        let dims = |l, w, h| Dimensions {
            length_mm: l,
            width_mm: w,
            height_mm: h,
        };
        Policies {
            pin_length: 6,
            hold_ambient_ms: 5 * DAY,
            hold_refrigerated_ms: DAY,
            hold_frozen_ms: DAY,
            reminder_offsets_ms: vec![DAY, 3 * DAY],
            max_vacation_hold_ms: 21 * DAY,
            expiring_notice_ms: DAY,
            reservation_timeout_ms: 3 * MINUTE,
            door_ajar_ms: 2 * MINUTE,
            unlock_deadline_ms: 3 * SECOND,
            unlock_ack_timeout_ms: 5 * SECOND,
            alert_grace_ms: 30 * SECOND,
            open_window_ms: MINUTE,
            wrong_code_limit: 5,
            wrong_code_window_ms: 10 * MINUTE,
            lockout_base_ms: MINUTE,
            lockout_max_ms: HOUR,
            lockout_reset_ms: DAY,
            lockout_check_ms: 15 * SECOND,
            carrier_open_reservations: 3,
            carrier_overflows_per_hour: 20,
            execute_remote_requests: false,
            remote_open_max_age_ms: 10 * MINUTE,
            remote_opens_per_hour: 10,
            move_out_grace_ms: 14 * DAY,
            units: Default::default(),
            size_limits: vec![
                SizeLimit {
                    size: Size::ExtraSmall,
                    max: dims(350, 250, 50),
                },
                SizeLimit {
                    size: Size::Small,
                    max: dims(400, 300, 100),
                },
                SizeLimit {
                    size: Size::Medium,
                    max: dims(400, 300, 250),
                },
                SizeLimit {
                    size: Size::Large,
                    max: dims(600, 400, 400),
                },
                SizeLimit {
                    size: Size::ExtraLarge,
                    max: dims(800, 600, 600),
                },
                SizeLimit {
                    size: Size::Bulk,
                    max: dims(1500, 1000, 1000),
                },
            ],
            refrigerated_range: TempRange {
                min_decicelsius: 0,
                max_decicelsius: 80,
            },
            frozen_range: TempRange {
                min_decicelsius: -300,
                max_decicelsius: -120,
            },
        }
    }
}

impl Policies {
    pub fn hold_ms(&self, class: TempClass) -> u64 {
        match class {
            TempClass::Ambient => self.hold_ambient_ms,
            TempClass::Refrigerated => self.hold_refrigerated_ms,
            TempClass::Frozen => self.hold_frozen_ms,
        }
    }

    pub fn temp_range(&self, class: TempClass) -> Option<TempRange> {
        match class {
            TempClass::Ambient => None,
            TempClass::Refrigerated => Some(self.refrigerated_range),
            TempClass::Frozen => Some(self.frozen_range),
        }
    }

    /// The smallest size class whose limits take a parcel of these dimensions.
    pub fn suggest_size(&self, parcel: Dimensions) -> Option<Size> {
        let mut limits = self.size_limits.clone();
        limits.sort_by_key(|l| l.size);
        limits
            .into_iter()
            .find(|l| parcel.fits_in(l.max))
            .map(|l| l.size)
    }

    pub fn pin_digits(&self) -> usize {
        usize::from(self.pin_length.clamp(4, 12))
    }

    /// Lockout length for the `level`-th lockout (1-based): base doubling per level, capped.
    pub fn lockout_ms(&self, level: u32) -> u64 {
        let shift = level.saturating_sub(1).min(32);
        self.lockout_base_ms
            .saturating_mul(1u64 << shift)
            .min(self.lockout_max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_smallest_class_that_fits_in_any_orientation() {
        let p = Policies::default();
        let flat = Dimensions {
            length_mm: 90,
            width_mm: 390,
            height_mm: 290,
        };
        assert_eq!(p.suggest_size(flat), Some(Size::Small));
        let tall = Dimensions {
            length_mm: 300,
            width_mm: 300,
            height_mm: 300,
        };
        assert_eq!(p.suggest_size(tall), Some(Size::Large));
        let huge = Dimensions {
            length_mm: 2000,
            width_mm: 10,
            height_mm: 10,
        };
        assert_eq!(p.suggest_size(huge), None);
    }

    #[test]
    fn lockout_doubles_up_to_the_maximum() {
        let p = Policies::default();
        assert_eq!(p.lockout_ms(1), MINUTE);
        assert_eq!(p.lockout_ms(2), 2 * MINUTE);
        assert_eq!(p.lockout_ms(3), 4 * MINUTE);
        assert_eq!(p.lockout_ms(40), HOUR);
    }
}
