//! `Core`: the state machine's entry points and the plumbing every workflow shares (recording
//! facts, idempotent replies, timers, and turning state changes into publish/alert effects).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::codes::{Entropy, Keys};
use crate::effect::{Effect, Output};
use crate::fact::{Actor, AlertKind, Fact, FactKind};
use crate::ids::{sanitize_hub_id, AlertId, FactId, Millis, ParcelId, RequestId, UnlockId};
use crate::input::{Command, Input, Request};
use crate::layout::{Policies, SiteLayout};
use crate::reply::{Outcome, RejectCode, Rejection, Reply};
use crate::state::{Alert, Ctx, State, UnlockState};
use crate::view::{BankView, CarrierView, CompartmentView, ParcelView, ResidentView};

/// How many answers to queries are remembered for idempotent replay. Answers to every other
/// request are remembered for ever, in `Answered` facts.
const VOLATILE_REPLIES: usize = 4096;

/// The sans-IO locker workflow core. See the crate docs for the contract.
#[derive(Debug)]
pub struct Core {
    pub(crate) ctx: Ctx,
    pub(crate) keys: Keys,
    pub(crate) hub: String,
    pub(crate) facts: BTreeMap<FactId, Fact>,
    pub(crate) state: State,
    next_seq: u64,
    /// Own unlocks that were in flight when this process started: their outcome is unknown and
    /// they are handed to a person at the first `tick`, never re-sent.
    pub(crate) unknown_at_start: BTreeSet<UnlockId>,
    volatile_replies: BTreeMap<RequestId, (String, Reply)>,
    volatile_order: VecDeque<RequestId>,
    /// Last `tick` time, to announce keypad lockouts that ended since.
    last_tick: Millis,
    /// What refrigerated units' readings drive (clocks, running summaries); readings are not
    /// facts (`cold.rs`).
    pub(crate) cold: crate::cold::Live,
    /// A sync link is catching up: remote requests wait (`remote.rs`).
    pub(crate) remote_held: bool,
    /// The plan the last `import_roll` applied, for the shell to show (`take_roll_plan`).
    pub(crate) last_roll_plan: Option<crate::view::RollPlan>,
    /// Facts folded into `state` since it was last rebuilt: with `digest_cache`, it tells whether
    /// the compartment views a step ended with still hold when the next step starts.
    folded: u64,
    /// The compartment digests `finish` computed, and `folded` then: the next `snapshot` takes
    /// them instead of computing them again when nothing was folded in between.
    digest_cache: Option<(u64, Vec<u64>)>,
}

/// What a fact is about (the fact header apart from id, time and actor).
#[derive(Clone, Debug, Default)]
pub(crate) struct Subject {
    pub bank: Option<String>,
    pub door: Option<u16>,
    pub parcel: Option<ParcelId>,
}

impl Subject {
    pub(crate) fn none() -> Subject {
        Subject::default()
    }
    pub(crate) fn bank(bank: &str) -> Subject {
        Subject {
            bank: Some(bank.to_owned()),
            ..Subject::default()
        }
    }
    pub(crate) fn door(bank: &str, door: u16) -> Subject {
        Subject {
            bank: Some(bank.to_owned()),
            door: Some(door),
            parcel: None,
        }
    }
    pub(crate) fn parcel(mut self, parcel: &ParcelId) -> Subject {
        self.parcel = Some(parcel.clone());
        self
    }
}

/// One step in progress: its time, entropy, and what it has produced so far.
pub(crate) struct Tx<'a> {
    pub now: Millis,
    pub entropy: &'a mut dyn Entropy,
    pub facts: Vec<Fact>,
    pub effects: Vec<Effect>,
}

/// Views before a step, to find what changed.
pub(crate) struct Snapshot {
    /// `State::compartment_digests`: one per compartment, in layout order.
    compartments: Vec<u64>,
    banks: Vec<BankView>,
    alerts: BTreeMap<AlertId, Alert>,
}

pub(crate) type Result<T> = std::result::Result<T, Rejection>;

