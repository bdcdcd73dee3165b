//! One front-door connection, sans IO: bytes from the client and from the broker in, bytes for
//! each side and the verdicts out.
//!
//! - CONNECT ([`parse_connect`]): MQTT 3.1.1 or 5, at most [`MAX_CONNECT_BYTES`]; the front door
//!   then checks the login and the client id ([`valid_client_id`]) and makes the CONNECT that
//!   rumqttd sees ([`Session::broker_connect`]): the front door's own login, a fresh internal id,
//!   a clean session, no aliases, and always MQTT 5 (rumqttd's 3.1.1 encoder panics on a message
//!   that carries MQTT 5 properties, so it is never used).
//! - PUBLISH: the topic must be one the login may publish to; a kiosk's request may name only its
//!   own reply topic (`reply_to` in the payload or the Response Topic) and is rate-limited;
//!   topic aliases are resolved here and never passed on. Refused: PUBACK/PUBREC with 0x87 (0x97
//!   when rate-limited) on MQTT 5; on 3.1.1, which cannot say no, an ordinary acknowledgement and
//!   nothing passed on (MQTT 3.1.1 §3.3.5).
//! - SUBSCRIBE: refused filters get 0x87 (MQTT 5) or 0x80 (3.1.1) in the SUBACK and never reach
//!   the broker; the broker's SUBACK for the rest is merged back in order.
//! - From the broker: only topics the login may read are passed on (defence in depth); MQTT 5
//!   properties are dropped for 3.1.1 clients.
//! - DISCONNECT and the last will: rumqttd never sees either. A DISCONNECT packet from a client
//!   that rumqttd processes frees the connection's slot in its router before the link task
//!   notices the closed socket, and the link then reports a second disconnect for the same slot,
//!   which by then may belong to a new connection: rumqttd drops the newcomer (seen with a bank
//!   reconnecting; rumqttd's own code says "This will lead to double Disconnect packets"). So the
//!   front door closes the broker leg without a DISCONNECT, keeps the client's will itself, and
//!   publishes it ([`Session::will`]) when the connection ends without a normal DISCONNECT.
//! - Keep-alive 0 (MQTT's "no keep-alive", which some controllers send): rumqttd refuses it
//!   (`ZeroKeepAlive`). The broker leg then gets [`BROKER_KEEP_ALIVE_WHEN_NONE`], and the front
//!   door pings the broker itself every [`Session::broker_ping_every`], swallowing the answers
//!   ([`Session::broker_ping`]); the client is never timed out for silence, as MQTT says.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::mqttbytes::QoS as QoS4;
use rumqttc::v5::mqttbytes::v5;
use rumqttc::v5::mqttbytes::QoS;

use crate::acl::{self, Rights};

/// Largest CONNECT accepted (a CONNECT carries ids, a login and a will: a few hundred bytes).
pub const MAX_CONNECT_BYTES: usize = 64 * 1024;
/// Topic aliases a MQTT 5 client may set up (resolved here, never passed on).
pub const TOPIC_ALIAS_MAX: u16 = 32;
/// The broker leg's keep-alive (seconds) for a client that asked for none.
pub const BROKER_KEEP_ALIVE_WHEN_NONE: u16 = 600;
/// Kiosk requests per connection: a burst of this many, then [`KIOSK_RATE_PER_S`] a second.
pub const KIOSK_BURST: f64 = 20.0;
pub const KIOSK_RATE_PER_S: f64 = 2.0;

/// The client or the broker broke the protocol: close the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

fn protocol(what: impl Into<String>) -> ProtocolError {
    ProtocolError(what.into())
}

/// A client id rumqttd can hold safely: 1-128 of `[A-Za-z0-9_.:-]` (empty: one is assigned).
pub fn valid_client_id(id: &str) -> bool {
    id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// A CONNECT as the client sent it.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per connection, short-lived
pub enum Connect {
    V4(v4::Connect),
    V5(v5::Connect, Option<v5::LastWill>, Option<v5::Login>),
}

impl Connect {
    /// 4 for MQTT 3.1.1, 5 for MQTT 5.
    pub fn version(&self) -> u8 {
        match self {
            Connect::V4(_) => 4,
            Connect::V5(..) => 5,
        }
    }

    pub fn client_id(&self) -> &str {
        match self {
            Connect::V4(c) => &c.client_id,
            Connect::V5(c, ..) => &c.client_id,
        }
    }

    /// (username, password), if the client sent a login.
    pub fn login(&self) -> Option<(String, String)> {
        match self {
            Connect::V4(c) => c
                .login
                .as_ref()
                .map(|l| (l.username.clone(), l.password.clone())),
            Connect::V5(_, _, l) => l.as_ref().map(|l| (l.username.clone(), l.password.clone())),
        }
    }

    pub fn will_topic(&self) -> Option<String> {
        match self {
            Connect::V4(c) => c.last_will.as_ref().map(|w| w.topic.clone()),
            Connect::V5(_, w, _) => w
                .as_ref()
                .map(|w| String::from_utf8_lossy(&w.topic).into_owned()),
        }
    }
}

/// Parse a whole CONNECT (MQTT 3.1.1 or 5) from the start of `buf`, refusing anything else.
/// `Ok(None)`: more bytes are needed. The CONNECT's bytes are taken out of `buf`.
pub fn parse_connect(buf: &mut BytesMut) -> Result<Option<Connect>, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != 0x10 {
        return Err(protocol("first packet is not CONNECT"));
    }
    let (len, header) = match remaining_length(buf) {
        None => return Ok(None),
        Some(Err(())) => return Err(protocol("malformed remaining length")),
        Some(Ok(x)) => x,
    };
    let total = header + len;
    if total > MAX_CONNECT_BYTES {
        return Err(protocol("CONNECT too large"));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[header..total];
    if body.len() < 7 || body[..6] != [0x00, 0x04, b'M', b'Q', b'T', b'T'] {
        return Err(protocol(
            "unsupported protocol name (MQTT 3.1.1 and 5 are supported)",
        ));
    }
    let connect = match body[6] {
        4 => match v4::Packet::read(buf, MAX_CONNECT_BYTES) {
            Ok(v4::Packet::Connect(c)) => Connect::V4(c),
            other => return Err(protocol(format!("malformed CONNECT: {other:?}"))),
        },
        5 => match v5::Packet::read(buf, Some(MAX_CONNECT_BYTES as u32)) {
            Ok(v5::Packet::Connect(c, w, l)) => Connect::V5(c, w, l),
            other => return Err(protocol(format!("malformed CONNECT: {other:?}"))),
        },
        _ => {
            return Err(protocol(
                "unsupported protocol level (MQTT 3.1.1 and 5 are supported)",
            ))
        }
    };
    Ok(Some(connect))
}

/// `Some(Ok((remaining length, fixed header length)))`, `None` if more bytes are needed.
fn remaining_length(buf: &[u8]) -> Option<Result<(usize, usize), ()>> {
    let mut len = 0usize;
    for i in 0..4 {
        let b = *buf.get(1 + i)?;
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(Ok((len, 2 + i)));
        }
    }
    Some(Err(()))
}

