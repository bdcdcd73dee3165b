//! Test harness: a site with one or two banks, a seeded entropy source, a controlled clock, and
//! a persisted fact log so tests can restart the core from what a real store would hold.
#![allow(dead_code)]

use locker_core::*;

/// SplitMix64: deterministic test entropy (the daemon uses the OS RNG). `script` bytes are
/// handed out first, to force a particular PIN.
pub struct Rng(pub u64, pub std::collections::VecDeque<u8>);

impl Entropy for Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        if self.1.len() >= buf.len() {
            for b in buf.iter_mut() {
                *b = self.1.pop_front().unwrap_or_default();
            }
            return;
        }
        for chunk in buf.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let bytes = z.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

pub const KEY: [u8; 32] = [42; 32];
pub const CARRIER_CODE: &str = "774411";
pub const BADGE: &str = "04:A2:19:7F";
pub const T0: u64 = 1_700_000_000_000;
pub const MINUTE: u64 = 60_000;
pub const HOUR: u64 = 60 * MINUTE;
pub const DAY: u64 = 24 * HOUR;

fn comp(door: u16, size: Size, temperature: TempClass, accessible: bool) -> CompartmentLayout {
    CompartmentLayout {
        door,
        size,
        temperature,
        accessible,
        out_of_service: false,
    }
}

/// Bank "A": 1 small, 2 medium, 3 large (accessible), 4 medium refrigerated, 5 small frozen,
/// 6 medium (accessible). Bank "B": 1 medium, 2 large.
pub fn layout() -> SiteLayout {
    use Size::*;
    use TempClass::*;
    SiteLayout {
        banks: vec![
            BankLayout {
                id: "A".into(),
                compartments: vec![
                    comp(1, Small, Ambient, false),
                    comp(2, Medium, Ambient, false),
                    comp(3, Large, Ambient, true),
                    comp(4, Medium, Refrigerated, false),
                    comp(5, Small, Frozen, false),
                    comp(6, Medium, Ambient, true),
                ],
            },
            BankLayout {
                id: "B".into(),
                compartments: vec![
                    comp(1, Medium, Ambient, false),
                    comp(2, Large, Ambient, false),
                ],
            },
        ],
        units: Vec::new(),
    }
}

pub fn staff() -> Operator {
    Operator::Staff { id: "sam".into() }
}

/// A parcel delivered by the harness, with the credentials the resident was sent.
#[derive(Clone, Debug)]
pub struct Delivered {
    pub bank: String,
    pub door: u16,
    pub parcels: Vec<ParcelId>,
    pub pin: String,
    pub qr: String,
    pub reservation: ReservationId,
}

pub struct Site {
    pub core: Core,
    pub now: Millis,
    pub rng: Rng,
    pub policies: Policies,
    pub layout: SiteLayout,
    pub hub: String,
    /// Every fact persisted so far, as the store would hold them.
    pub log: Vec<Fact>,
    /// Every effect emitted so far.
    pub effects: Vec<Effect>,
    next_request: u64,
}

impl Site {
    pub fn new() -> Site {
        Site::with(Policies::default(), "hub1", 1)
    }

    pub fn with(policies: Policies, hub: &str, seed: u64) -> Site {
        Site::with_layout(layout(), policies, hub, seed)
    }

    pub fn with_layout(layout: SiteLayout, policies: Policies, hub: &str, seed: u64) -> Site {
        let mut s = Site {
            core: Core::new(layout.clone(), policies.clone(), KEY, hub, Vec::new()),
            now: Millis(T0),
            rng: Rng(seed, Default::default()),
            policies,
            layout,
            hub: hub.to_owned(),
            log: Vec::new(),
            effects: Vec::new(),
            next_request: 0,
        };
        s.directory();
        s
    }

    fn directory(&mut self) {
        let by = staff();
        for (resident, unit, accessible) in [
            ("r1", "101", false),
            ("r2", "102", true),
            ("r3", "103", false),
        ] {
            self.ok(Request::RegisterResident {
                by: by.clone(),
                resident: resident.into(),
                unit: unit.into(),
                accessible,
                mode: locker_core::RegisterMode::Upsert,
                contact: Default::default(),
            });
        }
        self.ok(Request::RegisterCarrier {
            by: by.clone(),
            carrier: "ups".into(),
            name: "UPS".into(),
            email: None,
        });
        self.ok(Request::IssueCarrierCode {
            by: by.clone(),
            carrier: "ups".into(),
            code: CARRIER_CODE.into(),
        });
        self.ok(Request::RegisterBadge {
            by,
            resident: "r3".into(),
            badge: BADGE.into(),
        });
    }

    fn keep(&mut self, out: &Output) {
        self.log.extend(out.facts.iter().cloned());
        self.effects.extend(out.effects.iter().cloned());
    }