impl Core {
    /// Build from the site layout and policies, the site secret key (keyed hashes of codes and
    /// QR signatures; never stored in facts), this hub's id and the facts recorded so far, in any
    /// order: they are sorted by fact id before folding.
    ///
    /// Own unlocks recorded as sent but neither acknowledged nor seen open have an unknown
    /// outcome (the hub stopped between sending and hearing back). They are never re-sent:
    /// `next_deadline` is immediate and the next `tick` asks the controller for the door state
    /// and raises an alert for a person to decide (`Request::ResolveUnlock`).
    pub fn new(
        site: SiteLayout,
        policies: Policies,
        site_key: [u8; 32],
        hub_id: &str,
        facts: impl IntoIterator<Item = Fact>,
    ) -> Core {
        let hub = sanitize_hub_id(hub_id);
        let facts: BTreeMap<FactId, Fact> = facts
            .into_iter()
            .filter(crate::access::folded)
            .map(|f| (f.id.clone(), f))
            .collect();
        let next_seq = facts
            .keys()
            .filter(|id| id.hub == hub)
            .map(|id| id.seq + 1)
            .max()
            .unwrap_or(1);
        let mut core = Core {
            ctx: Ctx { site, policies },
            keys: Keys::derive(&site_key),
            hub,
            facts,
            state: State::default(),
            next_seq,
            unknown_at_start: BTreeSet::new(),
            volatile_replies: BTreeMap::new(),
            volatile_order: VecDeque::new(),
            last_tick: Millis(0),
            cold: Default::default(),
            remote_held: false,
            last_roll_plan: None,
            folded: 0,
            digest_cache: None,
        };
        core.refold();
        core.unknown_at_start = core
            .state
            .unlocks
            .iter()
            .filter(|(_, u)| {
                u.origin == core.hub && u.state == UnlockState::Pending && u.acked_at.is_none()
            })
            .map(|(id, _)| id.clone())
            .collect();
        core
    }

    /// One step: a command or an observation at time `now`.
    ///
    /// **Contract:** persist `Output.facts` durably before executing `Output.effects` or sending
    /// `Output.reply`.
    ///
    /// A command whose `request_id` was seen before returns the first reply again and records and
    /// does nothing (no second unlock); the same id with a different request is refused.
    pub fn handle(&mut self, now: Millis, input: Input, entropy: &mut dyn Entropy) -> Output {
        match input {
            Input::Command(cmd) => self.handle_command(now, cmd, entropy),
            Input::Observation(obs) => {
                let before = self.snapshot(now);
                let mut tx = Tx::new(now, entropy);
                self.observe(&mut tx, obs);
                self.finish(tx, before, None)
            }
        }
    }

    /// [`Core::handle`] for a command from an authenticated `caller`: a command the caller may
    /// not send (`access::authorize`) is refused with `NotPermitted` and records nothing.
    /// Observations come from controllers and are not a caller's to send: they pass through.
    pub fn handle_from(
        &mut self,
        now: Millis,
        caller: &crate::access::Caller,
        input: Input,
        entropy: &mut dyn Entropy,
    ) -> Output {
        if let Input::Command(cmd) = &input {
            let allowed = crate::access::authorize(caller, &cmd.request)
                .and_then(|()| self.reservation_at_callers_bank(caller, &cmd.request));
            if let Err(refused) = allowed {
                return Output {
                    facts: Vec::new(),
                    effects: Vec::new(),
                    reply: Some(Reply {
                        request_id: cmd.request_id.clone(),
                        outcome: Outcome::Rejected(refused),
                    }),
                };
            }
        }
        self.handle(now, input, entropy)
    }

    /// A bank's kiosk may act on a drop-off only at its own bank: a request that names a
    /// reservation (confirm, open again, cancel) names no bank, so the reservation's says.
    /// An unknown reservation passes here and is refused by the workflow as unknown.
    fn reservation_at_callers_bank(
        &self,
        caller: &crate::access::Caller,
        request: &Request,
    ) -> Result<()> {
        let crate::access::Caller::BankKiosk { bank } = caller else {
            return Ok(());
        };
        let reservation = match request {
            Request::ConfirmParcel { reservation, .. }
            | Request::OpenReservation { reservation }
            | Request::CancelDropOff { reservation } => reservation,
            _ => return Ok(()),
        };
        match self.state.reservations.get(reservation) {
            Some(r) if &r.bank != bank => reject(
                RejectCode::NotPermitted,
                format!(
                    "reservation {reservation} is at bank {:?}, not this kiosk's",
                    r.bank
                ),
            ),
            _ => Ok(()),
        }
    }

