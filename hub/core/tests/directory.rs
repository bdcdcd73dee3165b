//! The directory as the staff pages use it: deactivating and reactivating residents, carriers
//! and their codes named by reference, and notes on acknowledged alerts.

mod common;

use common::*;
use locker_core::*;

fn deactivate(s: &mut Site, resident: &str) -> Output {
    s.cmd(Request::DeactivateResident {
        by: staff(),
        resident: resident.into(),
    })
}

#[test]
fn a_deactivated_resident_gets_no_new_parcels_but_keeps_those_held() {
    let mut s = Site::new();
    let held = s.deliver("A", "r1", Size::Small, 1);
    assert!(!matches!(
        outcome(&deactivate(&mut s, "r1")),
        Outcome::Rejected(_)
    ));
    let r1 = s
        .core
        .residents()
        .into_iter()
        .find(|r| r.resident.as_str() == "r1")
        .expect("r1 listed");
    assert!(!r1.active);
    assert_eq!(r1.unit, "101");

    // No delivery by resident id, by unit, or at the desk.
    s.refused(
        drop_off_request("A", "r1", Size::Small, false),
        RejectCode::UnknownResident,
    );
    s.refused(
        Request::StartDropOff {
            bank: "A".into(),
            carrier_code: CARRIER_CODE.into(),
            recipient: Recipient::Unit { unit: "101".into() },
            size: Some(Size::Small),
            dimensions: None,
            temperature: TempClass::Ambient,
            share: false,
            tracking: None,
        },
        RejectCode::UnknownResident,
    );
    s.refused(
        Request::DeskCheckIn {
            by: staff(),
            resident: "r1".into(),
            tracking: None,
            carrier: None,
        },
        RejectCode::UnknownResident,
    );
    s.refused(
        Request::ReassignParcels {
            by: staff(),
            parcels: held.parcels.clone(),
            to: "r1".into(),
        },
        RejectCode::UnknownResident,
    );
    // Twice is an error a person should hear about.
    s.refused(
        Request::DeactivateResident {
            by: staff(),
            resident: "r1".into(),
        },
        RejectCode::NotAllowedNow,
    );
    s.refused(
        Request::DeactivateResident {
            by: staff(),
            resident: "nobody".into(),
        },
        RejectCode::UnknownResident,
    );

    // What was already held is still collectable.
    s.collect(&held);
    assert_eq!(s.parcel(&held.parcels[0]).location, Location::PickedUp);

    // Registering again (an edit of unit or reach) reactivates, and survives a restart.
    s.ok(Request::RegisterResident {
        by: staff(),
        resident: "r1".into(),
        unit: "201".into(),
        accessible: true,
        mode: locker_core::RegisterMode::Upsert,
        contact: Default::default(),
    });
    s.restart();
    let r1 = s
        .core
        .residents()
        .into_iter()
        .find(|r| r.resident.as_str() == "r1")
        .expect("r1 listed");
    assert!(r1.active && r1.accessible);
    assert_eq!(r1.unit, "201");
    s.deliver("A", "r1", Size::Small, 1);
}

#[test]
fn carrier_codes_are_listed_by_reference_and_revoked_without_the_plaintext() {
    let mut s = Site::new();
    s.ok(Request::IssueCarrierCode {
        by: staff(),
        carrier: "ups".into(),
        code: "482913".into(),
    });
    let ups = s
        .core
        .carriers()
        .into_iter()
        .find(|c| c.carrier.as_str() == "ups")
        .expect("ups listed");
    assert_eq!(ups.name, "UPS");
    assert_eq!(ups.codes.len(), 2, "the fixture's code and the new one");
    // The view names codes by reference, never by plaintext or hash.
    let json = serde_json::to_string(&ups).expect("json");
    assert!(!json.contains("482913") && !json.contains(CARRIER_CODE));

    // The newest reference is the code just issued: revoke it by reference.
    let newest = ups
        .codes
        .iter()
        .max_by_key(|c| c.code_ref.clone())
        .expect("a code")
        .code_ref
        .clone();
    s.ok(Request::RevokeCarrierCodeRef {
        by: staff(),
        carrier: "ups".into(),
        code_ref: newest.clone(),
    });
    let mut with_new_code = drop_off_request("A", "r1", Size::Small, false);
    if let Request::StartDropOff { carrier_code, .. } = &mut with_new_code {
        *carrier_code = "482913".into();
    }
    s.refused(with_new_code, RejectCode::BadCredential);
    // The other code still works, and the revoked reference is gone.
    s.deliver("A", "r1", Size::Small, 1);
    s.refused(
        Request::RevokeCarrierCodeRef {
            by: staff(),
            carrier: "ups".into(),
            code_ref: newest,
        },
        RejectCode::InvalidInput,
    );
    s.restart();
    assert_eq!(s.core.carriers()[0].codes.len(), 1);

    // A deactivated carrier gets no new codes until registered again.
    s.ok(Request::RevokeCarrier {
        by: staff(),
        carrier: "ups".into(),
    });
    assert!(s.core.carriers()[0].revoked);
    s.refused(
        Request::IssueCarrierCode {
            by: staff(),
            carrier: "ups".into(),
            code: "771155".into(),
        },
        RejectCode::NotAllowedNow,
    );
}