    pub fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(format!("req-{}-{}", self.hub, self.next_request))
    }

    pub fn cmd_id(&mut self, request_id: RequestId, request: Request) -> Output {
        let out = self.core.handle(
            self.now,
            Input::Command(Command {
                request_id,
                request,
            }),
            &mut self.rng,
        );
        self.keep(&out);
        out
    }

    pub fn cmd(&mut self, request: Request) -> Output {
        let id = self.request_id();
        self.cmd_id(id, request)
    }

    /// A command expected to succeed; returns its outcome.
    pub fn ok(&mut self, request: Request) -> Outcome {
        let out = self.cmd(request.clone());
        let outcome = outcome(&out);
        assert!(
            !matches!(outcome, Outcome::Rejected(_)),
            "{request:?} was rejected: {outcome:?}"
        );
        outcome
    }

    /// A command expected to be refused with `code`.
    pub fn refused(&mut self, request: Request, code: RejectCode) -> Rejection {
        let out = self.cmd(request.clone());
        match outcome(&out) {
            Outcome::Rejected(r) if r.code == code => r,
            other => panic!("{request:?}: expected {code:?}, got {other:?}"),
        }
    }

    pub fn obs(&mut self, obs: Observation) -> Output {
        let out = self
            .core
            .handle(self.now, Input::Observation(obs), &mut self.rng);
        self.keep(&out);
        out
    }

    pub fn advance(&mut self, ms: u64) -> Output {
        self.now = self.now.plus(ms);
        self.tick()
    }

    pub fn tick(&mut self) -> Output {
        let out = self.core.tick(self.now, &mut self.rng);
        self.keep(&out);
        out
    }

    /// Another replica (another hub, or the cloud) that has synced everything this one has.
    pub fn replica(&self, hub: &str, seed: u64) -> Site {
        Site {
            core: Core::new(
                self.layout.clone(),
                self.policies.clone(),
                KEY,
                hub,
                self.log.clone(),
            ),
            now: self.now,
            rng: Rng(seed, Default::default()),
            policies: self.policies.clone(),
            layout: self.layout.clone(),
            hub: hub.to_owned(),
            log: self.log.clone(),
            effects: Vec::new(),
            next_request: 0,
        }
    }

    /// Receive the facts of another replica that this one does not have yet.
    pub fn merge_from(&mut self, other: &Site) -> Output {
        let known: std::collections::BTreeSet<FactId> =
            self.log.iter().map(|f| f.id.clone()).collect();
        let new: Vec<Fact> = other
            .log
            .iter()
            .filter(|f| !known.contains(&f.id))
            .cloned()
            .collect();
        self.log.extend(new.iter().cloned());
        let out = self.core.merge(self.now, new, &mut self.rng);
        self.log.extend(out.facts.iter().cloned());
        self.effects.extend(out.effects.iter().cloned());
        out
    }

    /// Simulate a restart: a new core from the persisted facts.
    pub fn restart(&mut self) {
        self.core = Core::new(
            self.layout.clone(),
            self.policies.clone(),
            KEY,
            &self.hub,
            self.log.clone(),
        );
    }

    pub fn opened(&mut self, bank: &str, door: u16) -> Output {
        self.obs(Observation::DoorOpened {
            bank: bank.into(),
            door,
        })
    }

    pub fn closed(&mut self, bank: &str, door: u16) -> Output {
        self.obs(Observation::DoorClosed {
            bank: bank.into(),
            door,
        })
    }

    /// The controller's answer to the door's pending unlock, when it did not pulse.
    pub fn not_pulsed(&mut self, bank: &str, door: u16, report: UnlockReport) -> Output {
        let unlock = self
            .compartment(bank, door)
            .pending_unlock
            .expect("an unlock in flight");
        self.obs(Observation::UnlockNotPulsed {
            bank: bank.into(),
            door,
            unlock,
            report,
            reason: "test".into(),
        })
    }

    pub fn acked(&mut self, bank: &str, door: u16) -> Output {
        self.obs(Observation::LockAcknowledged {
            bank: bank.into(),
            door,
            unlock: None,
        })
    }

    pub fn start_drop_off(&mut self, bank: &str, resident: &str, size: Size) -> Output {
        self.cmd(drop_off_request(bank, resident, size, false))
    }

    /// Full drop-off of `count` parcels in one visit, returning what the resident was sent.
    pub fn deliver(&mut self, bank: &str, resident: &str, size: Size, count: usize) -> Delivered {
        self.deliver_with(drop_off_request(bank, resident, size, false), count)
    }

    /// Sends a drop-off `request` and has its door pulse and open: (reservation, bank, door).
    pub fn open_reserved(&mut self, request: Request) -> (ReservationId, String, u16) {
        let out = self.cmd(request);
        let Outcome::Reserved {
            reservation,
            bank,
            door,
            ..
        } = outcome(&out)
        else {
            panic!("drop-off not reserved: {out:?}");
        };
        self.acked(&bank, door);
        self.opened(&bank, door);
        (reservation, bank, door)
    }

    pub fn deliver_with(&mut self, request: Request, count: usize) -> Delivered {
        let (reservation, bank, door) = self.open_reserved(request);
        for _ in 0..count {
            self.ok(Request::ConfirmParcel {
                reservation: reservation.clone(),
                tracking: None,
            });
        }
        let out = self.closed(&bank, door);
        let (parcels, pin, qr) = out
            .effects
            .iter()
            .find_map(|e| match e {
                Effect::Notify {
                    parcels,
                    pin: Some(pin),
                    qr: Some(qr),
                    kind: NotifyKind::Delivered,
                    ..
                } => Some((parcels.clone(), pin.clone(), qr.clone())),
                _ => None,
            })
            .expect("delivery notification with codes");
        Delivered {
            bank,
            door,
            parcels,
            pin,
            qr,
            reservation,
        }
    }

    pub fn pin(&mut self, bank: &str, pin: &str) -> Output {
        self.cmd(Request::PickupByPin {
            bank: bank.into(),
            pin: pin.into(),
        })
    }

    /// Collect with a PIN through to the door closing.
    pub fn collect(&mut self, d: &Delivered) {
        let out = self.pin(&d.bank, &d.pin);
        let Outcome::Opening { doors, .. } = outcome(&out) else {
            panic!("pickup refused: {out:?}");
        };
        for door in doors {
            self.acked(&d.bank, door);
            self.opened(&d.bank, door);
            self.closed(&d.bank, door);
        }
    }

    pub fn compartment(&self, bank: &str, door: u16) -> CompartmentView {
        self.core
            .compartments()
            .into_iter()
            .find(|c| c.bank == bank && c.door == door)
            .expect("compartment in layout")
    }

    pub fn parcel(&self, id: &ParcelId) -> ParcelView {
        self.core.parcel(id).expect("parcel recorded")
    }

    pub fn alerts_of(&self, kind: AlertKind) -> Vec<Alert> {
        self.core
            .alerts()
            .into_iter()
            .filter(|a| a.kind == kind)
            .collect()
    }

    /// A PIN guaranteed not to be live: a valid-looking code that was never issued.
    pub fn wrong_pin(&self, live: &[&str]) -> String {
        // Start somewhere unremarkable so the PIN is not a run of zeros that any timestamp holds.
        (918_273..1_000_000u32)
            .chain(0..918_273)
            .map(|n| format!("{n:06}"))
            .find(|p| !live.contains(&p.as_str()))
            .unwrap_or_default()
    }
}

