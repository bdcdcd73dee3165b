//! What an MQTT message means for the engine: the bank-side schema of `locker-bus` turned into
//! core inputs. A kiosk request parses into the bus's kiosk type (only what a carrier or a
//! resident may ask), and the core's rule (`locker_core::authorize`) says whether this bank's
//! kiosk may send it; the engine applies the same rule again.
//!
//! Everything here is a pure function of (topic, payload), so every way a message can be wrong is
//! tested without a broker. A bad message is never fatal: it gets an error reply where it named a
//! reply topic, and a log line either way.

use locker_core::{
    Caller, Command, Observation, Outcome, RejectCode, Rejection, Reply, RequestId, UnlockReport,
};
use locker_drivers::bus::{
    self, BankStatus, CommandAck, DoorObservation, Parsed, UnitReading, UnlockResult,
};
use serde::Deserialize;

/// The meaning of one incoming message.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    /// A controller's report: feed it to the core.
    Observe(Observation),
    /// A kiosk's request on bank `bank`'s topic: the core decides whether a kiosk there may send
    /// it (`locker_core::authorize`); its reply goes to `reply_to`, if any.
    Request {
        command: Command,
        bank: String,
        reply_to: Option<String>,
    },
    /// A bank's controller came or went, or changed which doors it cannot reach.
    Presence {
        bank: String,
        online: bool,
        unreachable: Vec<u16>,
    },
    /// Not for the hub (its own publications, other schemas).
    Ignore,
    /// Malformed or not allowed: log `reason`; answer on `reply_to` when there is one.
    Refuse {
        reason: String,
        reply_to: Option<(String, Reply)>,
    },
}

/// The envelope of a kiosk request: the core's command plus where to answer.
#[derive(Deserialize)]
struct KioskEnvelope {
    request_id: String,
    #[serde(default)]
    reply_to: Option<String>,
}

/// Decode one message. `response_topic` is the MQTT 5 property, used when the payload names no
/// `reply_to`; `known_bank` says whether a bank id is configured.
pub fn decode(
    topic: &str,
    payload: &[u8],
    response_topic: Option<String>,
    known_bank: impl Fn(&str) -> bool,
) -> Inbound {
    let Some(parsed) = bus::parse(topic) else {
        return Inbound::Ignore;
    };
    let bank = match &parsed {
        Parsed::Status { bank }
        | Parsed::Door { bank, .. }
        | Parsed::Ack { bank }
        | Parsed::KioskRequest { bank }
        | Parsed::UnitReading { bank, .. } => *bank,
        // The hub's own publications come back to it through its subscriptions.
        Parsed::Command { .. } | Parsed::State { .. } | Parsed::KioskUpdate { .. } => {
            return Inbound::Ignore
        }
    };
    if !known_bank(bank) {
        return Inbound::Refuse {
            reason: format!("message for bank {bank:?}, which is not configured"),
            reply_to: None,
        };
    }
    let bad = |what: &str, e: serde_json::Error| Inbound::Refuse {
        reason: format!("malformed {what} on {topic}: {e}"),
        reply_to: None,
    };
    let observe = Inbound::Observe;
    match parsed {
        Parsed::Status { .. } => match serde_json::from_slice::<BankStatus>(payload) {
            Ok(s) => Inbound::Presence {
                bank: bank.to_owned(),
                online: s.online,
                unreachable: s.unreachable_doors,
            },
            Err(e) => bad("status", e),
        },
        Parsed::Door { door, .. } => match serde_json::from_slice::<DoorObservation>(payload) {
            Ok(d) => observe(Observation::DoorState {
                bank: bank.to_owned(),
                door,
                open: d.open,
                occupied: d.occupied,
            }),
            Err(e) => bad("door observation", e),
        },
        Parsed::Ack { .. } => match serde_json::from_slice::<CommandAck>(payload) {
            Ok(ack) => {
                let report = match ack.outcome() {
                    UnlockResult::Pulsed => {
                        return observe(Observation::LockAcknowledged {
                            bank: bank.to_owned(),
                            door: ack.door,
                            unlock: Some(ack.unlock_id.as_str().into()),
                        })
                    }
                    UnlockResult::Failed => UnlockReport::Failed,
                    UnlockResult::NotSent => UnlockReport::NotSent,
                    UnlockResult::Unknown => UnlockReport::Unknown,
                };
                observe(Observation::UnlockNotPulsed {
                    bank: bank.to_owned(),
                    door: ack.door,
                    unlock: ack.unlock_id.as_str().into(),
                    report,
                    reason: ack.error.unwrap_or_else(|| "no reason given".into()),
                })
            }
            Err(e) => bad("acknowledgement", e),
        },
        Parsed::KioskRequest { .. } => kiosk_request(topic, bank, payload, response_topic),
        Parsed::UnitReading { unit, sensor, .. } => {
            match serde_json::from_slice::<UnitReading>(payload) {
                Ok(r) => match decicelsius(r.temperature_c) {
                    Some(decicelsius) => observe(Observation::UnitReading {
                        bank: bank.to_owned(),
                        unit: unit.to_owned(),
                        sensor: sensor.to_owned(),
                        decicelsius,
                        door_open: r.door_open,
                        device_alarms: r.device_alarms,
                    }),
                    None => Inbound::Refuse {
                        reason: format!(
                            "unit reading on {topic}: temperature_c {} is not a temperature a \
                             cooling unit can have (-100 to 100 °C); the sensor may be faulty",
                            r.temperature_c
                        ),
                        reply_to: None,
                    },
                },
                Err(e) => bad("unit reading", e),
            }
        }
        Parsed::Command { .. } | Parsed::State { .. } | Parsed::KioskUpdate { .. } => {
            Inbound::Ignore
        }
    }
}

