//! Requests from the cloud (`remote.rs`): run once on the hub that executes them, across merges
//! and restarts; a late, future-dated or eleventh open in an hour, "open all", and anything the
//! cloud may not ask are refused with an answer and an alert; a hub that does not execute them
//! only keeps them.

mod common;

use common::*;
use locker_core::*;

fn executing() -> Site {
    Site::with(
        Policies {
            execute_remote_requests: true,
            ..Policies::default()
        },
        "hub1",
        1,
    )
}

/// A `remote_requested` fact as the cloud writes it.
fn asked(seq: u64, at: Millis, request: Request) -> Fact {
    cloud_fact(seq, at, FactKind::RemoteRequested { request })
}

fn open_door(door: u16) -> Request {
    Request::StaffOpenDoor {
        // Whatever the cloud names, it runs as the cloud.
        by: staff(),
        bank: "A".into(),
        door,
        reason: "resident locked out, verified by phone".into(),
    }
}

fn unlocks(out: &Output) -> usize {
    out.effects
        .iter()
        .filter(|e| matches!(e, Effect::Unlock { .. }))
        .count()
}

fn merge(s: &mut Site, facts: Vec<Fact>) -> Output {
    s.log.extend(facts.iter().cloned());
    let out = s.core.merge(s.now, facts, &mut s.rng);
    s.log.extend(out.facts.iter().cloned());
    out
}

fn answer_of(s: &Site, fact: &Fact) -> Option<Outcome> {
    let id = remote_request_id(&fact.id);
    s.log.iter().rev().find_map(|f| match &f.kind {
        FactKind::Answered { request, reply, .. } if *request == id => Some(reply.outcome.clone()),
        _ => None,
    })
}

#[test]
fn a_remote_open_runs_once_across_merges_and_restarts() {
    let mut s = executing();
    let req = asked(1, s.now, open_door(2));
    let out = merge(&mut s, vec![req.clone()]);
    assert_eq!(unlocks(&out), 1, "{out:?}");
    assert!(
        matches!(answer_of(&s, &req), Some(Outcome::Opening { ref doors, .. }) if doors == &[2]),
        "{:?}",
        answer_of(&s, &req)
    );
    let opened_by_cloud = out.facts.iter().any(|f| f.actor == Actor::Cloud);
    assert!(opened_by_cloud, "recorded as the cloud's: {:?}", out.facts);

    // The same request again (a reconnect resends it), and a restart: nothing more.
    let again = merge(&mut s, vec![req.clone()]);
    assert_eq!(unlocks(&again), 0);
    s.restart();
    s.now = s.now.plus(1000);
    let out = s.tick();
    assert_eq!(unlocks(&out), 0, "{out:?}");
}

#[test]
fn a_crash_between_the_merge_and_the_answer_still_runs_it_once() {
    let mut s = executing();
    let req = asked(1, s.now, open_door(3));
    // The merge made the request durable; the process died before the answer was committed.
    s.log.push(req.clone());
    s.restart();
    assert!(s.core.next_deadline().is_some(), "due at once");
    let out = s.tick();
    assert_eq!(unlocks(&out), 1);
    s.log.extend(out.facts.iter().cloned());
    s.restart();
    assert_eq!(unlocks(&s.tick()), 0);
}