pub fn drop_off_request(bank: &str, resident: &str, size: Size, share: bool) -> Request {
    Request::StartDropOff {
        bank: bank.into(),
        carrier_code: CARRIER_CODE.into(),
        recipient: Recipient::Resident {
            resident: resident.into(),
        },
        size: Some(size),
        dimensions: None,
        temperature: TempClass::Ambient,
        share,
        tracking: None,
    }
}

/// A fact as the cloud writes it (author `cloud`).
pub fn cloud_fact(seq: u64, at: Millis, kind: FactKind) -> Fact {
    Fact {
        id: FactId {
            ms: at.0,
            hub: CLOUD_AUTHOR.into(),
            seq,
        },
        at,
        actor: Actor::Cloud,
        bank: None,
        door: None,
        parcel: None,
        kind,
    }
}

pub fn outcome(out: &Output) -> Outcome {
    out.reply.as_ref().expect("a reply").outcome.clone()
}

pub fn unlocks(out: &Output) -> Vec<(String, u16, UnlockId)> {
    unlock_effects(out)
        .into_iter()
        .map(|(bank, door, id, _)| (bank, door, id))
        .collect()
}

/// Unlock effects with their deadlines.
pub fn unlock_effects(out: &Output) -> Vec<(String, u16, UnlockId, Millis)> {
    out.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Unlock {
                bank,
                door,
                unlock_id,
                deadline,
            } => Some((bank.clone(), *door, unlock_id.clone(), *deadline)),
            _ => None,
        })
        .collect()
}

pub fn raised(out: &Output, kind: AlertKind) -> bool {
    out.effects
        .iter()
        .any(|e| matches!(e, Effect::RaiseAlert { kind: k, .. } if *k == kind))
}

pub fn has_fact(out: &Output, pred: impl Fn(&FactKind) -> bool) -> bool {
    out.facts.iter().any(|f| pred(&f.kind))
}