    pub(crate) fn handle_command(
        &mut self,
        now: Millis,
        cmd: Command,
        entropy: &mut dyn Entropy,
    ) -> Output {
        let fp = self.keys.fingerprint(&cmd.request);
        let seen = self
            .state
            .answered
            .get(&cmd.request_id)
            .or_else(|| self.volatile_replies.get(&cmd.request_id));
        if let Some((seen_fp, reply)) = seen {
            let reply = if *seen_fp == fp {
                reply.clone()
            } else {
                Reply {
                    request_id: cmd.request_id.clone(),
                    outcome: Outcome::Rejected(Rejection::new(
                        RejectCode::RequestIdReused,
                        format!(
                            "request id {} was already used for a different request",
                            cmd.request_id
                        ),
                    )),
                }
            };
            return Output {
                facts: Vec::new(),
                effects: Vec::new(),
                reply: Some(reply),
            };
        }

        let before = self.snapshot(now);
        let mut tx = Tx::new(now, entropy);
        let outcome = match self.dispatch(&mut tx, &cmd.request) {
            Ok(o) => o,
            Err(rejection) => Outcome::Rejected(rejection),
        };
        let reply = Reply {
            request_id: cmd.request_id.clone(),
            outcome,
        };
        // Queries change nothing, so replaying them cannot either; everything else is answered
        // in a fact, so a replay after a restart (or on another replica) gets the same answer.
        let query = matches!(
            cmd.request,
            Request::SuggestSize { .. } | Request::AuditList { .. }
        );
        if query {
            self.remember_volatile(cmd.request_id, fp, reply.clone());
        } else {
            self.record(
                &mut tx,
                Actor::System,
                Subject::none(),
                FactKind::Answered {
                    request: cmd.request_id,
                    fingerprint: fp,
                    reply: reply.clone(),
                },
            );
        }
        self.finish(tx, before, Some(reply))
    }

    fn remember_volatile(&mut self, id: RequestId, fp: String, reply: Reply) {
        if self.volatile_order.len() >= VOLATILE_REPLIES {
            if let Some(old) = self.volatile_order.pop_front() {
                self.volatile_replies.remove(&old);
            }
        }
        self.volatile_order.push_back(id.clone());
        self.volatile_replies.insert(id, (fp, reply));
    }