/// Why a CONNECT is refused, for [`connack_refusal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotAuthorized,
    Busy,
    BadClientId,
    Quota,
}

/// A CONNACK that refuses, in the client's protocol version.
pub fn connack_refusal(version: u8, why: Refusal) -> Vec<u8> {
    if version == 5 {
        let code = match why {
            Refusal::NotAuthorized => 0x87,
            Refusal::Busy => 0x89,
            Refusal::BadClientId => 0x85,
            Refusal::Quota => 0x97,
        };
        vec![0x20, 0x03, 0x00, code, 0x00]
    } else {
        let code = match why {
            Refusal::NotAuthorized => 5,
            Refusal::Busy | Refusal::Quota => 3,
            Refusal::BadClientId => 2,
        };
        vec![0x20, 0x02, 0x00, code]
    }
}

/// What kind of thing was refused (counted per login in `/healthz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    Connect,
    Publish,
    Subscribe,
    RateLimited,
}

/// A refusal, for the front door to count and log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub kind: RefusalKind,
    pub what: &'static str,
}

/// A packet from the client, in its own version.
#[allow(clippy::large_enum_variant)] // one at a time, never stored
pub enum ClientPacket {
    V4(v4::Packet),
    V5(v5::Packet),
}

/// What to do after one packet.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Bytes for the broker.
    pub to_broker: Vec<u8>,
    /// Bytes for the client.
    pub to_client: Vec<u8>,
    /// Close the connection after writing them.
    pub close: bool,
    /// Something the client asked for was refused.
    pub refused: Option<Refused>,
    /// The broker routed a message this login may not read (the topic): never expected, the
    /// connection is closed.
    pub breach: Option<String>,
}

/// One admitted connection's state.
pub struct Session {
    version: u8,
    /// The client's last will, as a PUBLISH to send when the connection ends uncleanly.
    will: Option<v5::Publish>,
    /// The client ended with a DISCONNECT that discards the will.
    clean: bool,
    keep_alive: u16,
    rights: Rights,
    max_packet: usize,
    /// MQTT 5 topic aliases the client set up.
    aliases: HashMap<u16, Bytes>,
    /// SUBSCRIBE packet id → the reason of each filter refused here (`None`: passed on).
    pending_subs: HashMap<u16, Vec<Option<v5::SubscribeReasonCode>>>,
    /// QoS 2 publishes refused to a 3.1.1 client (acknowledged with PUBREC): their PUBREL is
    /// answered here.
    refused_qos2: HashSet<u16>,
    kiosk_bucket: f64,
    bucket_at: Option<Instant>,
    /// PINGREQs the front door sent the broker on its own (keep-alive 0), not answered yet:
    /// their PINGRESPs are not the client's.
    own_pings: u32,
}

enum Verdict {
    Pass,
    Refuse(RefusalKind, &'static str),
}

impl Session {
    /// A session for a client speaking `version` (4 or 5) with `rights`; packets larger than
    /// `max_packet` bytes are a protocol error.
    pub fn new(version: u8, rights: Rights, max_packet: usize) -> Session {
        Session {
            version,
            will: None,
            clean: false,
            keep_alive: 0,
            rights,
            max_packet,
            aliases: HashMap::new(),
            pending_subs: HashMap::new(),
            refused_qos2: HashSet::new(),
            kiosk_bucket: KIOSK_BURST,
            bucket_at: None,
            own_pings: 0,
        }
    }

    /// How often the front door must ping the broker for this client: `Some` when the client
    /// asked for no keep-alive (see the module docs).
    pub fn broker_ping_every(&self) -> Option<std::time::Duration> {
        (self.keep_alive == 0)
            .then(|| std::time::Duration::from_secs(u64::from(BROKER_KEEP_ALIVE_WHEN_NONE) / 2))
    }

    /// A PINGREQ for the broker on the front door's own account; its PINGRESP is not passed on.
    pub fn broker_ping(&mut self) -> Vec<u8> {
        self.own_pings += 1;
        encode_v5(&v5::Packet::PingReq(v5::PingReq))
    }

    pub fn max_packet(&self) -> usize {
        self.max_packet
    }

