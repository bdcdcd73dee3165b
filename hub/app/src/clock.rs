//! The hub's clock: the one time the workflow core is given, and the time in every new fact id.
//!
//! It is the wall clock, except that it never goes backwards and never jumps. An NTP step (or an
//! administrator's `date -s`) of the system clock is absorbed gradually:
//!
//! - within [`TOLERANCE`] of where the hub's clock would be by the monotonic clock, the wall
//!   clock is followed as it is (ordinary drift corrections), except that a wall clock a little
//!   behind is caught up with by running slower, never by stopping or going back;
//! - a larger step is absorbed at [`SLEW`] (10 %): the hub's clock runs at most 10 % faster
//!   (forward step) or slower (backward step) than real time until it agrees with the wall clock
//!   again; one log line says so when it starts and when it is done;
//! - a forward step of more than [`ADOPT_AT_ONCE`] (a day) is taken at once: the clock before it
//!   was not worth keeping (a machine that booted with a dead RTC battery).
//!
//! What this buys: no fact id ever sorts before one already made (ids are time-ordered), no
//! timer fires twice and no reminder is sent twice (time never revisits), and no step makes a
//! batch of deadlines fall due at once: a reservation, a lockout or a hold runs within 10 % of its
//! real length while a step is absorbed, instead of ending the moment the clock jumps. Long
//! deadlines (holds of days) still end at the wall-clock time they were set for once the step is
//! absorbed, which is what the resident was told.
//!
//! At start the clock begins at the later of the wall clock and the newest fact this hub made, so
//! a clock that went back while the hub was down does not mint ids that sort before its own.
//!
//! [`HubClock`] is pure (wall and monotonic readings in, time out) so it is tested with
//! controlled clocks; [`now`] wraps one instance around the system clocks.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use locker_core::Millis;
use tracing::{info, warn};

/// Wall-clock corrections smaller than this are followed as they come.
pub const TOLERANCE: Duration = Duration::from_secs(1);
/// How fast a step is absorbed: this fraction of real time, at most.
pub const SLEW: f64 = 0.10;
/// Forward steps larger than this are adopted at once.
pub const ADOPT_AT_ONCE: Duration = Duration::from_secs(24 * 3600);

/// The clock's state between readings.
#[derive(Debug, Clone)]
pub struct HubClock {
    /// The last time handed out (ms since the Unix epoch).
    last: u64,
    /// The monotonic reading that went with it.
    last_mono: Duration,
    /// A step being absorbed (wall minus hub time when it was noticed), for the logs.
    absorbing: Option<i64>,
}

/// What a reading noticed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The wall clock stepped by this many ms (positive: forward); the hub absorbs it.
    StepNoticed(i64),
    /// A forward step too large to absorb was adopted at once.
    Adopted(i64),
    /// The hub's clock agrees with the wall clock again.
    Absorbed,
}

impl HubClock {
    /// A clock starting at the later of `wall_ms` and `floor_ms` (the newest fact's time).
    pub fn new(wall_ms: u64, floor_ms: u64, mono: Duration) -> HubClock {
        HubClock {
            last: wall_ms.max(floor_ms),
            last_mono: mono,
            absorbing: None,
        }
    }

    /// Never hand out a time before `floor_ms` again.
    pub fn raise_floor(&mut self, floor_ms: u64) {
        self.last = self.last.max(floor_ms);
    }

    /// The hub's time for a wall-clock reading `wall_ms` taken at monotonic time `mono`.
    pub fn read(&mut self, wall_ms: u64, mono: Duration) -> (Millis, Option<Event>) {
        let elapsed = mono.saturating_sub(self.last_mono).as_millis() as u64;
        let free_run = self.last.saturating_add(elapsed);
        let diff = wall_ms as i64 - free_run as i64;
        let tolerance = TOLERANCE.as_millis() as i64;
        let mut event = None;
        let most = (elapsed as f64 * SLEW) as u64;
        let t = if diff.abs() <= tolerance {
            if self.absorbing.take().is_some() {
                event = Some(Event::Absorbed);
            }
            // Behind the wall clock: catch up. Ahead of it: slow down, never stop or go back.
            if diff >= 0 {
                wall_ms
            } else {
                wall_ms.max(free_run.saturating_sub(most)).max(self.last)
            }
        } else if diff > ADOPT_AT_ONCE.as_millis() as i64 {
            self.absorbing = None;
            event = Some(Event::Adopted(diff));
            wall_ms
        } else {
            if self.absorbing.is_none() {
                event = Some(Event::StepNoticed(diff));
            }
            self.absorbing = Some(diff);
            let correction = diff.unsigned_abs().min(most);
            if diff > 0 {
                free_run.saturating_add(correction)
            } else {
                free_run.saturating_sub(correction).max(self.last)
            }
        };
        self.last = t;
        self.last_mono = mono;
        (Millis(t), event)
    }
}

