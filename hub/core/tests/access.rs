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