    /// The CONNECT rumqttd sees: `login`, the fresh `internal_id`, a clean session, no aliases,
    /// no will (kept here: see the module docs). Call it once, before any packet.
    pub fn broker_connect(
        &mut self,
        connect: &Connect,
        internal_id: &str,
        login: &(String, String),
    ) -> Vec<u8> {
        let (keep_alive, will, mut properties) = match connect {
            Connect::V4(c) => (
                c.keep_alive,
                c.last_will.as_ref().map(|w| v5::LastWill {
                    topic: Bytes::from(w.topic.clone()),
                    message: w.message.clone(),
                    qos: qos5(w.qos),
                    retain: w.retain,
                    properties: None,
                }),
                None,
            ),
            Connect::V5(c, w, _) => (
                c.keep_alive,
                w.clone().map(|mut w| {
                    // Will delay, expiry and friends are not passed on: the will fires when the
                    // connection drops, like a 3.1.1 will.
                    w.properties = None;
                    w
                }),
                c.properties.clone(),
            ),
        };
        self.keep_alive = keep_alive;
        self.will = will.map(|w| {
            let mut p = v5::Publish::new(
                String::from_utf8_lossy(&w.topic).into_owned(),
                // Sent at most at QoS 1 over loopback to the broker.
                if w.qos == QoS::AtMostOnce {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                },
                w.message.to_vec(),
                None,
            );
            p.retain = w.retain;
            p.pkid = 1;
            p
        });
        if let Some(p) = properties.as_mut() {
            p.session_expiry_interval = None;
            p.topic_alias_max = None;
            p.authentication_method = None;
            p.authentication_data = None;
            p.user_properties.clear();
        }
        let packet = v5::Packet::Connect(
            v5::Connect {
                // The front door times the client's keep-alive itself (see `keep_alive`); the
                // broker's check on its leg is only a backstop. No keep-alive: see the module
                // docs.
                keep_alive: if keep_alive == 0 {
                    BROKER_KEEP_ALIVE_WHEN_NONE
                } else {
                    keep_alive.saturating_mul(2)
                },
                client_id: internal_id.to_owned(),
                clean_start: true,
                properties,
            },
            None,
            Some(v5::Login {
                username: login.0.clone(),
                password: login.1.clone(),
            }),
        );
        encode_v5(&packet)
    }

    /// The CONNACK the client sees, from the broker's; `assigned` is the client id given to a
    /// client that sent none.
    pub fn client_connack(&self, mut ack: v5::ConnAck, assigned: Option<String>) -> Vec<u8> {
        ack.session_present = false;
        if self.version == 4 {
            return encode_v4(&v4::Packet::ConnAck(v4::ConnAck {
                session_present: false,
                code: v4::ConnectReturnCode::Success,
            }));
        }
        let mut props = ack
            .properties
            .take()
            .unwrap_or_else(|| v5::ConnAckProperties {
                session_expiry_interval: None,
                receive_max: None,
                max_qos: None,
                retain_available: None,
                max_packet_size: None,
                assigned_client_identifier: None,
                topic_alias_max: None,
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: None,
                subscription_identifiers_available: None,
                shared_subscription_available: None,
                server_keep_alive: None,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            });
        props.topic_alias_max = Some(TOPIC_ALIAS_MAX);
        props.shared_subscription_available = Some(0);
        props.assigned_client_identifier = assigned;
        props.session_expiry_interval = Some(0);
        ack.properties = Some(props);
        encode_v5(&v5::Packet::ConnAck(ack))
    }

    /// A server DISCONNECT for the client (nothing for 3.1.1, which has none: just close).
    pub fn disconnect(&self, reason: v5::DisconnectReasonCode) -> Vec<u8> {
        if self.version == 4 {
            return Vec::new();
        }
        encode_v5(&v5::Packet::Disconnect(v5::Disconnect {
            reason_code: reason,
            properties: None,
        }))
    }

    /// The next whole client packet from `buf`, or `None` if more bytes are needed.
    pub fn read_client(&self, buf: &mut BytesMut) -> Result<Option<ClientPacket>, ProtocolError> {
        if self.version == 5 {
            match v5::Packet::read(buf, Some(self.max_packet as u32)) {
                Ok(p) => Ok(Some(ClientPacket::V5(p))),
                Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
                Err(e) => Err(protocol(e.to_string())),
            }
        } else {
            match v4::Packet::read(buf, self.max_packet) {
                Ok(p) => Ok(Some(ClientPacket::V4(p))),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
                Err(e) => Err(protocol(e.to_string())),
            }
        }
    }

    /// The next whole broker packet (MQTT 5) from `buf`, or `None` if more bytes are needed.
    pub fn read_broker(&self, buf: &mut BytesMut) -> Result<Option<v5::Packet>, ProtocolError> {
        read_v5(buf, self.max_packet)
    }

