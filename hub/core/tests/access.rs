//! Who may send what, decided by the core for every caller (`Core::handle_from`): a bank's kiosk
//! acts only at its own bank, for requests that name the bank and for those that name one of its
//! drop-offs.

mod common;

use common::*;
use locker_core::*;

fn as_kiosk(s: &mut Site, bank: &str, request: Request) -> Output {
    let request_id = s.request_id();
    s.core.handle_from(
        s.now,
        &Caller::BankKiosk { bank: bank.into() },
        Input::Command(Command {
            request_id,
            request,
        }),
        &mut s.rng,
    )
}

#[test]
fn a_kiosk_cannot_open_confirm_or_cancel_another_banks_drop_off() {
    let mut s = Site::new();
    let out = s.start_drop_off("A", "r1", Size::Small);
    let Outcome::Reserved { reservation, .. } = outcome(&out) else {
        panic!("not reserved: {out:?}");
    };
    for request in [
        Request::OpenReservation {
            reservation: reservation.clone(),
        },
        Request::ConfirmParcel {
            reservation: reservation.clone(),
            tracking: None,
        },
        Request::CancelDropOff {
            reservation: reservation.clone(),
        },
    ] {
        let out = as_kiosk(&mut s, "B", request.clone());
        assert!(
            matches!(outcome(&out), Outcome::Rejected(r) if r.code == RejectCode::NotPermitted),
            "{request:?}: {out:?}"
        );
        assert!(out.facts.is_empty() && out.effects.is_empty(), "{out:?}");
    }
    // Its own bank's kiosk may.
    let out = as_kiosk(&mut s, "A", Request::CancelDropOff { reservation });
    assert!(
        matches!(outcome(&out), Outcome::DropOffCancelled { .. }),
        "{out:?}"
    );
}

/// The cloud may write residents (and other directory facts that need no site key), and nothing
/// else: a parcel's story written by the cloud is kept but never folded, at the merge or at any
/// later start, and each such fact raises `cloud_write_ignored`.
#[test]
fn the_cloud_may_register_a_resident_but_its_parcel_facts_are_never_folded_and_raise_an_alert() {
    let mut hub = Site::new();
    let mut other = hub.replica("hub2", 3);
    other.deliver("A", "r1", Size::Small, 1);
    let known: std::collections::BTreeSet<FactId> = hub.log.iter().map(|f| f.id.clone()).collect();
    // The other hub's delivery, as if the cloud had written it.
    let forged: Vec<Fact> = other
        .log
        .iter()
        .filter(|f| !known.contains(&f.id))
        .map(|f| {
            let mut f = f.clone();
            f.id.hub = CLOUD_AUTHOR.into();
            f
        })
        .collect();
    assert!(forged.len() >= 4, "{forged:?}");
    let before = hub.core.compartments();
    let out = hub.core.merge(hub.now, forged.clone(), &mut hub.rng);
    assert_eq!(hub.core.compartments(), before, "nothing of it was folded");
    let ignored: Vec<&Fact> = out
        .facts
        .iter()
        .filter(|f| {
            matches!(
                f.kind,
                FactKind::AlertRaised {
                    alert: AlertKind::CloudWriteIgnored,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(ignored.len(), forged.len(), "one alert per ignored fact");
    assert_eq!(
        hub.alerts_of(AlertKind::CloudWriteIgnored).len(),
        forged.len()
    );
    // Kept in the documents, still not folded after a restart, and no alert again.
    hub.log.extend(forged);
    hub.log.extend(out.facts.iter().cloned());
    hub.restart();
    assert_eq!(hub.core.compartments(), before);
    assert_eq!(
        hub.alerts_of(AlertKind::CloudWriteIgnored).len(),
        ignored.len()
    );

    // A resident the cloud registers is folded like one staff registered.
    let registered = Fact {
        id: FactId {
            ms: hub.now.0,
            hub: CLOUD_AUTHOR.into(),
            seq: 1,
        },
        at: hub.now,
        actor: Actor::Cloud,
        bank: None,
        door: None,
        parcel: None,
        kind: FactKind::ResidentRegistered {
            resident: "r-cloud".into(),
            unit: "12".into(),
            accessible: false,
            contact: Default::default(),
            tenancy: Default::default(),
            roll: false,
        },
    };
    let out = hub.core.merge(hub.now, vec![registered], &mut hub.rng);
    assert!(out.facts.is_empty(), "no alert: {:?}", out.facts);
    assert!(hub
        .core
        .residents()
        .iter()
        .any(|r| r.resident.as_str() == "r-cloud" && r.unit == "12"));
}

#[test]
fn a_kiosk_may_not_resend_a_code_or_send_a_parcel_to_the_desk() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    for request in [
        Request::ResendCode {
            by: staff(),
            parcel: d.parcels[0].clone(),
        },
        Request::SendToDesk {
            by: staff(),
            parcel: d.parcels[0].clone(),
            reason: "x".into(),
        },
    ] {
        let out = as_kiosk(&mut s, "A", request);
        assert!(
            matches!(outcome(&out), Outcome::Rejected(r) if r.code == RejectCode::NotPermitted),
            "{out:?}"
        );
        assert!(out.effects.is_empty(), "nothing sent, nothing raised");
    }
}
