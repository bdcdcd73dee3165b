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
        kind: FactKind::RemoteRequested { request },
    }
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