static CLOCK: Mutex<Option<(HubClock, Instant)>> = Mutex::new(None);

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The hub's time now (see the module documentation).
pub fn now() -> Millis {
    let mut guard = match CLOCK.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let wall = wall_ms();
    let (clock, origin) = guard.get_or_insert_with(|| {
        let origin = Instant::now();
        (HubClock::new(wall, 0, Duration::ZERO), origin)
    });
    let (t, event) = clock.read(wall, origin.elapsed());
    match event {
        Some(Event::StepNoticed(ms)) => warn!(
            step_ms = ms,
            "the system clock stepped; the hub's clock absorbs it at 10 % of real time instead of jumping"
        ),
        Some(Event::Adopted(ms)) => warn!(
            step_ms = ms,
            "the system clock jumped forward by more than a day; the hub's clock follows at once"
        ),
        Some(Event::Absorbed) => info!("the hub's clock agrees with the system clock again"),
        None => {}
    }
    t
}

/// Never hand out a time before `floor` (the newest fact this hub made, at start).
pub fn raise_floor(floor: Millis) {
    let mut guard = match CLOCK.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    match guard.as_mut() {
        Some((clock, _)) => clock.raise_floor(floor.0),
        None => {
            *guard = Some((
                HubClock::new(wall_ms(), floor.0, Duration::ZERO),
                Instant::now(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;
    const S: u64 = 1000;
    const H: u64 = 3600 * S;

    fn at(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn follows_the_wall_clock_when_nothing_happens() {
        let mut c = HubClock::new(T0, 0, at(0));
        for s in 1..100 {
            assert_eq!(c.read(T0 + s * S, at(s)).0, Millis(T0 + s * S));
        }
    }

    #[test]
    fn a_step_back_never_takes_time_back_and_is_absorbed_slowly() {
        let mut c = HubClock::new(T0, 0, at(0));
        let mut last = c.read(T0, at(0)).0;
        let (t, e) = c.read(T0 + 10 * S - H, at(10));
        assert_eq!(e, Some(Event::StepNoticed(-(H as i64))));
        assert!(t >= last);
        last = t;
        // Every later reading moves forward, at 90 % to 100 % of real time.
        for s in 11..40_000u64 {
            let (t, _) = c.read(T0 + s * S - H, at(s));
            let step = t.0 - last.0;
            assert!((900..=1000).contains(&step), "at {s}: {step} ms for 1 s");
            last = t;
        }
        // 1 h absorbed at 10 %: done after 10 h of real time.
        let (t, e) = c.read(T0 + 40_001 * S - H, at(40_001));
        assert_eq!(t, Millis(T0 + 40_001 * S - H));
        assert_eq!(e, None, "already absorbed");
    }

    #[test]
    fn a_step_forward_is_absorbed_at_most_ten_percent_faster() {
        let mut c = HubClock::new(T0, 0, at(0));
        let (_, e) = c.read(T0 + H + S, at(1));
        assert_eq!(e, Some(Event::StepNoticed(H as i64)));
        // 30 minutes of real time later the hub's clock has moved at most 33 minutes.
        let (t, _) = c.read(T0 + H + 1801 * S, at(1801));
        let moved = t.0 - T0;
        assert!(
            moved <= 1801 * S * 11 / 10 + S,
            "moved {moved} ms in 1801 s"
        );
        assert!(moved >= 1801 * S);
    }

    #[test]
    fn a_huge_forward_step_is_adopted_at_once() {
        let mut c = HubClock::new(T0, 0, at(0));
        let (t, e) = c.read(T0 + 400 * 24 * H, at(1));
        assert_eq!(t, Millis(T0 + 400 * 24 * H));
        assert!(matches!(e, Some(Event::Adopted(_))));
    }

    #[test]
    fn starts_after_the_newest_fact_when_the_clock_went_back_while_down() {
        let mut c = HubClock::new(T0 - H, T0, at(0));
        let (t, _) = c.read(T0 - H, at(0));
        assert!(t.0 >= T0);
    }

    /// The core driven by the hub's clock through steps of the system clock, as the engine
    /// drives it: a reservation and a keypad lockout are not cut short by a step forward, and a
    /// step back mints no fact id before an existing one and sends no reminder twice.
    mod with_the_core {
        use super::*;
        use locker_core::{
            Command, Core, Entropy, FactId, FactKind, Input, Observation, Operator, Output,
            Recipient, Request, RequestId, Size, TempClass,
        };

        struct Seq(u64);
        impl Entropy for Seq {
            fn fill(&mut self, buf: &mut [u8]) {
                for b in buf {
                    self.0 = self
                        .0
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    *b = (self.0 >> 33) as u8;
                }
            }
        }

        /// A core on the demo site, its clock, and what the system clock says.
        struct Hub {
            core: Core,
            clock: HubClock,
            entropy: Seq,
            /// Real seconds since the start, and the wall clock's offset from real time.
            real: u64,
            offset: i64,
            requests: u64,
            newest: Option<FactId>,
            policies: locker_core::Policies,
        }

        impl Hub {
            fn new() -> Hub {
                let config = locker_config::demo();
                let core = Core::new(
                    crate::facts::site_layout(&config),
                    crate::facts::policies(&config),
                    [7; 32],
                    "hub1",
                    Vec::new(),
                );
                let mut hub = Hub {
                    core,
                    clock: HubClock::new(T0, 0, at(0)),
                    entropy: Seq(1),
                    real: 0,
                    offset: 0,
                    requests: 0,
                    newest: None,
                    policies: crate::facts::policies(&config),
                };
                let by = Operator::Staff { id: "sam".into() };
                for r in [
                    Request::RegisterResident {
                        by: by.clone(),
                        resident: "r1".into(),
                        unit: "101".into(),
                        accessible: false,
                        mode: locker_core::RegisterMode::Upsert,
                        contact: Default::default(),
                    },
                    Request::RegisterCarrier {
                        by: by.clone(),
                        carrier: "ups".into(),
                        name: "UPS".into(),
                        email: None,
                    },
                    Request::IssueCarrierCode {
                        by,
                        carrier: "ups".into(),
                        code: "12345678".into(),
                    },
                ] {
                    hub.cmd(r);
                }
                hub
            }

            fn now(&mut self) -> Millis {
                let wall = (T0 as i64 + self.real as i64 * 1000 + self.offset) as u64;
                self.clock.read(wall, at(self.real)).0
            }

            fn check(&mut self, out: &Output) {
                // The core itself never mints an id before one it knows; the clock keeps the
                // times the facts say they happened in order too (the audit trail, reports).
                for f in &out.facts {
                    if let Some(newest) = &self.newest {
                        assert!(f.id > *newest, "fact {} sorts before {newest}", f.id);
                        assert!(
                            f.at.0 >= newest.ms,
                            "fact {} happened before {newest}",
                            f.id
                        );
                    }
                    self.newest = Some(f.id.clone());
                }
            }

            fn cmd(&mut self, request: Request) -> Output {
                self.requests += 1;
                let now = self.now();
                let out = self.core.handle(
                    now,
                    Input::Command(Command {
                        request_id: RequestId(format!("r{}", self.requests)),
                        request,
                    }),
                    &mut self.entropy,
                );
                self.check(&out);
                out
            }

            fn obs(&mut self, o: Observation) -> Output {
                let now = self.now();
                let out = self
                    .core
                    .handle(now, Input::Observation(o), &mut self.entropy);
                self.check(&out);
                out
            }

            /// The controller pulsed the unlock `out` sent; its door.
            fn pulsed(&mut self, out: &Output) -> u16 {
                let door = out
                    .effects
                    .iter()
                    .find_map(|e| match e {
                        locker_core::Effect::Unlock { door, .. } => Some(*door),
                        _ => None,
                    })
                    .expect("an unlock");
                self.obs(Observation::LockAcknowledged {
                    bank: "A".into(),
                    door,
                    unlock: None,
                });
                door
            }

            /// Real time passes `secs`, the engine ticking every 10 s.
            fn pass(&mut self, secs: u64) -> Vec<(u64, Output)> {
                let mut outs = Vec::new();
                let end = self.real + secs;
                while self.real < end {
                    self.real = (self.real + 10).min(end);
                    let now = self.now();
                    let out = self.core.tick(now, &mut self.entropy);
                    self.check(&out);
                    outs.push((self.real, out));
                }
                outs
            }
        }

        fn drop_off() -> Request {
            Request::StartDropOff {
                bank: "A".into(),
                carrier_code: "12345678".into(),
                recipient: Recipient::Resident {
                    resident: "r1".into(),
                },
                size: Some(Size::Small),
                dimensions: None,
                temperature: TempClass::Ambient,
                share: false,
                tracking: None,
            }
        }

        fn released(outs: &[(u64, Output)]) -> Option<u64> {
            outs.iter()
                .find(|(_, o)| {
                    o.facts
                        .iter()
                        .any(|f| matches!(f.kind, FactKind::ReservationReleased { .. }))
                })
                .map(|(t, _)| *t)
        }

        #[test]
        fn a_step_forward_does_not_cut_a_reservation_short() {
            let mut hub = Hub::new();
            let timeout = hub.policies.reservation_timeout_ms / 1000;
            let out = hub.cmd(drop_off());
            // The lock is pulsed; nobody opens the door.
            hub.pulsed(&out);
            let start = hub.real;
            hub.pass(10);
            hub.offset = H as i64; // NTP steps the clock forward an hour
            let outs = hub.pass(timeout * 2);
            let at = released(&outs).expect("the reservation still times out") - start;
            // Within 10 % of its length, never at the moment of the step.
            assert!(
                at as f64 >= timeout as f64 / 1.1 - 10.0 && at <= timeout + 10,
                "released {at} s after it was made (timeout {timeout} s)"
            );
        }

        #[test]
        fn a_step_forward_does_not_end_a_keypad_lockout() {
            let mut hub = Hub::new();
            let p = hub.policies.clone();
            for _ in 0..p.wrong_code_limit {
                hub.cmd(Request::PickupByPin {
                    bank: "A".into(),
                    pin: "000000".into(),
                });
            }
            let now = hub.now();
            let until = hub
                .core
                .banks(now)
                .into_iter()
                .find(|b| b.bank == "A")
                .and_then(|b| b.keypad_locked_until)
                .expect("locked");
            let length = (until.0 - now.0) / 1000;
            hub.offset = H as i64;
            hub.pass(length * 8 / 10);
            let now = hub.now();
            let locked = hub
                .core
                .banks(now)
                .into_iter()
                .find(|b| b.bank == "A")
                .and_then(|b| b.keypad_locked_until)
                .is_some_and(|u| u > now);
            assert!(locked, "a step forward ended a {length} s lockout early");
        }

        #[test]
        fn a_step_back_sends_no_reminder_twice_and_keeps_ids_in_order() {
            let mut hub = Hub::new();
            let out = hub.cmd(drop_off());
            let door = hub.pulsed(&out);
            let reservation = match out.reply.map(|r| r.outcome) {
                Some(locker_core::Outcome::Reserved { reservation, .. }) => reservation,
                other => panic!("{other:?}"),
            };
            hub.obs(Observation::DoorOpened {
                bank: "A".into(),
                door,
            });
            hub.cmd(Request::ConfirmParcel {
                reservation,
                tracking: None,
            });
            hub.obs(Observation::DoorClosed {
                bank: "A".into(),
                door,
            });
            let first = hub.policies.reminder_offsets_ms[0] / 1000;
            let reminders = |outs: &[(u64, Output)]| {
                outs.iter()
                    .flat_map(|(_, o)| o.effects.iter())
                    .filter(|e| {
                        matches!(
                            e,
                            locker_core::Effect::Notify {
                                kind: locker_core::NotifyKind::Reminder,
                                ..
                            }
                        )
                    })
                    .count()
            };
            let outs = hub.pass(first + 60);
            assert_eq!(reminders(&outs), 1);
            // The clock goes back an hour. What happens next is recorded after what came
            // before (`Hub::check` looks at every fact id), and the hour is not lived again.
            hub.offset = -(H as i64);
            hub.pass(10);
            hub.cmd(drop_off());
            let outs = hub.pass(2 * 3600);
            assert_eq!(reminders(&outs), 0, "a reminder was sent twice");
        }
    }
}