/// °C to tenths of a degree, for plausible temperatures only (a sensor fault can read 3276.7 or
/// NaN, and such a value must not pass for a reading).
fn decicelsius(c: f64) -> Option<i32> {
    (c.is_finite() && (-100.0..=100.0).contains(&c)).then(|| (c * 10.0).round() as i32)
}

fn kiosk_request(
    topic: &str,
    bank: &str,
    payload: &[u8],
    response_topic: Option<String>,
) -> Inbound {
    let envelope: KioskEnvelope = match serde_json::from_slice(payload) {
        Ok(e) => e,
        Err(e) => {
            return Inbound::Refuse {
                reason: format!("malformed kiosk request on {topic}: {e} (needs request_id)"),
                reply_to: None,
            }
        }
    };
    let reply_to = match envelope.reply_to.or(response_topic) {
        Some(t) => match check_reply_topic(&t, bank) {
            Ok(()) => Some(t),
            Err(why) => {
                return Inbound::Refuse {
                    reason: format!("kiosk request {} on {topic}: {why}", envelope.request_id),
                    reply_to: None,
                }
            }
        },
        None => None,
    };
    let refuse_as = |code: RejectCode, message: String| {
        let reply = Reply {
            request_id: RequestId(envelope.request_id.clone()),
            outcome: Outcome::Rejected(Rejection::new(code, message.clone())),
        };
        Inbound::Refuse {
            reason: format!(
                "kiosk request {} on {topic}: {message}",
                envelope.request_id
            ),
            reply_to: reply_to.clone().map(|t| (t, reply)),
        }
    };
    let refuse = |message: String| refuse_as(RejectCode::InvalidInput, message);
    // The kiosk's wire type has only what a carrier or a resident may ask.
    let command: Command = match serde_json::from_slice::<bus::KioskRequest>(payload) {
        Ok(r) => locker_app::wire::kiosk_command(r),
        Err(e) => {
            // A staff or directory action is a valid request, only not a kiosk's: the core's
            // rule says why, with its code.
            if let Ok(c) = serde_json::from_slice::<Command>(payload) {
                let kiosk = Caller::BankKiosk {
                    bank: bank.to_owned(),
                };
                if let Err(r) = locker_core::authorize(&kiosk, &c.request) {
                    return refuse_as(r.code, r.message);
                }
            }
            return refuse(format!("not a valid request: {e}"));
        }
    };
    // The core decides again when it handles the request (whatever reaches it, from anywhere,
    // is checked there); asking it here too gets a refused kiosk the same reply sooner, and a
    // line in the journal (rate-limited per topic).
    let kiosk = Caller::BankKiosk {
        bank: bank.to_owned(),
    };
    if let Err(r) = locker_core::authorize(&kiosk, &command.request) {
        return refuse_as(r.code, r.message);
    }
    Inbound::Request {
        command,
        bank: bank.to_owned(),
        reply_to,
    }
}

