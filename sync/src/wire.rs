//! The automerge-repo network protocol, version "1": one CBOR map with string keys per binary
//! WebSocket frame, as the JavaScript `automerge-repo` encodes it with cbor-x
//! (`tagUint8Array: false, useRecords: false`) and as samod-core reads it.
//!
//! Only what a hub needs is typed: the handshake (`join`, `peer`, `error`), `leave`, `sync`,
//! `request` and `doc-unavailable`. The other types (`ephemeral`, `remote-subscription-change`,
//! `remote-heads-changed`) decode to [`Message::Ignored`]; an unknown type is an error. The CBOR
//! is read with minicbor (the crate samod-core uses for the same job): it reads definite and
//! indefinite maps, skips fields it does not know, and takes an integer sent as a float.

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

/// The protocol version this implementation speaks.
pub const PROTOCOL_VERSION: &str = "1";

/// No frame larger than this is sent or accepted (8 MiB). automerge sends a whole compressed
/// document when a peer lacks more than about a third of it; a month of a large building is
/// ~640 KB, so this leaves a wide margin while bounding what a peer can make us buffer.
pub const MAX_FRAME: usize = 8 << 20;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerMetadata {
    /// Stable id of the peer's storage: the key under which we keep sync state for it.
    pub storage_id: Option<String>,
    /// The peer does not expect to come back with the same storage (a browser tab).
    pub is_ephemeral: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// First frame of the side that connects.
    Join {
        sender_id: String,
        metadata: Option<PeerMetadata>,
        supported_protocol_versions: Vec<String>,
    },
    /// The accepting side's answer to `join`.
    Peer {
        sender_id: String,
        target_id: String,
        metadata: Option<PeerMetadata>,
        selected_protocol_version: String,
    },
    /// A protocol error; the sender closes the connection.
    Error { message: String },
    /// The sender is about to disconnect.
    Leave { sender_id: String },
    /// An automerge sync message for a document both may have.
    Sync {
        sender_id: String,
        target_id: String,
        document_id: String,
        data: Vec<u8>,
    },
    /// Like `sync`, from a peer that does not have the document.
    Request {
        sender_id: String,
        target_id: String,
        document_id: String,
        data: Vec<u8>,
    },
    /// The sender does not have (or will not share) the document.
    DocUnavailable {
        sender_id: String,
        target_id: String,
        document_id: String,
    },
    /// A message type of the protocol that a hub does not act on (ephemeral messages, remote
    /// heads subscriptions).
    Ignored { kind: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("not a CBOR map with string keys: {0}")]
    Cbor(String),
    #[error("message has no `type`")]
    NoType,
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    #[error("`{kind}` message lacks `{field}`")]
    Missing {
        kind: &'static str,
        field: &'static str,
    },
}

impl From<minicbor::decode::Error> for WireError {
    fn from(e: minicbor::decode::Error) -> Self {
        WireError::Cbor(e.to_string())
    }
}

#[derive(Default)]
struct Fields {
    kind: Option<String>,
    sender_id: Option<String>,
    target_id: Option<String>,
    document_id: Option<String>,
    data: Option<Vec<u8>>,
    message: Option<String>,
    selected: Option<String>,
    supported: Option<Vec<String>>,
    metadata: Option<PeerMetadata>,
}