    fn dispatch(&mut self, tx: &mut Tx, request: &Request) -> Result<Outcome> {
        use Request as R;
        match request {
            R::SuggestSize { dimensions } => self.suggest_size(*dimensions),
            R::StartDropOff { .. } => self.start_drop_off(tx, request),
            R::ConfirmParcel {
                reservation,
                tracking,
            } => self.confirm_parcel(tx, reservation, tracking.clone()),
            R::OpenReservation { reservation } => self.open_reservation(tx, reservation),
            R::CancelDropOff { reservation } => self.cancel_drop_off(tx, reservation),
            R::PickupByPin { bank, pin } => self.pickup_by_pin(tx, bank, pin),
            R::PickupByQr { bank, token } => self.pickup_by_qr(tx, bank, token),
            R::PickupByBadge { bank, badge } => self.pickup_by_badge(tx, bank, badge),
            R::StaffOpenDoor {
                by,
                bank,
                door,
                reason,
            } => self.staff_open_door(tx, by, bank, *door, reason),
            R::StaffOpenBank { by, bank, reason } => self.staff_open_bank(tx, by, bank, reason),
            R::SetOutOfService {
                by,
                bank,
                door,
                out_of_service,
                reason,
            } => self.set_out_of_service(tx, by, bank, *door, *out_of_service, reason),
            R::ReassignParcels { by, parcels, to } => self.reassign(tx, by, parcels, to),
            R::DeskCheckIn {
                by,
                resident,
                tracking,
                carrier,
            } => self.desk_check_in(tx, by, resident, tracking.clone(), carrier.clone()),
            R::DeskPickup { by, parcels } => self.desk_pickup(tx, by, parcels),
            R::RemoveParcels {
                by,
                bank,
                door,
                disposition,
                reason,
            } => self.remove_parcels(tx, by, bank, *door, *disposition, reason),
            R::SendToDesk { by, parcel, reason } => self.send_to_desk(tx, by, parcel, reason),
            R::ResendCode { by, parcel } => self.resend_code(tx, by, parcel),
            R::SetVacationHold { by, target, until } => {
                self.set_vacation_hold(tx, by, target, *until)
            }
            R::ClearVacationHold { by, target } => self.clear_vacation_hold(tx, by, target),
            R::ResolveUnlock { by, unlock, opened } => self.resolve_unlock(tx, by, unlock, *opened),
            R::AcknowledgeAlert { by, alert, note } => {
                self.acknowledge_alert(tx, by, alert, note.as_deref())
            }
            R::AuditList { .. } => Ok(Outcome::Audit {
                compartments: self.compartments(),
            }),
            R::AuditRecord {
                by,
                bank,
                door,
                finding,
            } => self.audit_record(tx, by, bank, *door, finding),
            R::RegisterResident { .. }
            | R::DeactivateResident { .. }
            | R::RegisterBadge { .. }
            | R::RevokeBadge { .. }
            | R::RegisterCarrier { .. }
            | R::IssueCarrierCode { .. }
            | R::SendCarrierCode { .. }
            | R::RevokeCarrierCode { .. }
            | R::RevokeCarrierCodeRef { .. }
            | R::RevokeCarrier { .. }
            | R::PreAdvise { .. } => self.directory(tx, request),
            R::ImportRoll {
                by,
                source,
                rows,
                skip_rejected,
            } => self.import_roll(tx, by, source, rows, *skip_rejected),
            R::ResolveRollReview {
                by,
                review,
                decision,
            } => self.resolve_roll_review(tx, by, review, *decision),
        }
    }

    /// Time passing with no input: unlocks nobody answered, alerts past their grace period,
    /// reservation timeouts, door-ajar alerts, reminders, expiries, and lockout ends. Call it at `next_deadline()` (calling it
    /// more often is harmless). Same durable-before-acknowledged contract as `handle`.
    pub fn tick(&mut self, now: Millis, entropy: &mut dyn Entropy) -> Output {
        let before = self.snapshot(now);
        let mut tx = Tx::new(now, entropy);
        self.unknown_unlocks_at_start(&mut tx);
        self.unlock_timers(&mut tx);
        self.alert_timers(&mut tx);
        self.reservation_timers(&mut tx);
        self.ajar_timers(&mut tx);
        self.hold_timers(&mut tx);
        self.cold_timers(&mut tx);
        for b in self.state.banks.iter() {
            if let Some(until) = b.1.locked_until {
                if until > self.last_tick && until <= now {
                    tx.effects.push(Effect::PublishBank { bank: b.0.clone() });
                }
            }
        }
        self.last_tick = self.last_tick.max(now);
        let out = self.finish(tx, before, None);
        self.and_remote_requests(out, now, entropy)
    }

    /// The earliest time at which `tick` has something to do, if any.
    pub fn next_deadline(&self) -> Option<Millis> {
        let mut d: Vec<Millis> = Vec::new();
        if !self.unknown_at_start.is_empty() || self.remote_due() {
            d.push(Millis(0));
        }
        d.extend(self.unlock_deadlines());
        d.extend(self.alert_deadlines());
        d.extend(self.reservation_deadlines());
        d.extend(self.ajar_deadlines());
        d.extend(self.hold_deadlines());
        d.extend(self.cold_deadlines());
        d.extend(
            self.state
                .banks
                .values()
                .filter_map(|b| b.locked_until)
                .filter(|u| *u > self.last_tick),
        );
        d.into_iter().min()
    }