#[test]
fn late_future_dated_and_eleventh_opens_are_refused_with_an_alert() {
    let mut s = executing();
    let late = asked(1, Millis(s.now.0 - 11 * 60_000), open_door(1));
    let future = asked(2, s.now.plus(5 * 60_000), open_door(1));
    let out = merge(&mut s, vec![late.clone(), future.clone()]);
    assert_eq!(unlocks(&out), 0);
    for f in [&late, &future] {
        assert!(
            matches!(answer_of(&s, f), Some(Outcome::Rejected(r)) if r.code == RejectCode::NotAllowedNow),
            "{:?}",
            answer_of(&s, f)
        );
    }
    assert_eq!(s.alerts_of(AlertKind::RemoteRequestRefused).len(), 2);

    // Ten opens in an hour are carried out; the eleventh is refused.
    let mut opened = 0;
    for i in 0..11u64 {
        s.now = s.now.plus(60_000);
        let door = 1 + (i % 4) as u16;
        let req = asked(10 + i, s.now, open_door(door));
        let out = merge(&mut s, vec![req.clone()]);
        opened += unlocks(&out);
        if i == 10 {
            assert!(
                matches!(answer_of(&s, &req), Some(Outcome::Rejected(r)) if r.code == RejectCode::RateLimited),
                "{:?}",
                answer_of(&s, &req)
            );
        } else {
            // The door opens and closes again, so the next open is refused for no other reason.
            s.acked("A", door);
            s.opened("A", door);
            s.closed("A", door);
        }
    }
    assert_eq!(opened, 10);
    assert_eq!(s.alerts_of(AlertKind::RemoteRequestRefused).len(), 3);
}

#[test]
fn open_all_and_requests_the_cloud_may_not_make_are_refused() {
    let mut s = executing();
    let all = asked(
        1,
        s.now,
        Request::StaffOpenBank {
            by: staff(),
            bank: "A".into(),
            reason: "x".into(),
        },
    );
    let carrier = asked(
        2,
        s.now,
        Request::IssueCarrierCode {
            by: staff(),
            carrier: "ups".into(),
            code: "999999".into(),
        },
    );
    let out = merge(&mut s, vec![all.clone(), carrier.clone()]);
    assert_eq!(unlocks(&out), 0);
    for f in [&all, &carrier] {
        assert!(
            matches!(answer_of(&s, f), Some(Outcome::Rejected(r)) if r.code == RejectCode::NotPermitted)
        );
    }
    assert_eq!(s.alerts_of(AlertKind::RemoteRequestRefused).len(), 2);
}

#[test]
fn a_hub_that_does_not_execute_only_keeps_them_and_a_hub_cannot_forge_one() {
    let mut relay = Site::new();
    let req = asked(1, relay.now, open_door(2));
    let out = merge(&mut relay, vec![req.clone()]);
    assert_eq!(unlocks(&out), 0);
    assert!(answer_of(&relay, &req).is_none());

    // A remote request claiming a hub as its author is not the cloud's: never folded.
    let mut s = executing();
    let mut forged = asked(1, s.now, open_door(2));
    forged.id.hub = "hub2".into();
    let out = merge(&mut s, vec![forged]);
    assert_eq!(unlocks(&out), 0);
}

const DAY_MS: u64 = 86_400_000;

#[test]
fn the_cloud_asks_for_a_parcel_at_the_desk_and_staff_taking_it_there_settles_it() {
    let mut s = executing();
    let d = s.deliver("A", "r1", Size::Small, 1);
    let parcel = d.parcels[0].clone();
    let desk = |seq, s: &Site| {
        asked(
            seq,
            s.now,
            Request::SendToDesk {
                by: staff(),
                parcel: parcel.clone(),
                reason: "resident on crutches, asked in the app".into(),
            },
        )
    };
    let req = desk(1, &s);
    let out = merge(&mut s, vec![req.clone()]);
    assert_eq!(unlocks(&out), 0, "asking opens nothing");
    assert_eq!(answer_of(&s, &req), Some(Outcome::Accepted));
    let task = s.alerts_of(AlertKind::DeskRequested);
    assert_eq!(task.len(), 1);
    assert_eq!(task[0].parcel.as_ref(), Some(&parcel));
    assert_eq!(
        (task[0].bank.as_deref(), task[0].door),
        (Some("A"), Some(d.door))
    );
    assert!(task[0].message.contains("the cloud"), "{}", task[0].message);

    // Asked again (another request): refused, one task stays.
    let again = desk(2, &s);
    merge(&mut s, vec![again.clone()]);
    assert!(
        matches!(answer_of(&s, &again), Some(Outcome::Rejected(r)) if r.code == RejectCode::NotAllowedNow),
        "{:?}",
        answer_of(&s, &again)
    );
    assert_eq!(s.alerts_of(AlertKind::DeskRequested).len(), 1);

    // Staff take it to the package room: the resident is told, the task is cleared.
    s.ok(Request::RemoveParcels {
        by: staff(),
        bank: "A".into(),
        door: d.door,
        disposition: Disposition::PackageRoom,
        reason: "asked for at the desk".into(),
    });
    s.acked("A", d.door);
    let out = s.opened("A", d.door);
    assert!(
        out.effects.iter().any(|e| matches!(
            e,
            Effect::Notify {
                kind: NotifyKind::AtDesk,
                ..
            }
        )),
        "{out:?}"
    );
    assert!(s.alerts_of(AlertKind::DeskRequested).is_empty());
}

