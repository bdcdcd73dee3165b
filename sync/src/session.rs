//! One connection to one peer, speaking the automerge-repo protocol over this hub's store: the
//! handshake, then automerge sync of every document, one in flight at a time, in priority order.
//!
//! Sans-IO: the caller hands in frames, time and the store, and gets frames to send and the facts
//! that arrived. The store is the one in-memory copy of each document; a received change is
//! merged and committed (with the peer's sync state, in one transaction) before `receive`
//! returns, so nothing is relayed to another peer or acted on before it is durable.
//!
//! Catch-up never waits for ever. A document counts as settled when the peer has answered and
//! there is nothing more to send; when the saved sync state says the peer already had all of it
//! (a reconnect with nothing new: one message, no wait, so the JS server's silence after a
//! reconnect cannot stall us); when the peer says it is unavailable; or when no answer came
//! within the reply timeout.

use std::collections::{BTreeSet, HashMap};

use crate::docs::{DocKey, Family, Month};
use crate::error::StoreError;
use crate::offload::{Offload, PrepareError, Prepared};
use crate::record::Record;
use crate::store::Store;
use crate::wire::{Message, PeerMetadata, WireError, MAX_FRAME, PROTOCOL_VERSION};
use crate::SyncState;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    /// We connected: we send `join` and wait for `peer`.
    Dialer,
    /// The peer connected: we wait for `join` and answer `peer`.
    Acceptor,
}

#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Our peer id in this protocol (stable per hub, so a server replaces a stale connection).
    pub peer_id: String,
    /// Our storage id, sent in the handshake metadata.
    pub storage_id: String,
    /// What logs and health call this peer (its URL, or its hub id).
    pub name: String,
    /// How long a document in flight waits for an answer before the next one goes.
    pub reply_timeout_ms: u64,
    /// Ask the peer for this month's and last month's `requests` documents even when we do not
    /// have them (the cloud creates them), and ask again every three reply timeouts until they
    /// come.
    pub want_requests: bool,
    /// How many months back document ids are recognised (the retention period).
    pub months_back: u32,
    /// A sync message larger than this is not merged in [`Session::receive`] but handed out
    /// as [`Step::offload`], to be prepared on another thread and given back to
    /// [`Session::merged`] (a catch-up must not hold up the thread that owns the store). `None`:
    /// everything is merged in place.
    pub offload_bytes: Option<usize>,
}

/// What one call produced.
#[derive(Debug)]
pub struct Step<R> {
    /// Frames to send, in order.
    pub send: Vec<Vec<u8>>,
    /// Facts new to this hub, durable already, by document.
    pub merged: Vec<(DocKey, Vec<R>)>,
    /// The session is over (the peer left, or broke the protocol): send `send`, then close.
    pub close: Option<String>,
    /// A large sync message to merge on another thread ([`Offload::prepare`]); its result goes
    /// to [`Session::merged`]. Until then the session takes no frame of this connection (the
    /// caller holds them) and starts no document.
    pub offload: Option<Offload>,
}