#[test]
fn request_fingerprints_are_keyed_so_a_synced_answer_does_not_reveal_a_code() {
    // The same request under two site keys: a plain hash would give the same fingerprint, which
    // anyone holding the facts could match against all million 6-digit codes.
    let fingerprint = |key: [u8; 32]| {
        let mut core = Core::new(layout(), Policies::default(), key, "hub1", Vec::new());
        let out = core.handle(
            Millis(T0),
            Input::Command(Command {
                request_id: RequestId("r".into()),
                request: Request::IssueCarrierCode {
                    by: staff(),
                    carrier: "ups".into(),
                    code: "123456".into(),
                },
            }),
            &mut Rng(1, Default::default()),
        );
        out.facts
            .iter()
            .find_map(|f| match &f.kind {
                FactKind::Answered { fingerprint, .. } => Some(fingerprint.clone()),
                _ => None,
            })
            .expect("answered")
    };
    assert_ne!(fingerprint([1; 32]), fingerprint([2; 32]));
}

#[test]
fn an_acknowledged_alert_keeps_the_note_bounded_and_clean() {
    let mut s = Site::new();
    assert!(raised(&s.opened("A", 1), AlertKind::ForcedOpen));
    let alert = s.alerts_of(AlertKind::ForcedOpen)[0].id.clone();
    let ack = |note: &str| Request::AcknowledgeAlert {
        by: staff(),
        alert: alert.clone(),
        note: Some(note.into()),
    };
    let too_long = "x".repeat(ALERT_NOTE_MAX + 1);
    let r = s.refused(ack(&too_long), RejectCode::InvalidInput);
    assert!(r.message.contains(&ALERT_NOTE_MAX.to_string()), "{r:?}");
    s.refused(ack("bell\u{7}"), RejectCode::InvalidInput);
    assert_eq!(s.alerts_of(AlertKind::ForcedOpen).len(), 1, "still open");

    let out = s.cmd(ack("  Door was propped open by the cleaner.\nClosed it.  "));
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::AlertCleared { alert: a, note: Some(n) }
            if *a == alert && n == "Door was propped open by the cleaner.\nClosed it."
    )));
    assert!(s.alerts_of(AlertKind::ForcedOpen).is_empty());

    // Without a note the fact carries none, and old JSON without the field still reads.
    let legacy: FactKind =
        serde_json::from_str(r#"{"type":"alert_cleared","alert":"a1"}"#).expect("legacy fact");
    assert_eq!(
        legacy,
        FactKind::AlertCleared {
            alert: AlertId("a1".into()),
            note: None
        }
    );
}

fn register(resident: &str, unit: &str, mode: RegisterMode) -> Request {
    Request::RegisterResident {
        by: staff(),
        resident: resident.into(),
        unit: unit.into(),
        accessible: false,
        mode,
        contact: Default::default(),
    }
}

/// Add and update are one atomic request each: "add" never overwrites, "update" never creates,
/// whoever sends them (the page, the API's resident endpoints, `POST /api/v1/commands`).
#[test]
fn adding_never_overwrites_and_updating_never_creates() {
    let mut s = Site::new();
    s.refused(
        register("r1", "999", RegisterMode::Add),
        RejectCode::AlreadyExists,
    );
    s.refused(
        register("r-new", "5", RegisterMode::Update),
        RejectCode::UnknownResident,
    );
    let unit_of = |s: &Site, r: &str| {
        s.core
            .residents()
            .into_iter()
            .find(|v| v.resident.as_str() == r)
            .map(|v| v.unit)
    };
    assert_eq!(
        unit_of(&s, "r1").as_deref(),
        Some("101"),
        "the refused add changed nothing"
    );
    assert_eq!(
        unit_of(&s, "r-new"),
        None,
        "the refused update created nobody"
    );
    s.ok(register("r-new", "5", RegisterMode::Add));
    s.ok(register("r-new", "6", RegisterMode::Update));
    s.ok(register("r-new", "7", RegisterMode::Upsert));
    assert_eq!(unit_of(&s, "r-new").as_deref(), Some("7"));
}