impl Message {
    pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
        if frame.len() > MAX_FRAME {
            return Err(WireError::TooLarge(frame.len()));
        }
        let mut d = Decoder::new(frame);
        let mut f = Fields::default();
        map_entries(&mut d, |d, key| {
            match key {
                "type" => f.kind = Some(d.str()?.to_owned()),
                "senderId" => f.sender_id = Some(d.str()?.to_owned()),
                "targetId" => f.target_id = Some(d.str()?.to_owned()),
                "documentId" => f.document_id = Some(d.str()?.to_owned()),
                "message" => f.message = Some(d.str()?.to_owned()),
                "selectedProtocolVersion" => f.selected = Some(d.str()?.to_owned()),
                "data" => f.data = Some(bytes(d)?),
                "supportedProtocolVersions" => {
                    let mut versions = Vec::new();
                    array_items(d, |d| {
                        versions.push(d.str()?.to_owned());
                        Ok(())
                    })?;
                    f.supported = Some(versions);
                }
                "peerMetadata" | "metadata" => f.metadata = metadata(d)?,
                _ => d.skip()?,
            }
            Ok(())
        })?;
        let kind = f.kind.take().ok_or(WireError::NoType)?;
        fn need<T>(v: Option<T>, kind: &'static str, field: &'static str) -> Result<T, WireError> {
            v.ok_or(WireError::Missing { kind, field })
        }
        Ok(match kind.as_str() {
            "join" => Message::Join {
                sender_id: need(f.sender_id, "join", "senderId")?,
                metadata: f.metadata,
                supported_protocol_versions: need(
                    f.supported,
                    "join",
                    "supportedProtocolVersions",
                )?,
            },
            "peer" => Message::Peer {
                sender_id: need(f.sender_id, "peer", "senderId")?,
                target_id: need(f.target_id, "peer", "targetId")?,
                metadata: f.metadata,
                selected_protocol_version: need(f.selected, "peer", "selectedProtocolVersion")?,
            },
            "error" => Message::Error {
                message: f.message.unwrap_or_default(),
            },
            "leave" => Message::Leave {
                sender_id: f.sender_id.unwrap_or_default(),
            },
            "sync" => Message::Sync {
                sender_id: need(f.sender_id, "sync", "senderId")?,
                target_id: need(f.target_id, "sync", "targetId")?,
                document_id: need(f.document_id, "sync", "documentId")?,
                data: need(f.data, "sync", "data")?,
            },
            "request" => Message::Request {
                sender_id: need(f.sender_id, "request", "senderId")?,
                target_id: need(f.target_id, "request", "targetId")?,
                document_id: need(f.document_id, "request", "documentId")?,
                data: need(f.data, "request", "data")?,
            },
            "doc-unavailable" => Message::DocUnavailable {
                sender_id: need(f.sender_id, "doc-unavailable", "senderId")?,
                target_id: need(f.target_id, "doc-unavailable", "targetId")?,
                document_id: need(f.document_id, "doc-unavailable", "documentId")?,
            },
            "ephemeral" | "remote-subscription-change" | "remote-heads-changed" => {
                Message::Ignored { kind }
            }
            _ => return Err(WireError::UnknownType(kind)),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        // Writing to a Vec cannot fail.
        let _ = self.encode_into(&mut e);
        e.into_writer()
    }

    fn encode_into(
        &self,
        e: &mut Encoder<Vec<u8>>,
    ) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
        match self {
            Message::Join {
                sender_id,
                metadata,
                supported_protocol_versions,
            } => {
                e.map(3 + metadata.is_some() as u64)?;
                e.str("type")?.str("join")?;
                e.str("senderId")?.str(sender_id)?;
                if let Some(m) = metadata {
                    e.str("peerMetadata")?;
                    encode_metadata(e, m)?;
                }
                e.str("supportedProtocolVersions")?
                    .array(supported_protocol_versions.len() as u64)?;
                for v in supported_protocol_versions {
                    e.str(v)?;
                }
            }
            Message::Peer {
                sender_id,
                target_id,
                metadata,
                selected_protocol_version,
            } => {
                e.map(4 + metadata.is_some() as u64)?;
                e.str("type")?.str("peer")?;
                e.str("senderId")?.str(sender_id)?;
                e.str("targetId")?.str(target_id)?;
                if let Some(m) = metadata {
                    e.str("peerMetadata")?;
                    encode_metadata(e, m)?;
                }
                e.str("selectedProtocolVersion")?
                    .str(selected_protocol_version)?;
            }
            Message::Error { message } => {
                e.map(2)?;
                e.str("type")?.str("error")?;
                e.str("message")?.str(message)?;
            }
            Message::Leave { sender_id } => {
                e.map(2)?;
                e.str("type")?.str("leave")?;
                e.str("senderId")?.str(sender_id)?;
            }
            Message::Sync {
                sender_id,
                target_id,
                document_id,
                data,
            }
            | Message::Request {
                sender_id,
                target_id,
                document_id,
                data,
            } => {
                let kind = if matches!(self, Message::Sync { .. }) {
                    "sync"
                } else {
                    "request"
                };
                e.map(5)?;
                e.str("type")?.str(kind)?;
                e.str("senderId")?.str(sender_id)?;
                e.str("targetId")?.str(target_id)?;
                e.str("documentId")?.str(document_id)?;
                e.str("data")?.bytes(data)?;
            }
            Message::DocUnavailable {
                sender_id,
                target_id,
                document_id,
            } => {
                e.map(4)?;
                e.str("type")?.str("doc-unavailable")?;
                e.str("senderId")?.str(sender_id)?;
                e.str("targetId")?.str(target_id)?;
                e.str("documentId")?.str(document_id)?;
            }
            Message::Ignored { kind } => {
                e.map(1)?;
                e.str("type")?.str(kind)?;
            }
        }
        Ok(())
    }
}