    /// A client packet, at `now`.
    pub fn on_client(&mut self, packet: ClientPacket, now: Instant) -> Result<Step, ProtocolError> {
        let packet = match packet {
            ClientPacket::V5(p) => p,
            ClientPacket::V4(p) => match v4_to_v5(p) {
                Some(p) => p,
                None => return Err(protocol("unexpected packet from a client")),
            },
        };
        match packet {
            v5::Packet::Publish(mut publish) => {
                let alias = publish
                    .properties
                    .as_mut()
                    .and_then(|p| p.topic_alias.take());
                if let Some(alias) = alias {
                    if alias == 0 || alias > TOPIC_ALIAS_MAX {
                        return Err(protocol("topic alias out of range"));
                    }
                    if publish.topic.is_empty() {
                        match self.aliases.get(&alias) {
                            Some(t) => publish.topic = t.clone(),
                            None => return Err(protocol("unknown topic alias")),
                        }
                    } else {
                        self.aliases.insert(alias, publish.topic.clone());
                    }
                }
                match self.check_publish(&publish, now) {
                    Verdict::Pass => Ok(Step {
                        to_broker: encode_v5(&v5::Packet::Publish(publish)),
                        ..Step::default()
                    }),
                    Verdict::Refuse(kind, what) => {
                        let quota = kind == RefusalKind::RateLimited;
                        let to_client = match publish.qos {
                            QoS::AtMostOnce => Vec::new(),
                            QoS::AtLeastOnce => self.to_client(v5::Packet::PubAck(v5::PubAck {
                                pkid: publish.pkid,
                                reason: if quota {
                                    v5::PubAckReason::QuotaExceeded
                                } else {
                                    v5::PubAckReason::NotAuthorized
                                },
                                properties: None,
                            })),
                            QoS::ExactlyOnce => {
                                if self.version == 4 {
                                    self.refused_qos2.insert(publish.pkid);
                                }
                                self.to_client(v5::Packet::PubRec(v5::PubRec {
                                    pkid: publish.pkid,
                                    reason: if quota {
                                        v5::PubRecReason::QuotaExceeded
                                    } else {
                                        v5::PubRecReason::NotAuthorized
                                    },
                                    properties: None,
                                }))
                            }
                        };
                        Ok(Step {
                            to_client,
                            refused: Some(Refused { kind, what }),
                            ..Step::default()
                        })
                    }
                }
            }
            v5::Packet::PubRel(rel) if self.refused_qos2.remove(&rel.pkid) => Ok(Step {
                to_client: self.to_client(v5::Packet::PubComp(v5::PubComp {
                    pkid: rel.pkid,
                    reason: v5::PubCompReason::Success,
                    properties: None,
                })),
                ..Step::default()
            }),
            v5::Packet::Subscribe(mut subscribe) => {
                let mut reasons = Vec::with_capacity(subscribe.filters.len());
                let mut allowed = Vec::new();
                for filter in subscribe.filters.drain(..) {
                    if !acl::valid_filter(&filter.path) {
                        reasons.push(Some(v5::SubscribeReasonCode::TopicFilterInvalid));
                    } else if self.rights.may_subscribe(&filter.path) {
                        reasons.push(None);
                        allowed.push(filter);
                    } else {
                        reasons.push(Some(v5::SubscribeReasonCode::NotAuthorized));
                    }
                }
                let refused = reasons.iter().any(Option::is_some).then_some(Refused {
                    kind: RefusalKind::Subscribe,
                    what: "subscription outside this login's topics",
                });
                if allowed.is_empty() {
                    let ack = v5::SubAck {
                        pkid: subscribe.pkid,
                        return_codes: reasons.into_iter().flatten().collect(),
                        properties: None,
                    };
                    return Ok(Step {
                        to_client: self.to_client(v5::Packet::SubAck(ack)),
                        refused,
                        ..Step::default()
                    });
                }
                self.pending_subs.insert(subscribe.pkid, reasons);
                subscribe.filters = allowed;
                Ok(Step {
                    to_broker: encode_v5(&v5::Packet::Subscribe(subscribe)),
                    refused,
                    ..Step::default()
                })
            }
            v5::Packet::Disconnect(d) => {
                // Never passed on (see the module docs); 0x04 asks for the will all the same.
                self.clean = d.reason_code != v5::DisconnectReasonCode::DisconnectWithWillMessage;
                Ok(Step {
                    close: true,
                    ..Step::default()
                })
            }
            v5::Packet::Connect(..)
            | v5::Packet::ConnAck(_)
            | v5::Packet::SubAck(_)
            | v5::Packet::UnsubAck(_)
            | v5::Packet::PingResp(_)
            | v5::Packet::Auth(_) => Err(protocol("unexpected packet from a client")),
            other => Ok(Step {
                to_broker: encode_v5(&other),
                ..Step::default()
            }),
        }
    }

    fn check_publish(&mut self, publish: &v5::Publish, now: Instant) -> Verdict {
        let Ok(topic) = std::str::from_utf8(&publish.topic) else {
            return Verdict::Refuse(RefusalKind::Publish, "topic is not UTF-8");
        };
        if !self.rights.may_publish(topic) {
            return Verdict::Refuse(RefusalKind::Publish, "publish outside this login's topics");
        }
        if self.rights.sends_requests() {
            let response = publish
                .properties
                .as_ref()
                .and_then(|p| p.response_topic.as_deref());
            if response.is_some_and(|t| !self.rights.may_be_replied_at(t)) {
                return Verdict::Refuse(
                    RefusalKind::Publish,
                    "kiosk request's response topic is not this kiosk's reply topic",
                );
            }
            #[derive(serde::Deserialize)]
            struct ReplyTo {
                reply_to: Option<String>,
            }
            if let Ok(ReplyTo {
                reply_to: Some(reply_to),
            }) = serde_json::from_slice::<ReplyTo>(&publish.payload)
            {
                if !self.rights.may_be_replied_at(&reply_to) {
                    return Verdict::Refuse(
                        RefusalKind::Publish,
                        "kiosk request's reply_to is not this kiosk's reply topic",
                    );
                }
            }
            let elapsed = self
                .bucket_at
                .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
            self.bucket_at = Some(now);
            self.kiosk_bucket = (self.kiosk_bucket + elapsed * KIOSK_RATE_PER_S).min(KIOSK_BURST);
            if self.kiosk_bucket < 1.0 {
                return Verdict::Refuse(
                    RefusalKind::RateLimited,
                    "kiosk requests too fast for one kiosk",
                );
            }
            self.kiosk_bucket -= 1.0;
        }
        Verdict::Pass
    }

    /// The client's keep-alive in seconds (0: none). Silence for 1.5 times it ends the
    /// connection uncleanly, as MQTT says.
    pub fn keep_alive(&self) -> u16 {
        self.keep_alive
    }

    /// The will to publish now that the connection has ended (a PUBLISH for the broker, to send
    /// as the front door's own client), or `None`: no will, or a normal DISCONNECT discarded it.
    /// A connection taken over by the same client, or closed at shutdown, publishes none either
    /// (the front door does not ask).
    pub fn will(&self) -> Option<Vec<u8>> {
        if self.clean {
            return None;
        }
        self.will
            .as_ref()
            .map(|w| encode_v5(&v5::Packet::Publish(w.clone())))
    }