    /// Merge facts from another replica. Facts already known are ignored; state is re-derived by
    /// folding every fact in id order, and the effects that follow (alerts raised by conflicts,
    /// compartments to republish) are returned. `Output.facts` is empty: the merged facts are
    /// already in the store.
    pub fn merge(&mut self, now: Millis, facts: Vec<Fact>, entropy: &mut dyn Entropy) -> Output {
        let before = self.snapshot(now);
        let mut fresh = Vec::new();
        let mut ignored = Vec::new();
        for f in facts {
            if self.facts.contains_key(&f.id) {
                continue;
            }
            if !crate::access::folded(&f) {
                ignored.push(f);
                continue;
            }
            fresh.push(f);
        }
        fresh.sort_by(|a, b| a.id.cmp(&b.id));
        fresh.dedup_by(|a, b| a.id == b.id);
        // Facts newer than every fact folded so far (a live change from another hub) are folded
        // one by one: the fold goes in id order, so that is what folding everything again would
        // give. Anything older (catch-up after a partition) is folded again from the start.
        let in_order = match (&self.state.last, fresh.first()) {
            (Some(last), Some(first)) => first.id > *last,
            _ => true,
        };
        let changed = !fresh.is_empty();
        for f in fresh {
            if f.id.hub == self.hub {
                self.next_seq = self.next_seq.max(f.id.seq + 1);
            }
            if in_order {
                self.state.apply(&self.ctx, &f);
                self.folded += 1;
            }
            self.facts.insert(f.id.clone(), f);
        }
        if changed && !in_order {
            self.refold();
        }
        let mut tx = Tx::new(now, entropy);
        for f in ignored {
            let kind = format!("{:?}", f.kind);
            let kind = kind
                .split([' ', '{', '('])
                .next()
                .unwrap_or_default()
                .to_owned();
            self.raise_alert(
                &mut tx,
                AlertKind::CloudWriteIgnored,
                Subject::none(),
                format!(
                    "the cloud wrote a {} fact ({}), which only a hub may record: it is kept in \
                     the synced document and ignored; check the cloud application",
                    kind, f.id
                ),
            );
        }
        let out = self.finish(tx, before, None);
        // Requests the cloud just made, run here if this hub executes them.
        self.and_remote_requests(out, now, entropy)
    }

    /// `out`, followed by running the remote requests that wait for this hub (`remote.rs`).
    fn and_remote_requests(
        &mut self,
        mut out: Output,
        now: Millis,
        entropy: &mut dyn Entropy,
    ) -> Output {
        if self.remote_due() {
            let remote = self.run_remote_requests(now, entropy);
            out.facts.extend(remote.facts);
            out.effects.extend(remote.effects);
        }
        out
    }

    // --- views ---

    /// Every compartment of the layout, in layout order.
    pub fn compartments(&self) -> Vec<CompartmentView> {
        self.state.compartment_views(&self.ctx)
    }

    /// Every parcel ever recorded, by id.
    pub fn parcels(&self) -> Vec<ParcelView> {
        self.state
            .parcels
            .values()
            .map(|p| self.state.parcel_view(&self.ctx, p))
            .collect()
    }

    pub fn parcel(&self, id: &ParcelId) -> Option<ParcelView> {
        self.state
            .parcels
            .get(id)
            .map(|p| self.state.parcel_view(&self.ctx, p))
    }

    /// Open alerts, by id.
    pub fn alerts(&self) -> Vec<Alert> {
        self.state.alerts.values().cloned().collect()
    }

    /// Banks with online state and keypad lockout as of `now`.
    pub fn banks(&self, now: Millis) -> Vec<BankView> {
        self.state.bank_views(&self.ctx, now)
    }

    /// Every fact, in fold order (the audit trail).
    pub fn facts(&self) -> impl DoubleEndedIterator<Item = &Fact> {
        self.facts.values()
    }

    /// The facts at or after `since`, in fold order. Fact ids start with their time, so this
    /// reads only the tail of the record (the analytics page's 30 days, not the whole year).
    pub fn facts_since(&self, since: Millis) -> impl DoubleEndedIterator<Item = &Fact> {
        let from = FactId {
            ms: since.0,
            hub: String::new(),
            seq: 0,
        };
        self.facts.range(from..).map(|(_, f)| f)
    }