impl<R> Default for Step<R> {
    fn default() -> Self {
        Step {
            send: Vec::new(),
            merged: Vec::new(),
            close: None,
            offload: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store failed: the caller's fail-stop rules apply.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What health shows about a session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionStatus {
    pub handshake_done: bool,
    pub their_peer_id: Option<String>,
    pub their_storage_id: Option<String>,
    /// Documents still to sync (queued and in flight).
    pub pending: usize,
    /// True once every document was settled at least once since connecting.
    pub caught_up: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// When the last document settled.
    pub last_sync_ms: Option<u64>,
    /// Documents the peer did not answer for within the timeout (since connecting).
    pub unanswered: u64,
    /// Documents that could not be sent (a message over the frame limit).
    pub too_large: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    AwaitingPeer,
    AwaitingJoin,
    Ready,
    Closed,
}

pub struct Session {
    cfg: SessionConfig,
    phase: Phase,
    their_id: String,
    /// The site whose documents these are (document ids derive from it).
    site_id: String,
    /// The key of the peer's saved sync states: its storage id, or our name for it.
    peer_key: String,
    index: HashMap<String, DocKey>,
    states: HashMap<DocKey, SyncState>,
    /// Documents to initiate, ordered by priority.
    queue: BTreeSet<(Priority, DocKey)>,
    in_flight: Option<(DocKey, u64)>,
    /// Changed while in flight: goes again once settled.
    again: BTreeSet<DocKey>,
    /// When the connection opened: the handshake must be done within the reply timeout.
    opened_ms: u64,
    /// When wanted documents we lack are asked for again.
    next_rerequest_ms: u64,
    /// A message of this document is being merged elsewhere (`Step::offload`).
    merging: Option<DocKey>,
    status: SessionStatus,
}

/// Lower sorts first: the cloud's requests, directory, site, this month, alerts, then older
/// months newest first.
type Priority = (u8, i64, u8);

fn priority(key: &DocKey, now_ms: u64) -> Priority {
    let this_month = Month::of_ms(now_ms).index();
    match key {
        DocKey::Monthly(Family::Requests, m) => (0, -m.index(), 0),
        DocKey::Directory => (1, 0, 0),
        DocKey::Site => (2, 0, 0),
        DocKey::Monthly(f, m) if m.index() >= this_month => (3, 0, *f as u8),
        DocKey::Monthly(Family::Alerts, m) => (4, -m.index(), 0),
        DocKey::Monthly(f, m) => (5, -m.index(), *f as u8),
    }
}

impl Session {
    /// A session we opened at `now_ms`: returns it and the `join` frame to send first.
    pub fn dial(cfg: SessionConfig, now_ms: u64) -> (Session, Vec<u8>) {
        let join = Message::Join {
            sender_id: cfg.peer_id.clone(),
            metadata: Some(PeerMetadata {
                storage_id: Some(cfg.storage_id.clone()),
                is_ephemeral: false,
            }),
            supported_protocol_versions: vec![PROTOCOL_VERSION.to_owned()],
        }
        .encode();
        let mut s = Session::new(cfg, Phase::AwaitingPeer, now_ms);
        s.status.bytes_out += join.len() as u64;
        (s, join)
    }

    /// A session the peer opened at `now_ms`: it speaks first.
    pub fn accept(cfg: SessionConfig, now_ms: u64) -> Session {
        Session::new(cfg, Phase::AwaitingJoin, now_ms)
    }

    fn new(cfg: SessionConfig, phase: Phase, now_ms: u64) -> Session {
        let peer_key = cfg.name.clone();
        Session {
            cfg,
            phase,
            their_id: String::new(),
            site_id: String::new(),
            peer_key,
            index: HashMap::new(),
            states: HashMap::new(),
            queue: BTreeSet::new(),
            in_flight: None,
            again: BTreeSet::new(),
            opened_ms: now_ms,
            next_rerequest_ms: u64::MAX,
            merging: None,
            status: SessionStatus::default(),
        }
    }

    /// True while a message handed out as [`Step::offload`] is being merged: give the session
    /// no frame until [`Session::merged`].
    pub fn is_merging(&self) -> bool {
        self.merging.is_some()
    }

    /// The result of merging what [`Step::offload`] handed out: the facts it brought are
    /// durable when this returns them (in `merged`), and the session goes on as after a message
    /// merged in place.
    pub fn merged<R: Record>(
        &mut self,
        store: &mut Store<R>,
        now_ms: u64,
        result: Result<Prepared<R>, PrepareError>,
    ) -> Result<Step<R>, SessionError> {
        let mut step = Step::default();
        let Some(key) = self.merging.take() else {
            return Ok(step);
        };
        if self.phase == Phase::Closed {
            return Ok(step);
        }
        match result {
            Ok(prepared) => {
                let state = prepared.state.clone();
                let facts = store.adopt(prepared)?;
                self.after_receive(store, now_ms, key, state, facts, &mut step)?;
            }
            Err(PrepareError::BadMessage(message)) => {
                self.refuse(&mut step, format!("bad sync message for {key}: {message}"));
            }
            Err(PrepareError::Damaged { state, message }) => {
                // Merged here, where the store sets the damaged chunk aside.
                self.merge_in_place(store, now_ms, key, *state, &message, &mut step)?;
            }
            Err(PrepareError::Store(e)) => return Err(e.into()),
        }
        Ok(step)
    }

    pub fn status(&self) -> &SessionStatus {
        &self.status
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The key its sync states are saved under (valid once the handshake is done).
    pub fn peer_key(&self) -> &str {
        &self.peer_key
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// One frame from the peer.
    pub fn receive<R: Record>(
        &mut self,
        store: &mut Store<R>,
        now_ms: u64,
        frame: &[u8],
    ) -> Result<Step<R>, SessionError> {
        let mut step = Step::default();
        if self.phase == Phase::Closed {
            return Ok(step);
        }
        self.status.bytes_in += frame.len() as u64;
        let message = match Message::decode(frame) {
            Ok(m) => m,
            Err(e) => {
                self.fail(&mut step, &e);
                return Ok(step);
            }
        };
        match (&self.phase, message) {
            (_, Message::Error { message }) => {
                self.phase = Phase::Closed;
                step.close = Some(format!("the peer reported an error: {message}"));
            }
            (_, Message::Leave { .. }) => {
                self.phase = Phase::Closed;
                step.close = Some("the peer left".into());
            }
            (_, Message::Ignored { .. }) => {}
            (
                Phase::AwaitingJoin,
                Message::Join {
                    sender_id,
                    metadata,
                    supported_protocol_versions,
                },
            ) => {
                if !supported_protocol_versions
                    .iter()
                    .any(|v| v == PROTOCOL_VERSION)
                {
                    self.refuse(
                        &mut step,
                        format!(
                            "unsupported protocol versions {supported_protocol_versions:?}; \
                             this hub speaks \"{PROTOCOL_VERSION}\""
                        ),
                    );
                    return Ok(step);
                }
                let peer = Message::Peer {
                    sender_id: self.cfg.peer_id.clone(),
                    target_id: sender_id.clone(),
                    metadata: Some(PeerMetadata {
                        storage_id: Some(self.cfg.storage_id.clone()),
                        is_ephemeral: false,
                    }),
                    selected_protocol_version: PROTOCOL_VERSION.to_owned(),
                };
                self.push(&mut step, peer.encode());
                self.ready(store, now_ms, sender_id, metadata, &mut step)?;
            }
            (
                Phase::AwaitingPeer,
                Message::Peer {
                    sender_id,
                    target_id: _,
                    metadata,
                    selected_protocol_version,
                },
            ) => {
                if selected_protocol_version != PROTOCOL_VERSION {
                    self.refuse(
                        &mut step,
                        format!(
                            "the peer chose protocol version {selected_protocol_version:?}, \
                             not \"{PROTOCOL_VERSION}\""
                        ),
                    );
                    return Ok(step);
                }
                self.ready(store, now_ms, sender_id, metadata, &mut step)?;
            }
            (Phase::Ready, m @ (Message::Sync { .. } | Message::Request { .. })) => {
                let request = matches!(m, Message::Request { .. });
                let (Message::Sync {
                    sender_id,
                    document_id,
                    data,
                    ..
                }
                | Message::Request {
                    sender_id,
                    document_id,
                    data,
                    ..
                }) = m
                else {
                    return Ok(step);
                };
                if sender_id != self.their_id {
                    // As the JS server does: a frame claiming another sender is dropped.
                    tracing::warn!(peer = %self.cfg.name, claimed = %sender_id,
                        "frame from another sender id dropped");
                    return Ok(step);
                }
                self.on_sync(store, now_ms, request, document_id, &data, &mut step)?;
            }
            (Phase::Ready, Message::DocUnavailable { document_id, .. }) => {
                if let Some(key) = self.index.get(&document_id).copied() {
                    tracing::debug!(peer = %self.cfg.name, document = %key, "unavailable at the peer");
                    if self.in_flight.map(|(k, _)| k) == Some(key) {
                        self.settle(store, now_ms, key);
                    }
                }
                self.pump(store, now_ms, &mut step)?;
            }
            (phase, other) => {
                let phase = phase.clone();
                self.refuse(
                    &mut step,
                    format!("unexpected {} message while {phase:?}", kind(&other)),
                );
            }
        }
        Ok(step)
    }

    /// Documents changed here (a local step, or a merge from another peer): sync them.
    pub fn changed<R: Record>(
        &mut self,
        store: &mut Store<R>,
        now_ms: u64,
        keys: &[DocKey],
    ) -> Result<Vec<Vec<u8>>, SessionError> {
        let mut step = Step::<R>::default();
        if self.phase != Phase::Ready {
            return Ok(step.send);
        }
        for key in keys {
            self.index.insert(store.doc_id(key), *key);
            if self.in_flight.map(|(k, _)| k) == Some(*key) {
                self.again.insert(*key);
            } else {
                self.queue.insert((priority(key, now_ms), *key));
            }
        }
        self.pump(store, now_ms, &mut step)?;
        Ok(step.send)
    }

    /// Time passed: a document whose answer is overdue settles, and the next one goes; a
    /// handshake not done within the reply timeout ends the session (a server that took the
    /// connection before it was ready to speak: the caller reconnects).
    pub fn poll<R: Record>(
        &mut self,
        store: &mut Store<R>,
        now_ms: u64,
    ) -> Result<Step<R>, SessionError> {
        let mut step = Step::<R>::default();
        if matches!(self.phase, Phase::AwaitingPeer | Phase::AwaitingJoin)
            && now_ms.saturating_sub(self.opened_ms) >= self.cfg.reply_timeout_ms
        {
            self.phase = Phase::Closed;
            step.close = Some(format!(
                "no handshake within {} ms",
                self.cfg.reply_timeout_ms
            ));
            return Ok(step);
        }
        if self.phase == Phase::Ready && now_ms >= self.next_rerequest_ms {
            self.next_rerequest_ms = now_ms.saturating_add(3 * self.cfg.reply_timeout_ms);
            for key in self.wanted(now_ms) {
                self.index.insert(store.doc_id(&key), key);
                let busy = self.in_flight.map(|(k, _)| k) == Some(key);
                if !busy && !store.holds(&key) {
                    self.queue.insert((priority(&key, now_ms), key));
                }
            }
        }
        if let Some((key, sent)) = self.in_flight.filter(|(k, _)| self.merging != Some(*k)) {
            if now_ms.saturating_sub(sent) >= self.cfg.reply_timeout_ms {
                tracing::info!(peer = %self.cfg.name, document = %key,
                    "no answer within {} ms; going on with the next document", self.cfg.reply_timeout_ms);
                self.status.unanswered += 1;
                self.settle(store, now_ms, key);
            }
        }
        self.pump(store, now_ms, &mut step)?;
        Ok(step)
    }

    /// When `poll` next has something to do.
    pub fn next_poll_ms(&self) -> Option<u64> {
        match self.phase {
            Phase::AwaitingPeer | Phase::AwaitingJoin => {
                Some(self.opened_ms + self.cfg.reply_timeout_ms)
            }
            Phase::Closed => None,
            Phase::Ready => {
                let reply = self
                    .in_flight
                    .map(|(_, sent)| sent + self.cfg.reply_timeout_ms);
                let again = (self.next_rerequest_ms != u64::MAX).then_some(self.next_rerequest_ms);
                reply.into_iter().chain(again).min()
            }
        }
    }

    /// The documents asked for even when we lack them.
    fn wanted(&self, now_ms: u64) -> Vec<DocKey> {
        if !self.cfg.want_requests {
            return Vec::new();
        }
        let this = Month::of_ms(now_ms);
        vec![
            DocKey::Monthly(Family::Requests, this),
            DocKey::Monthly(Family::Requests, this.previous()),
        ]
    }

    /// The `leave` frame to send before closing on purpose.
    pub fn leave(&mut self) -> Vec<u8> {
        self.phase = Phase::Closed;
        Message::Leave {
            sender_id: self.cfg.peer_id.clone(),
        }
        .encode()
    }

    fn ready<R: Record>(
        &mut self,
        store: &mut Store<R>,
        now_ms: u64,
        their_id: String,
        metadata: Option<PeerMetadata>,
        step: &mut Step<R>,
    ) -> Result<(), SessionError> {
        self.phase = Phase::Ready;
        self.site_id = store.site_id().to_owned();
        self.status.handshake_done = true;
        self.status.their_peer_id = Some(their_id.clone());
        self.their_id = their_id;
        if let Some(PeerMetadata {
            storage_id: Some(storage),
            is_ephemeral: false,
        }) = metadata
        {
            self.status.their_storage_id = Some(storage.clone());
            self.peer_key = storage;
        }
        // Every document id this peer may name: the ones we hold, and every partition of the
        // retention period (so a month the cloud has and we lost is recognised).
        let this_month = Month::of_ms(now_ms).index();
        let mut known: Vec<DocKey> = vec![DocKey::Site, DocKey::Directory];
        for back in -1..=self.cfg.months_back as i64 {
            let m = Month::from_index(this_month - back);
            known.extend(Family::ALL.iter().map(|f| DocKey::Monthly(*f, m)));
        }
        let held: Vec<DocKey> = store
            .held_documents()?
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        let wanted = self.wanted(now_ms);
        known.extend(held.iter().copied());
        known.extend(wanted.iter().copied());
        for key in known {
            self.index.insert(store.doc_id(&key), key);
        }
        for key in held.iter().chain(wanted.iter()) {
            // An old month the peer already has all of is not even loaded: old months change
            // only at the hubs, and a hub that changes one offers it itself.
            if !key.is_live(now_ms) && store.peer_has(&self.peer_key, key)? {
                continue;
            }
            self.queue.insert((priority(key, now_ms), *key));
        }
        if self.cfg.want_requests {
            self.next_rerequest_ms = now_ms.saturating_add(3 * self.cfg.reply_timeout_ms);
        }
        tracing::info!(peer = %self.cfg.name, storage = %self.peer_key, documents = self.queue.len(), "connected; catching up");
        self.pump(store, now_ms, step)
    }

    fn on_sync<R: Record>(
        &mut self,
        store: &mut Store<R>,
        now_ms: u64,
        request: bool,
        document_id: String,
        data: &[u8],
        step: &mut Step<R>,
    ) -> Result<(), SessionError> {
        let key = self
            .index
            .get(&document_id)
            .copied()
            .filter(|k| !request || store.holds(k));
        let Some(key) = key else {
            // Not a document of this site (we neither hold nor accept it), or asked for and not
            // here.
            let reply = Message::DocUnavailable {
                sender_id: self.cfg.peer_id.clone(),
                target_id: self.their_id.clone(),
                document_id,
            };
            self.push(step, reply.encode());
            return Ok(());
        };
        let state = self.state(store, &key)?;
        if self
            .cfg
            .offload_bytes
            .is_some_and(|limit| data.len() > limit)
        {
            step.offload = Some(store.offload(&self.peer_key, &key, state, data));
            self.merging = Some(key);
            return Ok(());
        }
        self.merge_in_place(store, now_ms, key, state, data, step)
    }

    /// Merges a peer's sync message here, then goes on.
    fn merge_in_place<R: Record>(
        &mut self,
        store: &mut Store<R>,
        now_ms: u64,
        key: DocKey,
        mut state: SyncState,
        data: &[u8],
        step: &mut Step<R>,
    ) -> Result<(), SessionError> {
        let received = store.receive_from_peer(&self.peer_key, &key, &mut state, data);
        let facts = match received {
            Ok(facts) => facts,
            Err(StoreError::BadChanges { message, .. }) => {
                // Garbage from the peer: nothing was applied. Say so and close.
                self.states.insert(key, state);
                self.refuse(step, format!("bad sync message for {key}: {message}"));
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        self.after_receive(store, now_ms, key, state, facts, step)
    }

    /// After a peer's message for `key` was merged (here or elsewhere): report the facts,
    /// answer, settle the document if it was in flight and has nothing more to say, go on.
    fn after_receive<R: Record>(
        &mut self,
        store: &mut Store<R>,
        now_ms: u64,
        key: DocKey,
        mut state: SyncState,
        facts: Vec<R>,
        step: &mut Step<R>,
    ) -> Result<(), SessionError> {
        if !facts.is_empty() {
            step.merged.push((key, facts));
        }
        let reply = store.generate_sync_message(&key, &mut state)?;
        self.states.insert(key, state);
        let in_flight = self.in_flight.map(|(k, _)| k) == Some(key);
        match reply {
            Some(bytes) => {
                self.send_sync(step, &key, bytes);
                if in_flight {
                    self.in_flight = Some((key, now_ms));
                }
            }
            None if in_flight => self.settle(store, now_ms, key),
            None => {}
        }
        self.pump(store, now_ms, step)
    }

    /// Starts documents until one is waiting for an answer.
    fn pump<R: Record>(
        &mut self,
        store: &mut Store<R>,
        now_ms: u64,
        step: &mut Step<R>,
    ) -> Result<(), SessionError> {
        if self.phase != Phase::Ready || self.merging.is_some() {
            return Ok(());
        }
        while self.in_flight.is_none() {
            let Some((_, key)) = self.queue.pop_first() else {
                break;
            };
            let mut state = self.state(store, &key)?;
            let held = store.holds(&key);
            let message = store.generate_sync_message(&key, &mut state)?;
            let peer_had_all = held && {
                let heads = store.heads(&key)?;
                !heads.is_empty() && heads.iter().all(|h| state.shared_heads.contains(h))
            };
            self.states.insert(key, state);
            match message {
                Some(bytes) if !held => {
                    let m = Message::Request {
                        sender_id: self.cfg.peer_id.clone(),
                        target_id: self.their_id.clone(),
                        document_id: store.doc_id(&key),
                        data: bytes,
                    };
                    self.push(step, m.encode());
                    self.in_flight = Some((key, now_ms));
                }
                Some(bytes) => {
                    let sent = self.send_sync(step, &key, bytes);
                    if sent && !peer_had_all {
                        self.in_flight = Some((key, now_ms));
                    } else {
                        self.settle(store, now_ms, key);
                    }
                }
                None => self.settle(store, now_ms, key),
            }
        }
        self.status.pending = self.queue.len() + self.in_flight.is_some() as usize;
        if self.status.pending == 0 && !self.status.caught_up {
            self.status.caught_up = true;
            tracing::info!(peer = %self.cfg.name, "caught up");
        }
        Ok(())
    }

    fn settle<R: Record>(&mut self, store: &mut Store<R>, now_ms: u64, key: DocKey) {
        if self.in_flight.map(|(k, _)| k) == Some(key) {
            self.in_flight = None;
        }
        self.status.last_sync_ms = Some(now_ms);
        if self.again.remove(&key) {
            self.queue.insert((priority(&key, now_ms), key));
        } else if !key.is_live(now_ms) {
            // An old month the peer caught up on: its state is saved, its memory can go.
            self.states.remove(&key);
            store.unload_if_cold(&key);
        }
        self.status.pending = self.queue.len() + self.in_flight.is_some() as usize;
    }

    fn state<R: Record>(
        &mut self,
        store: &Store<R>,
        key: &DocKey,
    ) -> Result<SyncState, StoreError> {
        match self.states.remove(key) {
            Some(s) => Ok(s),
            None => store.sync_state(&self.peer_key, key),
        }
    }

    /// Sends a sync message unless it is over the frame limit (then logs it and counts it).
    fn send_sync<R>(&mut self, step: &mut Step<R>, key: &DocKey, data: Vec<u8>) -> bool {
        let m = Message::Sync {
            sender_id: self.cfg.peer_id.clone(),
            target_id: self.their_id.clone(),
            document_id: self.index_id(key),
            data,
        }
        .encode();
        if m.len() > MAX_FRAME {
            tracing::error!(peer = %self.cfg.name, document = %key, bytes = m.len(),
                "sync message over the frame limit not sent");
            self.status.too_large += 1;
            return false;
        }
        self.push(step, m);
        true
    }

    fn index_id(&self, key: &DocKey) -> String {
        crate::docs::document_id_string(&key.document_id(&self.site_id))
    }

    fn push<R>(&mut self, step: &mut Step<R>, frame: Vec<u8>) {
        self.status.bytes_out += frame.len() as u64;
        step.send.push(frame);
    }

    fn fail<R>(&mut self, step: &mut Step<R>, e: &WireError) {
        self.refuse(step, format!("unreadable frame: {e}"));
    }

    fn refuse<R>(&mut self, step: &mut Step<R>, message: String) {
        tracing::warn!(peer = %self.cfg.name, %message, "closing the sync connection");
        let frame = Message::Error {
            message: message.clone(),
        }
        .encode();
        self.push(step, frame);
        self.phase = Phase::Closed;
        step.close = Some(message);
    }
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Join { .. } => "join",
        Message::Peer { .. } => "peer",
        Message::Error { .. } => "error",
        Message::Leave { .. } => "leave",
        Message::Sync { .. } => "sync",
        Message::Request { .. } => "request",
        Message::DocUnavailable { .. } => "doc-unavailable",
        Message::Ignored { .. } => "ignored",
    }
}