    /// A broker packet.
    pub fn on_broker(&mut self, packet: v5::Packet) -> Result<Step, ProtocolError> {
        match packet {
            v5::Packet::PingResp(_) if self.own_pings > 0 => {
                self.own_pings -= 1;
                Ok(Step::default())
            }
            v5::Packet::Publish(publish) => {
                // Defence in depth: only topics this login may read ever leave the hub.
                let readable =
                    std::str::from_utf8(&publish.topic).is_ok_and(|t| self.rights.may_subscribe(t));
                if !readable {
                    return Ok(Step {
                        close: true,
                        breach: Some(String::from_utf8_lossy(&publish.topic).into_owned()),
                        ..Step::default()
                    });
                }
                Ok(Step {
                    to_client: self.to_client(v5::Packet::Publish(publish)),
                    ..Step::default()
                })
            }
            v5::Packet::SubAck(mut ack) => {
                if let Some(reasons) = self.pending_subs.remove(&ack.pkid) {
                    let mut granted = ack.return_codes.into_iter();
                    ack.return_codes = reasons
                        .into_iter()
                        .map(|r| {
                            r.or_else(|| granted.next())
                                .unwrap_or(v5::SubscribeReasonCode::Unspecified)
                        })
                        .collect();
                }
                Ok(Step {
                    to_client: self.to_client(v5::Packet::SubAck(ack)),
                    ..Step::default()
                })
            }
            v5::Packet::Disconnect(d) => Ok(Step {
                to_client: self.to_client(v5::Packet::Disconnect(d)),
                close: true,
                ..Step::default()
            }),
            v5::Packet::ConnAck(_)
            | v5::Packet::Connect(..)
            | v5::Packet::Subscribe(_)
            | v5::Packet::Unsubscribe(_)
            | v5::Packet::PingReq(_)
            | v5::Packet::Auth(_) => Err(protocol("unexpected packet from the broker")),
            other => Ok(Step {
                to_client: self.to_client(other),
                ..Step::default()
            }),
        }
    }

    /// Encode a packet for the client in its own version (MQTT 5 properties are dropped for
    /// 3.1.1 clients).
    fn to_client(&self, packet: v5::Packet) -> Vec<u8> {
        if self.version == 5 {
            return encode_v5(&packet);
        }
        match v5_to_v4(packet) {
            Some(p) => encode_v4(&p),
            None => Vec::new(),
        }
    }
}

/// The next whole MQTT 5 packet from `buf`, or `None` if more bytes are needed.
pub fn read_v5(buf: &mut BytesMut, max_packet: usize) -> Result<Option<v5::Packet>, ProtocolError> {
    match v5::Packet::read(buf, Some(max_packet as u32)) {
        Ok(p) => Ok(Some(p)),
        Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
        Err(e) => Err(protocol(e.to_string())),
    }
}

/// An MQTT 5 packet's bytes (an unencodable packet is dropped: empty).
pub fn encode_v5(packet: &v5::Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    match packet.write(&mut out, None) {
        Ok(_) => out.to_vec(),
        Err(_) => Vec::new(),
    }
}

/// An MQTT 3.1.1 packet's bytes (an unencodable packet is dropped: empty).
pub fn encode_v4(packet: &v4::Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    match packet.write(&mut out, usize::MAX) {
        Ok(_) => out.to_vec(),
        Err(_) => Vec::new(),
    }
}

fn qos5(q: QoS4) -> QoS {
    match q {
        QoS4::AtMostOnce => QoS::AtMostOnce,
        QoS4::AtLeastOnce => QoS::AtLeastOnce,
        QoS4::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn qos4(q: QoS) -> QoS4 {
    match q {
        QoS::AtMostOnce => QoS4::AtMostOnce,
        QoS::AtLeastOnce => QoS4::AtLeastOnce,
        QoS::ExactlyOnce => QoS4::ExactlyOnce,
    }
}

/// A 3.1.1 client packet as MQTT 5; `None` for packets a client never sends.
fn v4_to_v5(packet: v4::Packet) -> Option<v5::Packet> {
    Some(match packet {
        v4::Packet::Publish(p) => v5::Packet::Publish(v5::Publish {
            dup: p.dup,
            qos: qos5(p.qos),
            retain: p.retain,
            topic: Bytes::from(p.topic),
            pkid: p.pkid,
            payload: p.payload,
            properties: None,
        }),
        v4::Packet::PubAck(a) => v5::Packet::PubAck(v5::PubAck {
            pkid: a.pkid,
            reason: v5::PubAckReason::Success,
            properties: None,
        }),
        v4::Packet::PubRec(a) => v5::Packet::PubRec(v5::PubRec {
            pkid: a.pkid,
            reason: v5::PubRecReason::Success,
            properties: None,
        }),
        v4::Packet::PubRel(a) => v5::Packet::PubRel(v5::PubRel {
            pkid: a.pkid,
            reason: v5::PubRelReason::Success,
            properties: None,
        }),
        v4::Packet::PubComp(a) => v5::Packet::PubComp(v5::PubComp {
            pkid: a.pkid,
            reason: v5::PubCompReason::Success,
            properties: None,
        }),
        v4::Packet::Subscribe(s) => v5::Packet::Subscribe(v5::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| v5::Filter {
                    path: f.path,
                    qos: qos5(f.qos),
                    nolocal: false,
                    preserve_retain: false,
                    retain_forward_rule: v5::RetainForwardRule::OnEverySubscribe,
                })
                .collect(),
            properties: None,
        }),
        v4::Packet::Unsubscribe(u) => v5::Packet::Unsubscribe(v5::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
            properties: None,
        }),
        v4::Packet::PingReq => v5::Packet::PingReq(v5::PingReq),
        v4::Packet::Disconnect => v5::Packet::Disconnect(v5::Disconnect {
            reason_code: v5::DisconnectReasonCode::NormalDisconnection,
            properties: None,
        }),
        v4::Packet::Connect(_)
        | v4::Packet::ConnAck(_)
        | v4::Packet::SubAck(_)
        | v4::Packet::UnsubAck(_)
        | v4::Packet::PingResp => return None,
    })
}