    /// The residents in the directory, by id (deactivated ones included).
    pub fn residents(&self) -> Vec<ResidentView> {
        self.state.resident_views()
    }

    /// The carriers in the directory, by id, with references to their live codes.
    pub fn carriers(&self) -> Vec<CarrierView> {
        self.state.carrier_views()
    }

    /// The reference of a live carrier code, found from its plaintext: lets the person who has
    /// just issued a code learn how to name it later, without the code being stored anywhere.
    pub fn carrier_code_ref(&self, code: &str) -> Option<String> {
        let hash = self.keys.carrier_code_hash(code);
        let carrier = self.state.carrier_codes.get(&hash)?;
        let c = self.state.carriers.get(carrier)?;
        c.codes
            .iter()
            .find(|(_, (h, _))| *h == hash)
            .map(|(r, _)| r.clone())
    }

    /// Checks the state's indexes (what lets a step skip a walk over all of history) against
    /// a walk over everything. For tests: a broken index is a bug, reported with what differs.
    #[doc(hidden)]
    pub fn check_indexes(&self) -> std::result::Result<(), String> {
        self.state.check_indexes()
    }

    pub fn hub_id(&self) -> &str {
        &self.hub
    }

    // --- plumbing shared by the workflows ---

    fn refold(&mut self) {
        let mut state = State::default();
        for f in self.facts.values() {
            state.apply(&self.ctx, f);
        }
        self.state = state;
        // A rebuilt state: whatever views were kept describe the old one.
        self.folded += 1;
        self.digest_cache = None;
    }