#[test]
fn a_desk_request_for_a_parcel_the_resident_collects_is_cleared_and_bad_ones_are_refused() {
    let mut s = executing();
    let d = s.deliver("A", "r1", Size::Small, 1);
    s.ok(Request::SendToDesk {
        by: staff(),
        parcel: d.parcels[0].clone(),
        reason: "front desk please".into(),
    });
    assert_eq!(s.alerts_of(AlertKind::DeskRequested).len(), 1);
    s.collect(&d);
    assert!(s.alerts_of(AlertKind::DeskRequested).is_empty());

    // Collected, unknown, or no reason.
    let collected = s.refused(
        Request::SendToDesk {
            by: staff(),
            parcel: d.parcels[0].clone(),
            reason: "again".into(),
        },
        RejectCode::NotAllowedNow,
    );
    assert!(
        collected.message.contains("not held in a locker"),
        "{collected:?}"
    );
    s.refused(
        Request::SendToDesk {
            by: staff(),
            parcel: ParcelId("no-such-parcel".into()),
            reason: "x".into(),
        },
        RejectCode::UnknownParcel,
    );
    let d2 = s.deliver("A", "r2", Size::Small, 1);
    s.refused(
        Request::SendToDesk {
            by: staff(),
            parcel: d2.parcels[0].clone(),
            reason: "  ".into(),
        },
        RejectCode::InvalidInput,
    );
}

#[test]
fn the_cloud_extends_the_hold_of_one_parcel() {
    let mut s = executing();
    let d = s.deliver("A", "r1", Size::Small, 1);
    let parcel = d.parcels[0].clone();
    let normal = s.parcel(&parcel).expires_at.expect("held");
    let until = Millis(normal.0 + 4 * DAY_MS);
    let req = asked(
        1,
        s.now,
        Request::SetVacationHold {
            by: staff(),
            target: HoldTarget::Parcel {
                parcel: parcel.clone(),
            },
            until,
        },
    );
    merge(&mut s, vec![req.clone()]);
    assert_eq!(answer_of(&s, &req), Some(Outcome::Accepted));
    assert_eq!(s.parcel(&parcel).expires_at, Some(until));

    // Past the normal expiry it is still held and its PIN still works; past the new one, not.
    s.now = Millis(normal.0 + DAY_MS);
    s.tick();
    assert!(!s.parcel(&parcel).expired);
    s.now = Millis(until.0 + 1);
    s.tick();
    assert!(s.parcel(&parcel).expired);
}

#[test]
fn requests_wait_while_a_link_catches_up_so_they_meet_the_directory_the_cloud_saw() {
    let mut s = executing();
    let d = s.deliver("A", "r1", Size::Small, 1);
    // The requests document arrives first (it is synced first); the directory fact the cloud
    // wrote before the request is still on its way.
    s.core.hold_remote_requests(true);
    let req = asked(
        2,
        s.now,
        Request::ReassignParcels {
            by: staff(),
            parcels: d.parcels.clone(),
            to: ResidentId("r-new".into()),
        },
    );
    merge(&mut s, vec![req.clone()]);
    assert!(answer_of(&s, &req).is_none(), "held while catching up");
    assert_eq!(s.core.next_deadline().map(|t| t.0 == 0), Some(false));
    let registered = Fact {
        kind: FactKind::ResidentRegistered {
            resident: ResidentId("r-new".into()),
            unit: "202".into(),
            accessible: false,
            contact: Default::default(),
            tenancy: Default::default(),
            roll: false,
        },
        ..asked(1, s.now, open_door(1))
    };
    merge(&mut s, vec![registered]);
    assert!(answer_of(&s, &req).is_none());

    // Caught up: due at once, and run against the directory with the newcomer in it.
    s.core.hold_remote_requests(false);
    assert_eq!(s.core.next_deadline(), Some(Millis(0)));
    s.tick();
    assert_eq!(answer_of(&s, &req), Some(Outcome::Accepted));
    assert_eq!(
        s.parcel(&d.parcels[0]).resident,
        Some(ResidentId("r-new".into()))
    );
}

