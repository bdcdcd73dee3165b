//! The hub's MQTT topic schema, version 1, for the bank side of the bus.
//!
//! Every bank's traffic lives under one subtree, `lockerhub/v1/bank/{bank}/…`, which is what lets
//! the hub's front door give each login exactly its own bank's topics (`locker-gate`).
//! `docs/mqtt-api.md` is the reference for people; this module is the reference for code, and the
//! two must agree.

use serde::{Deserialize, Serialize};

pub mod hub;
pub use hub::{
    AlertEvent, BankState, CompartmentState, KioskOutcome, KioskReply, KioskRequest, KioskUpdate,
    KioskUpdateMessage,
};

/// First segments of every topic of this schema version.
pub const ROOT: &str = "lockerhub/v1";

/// Topic names of one bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankTopics {
    base: String,
}

impl BankTopics {
    /// Topics of bank `bank` (an id from the configuration: `[A-Za-z0-9_-]+`).
    pub fn new(bank: &str) -> Self {
        BankTopics {
            base: format!("{ROOT}/bank/{bank}"),
        }
    }

    /// Controller → hub, retained, QoS 1: [`BankStatus`]. The controller's last will publishes
    /// `{"online": false}` here, so the hub learns of a dead controller from the broker.
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    /// Controller → hub, QoS 1: [`DoorObservation`] for door `door`.
    pub fn door(&self, door: u16) -> String {
        format!("{}/door/{door}", self.base)
    }

    /// Hub → controller, QoS 1: [`Command`].
    pub fn command(&self) -> String {
        format!("{}/cmd", self.base)
    }

    /// Controller → hub, QoS 1: [`CommandAck`].
    pub fn ack(&self) -> String {
        format!("{}/ack", self.base)
    }

    /// Hub → everyone, retained: the hub's view of the bank (published by the workflow layer).
    pub fn state(&self) -> String {
        format!("{}/state", self.base)
    }

    /// Kiosk → hub, QoS 1: kiosk requests (drop-off steps, pickup). Replies go to the topic the
    /// request names in `reply_to`.
    pub fn kiosk_request(&self) -> String {
        format!("{}/kiosk/request", self.base)
    }

    /// Prefix under which a kiosk may ask for its replies (`reply_to`), e.g.
    /// `…/kiosk/reply/{kiosk id}`. Any topic outside the `lockerhub/` tree is allowed too.
    pub fn kiosk_reply_prefix(&self) -> String {
        format!("{}/kiosk/reply/", self.base)
    }

    /// Hub → kiosks, QoS 1: progress of a drop-off or pickup that happens after the reply
    /// (delivery completed when the door closes, another door offered, ...).
    pub fn kiosk_update(&self) -> String {
        format!("{}/kiosk/update", self.base)
    }

    /// Controller or driver → hub, QoS 1: [`UnitReading`] of sensor `sensor` of refrigerated
    /// unit `unit` (ids from the configuration, `[A-Za-z0-9_-]+`).
    pub fn unit_reading(&self, unit: &str, sensor: &str) -> String {
        format!("{}/unit/{unit}/sensor/{sensor}", self.base)
    }
}

/// Site-wide topic of alerts, raised and cleared (hub → staff tools).
pub const ALERTS: &str = "lockerhub/v1/site/alerts";

/// Subscription filters the hub uses to hear every bank.
pub mod filters {
    /// Every bank's status.
    pub const STATUS: &str = "lockerhub/v1/bank/+/status";
    /// Every door observation.
    pub const DOORS: &str = "lockerhub/v1/bank/+/door/+";
    /// Every command acknowledgement.
    pub const ACKS: &str = "lockerhub/v1/bank/+/ack";
    /// Every kiosk request.
    pub const KIOSK: &str = "lockerhub/v1/bank/+/kiosk/request";
    /// Every refrigerated unit's sensor readings.
    pub const UNIT_READINGS: &str = "lockerhub/v1/bank/+/unit/+/sensor/+";
}