fn encode_metadata(
    e: &mut Encoder<Vec<u8>>,
    m: &PeerMetadata,
) -> Result<(), minicbor::encode::Error<std::convert::Infallible>> {
    e.map(1 + m.storage_id.is_some() as u64)?;
    if let Some(id) = &m.storage_id {
        e.str("storageId")?.str(id)?;
    }
    e.str("isEphemeral")?.bool(m.is_ephemeral)?;
    Ok(())
}

/// Calls `each` for every entry of the map at the decoder (definite or indefinite length).
fn map_entries<'b>(
    d: &mut Decoder<'b>,
    mut each: impl FnMut(&mut Decoder<'b>, &str) -> Result<(), WireError>,
) -> Result<(), WireError> {
    match d.map()? {
        Some(len) => {
            for _ in 0..len {
                let key = d.str()?.to_owned();
                each(d, &key)?;
            }
        }
        None => loop {
            if d.datatype()? == Type::Break {
                d.skip()?;
                break;
            }
            let key = d.str()?.to_owned();
            each(d, &key)?;
        },
    }
    Ok(())
}

fn array_items<'b>(
    d: &mut Decoder<'b>,
    mut each: impl FnMut(&mut Decoder<'b>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    match d.array()? {
        Some(len) => {
            for _ in 0..len {
                each(d)?;
            }
        }
        None => loop {
            if d.datatype()? == Type::Break {
                d.skip()?;
                break;
            }
            each(d)?;
        },
    }
    Ok(())
}

/// A byte string, definite or indefinite (chunked).
fn bytes(d: &mut Decoder<'_>) -> Result<Vec<u8>, WireError> {
    match d.datatype()? {
        Type::Bytes => Ok(d.bytes()?.to_vec()),
        Type::BytesIndef => {
            let mut out = Vec::new();
            for chunk in d.bytes_iter()? {
                out.extend_from_slice(chunk?);
            }
            Ok(out)
        }
        other => Err(WireError::Cbor(format!("`data` is {other}, not bytes"))),
    }
}