#[test]
fn directory_ids_names_units_and_codes_are_checked_by_the_core() {
    let mut s = Site::new();
    // A unit with a space at either end would be a unit of its own: refused on every path
    // (the pages trim; POST /api/v1/commands does not, so the core says no).
    for (id, unit) in [
        ("", "1"),
        ("has space", "1"),
        ("r9", ""),
        ("r9", " "),
        ("r9", "a\u{7}b"),
        ("r9", " 101"),
        ("r9", "101 "),
    ] {
        s.refused(
            register(id, unit, RegisterMode::Add),
            RejectCode::InvalidInput,
        );
    }
    s.refused(
        register(&"x".repeat(65), "1", RegisterMode::Add),
        RejectCode::InvalidInput,
    );
    s.refused(
        register("r9", &"1".repeat(33), RegisterMode::Add),
        RejectCode::InvalidInput,
    );
    for (carrier, name) in [
        ("acme", ""),
        ("acme", "  "),
        ("ac me", "Acme"),
        ("acme", "A\nB"),
        ("acme", " Acme"),
    ] {
        s.refused(
            Request::RegisterCarrier {
                by: staff(),
                carrier: carrier.into(),
                name: name.into(),
                email: None,
            },
            RejectCode::InvalidInput,
        );
    }
    for code in ["12345", "12345678901234567", "12345a", "１２３４５６"] {
        s.refused(
            Request::IssueCarrierCode {
                by: staff(),
                carrier: "ups".into(),
                code: code.into(),
            },
            RejectCode::InvalidInput,
        );
    }
    s.ok(Request::IssueCarrierCode {
        by: staff(),
        carrier: "ups".into(),
        code: "4455667788".into(),
    });
    s.refused(
        Request::IssueCarrierCode {
            by: staff(),
            carrier: "ups".into(),
            code: "4455667788".into(),
        },
        RejectCode::AlreadyExists,
    );
}

#[test]
fn a_residents_contact_is_checked_kept_when_left_out_and_cleared_when_empty() {
    let mut s = Site::new();
    let register = |contact: Contact| Request::RegisterResident {
        by: staff(),
        resident: ResidentId("r-9".into()),
        unit: "909".into(),
        accessible: false,
        mode: RegisterMode::Upsert,
        contact,
    };
    s.ok(register(Contact {
        name: Some("Ann Lee".into()),
        email: Some("ann@example.org".into()),
        phone: Some("+15551234567".into()),
        language: Some("es".into()),
        notify: Some("email".into()),
        secondary_email: Some("bo@example.org".into()),
        secondary_phone: Some("+15551230000".into()),
    }));
    let view = |s: &Site| {
        s.core
            .residents()
            .into_iter()
            .find(|r| r.resident.as_str() == "r-9")
            .expect("registered")
    };
    assert_eq!(view(&s).email.as_deref(), Some("ann@example.org"));
    assert_eq!(view(&s).language.as_deref(), Some("es"));
    assert_eq!(view(&s).name.as_deref(), Some("Ann Lee"));
    assert_eq!(view(&s).notify.as_deref(), Some("email"));
    assert_eq!(view(&s).secondary_email.as_deref(), Some("bo@example.org"));
    assert_eq!(view(&s).secondary_phone.as_deref(), Some("+15551230000"));
    // Registered again without a contact (a unit change): kept.
    s.ok(register(Contact::default()));
    assert_eq!(view(&s).phone.as_deref(), Some("+15551234567"));
    // An empty string clears one field.
    s.ok(register(Contact {
        phone: Some(String::new()),
        ..Contact::default()
    }));
    assert_eq!(view(&s).phone, None);
    assert_eq!(view(&s).email.as_deref(), Some("ann@example.org"));
    // Bad ones are refused, saying what is wrong.
    for bad in [
        Contact {
            email: Some("ann@".into()),
            ..Contact::default()
        },
        Contact {
            email: Some("ann smith@example.org".into()),
            ..Contact::default()
        },
        Contact {
            phone: Some("555-1234".into()),
            ..Contact::default()
        },
        Contact {
            language: Some("fr".into()),
            ..Contact::default()
        },
        Contact {
            name: Some("Ann\nLee".into()),
            ..Contact::default()
        },
        Contact {
            name: Some("A".repeat(101)),
            ..Contact::default()
        },
        Contact {
            notify: Some("sms".into()),
            ..Contact::default()
        },
        Contact {
            secondary_email: Some("bo@".into()),
            ..Contact::default()
        },
        Contact {
            secondary_phone: Some("555".into()),
            ..Contact::default()
        },
    ] {
        s.refused(register(bad), RejectCode::InvalidInput);
    }
}