/// A kiosk may ask for its answer on its own topic, never on a topic the hub or a controller
/// listens to (the hub would be made to publish into a bank's command topic).
fn check_reply_topic(topic: &str, bank: &str) -> Result<(), String> {
    if topic.is_empty() || topic.len() > 256 {
        return Err("reply_to must be 1 to 256 bytes".into());
    }
    if topic.contains(['+', '#', '\0']) || topic.starts_with('$') {
        return Err(format!(
            "reply_to {topic:?} is not a topic name one can publish to"
        ));
    }
    if topic.starts_with(bus::ROOT) {
        let own = bus::BankTopics::new(bank).kiosk_reply_prefix();
        if !topic.starts_with(&own) {
            return Err(format!(
                "reply_to {topic:?} is inside the hub's schema; use a topic under {own}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(b: &str) -> bool {
        b == "A"
    }

    fn refused(i: &Inbound) -> bool {
        matches!(i, Inbound::Refuse { .. })
    }

    #[test]
    fn controller_messages_become_observations() {
        let i = decode(
            "lockerhub/v1/bank/A/door/3",
            br#"{"open":true}"#,
            None,
            known,
        );
        assert_eq!(
            i,
            Inbound::Observe(Observation::DoorState {
                bank: "A".into(),
                door: 3,
                open: true,
                occupied: None
            })
        );
        let i = decode(
            "lockerhub/v1/bank/A/ack",
            br#"{"unlock_id":"u1","door":3,"ok":true}"#,
            None,
            known,
        );
        assert!(matches!(
            i,
            Inbound::Observe(Observation::LockAcknowledged { door: 3, .. })
        ));
        let i = decode(
            "lockerhub/v1/bank/A/status",
            br#"{"online":false}"#,
            None,
            known,
        );
        assert_eq!(
            i,
            Inbound::Presence {
                bank: "A".into(),
                online: false,
                unreachable: vec![],
            }
        );
        let i = decode(
            "lockerhub/v1/bank/A/status",
            br#"{"online":true,"unreachable_doors":[5,6]}"#,
            None,
            known,
        );
        assert_eq!(
            i,
            Inbound::Presence {
                bank: "A".into(),
                online: true,
                unreachable: vec![5, 6],
            }
        );
    }

    #[test]
    fn malformed_or_foreign_messages_are_refused_or_ignored_never_fatal() {
        assert!(refused(&decode(
            "lockerhub/v1/bank/A/door/3",
            b"{",
            None,
            known
        )));
        assert!(refused(&decode(
            "lockerhub/v1/bank/A/door/3",
            b"\xff\xfe",
            None,
            known
        )));
        assert!(refused(&decode(
            "lockerhub/v1/bank/Z/door/3",
            br#"{"open":true}"#,
            None,
            known
        )));
        // A controller that could not pulse says so; one that cannot tell says "unknown".
        assert!(matches!(
            decode(
                "lockerhub/v1/bank/A/ack",
                br#"{"unlock_id":"u1","door":3,"ok":false,"error":"jammed"}"#,
                None,
                known
            ),
            Inbound::Observe(Observation::UnlockNotPulsed {
                report: UnlockReport::Failed,
                ..
            })
        ));
        assert!(matches!(
            decode(
                "lockerhub/v1/bank/A/ack",
                br#"{"unlock_id":"u1","door":3,"ok":false,"result":"unknown"}"#,
                None,
                known
            ),
            Inbound::Observe(Observation::UnlockNotPulsed {
                report: UnlockReport::Unknown,
                ..
            })
        ));
        assert_eq!(
            decode("lockerhub/v1/bank/A/cmd", b"{}", None, known),
            Inbound::Ignore
        );
        assert_eq!(
            decode("something/else", b"{}", None, known),
            Inbound::Ignore
        );
    }

    #[test]
    fn unit_readings_become_observations_and_bad_ones_are_refused() {
        let i = decode(
            "lockerhub/v1/bank/A/unit/fridge/sensor/cabinet",
            br#"{"temperature_c":4.26,"door_open":true,"device_alarms":["high_temp"]}"#,
            None,
            known,
        );
        assert_eq!(
            i,
            Inbound::Observe(Observation::UnitReading {
                bank: "A".into(),
                unit: "fridge".into(),
                sensor: "cabinet".into(),
                decicelsius: 43,
                door_open: Some(true),
                device_alarms: vec!["high_temp".into()],
            })
        );
        for payload in [
            &br#"{"temperature":4.2}"#[..],
            br#"{"temperature_c":"cold"}"#,
            br#"{"temperature_c":3276.7}"#,
            b"not json",
        ] {
            let i = decode(
                "lockerhub/v1/bank/A/unit/fridge/sensor/cabinet",
                payload,
                None,
                known,
            );
            match i {
                Inbound::Refuse { reason, .. } => {
                    assert!(reason.contains("unit"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        // An unknown bank is refused before its payload is read.
        assert!(refused(&decode(
            "lockerhub/v1/bank/Z/unit/fridge/sensor/cabinet",
            br#"{"temperature_c":4.0}"#,
            None,
            known
        )));
    }

    #[test]
    fn kiosk_requests_reach_the_core_with_their_reply_topic() {
        let i = decode("lockerhub/v1/bank/A/kiosk/request", br#"{"request_id":"k-1","reply_to":"kiosk/k1/reply","type":"pickup_by_pin","bank":"A","pin":"123456"}"#,
            None, known,
        );
        match i {
            Inbound::Request {
                command: c,
                bank,
                reply_to,
            } => {
                assert_eq!(bank, "A");
                assert_eq!(c.request_id.as_str(), "k-1");
                assert_eq!(reply_to.as_deref(), Some("kiosk/k1/reply"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_mqtt5_response_topic_serves_when_the_payload_names_none() {
        let payload = br#"{"request_id":"k-5","type":"pickup_by_pin","bank":"A","pin":"123456"}"#;
        let i = decode(
            "lockerhub/v1/bank/A/kiosk/request",
            payload,
            Some("kiosk/rr/1".into()),
            known,
        );
        assert!(
            matches!(&i, Inbound::Request { reply_to: Some(t), .. } if t == "kiosk/rr/1"),
            "{i:?}"
        );
        // The same checks apply to it as to reply_to.
        let i = decode(
            "lockerhub/v1/bank/A/kiosk/request",
            payload,
            Some("lockerhub/v1/bank/A/cmd".into()),
            known,
        );
        assert!(matches!(i, Inbound::Refuse { reply_to: None, .. }), "{i:?}");
    }

    #[test]
    fn kiosks_cannot_do_staff_actions_or_act_for_another_bank() {
        // A staff action: refused before the core, with the core's rule and code.
        let staff = r#"{"request_id":"k-2","reply_to":"kiosk/r","type":"staff_open_bank","by":{"kind":"cloud"},"bank":"A","reason":"x"}"#;
        match decode(
            "lockerhub/v1/bank/A/kiosk/request",
            staff.as_bytes(),
            None,
            known,
        ) {
            Inbound::Refuse {
                reply_to: Some((topic, reply)),
                ..
            } => {
                assert_eq!(topic, "kiosk/r");
                assert!(
                    matches!(&reply.outcome, Outcome::Rejected(r) if r.code == RejectCode::NotPermitted),
                    "{reply:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        // Another bank's pickup: refused by the core's rule, before and in the engine.
        let other = r#"{"request_id":"k-3","reply_to":"kiosk/r","type":"pickup_by_pin","bank":"B","pin":"123456"}"#;
        match decode(
            "lockerhub/v1/bank/A/kiosk/request",
            other.as_bytes(),
            None,
            known,
        ) {
            Inbound::Refuse {
                reply_to: Some((_, reply)),
                ..
            } => assert!(
                matches!(&reply.outcome, Outcome::Rejected(r) if r.code == RejectCode::NotPermitted),
                "{reply:?}"
            ),
            other => panic!("{other:?}"),
        }
        // Not a request at all: answered on its reply topic without reaching the core.
        let fly = r#"{"request_id":"k-4","reply_to":"kiosk/r","type":"fly"}"#;
        match decode(
            "lockerhub/v1/bank/A/kiosk/request",
            fly.as_bytes(),
            None,
            known,
        ) {
            Inbound::Refuse {
                reply_to: Some((topic, reply)),
                ..
            } => {
                assert_eq!(topic, "kiosk/r");
                assert!(matches!(reply.outcome, Outcome::Rejected(_)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replies_cannot_be_aimed_at_the_hubs_own_topics() {
        for reply_to in [
            "lockerhub/v1/bank/A/cmd",
            "lockerhub/v1/bank/B/kiosk/reply/x",
            "kiosk/+/reply",
            "$SYS/x",
            "",
        ] {
            let payload = format!(
                r#"{{"request_id":"k","reply_to":"{reply_to}","type":"pickup_by_pin","bank":"A","pin":"1"}}"#
            );
            let i = decode(
                "lockerhub/v1/bank/A/kiosk/request",
                payload.as_bytes(),
                None,
                known,
            );
            assert!(
                matches!(i, Inbound::Refuse { reply_to: None, .. }),
                "{reply_to}: {i:?}"
            );
        }
        let ok = r#"{"request_id":"k","reply_to":"lockerhub/v1/bank/A/kiosk/reply/k1","type":"pickup_by_pin","bank":"A","pin":"1"}"#;
        assert!(matches!(
            decode(
                "lockerhub/v1/bank/A/kiosk/request",
                ok.as_bytes(),
                None,
                known
            ),
            Inbound::Request { .. }
        ));
    }
}