fn metadata(d: &mut Decoder<'_>) -> Result<Option<PeerMetadata>, WireError> {
    if matches!(d.datatype()?, Type::Null | Type::Undefined) {
        d.skip()?;
        return Ok(None);
    }
    let mut m = PeerMetadata::default();
    map_entries(d, |d, key| {
        match key {
            "storageId" if matches!(d.datatype()?, Type::String) => {
                m.storage_id = Some(d.str()?.to_owned())
            }
            "isEphemeral" if matches!(d.datatype()?, Type::Bool) => m.is_ephemeral = d.bool()?,
            _ => d.skip()?,
        }
        Ok(())
    })?;
    Ok(Some(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(m: Message) {
        assert_eq!(Message::decode(&m.encode()), Ok(m));
    }

    #[test]
    fn every_typed_message_round_trips() {
        let meta = Some(PeerMetadata {
            storage_id: Some("st-1".into()),
            is_ephemeral: false,
        });
        round_trip(Message::Join {
            sender_id: "a".into(),
            metadata: meta.clone(),
            supported_protocol_versions: vec!["1".into()],
        });
        round_trip(Message::Peer {
            sender_id: "b".into(),
            target_id: "a".into(),
            metadata: None,
            selected_protocol_version: "1".into(),
        });
        round_trip(Message::Error {
            message: "no".into(),
        });
        round_trip(Message::Leave {
            sender_id: "a".into(),
        });
        for request in [false, true] {
            let (sender_id, target_id, document_id, data) =
                ("a".into(), "b".into(), "doc".into(), vec![0x42, 0, 1]);
            round_trip(if request {
                Message::Request {
                    sender_id,
                    target_id,
                    document_id,
                    data,
                }
            } else {
                Message::Sync {
                    sender_id,
                    target_id,
                    document_id,
                    data,
                }
            });
        }
        round_trip(Message::DocUnavailable {
            sender_id: "a".into(),
            target_id: "b".into(),
            document_id: "d".into(),
        });
    }

    /// A frame as cbor-x writes it for `{type: "join", senderId: "js", peerMetadata:
    /// {storageId: undefined, isEphemeral: true}, supportedProtocolVersions: ["1"]}` with an
    /// extra field, in an indefinite-length map.
    #[test]
    fn reads_what_cbor_x_writes() {
        let mut e = Encoder::new(Vec::new());
        e.begin_map().unwrap();
        e.str("type").unwrap().str("join").unwrap();
        e.str("senderId").unwrap().str("js").unwrap();
        e.str("peerMetadata").unwrap().map(2).unwrap();
        e.str("storageId").unwrap().undefined().unwrap();
        e.str("isEphemeral").unwrap().bool(true).unwrap();
        e.str("extra").unwrap().f64(3.0).unwrap();
        e.str("supportedProtocolVersions")
            .unwrap()
            .array(1)
            .unwrap()
            .str("1")
            .unwrap();
        e.end().unwrap();
        let frame = e.into_writer();
        assert_eq!(
            Message::decode(&frame),
            Ok(Message::Join {
                sender_id: "js".into(),
                metadata: Some(PeerMetadata {
                    storage_id: None,
                    is_ephemeral: true
                }),
                supported_protocol_versions: vec!["1".into()],
            })
        );
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        assert!(Message::decode(&[]).is_err());
        assert!(Message::decode(&[0xff, 0x00]).is_err());
        assert_eq!(
            Message::decode(&vec![0u8; MAX_FRAME + 1]),
            Err(WireError::TooLarge(MAX_FRAME + 1))
        );
        let no_type = {
            let mut e = Encoder::new(Vec::new());
            e.map(1).unwrap().str("senderId").unwrap().str("x").unwrap();
            e.into_writer()
        };
        assert_eq!(Message::decode(&no_type), Err(WireError::NoType));
        let sync_without_data = {
            let mut e = Encoder::new(Vec::new());
            e.map(4).unwrap();
            e.str("type").unwrap().str("sync").unwrap();
            e.str("senderId").unwrap().str("a").unwrap();
            e.str("targetId").unwrap().str("b").unwrap();
            e.str("documentId").unwrap().str("d").unwrap();
            e.into_writer()
        };
        assert_eq!(
            Message::decode(&sync_without_data),
            Err(WireError::Missing {
                kind: "sync",
                field: "data"
            })
        );
    }
}