    /// A new fact id greater than every fact known, so applying it now gives the same state as
    /// folding everything from scratch.
    fn next_id(&mut self, now: Millis) -> FactId {
        let ms = match &self.state.last {
            Some(last) if last.ms >= now.0 => {
                if last.hub == self.hub {
                    last.ms
                } else {
                    last.ms + 1
                }
            }
            _ => now.0,
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        FactId {
            ms,
            hub: self.hub.clone(),
            seq,
        }
    }

    /// Record a fact: give it an id, fold it into the state, and add it to the step's output.
    pub(crate) fn record(
        &mut self,
        tx: &mut Tx,
        actor: Actor,
        subject: Subject,
        kind: FactKind,
    ) -> FactId {
        let fact = Fact {
            id: self.next_id(tx.now),
            at: tx.now,
            actor,
            bank: subject.bank,
            door: subject.door,
            parcel: subject.parcel,
            kind,
        };
        self.state.apply(&self.ctx, &fact);
        self.folded += 1;
        self.facts.insert(fact.id.clone(), fact.clone());
        let id = fact.id.clone();
        tx.facts.push(fact);
        id
    }

    pub(crate) fn raise_alert(
        &mut self,
        tx: &mut Tx,
        kind: AlertKind,
        subject: Subject,
        message: String,
    ) -> FactId {
        self.record(
            tx,
            Actor::System,
            subject,
            FactKind::AlertRaised {
                alert: kind,
                message,
                unit: None,
            },
        )
    }

    /// Open alerts of a kind for a bank (and door, if given).
    pub(crate) fn open_alerts(
        &self,
        kind: AlertKind,
        bank: &str,
        door: Option<u16>,
    ) -> Vec<AlertId> {
        self.state
            .alerts
            .values()
            .filter(|a| a.kind == kind && a.bank.as_deref() == Some(bank))
            .filter(|a| door.is_none() || a.door == door)
            .map(|a| a.id.clone())
            .collect()
    }

    pub(crate) fn clear_alerts(
        &mut self,
        tx: &mut Tx,
        actor: Actor,
        kind: AlertKind,
        bank: &str,
        door: Option<u16>,
    ) {
        for alert in self.open_alerts(kind, bank, door) {
            let subject = match door {
                Some(d) => Subject::door(bank, d),
                None => Subject::bank(bank),
            };
            self.record(
                tx,
                actor.clone(),
                subject,
                FactKind::AlertCleared { alert, note: None },
            );
        }
    }

    /// Tell each resident of `parcels` about theirs, without a code (a parcel at the desk,
    /// parcels handed over).
    pub(crate) fn tell_each_resident(
        &self,
        tx: &mut Tx,
        parcels: &[ParcelId],
        kind: crate::effect::NotifyKind,
    ) {
        let mut by_resident: BTreeMap<crate::ids::ResidentId, Vec<ParcelId>> = BTreeMap::new();
        for id in parcels {
            if let Some(r) = self.state.parcels.get(id).and_then(|p| p.resident.clone()) {
                by_resident.entry(r).or_default().push(id.clone());
            }
        }
        for (resident, parcels) in by_resident {
            tx.effects.push(Effect::Notify {
                resident,
                parcels,
                pin: None,
                qr: None,
                kind,
                code: None,
            });
        }
    }

    /// Clear the open alerts of `kinds` about any of `parcels` (a task that ended with the
    /// parcel leaving), as `subject`.
    pub(crate) fn clear_parcel_alerts(
        &mut self,
        tx: &mut Tx,
        subject: Subject,
        parcels: &[ParcelId],
        kinds: &[AlertKind],
    ) {
        let settled: Vec<_> = self
            .state
            .alerts
            .values()
            .filter(|a| {
                kinds.contains(&a.kind) && a.parcel.as_ref().is_some_and(|p| parcels.contains(p))
            })
            .map(|a| a.id.clone())
            .collect();
        for alert in settled {
            self.record(
                tx,
                Actor::System,
                subject.clone(),
                FactKind::AlertCleared { alert, note: None },
            );
        }
    }

    pub(crate) fn snapshot(&mut self, now: Millis) -> Snapshot {
        let compartments = match self.digest_cache.take() {
            Some((folded, digests)) if folded == self.folded => digests,
            _ => self.state.compartment_digests(&self.ctx),
        };
        Snapshot {
            compartments,
            banks: self.banks(now),
            alerts: self.state.alerts.clone(),
        }
    }

    /// Effects that follow from state changes: alerts raised and cleared, retained state to
    /// republish.
    fn diff(&mut self, before: &Snapshot, now: Millis) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (id, a) in &self.state.alerts {
            if !before.alerts.contains_key(id) {
                effects.push(Effect::RaiseAlert {
                    alert: id.clone(),
                    kind: a.kind,
                    bank: a.bank.clone(),
                    door: a.door,
                    message: a.message.clone(),
                });
            }
        }
        for id in before.alerts.keys() {
            if !self.state.alerts.contains_key(id) {
                effects.push(Effect::ClearAlert { alert: id.clone() });
            }
        }
        let after = self.state.compartment_digests(&self.ctx);
        let doors = self.ctx.site.doors();
        for ((old, new), (bank, c)) in before.compartments.iter().zip(&after).zip(doors) {
            if old != new {
                effects.push(Effect::PublishCompartment {
                    bank: bank.to_owned(),
                    door: c.door,
                });
            }
        }
        self.digest_cache = Some((self.folded, after));
        for (old, new) in before.banks.iter().zip(self.banks(now)) {
            if *old != new {
                effects.push(Effect::PublishBank { bank: new.bank });
            }
        }
        effects
    }

    pub(crate) fn finish(&mut self, mut tx: Tx, before: Snapshot, reply: Option<Reply>) -> Output {
        let more = self.diff(&before, tx.now);
        for e in more {
            if !tx.effects.contains(&e) {
                tx.effects.push(e);
            }
        }
        Output {
            facts: tx.facts,
            effects: tx.effects,
            reply,
        }
    }
}

impl<'a> Tx<'a> {
    pub(crate) fn new(now: Millis, entropy: &'a mut dyn Entropy) -> Tx<'a> {
        Tx {
            now,
            entropy,
            facts: Vec::new(),
            effects: Vec::new(),
        }
    }
}

/// Shorthand for a rejection.
pub(crate) fn reject<T>(code: RejectCode, message: impl Into<String>) -> Result<T> {
    Err(Rejection::new(code, message))
}
