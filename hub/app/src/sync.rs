//! Sync links as the engine sees them: one `locker_sync::Session` per open connection, fed by the
//! link tasks (`locker-hub`'s `link` module, which owns the sockets) through [`SyncEvent`] jobs,
//! answering through each link's [`SyncOut`] channel.
//!
//! The sessions live on the engine thread because the documents do: the store is the one copy
//! of each document, and a change that arrives is merged, committed, folded into the core and
//! only then relayed to the other links (durable before relayed). A change made here (a local
//! step) is offered to every link after its commit.
//!
//! [`SyncBoard`] is what `/healthz` and the System page show: the link tasks write the
//! connection state (connecting, connected, backing off, refused, with the last error), the
//! engine writes what the session knows (pending documents, bytes, last sync).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;

use locker_sync::{
    DocKey, Offload, PeerRole, PrepareError, Prepared, Session, SessionConfig, SessionStatus, Store,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc as tokio_mpsc;
use tracing::{error, info};

use crate::facts::StoredFact;

/// What a link task tells the engine.
pub enum SyncEvent {
    /// A connection is open (a WebSocket upgraded, the token checked). A dialer's `join` goes
    /// out at once.
    Opened {
        conn: u64,
        /// The URL (cloud or hub we dialed) or the remote address (a hub that dialed us).
        name: String,
        role: PeerRole,
        out: tokio_mpsc::UnboundedSender<SyncOut>,
    },
    /// One binary frame from the peer.
    Frame { conn: u64, frame: Vec<u8> },
    /// The connection is gone.
    Closed { conn: u64 },
    /// A large message of this connection, merged on the merge thread (`Merger`).
    Merged {
        conn: u64,
        result: Box<Result<Prepared<StoredFact>, PrepareError>>,
    },
}

/// A sync message larger than this is merged on the merge thread, not the engine's: a week's
/// catch-up takes hundreds of milliseconds to apply, and the doors must not wait for it; 300
/// residents' registrations (8 KiB) took automerge 25 ms. A live change (one step's facts) is
/// about 1 KiB.
pub const OFFLOAD_BYTES: usize = 4 * 1024;

/// The merge thread: prepares offloaded messages (`Offload::prepare`) and hands each result
/// back to the engine as a `SyncEvent::Merged` job.
struct Merger {
    jobs: std::sync::mpsc::Sender<(u64, Offload)>,
}

impl Merger {
    fn start(back: Box<dyn Fn(SyncEvent) -> bool + Send>) -> Option<Merger> {
        let (jobs, rx) = std::sync::mpsc::channel::<(u64, Offload)>();
        std::thread::Builder::new()
            .name("sync-merge".into())
            .spawn(move || {
                while let Ok((conn, offload)) = rx.recv() {
                    let started = std::time::Instant::now();
                    let bytes = offload.len();
                    let result = offload.prepare::<StoredFact>();
                    info!(
                        bytes,
                        ms = started.elapsed().as_millis() as u64,
                        "a large sync message prepared off the engine thread"
                    );
                    if !back(SyncEvent::Merged {
                        conn,
                        result: Box::new(result),
                    }) {
                        return;
                    }
                }
            })
            .ok()
            .map(|_| Merger { jobs })
    }
}

/// What the engine tells a link task.
#[derive(Debug)]
pub enum SyncOut {
    Frame(Vec<u8>),
    /// Send what was queued, then close with this reason.
    Close(String),
}

/// Sync settings the engine needs (from `[sync]`).
#[derive(Clone, Debug)]
pub struct SyncSettings {
    pub peer_id: String,
    pub storage_id: String,
    pub reply_timeout_ms: u64,
    pub months_back: u32,
}

struct Link {
    session: Session,
    out: tokio_mpsc::UnboundedSender<SyncOut>,
    /// Frames that arrived while a message of this link was being merged elsewhere.
    held: VecDeque<Vec<u8>>,
}

/// The engine's open links.
pub(crate) struct Links {
    settings: Option<SyncSettings>,
    links: BTreeMap<u64, Link>,
    board: std::sync::Arc<SyncBoard>,
    /// The documents last shown on the board.
    shown: BTreeSet<DocKey>,
    /// Where large messages are merged; `None`: merged here.
    merger: Option<Merger>,
}

/// The facts that arrived on one link, durable already.
pub(crate) struct Arrived {
    pub conn: u64,
    pub merged: Vec<(DocKey, Vec<StoredFact>)>,
}

impl Links {
    /// `back` puts an event on the engine's queue (for the merge thread's results; false once
    /// the engine is gone).
    pub(crate) fn new(
        settings: Option<SyncSettings>,
        board: std::sync::Arc<SyncBoard>,
        back: Box<dyn Fn(SyncEvent) -> bool + Send>,
    ) -> Links {
        let merger = settings.as_ref().and_then(|_| Merger::start(back));
        Links {
            settings,
            links: BTreeMap::new(),
            board,
            shown: BTreeSet::new(),
            merger,
        }
    }

    /// Handles one event. `Err` is a storage failure: the caller's fail-stop rules apply.
    pub(crate) fn event(
        &mut self,
        store: &mut Store<StoredFact>,
        now_ms: u64,
        event: SyncEvent,
    ) -> Result<Option<Arrived>, locker_sync::SessionError> {
        match event {
            SyncEvent::Opened {
                conn,
                name,
                role,
                out,
            } => {
                let Some(settings) = &self.settings else {
                    let _ = out.send(SyncOut::Close("sync is not configured".into()));
                    return Ok(None);
                };
                let cfg = SessionConfig {
                    peer_id: settings.peer_id.clone(),
                    storage_id: settings.storage_id.clone(),
                    name: name.clone(),
                    reply_timeout_ms: settings.reply_timeout_ms,
                    want_requests: true,
                    months_back: settings.months_back,
                    offload_bytes: self.merger.as_ref().map(|_| OFFLOAD_BYTES),
                };
                let session = match role {
                    PeerRole::Dialer => {
                        let (session, join) = Session::dial(cfg, now_ms);
                        let _ = out.send(SyncOut::Frame(join));
                        session
                    }
                    PeerRole::Acceptor => Session::accept(cfg, now_ms),
                };
                info!(peer = %name, ?role, "sync link open");
                self.links.insert(
                    conn,
                    Link {
                        session,
                        out,
                        held: VecDeque::new(),
                    },
                );
                self.publish(conn);
                Ok(None)
            }
            SyncEvent::Frame { conn, frame } => {
                let Some(link) = self.links.get_mut(&conn) else {
                    return Ok(None);
                };
                if link.session.is_merging() {
                    // In order, after the merge that is out.
                    link.held.push_back(frame);
                    return Ok(None);
                }
                let step = link.session.receive(store, now_ms, &frame)?;
                let mut merged = Vec::new();
                self.handle(conn, step, &mut merged);
                self.publish(conn);
                Ok((!merged.is_empty()).then_some(Arrived { conn, merged }))
            }
            SyncEvent::Merged { conn, result } => {
                let Some(link) = self.links.get_mut(&conn) else {
                    // The link closed meanwhile: nothing was committed; the peer sends it again.
                    return Ok(None);
                };
                let step = link.session.merged(store, now_ms, *result)?;
                let mut merged = Vec::new();
                self.handle(conn, step, &mut merged);
                // The frames that waited for it.
                while let Some(link) = self.links.get_mut(&conn) {
                    if link.session.is_merging() {
                        break;
                    }
                    let Some(frame) = link.held.pop_front() else {
                        break;
                    };
                    let step = link.session.receive(store, now_ms, &frame)?;
                    self.handle(conn, step, &mut merged);
                }
                self.publish(conn);
                Ok((!merged.is_empty()).then_some(Arrived { conn, merged }))
            }
            SyncEvent::Closed { conn } => {
                if let Some(link) = self.links.remove(&conn) {
                    info!(peer = %link.session.name(), "sync link closed");
                    self.board.session_ended(link.session.name());
                }
                Ok(None)
            }
        }
    }

    /// Carries out a session's step: its frames out, its close, its offload to the merge
    /// thread; the facts it merged are added to `merged`.
    fn handle(
        &mut self,
        conn: u64,
        step: locker_sync::Step<StoredFact>,
        merged: &mut Vec<(DocKey, Vec<StoredFact>)>,
    ) {
        let Some(link) = self.links.get_mut(&conn) else {
            return;
        };
        for f in step.send {
            let _ = link.out.send(SyncOut::Frame(f));
        }
        if let Some(reason) = step.close {
            let _ = link.out.send(SyncOut::Close(reason));
        }
        merged.extend(step.merged);
        if let Some(offload) = step.offload {
            let sent = self
                .merger
                .as_ref()
                .is_some_and(|m| m.jobs.send((conn, offload)).is_ok());
            if !sent {
                error!(peer = %link.session.name(), "the merge thread is gone; closing the link");
                let _ = link.out.send(SyncOut::Close("merge thread gone".into()));
            }
        }
    }

    /// Offers changed documents to every link but `except` (the one they came from).
    pub(crate) fn changed(
        &mut self,
        store: &mut Store<StoredFact>,
        now_ms: u64,
        docs: &BTreeSet<DocKey>,
        except: Option<u64>,
    ) -> Result<(), locker_sync::SessionError> {
        if !docs.is_subset(&self.shown) {
            self.publish_documents(Some(&*store));
        }
        if docs.is_empty() || self.links.is_empty() {
            return Ok(());
        }
        let docs: Vec<DocKey> = docs.iter().copied().collect();
        let conns: Vec<u64> = self.links.keys().copied().collect();
        for conn in conns {
            if Some(conn) == except {
                continue;
            }
            if let Some(link) = self.links.get_mut(&conn) {
                for f in link.session.changed(store, now_ms, &docs)? {
                    let _ = link.out.send(SyncOut::Frame(f));
                }
            }
            self.publish(conn);
        }
        Ok(())
    }

    /// Closes every link (they reconnect by themselves).
    pub(crate) fn close_all(&mut self, reason: &str) {
        for (_, link) in std::mem::take(&mut self.links) {
            let _ = link.out.send(SyncOut::Close(reason.to_owned()));
            self.board.session_ended(link.session.name());
        }
    }

    /// Timeouts of documents in flight.
    pub(crate) fn poll(
        &mut self,
        store: &mut Store<StoredFact>,
        now_ms: u64,
    ) -> Result<(), locker_sync::SessionError> {
        let due: Vec<u64> = self
            .links
            .iter()
            .filter(|(_, l)| l.session.next_poll_ms().is_some_and(|t| t <= now_ms))
            .map(|(c, _)| *c)
            .collect();
        for conn in due {
            if let Some(link) = self.links.get_mut(&conn) {
                let step = link.session.poll(store, now_ms)?;
                for f in step.send {
                    let _ = link.out.send(SyncOut::Frame(f));
                }
                if let Some(reason) = step.close {
                    let _ = link.out.send(SyncOut::Close(reason));
                }
            }
            self.publish(conn);
        }
        Ok(())
    }

    /// True while a link has not settled every document once since it connected (its first
    /// round of catch-up).
    pub(crate) fn catching_up(&self) -> bool {
        self.links.values().any(|l| !l.session.status().caught_up)
    }

    /// The earliest time `poll` has something to do.
    pub(crate) fn next_poll_ms(&self) -> Option<u64> {
        self.links
            .values()
            .filter_map(|l| l.session.next_poll_ms())
            .min()
    }

    /// Tells the board which documents this hub holds (at start and after maintenance).
    pub(crate) fn publish_documents(&mut self, store: Option<&Store<StoredFact>>) {
        if self.settings.is_none() {
            return;
        }
        let Some(store) = store else {
            return;
        };
        match store.held_documents() {
            Ok(docs) => {
                self.shown = docs.iter().map(|(key, _)| *key).collect();
                self.board.set_documents(
                    docs.into_iter()
                        .map(|(key, id)| (key.to_string(), format!("automerge:{id}")))
                        .collect(),
                );
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the synced documents"),
        }
    }

    fn publish(&self, conn: u64) {
        if let Some(link) = self.links.get(&conn) {
            self.board
                .session(link.session.name(), link.session.status().clone());
        }
    }
}

/// The state of one sync peer, as `/healthz` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHealth {
    pub url: String,
    /// `cloud` or `hub`.
    pub kind: String,
    /// `connecting`, `connected`, `backing_off`, `refused`, or `listening`.
    pub state: String,
    /// When a document last finished syncing with it (ms since the epoch).
    pub last_sync_ms: Option<u64>,
    pub documents_pending: usize,
    pub caught_up: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub last_error: Option<String>,
    /// Its storage id (the key of its saved sync states), once it said.
    pub storage_id: Option<String>,
}

/// Shared between the link tasks, the engine and health.
#[derive(Default)]
pub struct SyncBoard {
    peers: Mutex<BTreeMap<String, PeerHealth>>,
    /// The documents this hub syncs, with their automerge URLs (set by the engine).
    documents: Mutex<Vec<(String, String)>>,
}

impl SyncBoard {
    /// A link task's view: where it is in connecting.
    pub fn link_state(
        &self,
        url: &str,
        kind: &'static str,
        state: &'static str,
        error: Option<String>,
    ) {
        let Ok(mut peers) = self.peers.lock() else {
            return;
        };
        let entry = peers.entry(url.to_owned()).or_default();
        entry.url = url.to_owned();
        entry.kind = kind.to_owned();
        entry.state = state.to_owned();
        if let Some(e) = error {
            error!(peer = %url, error = %e, "sync link");
            entry.last_error = Some(e);
        }
    }

    fn session(&self, url: &str, status: SessionStatus) {
        let Ok(mut peers) = self.peers.lock() else {
            return;
        };
        let entry = peers.entry(url.to_owned()).or_default();
        entry.url = url.to_owned();
        entry.documents_pending = status.pending;
        entry.caught_up = status.caught_up;
        entry.bytes_in = status.bytes_in;
        entry.bytes_out = status.bytes_out;
        entry.storage_id = status.their_storage_id;
        if status.last_sync_ms.is_some() {
            entry.last_sync_ms = status.last_sync_ms;
        }
    }

    fn session_ended(&self, url: &str) {
        if let Ok(mut peers) = self.peers.lock() {
            if let Some(entry) = peers.get_mut(url) {
                entry.documents_pending = 0;
                entry.caught_up = false;
            }
        }
    }

    pub(crate) fn set_documents(&self, docs: Vec<(String, String)>) {
        if let Ok(mut d) = self.documents.lock() {
            *d = docs;
        }
    }

    pub fn peers(&self) -> Vec<PeerHealth> {
        self.peers
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    /// (document name, `automerge:<id>`), for the documents this hub holds.
    pub fn documents(&self) -> Vec<(String, String)> {
        self.documents.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// The `sync` section of `/healthz`.
    pub fn health(&self) -> SyncHealth {
        SyncHealth {
            peers: self.peers(),
            documents: self
                .documents()
                .into_iter()
                .map(|(name, url)| SyncedDocument { name, url })
                .collect(),
        }
    }

    /// What `/healthz` lists as problems: a peer that refused our token.
    pub fn problems(&self) -> Vec<String> {
        self.peers()
            .into_iter()
            .filter(|p| p.state == "refused")
            .map(|p| {
                format!(
                    "sync with {} refused: {}",
                    p.url,
                    p.last_error.unwrap_or_default()
                )
            })
            .collect()
    }
}

/// `/healthz`'s `sync` section.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SyncHealth {
    pub peers: Vec<PeerHealth>,
    pub documents: Vec<SyncedDocument>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyncedDocument {
    pub name: String,
    /// `automerge:<id>`: how an operator finds it on the cloud's side.
    pub url: String,
}