fn send_code(carrier: &str) -> Request {
    Request::SendCarrierCode {
        by: staff(),
        carrier: carrier.into(),
    }
}

fn sent_codes(out: &Output) -> Vec<(String, String)> {
    out.effects
        .iter()
        .filter_map(|e| match e {
            Effect::NotifyCarrier { code, code_ref, .. } => Some((code.clone(), code_ref.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_cloud_asks_for_a_carrier_code_and_only_the_carriers_address_gets_it_once() {
    let mut s = executing();
    s.ok(Request::RegisterCarrier {
        by: staff(),
        carrier: "ups".into(),
        name: "UPS".into(),
        email: Some(" codes@ups.example ".into()),
    });
    let req = asked(1, s.now, send_code("ups"));
    let out = merge(&mut s, vec![req.clone()]);
    let sent = sent_codes(&out);
    assert_eq!(sent.len(), 1, "{out:?}");
    let (code, code_ref) = sent[0].clone();
    assert_eq!(code.len(), SENT_CARRIER_CODE_DIGITS);
    assert!(code.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(
        answer_of(&s, &req),
        Some(Outcome::CarrierCodeSent {
            carrier: "ups".into(),
            code_ref: code_ref.clone()
        })
    );
    let issued = out.facts.iter().find(|f| f.id.to_string() == code_ref);
    assert!(
        matches!(issued, Some(f) if f.actor == Actor::Cloud
            && matches!(f.kind, FactKind::CarrierCodeIssued { .. })),
        "issued as the cloud's request: {issued:?}"
    );
    let view = s.core.carriers();
    let ups = view
        .iter()
        .find(|c| c.carrier.as_str() == "ups")
        .expect("ups");
    assert_eq!(ups.email.as_deref(), Some("codes@ups.example"), "trimmed");
    assert!(ups.codes.iter().any(|c| c.code_ref == code_ref));

    // The code is in no fact, no reply and no other effect: only in the one for the outbox.
    let facts = serde_json::to_string(&s.log).expect("json");
    assert!(!facts.contains(&code), "the code is in a fact");
    let others: Vec<&Effect> = out
        .effects
        .iter()
        .filter(|e| !matches!(e, Effect::NotifyCarrier { .. }))
        .collect();
    let others = serde_json::to_string(&others).expect("json");
    assert!(!others.contains(&code));

    // It opens a drop-off at a bank like any carrier code.
    let mut with_code = drop_off_request("A", "r1", Size::Small, false);
    if let Request::StartDropOff { carrier_code, .. } = &mut with_code {
        *carrier_code = code.clone();
    }
    assert!(matches!(s.ok(with_code), Outcome::Reserved { .. }));

    // Once: the request merged again, a restart, a tick.
    assert!(sent_codes(&merge(&mut s, vec![req.clone()])).is_empty());
    s.restart();
    s.now = s.now.plus(1000);
    assert!(sent_codes(&s.tick()).is_empty());
}

#[test]
fn a_carrier_code_is_not_sent_without_an_address_or_to_a_deactivated_carrier() {
    let mut s = executing();
    // The site's carrier has no address: the cloud's request is answered with the reason and
    // alerts, and no code is drawn.
    let req = asked(1, s.now, send_code("ups"));
    let out = merge(&mut s, vec![req.clone()]);
    assert!(sent_codes(&out).is_empty());
    assert!(
        matches!(answer_of(&s, &req), Some(Outcome::Rejected(ref r)) if r.message.contains("no email address")),
        "{:?}",
        answer_of(&s, &req)
    );
    assert!(!has_fact(&out, |k| matches!(
        k,
        FactKind::CarrierCodeIssued { .. }
    )));
    let unknown = asked(2, s.now, send_code("nobody"));
    merge(&mut s, vec![unknown.clone()]);
    assert!(
        matches!(answer_of(&s, &unknown), Some(Outcome::Rejected(ref r)) if r.code == RejectCode::UnknownCarrier)
    );

    // An address is checked; registering again without one keeps it; an empty one clears it.
    s.refused(
        Request::RegisterCarrier {
            by: staff(),
            carrier: "ups".into(),
            name: "UPS".into(),
            email: Some("not an address".into()),
        },
        RejectCode::InvalidInput,
    );
    for (email, kept) in [
        (Some("codes@ups.example"), Some("codes@ups.example")),
        (None, Some("codes@ups.example")),
        (Some(""), None),
    ] {
        s.ok(Request::RegisterCarrier {
            by: staff(),
            carrier: "ups".into(),
            name: "UPS".into(),
            email: email.map(str::to_owned),
        });
        let view = s.core.carriers();
        let ups = view
            .iter()
            .find(|c| c.carrier.as_str() == "ups")
            .expect("ups");
        assert_eq!(ups.email.as_deref(), kept, "after {email:?}");
    }

    // A deactivated carrier gets no code, from staff or the cloud.
    s.ok(Request::RegisterCarrier {
        by: staff(),
        carrier: "ups".into(),
        name: "UPS".into(),
        email: Some("codes@ups.example".into()),
    });
    s.ok(Request::RevokeCarrier {
        by: staff(),
        carrier: "ups".into(),
    });
    s.refused(send_code("ups"), RejectCode::NotAllowedNow);
    let late = asked(3, s.now, send_code("ups"));
    assert!(sent_codes(&merge(&mut s, vec![late])).is_empty());
}

#[test]
fn a_cloud_written_carrier_address_is_not_folded() {
    // The cloud may not write carriers, so it cannot point a code at an address of its own.
    let mut s = executing();
    let forged = cloud_fact(
        1,
        s.now,
        FactKind::CarrierRegistered {
            carrier: "ups".into(),
            name: "UPS".into(),
            email: Some("attacker@example.net".into()),
        },
    );
    let req = asked(2, s.now, send_code("ups"));
    let out = merge(&mut s, vec![forged, req.clone()]);
    assert!(sent_codes(&out).is_empty(), "{out:?}");
    let view = s.core.carriers();
    let ups = view
        .iter()
        .find(|c| c.carrier.as_str() == "ups")
        .expect("ups");
    assert_eq!(ups.email, None);
    assert!(matches!(answer_of(&s, &req), Some(Outcome::Rejected(_))));
}

#[test]
fn the_cloud_gets_at_most_a_few_carrier_codes_a_day() {
    let mut s = executing();
    s.ok(Request::RegisterCarrier {
        by: staff(),
        carrier: "fedex".into(),
        name: "FedEx".into(),
        email: Some("codes@fedex.example".into()),
    });
    let mut sent = 0;
    for seq in 1..=5 {
        let req = asked(seq, s.now, send_code("fedex"));
        sent += sent_codes(&merge(&mut s, vec![req.clone()])).len();
        if seq as usize > CLOUD_CARRIER_CODES_PER_DAY {
            assert!(
                matches!(answer_of(&s, &req), Some(Outcome::Rejected(ref r)) if r.code == RejectCode::RateLimited),
                "{:?}",
                answer_of(&s, &req)
            );
        }
    }
    assert_eq!(sent, CLOUD_CARRIER_CODES_PER_DAY);
    assert!(!s.alerts_of(AlertKind::RemoteRequestRefused).is_empty());
    // Staff may still issue one; a day later the cloud may ask again.
    s.ok(send_code("fedex"));
    s.now = s.now.plus(24 * 3_600_000);
    let req = asked(9, s.now, send_code("fedex"));
    assert_eq!(sent_codes(&merge(&mut s, vec![req])).len(), 1);
}