/// A broker packet for a 3.1.1 client; `None` where 3.1.1 has no such packet (it is dropped).
fn v5_to_v4(packet: v5::Packet) -> Option<v4::Packet> {
    Some(match packet {
        v5::Packet::Publish(p) => v4::Packet::Publish(v4::Publish {
            dup: p.dup,
            qos: qos4(p.qos),
            retain: p.retain,
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            pkid: p.pkid,
            payload: p.payload,
        }),
        v5::Packet::PubAck(a) => v4::Packet::PubAck(v4::PubAck { pkid: a.pkid }),
        v5::Packet::PubRec(a) => v4::Packet::PubRec(v4::PubRec { pkid: a.pkid }),
        v5::Packet::PubRel(a) => v4::Packet::PubRel(v4::PubRel { pkid: a.pkid }),
        v5::Packet::PubComp(a) => v4::Packet::PubComp(v4::PubComp { pkid: a.pkid }),
        v5::Packet::SubAck(a) => v4::Packet::SubAck(v4::SubAck {
            pkid: a.pkid,
            return_codes: a
                .return_codes
                .into_iter()
                .map(|c| match c {
                    v5::SubscribeReasonCode::Success(q) => {
                        v4::SubscribeReasonCode::Success(qos4(q))
                    }
                    _ => v4::SubscribeReasonCode::Failure,
                })
                .collect(),
        }),
        v5::Packet::UnsubAck(a) => v4::Packet::UnsubAck(v4::UnsubAck { pkid: a.pkid }),
        v5::Packet::PingResp(_) => v4::Packet::PingResp,
        _ => return None,
    })
}