/// What a topic of this schema is about, as parsed from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// `…/bank/{bank}/status`
    Status { bank: &'a str },
    /// `…/bank/{bank}/door/{door}`
    Door { bank: &'a str, door: u16 },
    /// `…/bank/{bank}/cmd`
    Command { bank: &'a str },
    /// `…/bank/{bank}/ack`
    Ack { bank: &'a str },
    /// `…/bank/{bank}/state`
    State { bank: &'a str },
    /// `…/bank/{bank}/kiosk/request`
    KioskRequest { bank: &'a str },
    /// `…/bank/{bank}/kiosk/update`
    KioskUpdate { bank: &'a str },
    /// `…/bank/{bank}/unit/{unit}/sensor/{sensor}`
    UnitReading {
        bank: &'a str,
        unit: &'a str,
        sensor: &'a str,
    },
}

/// Parse a topic of this schema; `None` for anything else (including other versions).
pub fn parse(topic: &str) -> Option<Parsed<'_>> {
    let rest = topic.strip_prefix(ROOT)?.strip_prefix("/bank/")?;
    let mut parts = rest.split('/');
    let bank = parts.next().filter(|b| valid_bank_id(b))?;
    let parsed = match (parts.next()?, parts.next(), parts.next()) {
        ("unit", Some(unit), Some("sensor")) => {
            let sensor = parts.next()?;
            if parts.next().is_some() || !valid_bank_id(unit) || !valid_bank_id(sensor) {
                return None;
            }
            return Some(Parsed::UnitReading { bank, unit, sensor });
        }
        ("status", None, None) => Parsed::Status { bank },
        ("door", Some(door), None) => Parsed::Door {
            bank,
            door: door.parse().ok().filter(|d| *d > 0)?,
        },
        ("cmd", None, None) => Parsed::Command { bank },
        ("ack", None, None) => Parsed::Ack { bank },
        ("state", None, None) => Parsed::State { bank },
        ("kiosk", Some("request"), None) => Parsed::KioskRequest { bank },
        ("kiosk", Some("update"), None) => Parsed::KioskUpdate { bank },
        _ => return None,
    };
    Some(parsed)
}

/// Bank ids are used as topic levels, so they must not contain MQTT's special characters.
pub fn valid_bank_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Payload of [`BankTopics::status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankStatus {
    /// `true` while the controller is connected; its last will says `false`.
    pub online: bool,
    /// Number of doors the controller drives, if it knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doors: Option<u16>,
    /// Free-form controller description (model, firmware), for the staff page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// Doors whose state is unknown and which cannot be opened right now (their board does
    /// not answer) while the rest of the bank works. Absent when every door is reachable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreachable_doors: Vec<u16>,
}

/// Payload of [`BankTopics::door`]: what a door sensor reports. Sent on every change, and in
/// answer to a [`Command::Query`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoorObservation {
    /// `true` when the door is physically open.
    pub open: bool,
    /// Item-present sensor, where the compartment has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occupied: Option<bool>,
}

/// Payload of [`BankTopics::unit_reading`]: one reading of a refrigerated unit's sensor, sent at
/// the sensor's poll interval (a missing reading is itself news: the hub alarms on silence).
/// Only `temperature_c` is required; the rest is sent by devices that have it (a refrigeration
/// controller's door input, setpoint and alarm bits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitReading {
    /// Temperature in °C.
    pub temperature_c: f64,
    /// Relative humidity in %, from combined transmitters such as the XY-MD02.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub humidity_pct: Option<f64>,
    /// The unit's door, from the controller's door input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_open: Option<bool>,
    /// The controller's own setpoint, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setpoint_c: Option<f64>,
    /// Alarms the controller itself raises (e.g. `"high_temp"`, `"probe_fault"`), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_alarms: Vec<String>,
}

/// Payload of [`BankTopics::command`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Pulse the lock of `door`. `unlock_id` is unique per unlock: a controller that sees the same
    /// id twice (QoS 1 redelivery) must not pulse again, only acknowledge again.
    ///
    /// An unlock is only worth sending while the person who asked is still at the door: the hub
    /// gives every unlock a deadline, and a controller that cannot put it on the wire before
    /// then must drop it and acknowledge `not_sent`. `deadline_ms` is that moment in Unix
    /// milliseconds (for controllers whose clock is synchronised); `valid_ms` is how long it
    /// was still valid when the hub published it (for those whose clock is not: count from
    /// receipt). A controller honours whichever ends first. Both are absent only from hubs
    /// before this field existed.
    Unlock {
        unlock_id: String,
        door: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pulse_ms: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid_ms: Option<u32>,
    },
    /// Report the state of `door`, or of each door in `doors`, or of every door when both are
    /// absent, on the door topics. Doors on one board are read with one request.
    Query {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        door: Option<u16>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        doors: Vec<u16>,
    },
}

/// How an unlock ended, as the controller knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnlockResult {
    /// The lock was pulsed (the board confirmed). The door opening is a separate observation.
    Pulsed,
    /// The board or controller said it could not pulse (no such door, refused, fault).
    Failed,
    /// It never went on the wire: its deadline passed first, or the bus was down. The door
    /// did not move; the person may try again.
    NotSent,
    /// It went on the wire and nobody confirmed: the door may have opened. Never re-sent.
    Unknown,
}

/// Payload of [`BankTopics::ack`]: the controller's answer to an [`Command::Unlock`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandAck {
    pub unlock_id: String,
    pub door: u16,
    /// `true` when the lock was pulsed (`result` is `pulsed`).
    pub ok: bool,
    /// How the unlock ended. Absent (controllers before this field): `ok: true` is `pulsed`,
    /// `ok: false` is `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<UnlockResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CommandAck {
    /// An acknowledgement saying `result`, with `error` for anything but `pulsed`.
    pub fn new(unlock_id: String, door: u16, result: UnlockResult, error: Option<String>) -> Self {
        CommandAck {
            unlock_id,
            door,
            ok: result == UnlockResult::Pulsed,
            result: Some(result),
            error,
        }
    }

    /// How the unlock ended; `result` wins over `ok` when a controller says both.
    pub fn outcome(&self) -> UnlockResult {
        self.result.unwrap_or(if self.ok {
            UnlockResult::Pulsed
        } else {
            UnlockResult::Failed
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_status_unreachable_doors_json_shape() {
        let s = BankStatus {
            online: true,
            doors: Some(8),
            firmware: None,
            unreachable_doors: vec![5, 6, 7, 8],
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({"online": true, "doors": 8, "unreachable_doors": [5, 6, 7, 8]})
        );
        // Empty list is left out, and payloads from controllers that never send it still parse.
        let all_ok = BankStatus {
            unreachable_doors: vec![],
            ..s.clone()
        };
        assert_eq!(
            serde_json::to_string(&all_ok).unwrap(),
            r#"{"online":true,"doors":8}"#
        );
        let old: BankStatus = serde_json::from_str(r#"{"online":true}"#).unwrap();
        assert!(old.unreachable_doors.is_empty());
    }

    #[test]
    fn topics_round_trip_through_parse() {
        let t = BankTopics::new("lobby-1");
        assert_eq!(parse(&t.status()), Some(Parsed::Status { bank: "lobby-1" }));
        assert_eq!(
            parse(&t.door(12)),
            Some(Parsed::Door {
                bank: "lobby-1",
                door: 12
            })
        );
        assert_eq!(
            parse(&t.command()),
            Some(Parsed::Command { bank: "lobby-1" })
        );
        assert_eq!(parse(&t.ack()), Some(Parsed::Ack { bank: "lobby-1" }));
        assert_eq!(parse(&t.state()), Some(Parsed::State { bank: "lobby-1" }));
        assert_eq!(
            parse(&t.kiosk_request()),
            Some(Parsed::KioskRequest { bank: "lobby-1" })
        );
        assert_eq!(
            parse(&t.kiosk_update()),
            Some(Parsed::KioskUpdate { bank: "lobby-1" })
        );
        assert_eq!(
            parse(&t.unit_reading("fridge", "cabinet")),
            Some(Parsed::UnitReading {
                bank: "lobby-1",
                unit: "fridge",
                sensor: "cabinet"
            })
        );
    }

    #[test]
    fn foreign_and_malformed_topics_are_not_parsed() {
        for topic in [
            "lockerhub/v2/bank/a/status",
            "lockerhub/v1/bank//status",
            "lockerhub/v1/bank/a/door/0",
            "lockerhub/v1/bank/a/door/x",
            "lockerhub/v1/bank/a/door/70000",
            "lockerhub/v1/bank/a/status/extra",
            "lockerhub/v1/bank/a+b/status",
            "lockerhub/v1/bank/a/unit/f/sensor",
            "lockerhub/v1/bank/a/unit/f/sensor/s/x",
            "lockerhub/v1/bank/a/unit/f#/sensor/s",
            "other/topic",
        ] {
            assert_eq!(parse(topic), None, "{topic}");
        }
    }

    #[test]
    fn command_json_is_the_documented_shape() {
        let c = Command::Unlock {
            unlock_id: "u1".into(),
            door: 3,
            pulse_ms: None,
            deadline_ms: Some(1_700_000_003_000),
            valid_ms: Some(3000),
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"type":"unlock","unlock_id":"u1","door":3,"deadline_ms":1700000003000,"valid_ms":3000}"#
        );
        // An unlock from an older hub has no deadline.
        let old: Command =
            serde_json::from_str(r#"{"type":"unlock","unlock_id":"u1","door":3}"#).unwrap();
        assert!(matches!(
            old,
            Command::Unlock {
                deadline_ms: None,
                valid_ms: None,
                ..
            }
        ));
        let q: Command = serde_json::from_str(r#"{"type":"query"}"#).unwrap();
        assert_eq!(
            q,
            Command::Query {
                door: None,
                doors: vec![]
            }
        );
        let q: Command = serde_json::from_str(r#"{"type":"query","doors":[1,2]}"#).unwrap();
        assert_eq!(
            q,
            Command::Query {
                door: None,
                doors: vec![1, 2]
            }
        );
    }

    #[test]
    fn an_acknowledgement_says_how_the_unlock_ended() {
        let ack = CommandAck::new(
            "u1".into(),
            3,
            UnlockResult::Unknown,
            Some("no reply".into()),
        );
        assert_eq!(
            serde_json::to_value(&ack).unwrap(),
            serde_json::json!({"unlock_id": "u1", "door": 3, "ok": false, "result": "unknown",
                "error": "no reply"})
        );
        // Controllers that only say ok: true pulsed, false could not pulse.
        let old: CommandAck =
            serde_json::from_str(r#"{"unlock_id":"u1","door":3,"ok":false}"#).unwrap();
        assert_eq!(old.outcome(), UnlockResult::Failed);
        let old: CommandAck =
            serde_json::from_str(r#"{"unlock_id":"u1","door":3,"ok":true}"#).unwrap();
        assert_eq!(old.outcome(), UnlockResult::Pulsed);
        let both: CommandAck =
            serde_json::from_str(r#"{"unlock_id":"u1","door":3,"ok":true,"result":"not_sent"}"#)
                .unwrap();
        assert_eq!(both.outcome(), UnlockResult::NotSent);
    }
}
