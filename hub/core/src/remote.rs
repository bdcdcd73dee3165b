//! Requests from the cloud, exactly once.
//!
//! The cloud does not write what happened; it asks. It writes a `remote_requested` fact (author
//! `cloud`) into the month's `requests` document; the hub that executes the site's remote
//! requests (`Policies::execute_remote_requests`, one per site) runs each through the normal
//! command path under the request id `remote-<fact id>`, with the checks any staff request
//! gets. The `answered` fact that every command leaves makes it exactly once: a request is
//! pending until its answer is folded, whether the answer was made here a moment ago, before a
//! crash, or by the other hub. A crash between the merge (the request is durable) and the
//! answer leaves it pending, and the first step after the restart runs it.
//!
//! What the cloud may ask is short (`cloud_may_ask`). "Open all" (`staff_open_bank`) never. An
//! open of one door is refused, with an answer and an alert, when it is older than
//! `remote_open_max_age`, dated in the future, or over `remote_opens_per_hour` for the site: in
//! 2020 an attacker used a locker company's remote channel to open 2,732 lockers.

use crate::core::{Core, Subject, Tx};
use crate::effect::Output;
use crate::fact::{Actor, AlertKind, FactKind};
use crate::ids::{remote_request_id, FactId, Millis};
use crate::input::{Command, Operator, Request};
use crate::reply::{Outcome, RejectCode, Rejection, Reply};
use crate::Entropy;

const HOUR_MS: u64 = 3_600_000;
/// How far in the future a request's time may be (clock skew between cloud and hub).
const FUTURE_SLACK_MS: u64 = 60_000;
/// Live codes issued to one carrier in the last day beyond which the cloud may not ask for
/// another: each is a working credential until staff revoke it.
pub const CLOUD_CARRIER_CODES_PER_DAY: usize = 3;

/// What the cloud may ask the hub to do. Exhaustive, like `need_for`: a new request is refused
/// from the cloud until someone decides otherwise.
pub fn cloud_may_ask(request: &Request) -> bool {
    use Request as R;
    match request {
        R::StaffOpenDoor { .. }
        | R::ReassignParcels { .. }
        | R::SendToDesk { .. }
        | R::ResendCode { .. }
        | R::SetVacationHold { .. }
        | R::ClearVacationHold { .. }
        | R::RegisterResident { .. }
        | R::DeactivateResident { .. }
        // The code goes to the address an admin registered for the carrier (the cloud may not
        // write carriers), never to whoever asked.
        | R::SendCarrierCode { .. } => true,
        R::StaffOpenBank { .. }
        | R::SuggestSize { .. }
        | R::StartDropOff { .. }
        | R::ConfirmParcel { .. }
        | R::OpenReservation { .. }
        | R::CancelDropOff { .. }
        | R::PickupByPin { .. }
        | R::PickupByQr { .. }
        | R::PickupByBadge { .. }
        | R::SetOutOfService { .. }
        | R::DeskCheckIn { .. }
        | R::DeskPickup { .. }
        | R::RemoveParcels { .. }
        | R::ResolveUnlock { .. }
        | R::AcknowledgeAlert { .. }
        | R::AuditList { .. }
        | R::AuditRecord { .. }
        | R::RegisterBadge { .. }
        | R::RevokeBadge { .. }
        | R::RegisterCarrier { .. }
        | R::IssueCarrierCode { .. }
        | R::RevokeCarrierCode { .. }
        | R::RevokeCarrierCodeRef { .. }
        | R::RevokeCarrier { .. }
        | R::PreAdvise { .. }
        // A whole roll is staff's, through the API or the page; the cloud registers residents
        // one by one.
        | R::ImportRoll { .. }
        | R::ResolveRollReview { .. } => false,
    }
}

/// The request as the cloud's: whatever operator it names, it runs as `Operator::Cloud`.
fn as_cloud(mut request: Request) -> Request {
    use Request as R;
    match &mut request {
        R::StaffOpenDoor { by, .. }
        | R::ReassignParcels { by, .. }
        | R::SendToDesk { by, .. }
        | R::ResendCode { by, .. }
        | R::SetVacationHold { by, .. }
        | R::ClearVacationHold { by, .. }
        | R::RegisterResident { by, .. }
        | R::DeactivateResident { by, .. }
        | R::SendCarrierCode { by, .. } => *by = Operator::Cloud,
        _ => {}
    }
    request
}

impl Core {
    /// True when a remote request waits for this hub to run it.
    pub(crate) fn remote_due(&self) -> bool {
        self.ctx.policies.execute_remote_requests
            && !self.remote_held
            && !self.state.remote_pending.is_empty()
    }