/// Feed arbitrary bytes through everything a client's or the broker's bytes can reach: the
/// CONNECT parser and a session of every role in both protocol versions, in both directions.
/// Used by the fuzz targets and by the tests; it must never panic.
pub fn exercise(data: &[u8]) {
    let now = Instant::now();
    let mut buf = BytesMut::from(data);
    let _ = parse_connect(&mut buf);
    let roles = [
        crate::acl::Role::Bank { bank: "A".into() },
        crate::acl::Role::Kiosk {
            bank: "A".into(),
            kiosk: "k".into(),
        },
        crate::acl::Role::Observer,
        crate::acl::Role::Probe,
    ];
    for version in [4, 5] {
        for role in &roles {
            let mut session = Session::new(version, role.rights(), 1 << 16);
            let mut client = BytesMut::from(data);
            while let Ok(Some(p)) = session.read_client(&mut client) {
                if session.on_client(p, now).is_err() {
                    break;
                }
            }
            let mut broker = BytesMut::from(data);
            while let Ok(Some(p)) = session.read_broker(&mut broker) {
                if session.on_broker(p).is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::Role;

    fn connect(bytes: &[u8]) -> Result<Option<Connect>, ProtocolError> {
        let mut buf = BytesMut::from(bytes);
        parse_connect(&mut buf)
    }

    fn v4_connect(client_id: &str, login: Option<(&str, &str)>) -> Vec<u8> {
        let mut c = v4::Connect::new(client_id);
        if let Some((u, p)) = login {
            c.set_login(u, p);
        }
        encode_v4(&v4::Packet::Connect(c))
    }

    #[test]
    fn reads_whole_connects_of_both_versions() {
        let c = connect(&v4_connect("ctl-A", Some(("bank-a", "pw"))))
            .unwrap()
            .unwrap();
        assert_eq!(c.version(), 4);
        assert_eq!(c.client_id(), "ctl-A");
        assert_eq!(c.login(), Some(("bank-a".into(), "pw".into())));
        let v5c = encode_v5(&v5::Packet::Connect(
            v5::Connect {
                keep_alive: 10,
                client_id: "k1".into(),
                clean_start: true,
                properties: None,
            },
            None,
            None,
        ));
        let c = connect(&v5c).unwrap().unwrap();
        assert_eq!((c.version(), c.client_id(), c.login()), (5, "k1", None));
        // Half a CONNECT asks for more.
        assert!(connect(&v5c[..v5c.len() - 1]).unwrap().is_none());
    }

    #[test]
    fn rejects_what_is_not_a_supported_connect() {
        for pkt in [
            &[0x30, 0x02, 0x00, 0x00][..], // PUBLISH first
            &[
                0x10, 0x0C, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0, 0, 0,
            ], // MQTT 3.1
            &[
                0x10, 0x0A, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x03, 0x02, 0, 0,
            ], // bad level
            &[0x10, 0x02, 0x00, 0x04],     // too short
            &[0x10, 0xFF, 0xFF, 0xFF, 0xFF], // bad length
            &[0x10, 0xFF, 0xFF, 0x7F],     // far too large
        ] {
            assert!(connect(pkt).is_err(), "{pkt:02x?}");
        }
    }

    #[test]
    fn client_ids_that_rumqttd_cannot_hold_are_refused() {
        for id in ["ctl-A", "mosq-abc123", "paho.1:2", "", "a_b"] {
            assert!(valid_client_id(id), "{id}");
        }
        for id in [
            "a/b",
            "+",
            "#",
            "$SYS",
            "a b",
            "a\u{0}",
            "é",
            &"x".repeat(129),
        ] {
            assert!(!valid_client_id(id), "{id:?}");
        }
    }

    fn session(role: Role, version: u8) -> Session {
        Session::new(version, role.rights(), 1 << 20)
    }

    fn publish(topic: &str, qos: QoS, payload: &str) -> v5::Publish {
        let mut p = v5::Publish::new(topic, qos, payload.as_bytes().to_vec(), None);
        p.pkid = if qos == QoS::AtMostOnce { 0 } else { 7 };
        p
    }

    fn bank_a() -> Role {
        Role::Bank { bank: "A".into() }
    }

    /// Keep-alive 0 is MQTT's "no keep-alive": rumqttd refuses it, so the broker leg gets its
    /// own, the front door pings on it, and only the client's own pings are answered to it.
    #[test]
    fn a_client_with_no_keep_alive_gets_a_broker_leg_that_the_front_door_keeps_alive() {
        let login = ("front".to_owned(), "secret".to_owned());
        let broker_keep_alive = |s: &mut Session, keep_alive: u16| {
            let mut c = v4::Connect::new("ctl-A");
            c.keep_alive = keep_alive;
            let parsed = connect(&encode_v4(&v4::Packet::Connect(c)))
                .unwrap()
                .unwrap();
            let mut buf = BytesMut::from(&s.broker_connect(&parsed, "gate-1", &login)[..]);
            match v5::Packet::read(&mut buf, None).unwrap() {
                v5::Packet::Connect(c, ..) => c.keep_alive,
                other => panic!("{other:?}"),
            }
        };
        let mut s = session(bank_a(), 4);
        assert_eq!(broker_keep_alive(&mut s, 30), 60);
        assert_eq!(
            s.broker_ping_every(),
            None,
            "a client with a keep-alive pings itself"
        );

        let mut s = session(bank_a(), 4);
        assert_eq!(broker_keep_alive(&mut s, 0), BROKER_KEEP_ALIVE_WHEN_NONE);
        let every = s.broker_ping_every().expect("the front door pings");
        assert!(every.as_secs() * 2 <= u64::from(BROKER_KEEP_ALIVE_WHEN_NONE));
        let mut buf = BytesMut::from(&s.broker_ping()[..]);
        assert!(matches!(
            v5::Packet::read(&mut buf, None),
            Ok(v5::Packet::PingReq(_))
        ));
        // The answer to the front door's ping stays here; the client's own ping is answered.
        let resp = || v5::Packet::PingResp(v5::PingResp);
        assert!(s.on_broker(resp()).unwrap().to_client.is_empty());
        let step = s
            .on_client(ClientPacket::V4(v4::Packet::PingReq), Instant::now())
            .unwrap();
        assert!(!step.to_broker.is_empty());
        assert!(!s.on_broker(resp()).unwrap().to_client.is_empty());
    }

    #[test]
    fn a_refused_publish_never_reaches_the_broker_and_mqtt5_hears_why() {
        let mut s = session(bank_a(), 5);
        let step = s
            .on_client(
                ClientPacket::V5(v5::Packet::Publish(publish(
                    "lockerhub/v1/bank/B/cmd",
                    QoS::AtLeastOnce,
                    "{}",
                ))),
                Instant::now(),
            )
            .unwrap();
        assert!(step.to_broker.is_empty());
        assert_eq!(step.refused.map(|r| r.kind), Some(RefusalKind::Publish));
        let mut buf = BytesMut::from(&step.to_client[..]);
        match v5::Packet::read(&mut buf, None).unwrap() {
            v5::Packet::PubAck(a) => assert_eq!(a.reason, v5::PubAckReason::NotAuthorized),
            other => panic!("{other:?}"),
        }
        // A 3.1.1 client gets a plain PUBACK (3.1.1 cannot say no) and nothing is passed on.
        let mut s = session(bank_a(), 4);
        let step = s
            .on_client(
                ClientPacket::V4(v4::Packet::Publish(v4::Publish {
                    dup: false,
                    qos: QoS4::AtLeastOnce,
                    retain: false,
                    topic: "lockerhub/v1/bank/B/cmd".into(),
                    pkid: 3,
                    payload: Bytes::from_static(b"{}"),
                })),
                Instant::now(),
            )
            .unwrap();
        assert!(step.to_broker.is_empty());
        assert_eq!(step.to_client, vec![0x40, 0x02, 0x00, 0x03]);
    }

    #[test]
    fn subscriptions_are_split_and_the_suback_merged_in_order() {
        let mut s = session(Role::Observer, 4);
        let sub = v4::Subscribe::new_many([
            v4::SubscribeFilter::new("#".into(), QoS4::AtMostOnce),
            v4::SubscribeFilter::new("lockerhub/v1/bank/+/state".into(), QoS4::AtLeastOnce),
            v4::SubscribeFilter::new(
                "lockerhub/v1/bank/+/kiosk/request".into(),
                QoS4::AtLeastOnce,
            ),
        ]);
        let step = s
            .on_client(ClientPacket::V4(v4::Packet::Subscribe(sub)), Instant::now())
            .unwrap();
        assert!(step.to_client.is_empty());
        let mut buf = BytesMut::from(&step.to_broker[..]);
        let v5::Packet::Subscribe(forwarded) = v5::Packet::read(&mut buf, None).unwrap() else {
            panic!("not a subscribe");
        };
        assert_eq!(forwarded.filters.len(), 1);
        assert_eq!(forwarded.filters[0].path, "lockerhub/v1/bank/+/state");
        let step = s
            .on_broker(v5::Packet::SubAck(v5::SubAck {
                pkid: forwarded.pkid,
                return_codes: vec![v5::SubscribeReasonCode::Success(QoS::AtLeastOnce)],
                properties: None,
            }))
            .unwrap();
        let mut buf = BytesMut::from(&step.to_client[..]);
        let v4::Packet::SubAck(ack) = v4::Packet::read(&mut buf, 1 << 20).unwrap() else {
            panic!("not a suback");
        };
        assert_eq!(
            ack.return_codes,
            vec![
                v4::SubscribeReasonCode::Failure,
                v4::SubscribeReasonCode::Success(QoS4::AtLeastOnce),
                v4::SubscribeReasonCode::Failure,
            ]
        );
    }

    fn kiosk() -> Role {
        Role::Kiosk {
            bank: "A".into(),
            kiosk: "k1".into(),
        }
    }

    #[test]
    fn a_kiosk_may_only_ask_for_replies_on_its_own_topic() {
        let mut s = session(kiosk(), 5);
        let now = Instant::now();
        let ok = publish(
            "lockerhub/v1/bank/A/kiosk/request",
            QoS::AtLeastOnce,
            r#"{"request_id":"1","reply_to":"lockerhub/v1/bank/A/kiosk/reply/k1","type":"pickup_by_pin","bank":"A","pin":"1"}"#,
        );
        assert!(matches!(s.check_publish(&ok, now), Verdict::Pass));
        let foreign = publish(
            "lockerhub/v1/bank/A/kiosk/request",
            QoS::AtLeastOnce,
            r#"{"request_id":"1","reply_to":"lockerhub/v1/bank/A/cmd","type":"pickup_by_pin"}"#,
        );
        assert!(matches!(
            s.check_publish(&foreign, now),
            Verdict::Refuse(..)
        ));
        let mut props = publish("lockerhub/v1/bank/A/kiosk/request", QoS::AtLeastOnce, "{}");
        props.properties = Some(v5::PublishProperties {
            response_topic: Some("lockerhub/v1/bank/A/kiosk/reply/k2".into()),
            ..Default::default()
        });
        assert!(matches!(s.check_publish(&props, now), Verdict::Refuse(..)));
    }

    #[test]
    fn a_kiosk_flood_is_refused_after_the_burst_and_refills_with_time() {
        let mut s = session(kiosk(), 5);
        let p = publish("lockerhub/v1/bank/A/kiosk/request", QoS::AtLeastOnce, "{}");
        let start = Instant::now();
        let passed = (0..1000)
            .filter(|_| matches!(s.check_publish(&p, start), Verdict::Pass))
            .count();
        assert_eq!(passed, KIOSK_BURST as usize);
        let later = start + std::time::Duration::from_secs(5);
        let passed = (0..1000)
            .filter(|_| matches!(s.check_publish(&p, later), Verdict::Pass))
            .count();
        assert_eq!(passed, (5.0 * KIOSK_RATE_PER_S) as usize);
    }

    #[test]
    fn topic_aliases_are_resolved_and_never_passed_on() {
        let mut s = session(bank_a(), 5);
        let now = Instant::now();
        let mut first = publish("lockerhub/v1/bank/A/door/1", QoS::AtMostOnce, "{}");
        first.properties = Some(v5::PublishProperties {
            topic_alias: Some(3),
            ..Default::default()
        });
        let step = s
            .on_client(ClientPacket::V5(v5::Packet::Publish(first)), now)
            .unwrap();
        assert!(!step.to_broker.is_empty());
        // The alias now stands for bank A's door 1; an empty topic with it is that topic.
        let mut second = publish("", QoS::AtMostOnce, "{}");
        second.properties = Some(v5::PublishProperties {
            topic_alias: Some(3),
            ..Default::default()
        });
        let step = s
            .on_client(ClientPacket::V5(v5::Packet::Publish(second)), now)
            .unwrap();
        let mut buf = BytesMut::from(&step.to_broker[..]);
        let v5::Packet::Publish(p) = v5::Packet::read(&mut buf, None).unwrap() else {
            panic!()
        };
        assert_eq!(&p.topic[..], b"lockerhub/v1/bank/A/door/1");
        assert!(p.properties.is_none_or(|p| p.topic_alias.is_none()));
        // An alias for a topic the bank may not publish to is refused like the topic itself.
        let mut third = publish("lockerhub/v1/bank/B/door/1", QoS::AtMostOnce, "{}");
        third.properties = Some(v5::PublishProperties {
            topic_alias: Some(4),
            ..Default::default()
        });
        let step = s
            .on_client(ClientPacket::V5(v5::Packet::Publish(third)), now)
            .unwrap();
        assert!(step.to_broker.is_empty());
    }

    #[test]
    fn mqtt5_properties_never_reach_a_311_client() {
        let s = session(Role::Observer, 4);
        let mut p = publish("lockerhub/v1/bank/A/state", QoS::AtMostOnce, "{}");
        p.properties = Some(v5::PublishProperties {
            correlation_data: Some(Bytes::from_static(b"x")),
            response_topic: Some("t".into()),
            ..Default::default()
        });
        let bytes = s.to_client(v5::Packet::Publish(p));
        let mut buf = BytesMut::from(&bytes[..]);
        assert!(matches!(
            v4::Packet::read(&mut buf, 1 << 20),
            Ok(v4::Packet::Publish(_))
        ));
    }

    #[test]
    fn a_message_the_login_may_not_read_closes_the_connection() {
        let mut s = session(bank_a(), 5);
        let step = s
            .on_broker(v5::Packet::Publish(publish(
                "lockerhub/v1/bank/A/kiosk/request",
                QoS::AtMostOnce,
                r#"{"pin":"1"}"#,
            )))
            .unwrap();
        assert!(step.close && step.to_client.is_empty());
        assert!(step.breach.is_some());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // The fuzz targets run this for minutes; here a quick deterministic sample.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let len = (seed % 96) as usize;
            let mut data = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                data.push((seed >> 24) as u8);
            }
            exercise(&data);
        }
        exercise(&v4_connect("x", Some(("u", "p"))));
    }
}