    /// The shell's observation that a sync link is catching up (`true`) or that none is
    /// (`false`). While one is, remote requests wait: what the cloud wrote before a request (a
    /// resident registered, then a parcel reassigned to them) may be in a document that has
    /// not arrived yet, and the request must meet the directory the cloud saw. Once no link is
    /// catching up, `next_deadline` is due at once and the next `tick` runs them.
    pub fn hold_remote_requests(&mut self, held: bool) {
        self.remote_held = held;
    }

    /// Runs every remote request not answered yet, oldest first, when this hub executes the
    /// site's remote requests. The engine calls it after a merge and at every step (`tick`).
    pub fn run_remote_requests(&mut self, now: Millis, entropy: &mut dyn Entropy) -> Output {
        let mut out = Output::default();
        if !self.remote_due() {
            return out;
        }
        let pending: Vec<(FactId, Millis, Request)> = self
            .state
            .remote_pending
            .iter()
            .map(|(id, (at, r))| (id.clone(), *at, r.clone()))
            .collect();
        for (id, at, request) in pending {
            let one = self.run_remote(now, &id, at, as_cloud(request), entropy);
            out.facts.extend(one.facts);
            for e in one.effects {
                if !out.effects.contains(&e) {
                    out.effects.push(e);
                }
            }
        }
        out
    }

    fn run_remote(
        &mut self,
        now: Millis,
        id: &FactId,
        at: Millis,
        request: Request,
        entropy: &mut dyn Entropy,
    ) -> Output {
        let request_id = remote_request_id(id);
        if let Err(rejection) = self.remote_check(now, at, &request) {
            let before = self.snapshot(now);
            let mut tx = Tx::new(now, entropy);
            let fingerprint = self.keys.fingerprint(&request);
            self.record(
                &mut tx,
                Actor::Cloud,
                Subject::none(),
                FactKind::Answered {
                    request: request_id,
                    fingerprint,
                    reply: Reply {
                        request_id: remote_request_id(id),
                        outcome: Outcome::Rejected(rejection.clone()),
                    },
                },
            );
            self.raise_alert(
                &mut tx,
                AlertKind::RemoteRequestRefused,
                Subject::none(),
                format!(
                    "a request from the cloud ({id}) was refused: {}",
                    rejection.message
                ),
            );
            return self.finish(tx, before, None);
        }
        self.handle_command(
            now,
            Command {
                request_id,
                request,
            },
            entropy,
        )
    }

    fn remote_check(&self, now: Millis, at: Millis, request: &Request) -> Result<(), Rejection> {
        let p = &self.ctx.policies;
        if matches!(request, Request::StaffOpenBank { .. }) {
            return Err(Rejection::new(
                RejectCode::NotPermitted,
                "opening a whole bank is never accepted from the cloud",
            ));
        }
        if !cloud_may_ask(request) {
            return Err(Rejection::new(
                RejectCode::NotPermitted,
                "the cloud may not ask for this",
            ));
        }
        if let Request::SendCarrierCode { carrier, .. } = request {
            let recent = self.state.carriers.get(carrier).map_or(0, |c| {
                c.codes
                    .values()
                    .filter(|(_, issued)| now.0.saturating_sub(issued.0) < 24 * HOUR_MS)
                    .count()
            });
            if recent >= CLOUD_CARRIER_CODES_PER_DAY {
                return Err(Rejection::new(
                    RejectCode::RateLimited,
                    format!(
                        "carrier {carrier} has {recent} live codes issued in the last day: the \
                         cloud may not ask for another; staff can issue one on the Carriers page"
                    ),
                ));
            }
        }
        if let Request::StaffOpenDoor { .. } = request {
            if at.0 > now.0.saturating_add(FUTURE_SLACK_MS) {
                return Err(Rejection::new(
                    RejectCode::NotAllowedNow,
                    "a remote open dated in the future is not accepted",
                ));
            }
            let age = now.0.saturating_sub(at.0);
            if age > p.remote_open_max_age_ms {
                return Err(Rejection::new(
                    RejectCode::NotAllowedNow,
                    format!(
                        "a remote open is accepted for {} minutes; this one is {} minutes old",
                        p.remote_open_max_age_ms / 60_000,
                        age / 60_000
                    ),
                ));
            }
            let recent = self
                .state
                .remote_opens
                .iter()
                .filter(|t| now.0.saturating_sub(t.0) < HOUR_MS)
                .count();
            if recent >= p.remote_opens_per_hour as usize {
                return Err(Rejection::new(
                    RejectCode::RateLimited,
                    format!(
                        "{} remote opens in the last hour: no more are accepted this hour",
                        p.remote_opens_per_hour
                    ),
                ));
            }
        }
        Ok(())
    }
}
