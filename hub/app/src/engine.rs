//! The engine: the one thread that owns the workflow core and the state store.
//!
//! Every input (an MQTT message, an HTTP command, a timer) becomes a [`Job`] on one queue, so the
//! core sees a single ordered stream and needs no locks. For each step:
//!
//! 1. the core decides (`handle` or `tick`): facts, effects, reply;
//! 2. the facts, and the plaintext codes of notifications, are committed to redb in one durable
//!    transaction (durable before acknowledged);
//! 3. only then are the effects and the reply handed to the async side to be published.
//!
//! If a commit fails because the disk is full or read-only, the engine drops what was not made
//! durable (it reopens the store and rebuilds the core from disk), refuses the request with a
//! reply that says why, and goes on with the storage degraded until there is room again
//! (`storage.rs`). If a commit fails for any other reason, the engine stops the process
//! (fail-stop): memory would be ahead of disk, and systemd restarts the hub from what is durable.

use std::collections::BTreeSet;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use locker_config::Config;
use locker_core::{
    sanitize_hub_id, AlertId, AlertKind, BankView, Caller, CompartmentView, Core, Effect, Entropy,
    Input, Millis, NotifyKind, Outcome, Output, ParcelId, RejectCode, Rejection, Reply, Request,
    ResidentId,
};
use locker_sync::{DocKey, Store, StoreError, StoreOptions};
use rand::RngCore;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc as tokio_mpsc, oneshot};
use tracing::{error, info, warn};

use crate::error::AppError;
use crate::facts::{self, StoredFact};
use crate::history;
use crate::notify::{Notification, NotificationSink};
use crate::storage::{self, StorageHealth, Verdict};
use crate::sync::{Links, SyncBoard, SyncEvent, SyncSettings};
use crate::wire;
use locker_bus::{self as bus, AlertEvent, BankTopics, Command};

/// Work for the engine.
pub enum Job {
    /// A request from an authenticated caller, and where its reply goes. The core refuses what
    /// the caller may not ask (`locker_core::authorize`).
    Command {
        command: locker_core::Command,
        caller: Caller,
        reply: ReplyTo,
    },
    /// What a controller reported.
    Observe(locker_core::Observation),
    /// List the notifications waiting in the local outbox (with their plaintext codes).
    OutboxList(oneshot::Sender<Result<Vec<(String, Pending)>, AppError>>),
    /// A notifier has handed this notification off: erase it, and its plaintext code with it.
    OutboxDone {
        id: String,
        done: oneshot::Sender<Result<bool, AppError>>,
    },
    /// The delivery records of the outbox's notifications (`notify::Delivery`), by outbox id.
    Deliveries(oneshot::Sender<Result<Vec<(String, crate::notify::Delivery)>, AppError>>),
    /// Record a try of a notification, durably, before answering; `false` if it is no longer in
    /// the outbox.
    NoteDelivery {
        id: String,
        delivery: crate::notify::Delivery,
        done: oneshot::Sender<Result<bool, AppError>>,
    },
    /// Raise (`Some(message)`) or clear (`None`) the alert that a notification channel keeps
    /// failing (kept in memory, like the storage alert).
    NotificationsAlert(Option<String>),
    /// Every parcel the core knows (the live ones and those finished within the loaded window).
    Parcels(oneshot::Sender<Vec<locker_core::ParcelView>>),
    /// Open alerts (for the staff page and the API), the storage alert included.
    Alerts(oneshot::Sender<Vec<locker_core::Alert>>),
    /// The directory's residents, by id.
    Residents(oneshot::Sender<Vec<locker_core::ResidentView>>),
    /// What importing a rent roll would do now.
    PlanRoll {
        rows: Vec<locker_core::RollRow>,
        reply: oneshot::Sender<locker_core::RollPlan>,
    },
    /// A rent-roll import (`Request::ImportRoll`), planned and run in one step: the plan is
    /// what the command applied.
    ImportRoll {
        command: locker_core::Command,
        caller: Caller,
        reply: oneshot::Sender<(locker_core::RollPlan, locker_core::Reply)>,
    },
    /// The rows waiting for review, and the last import.
    RollReviews(
        oneshot::Sender<(
            Vec<locker_core::RollReviewItem>,
            Option<locker_core::RollImportView>,
        )>,
    ),
    /// The directory's carriers with references to their live codes.
    Carriers(oneshot::Sender<Vec<locker_core::CarrierView>>),
    /// The reference of a live carrier code (to name it without its plaintext).
    CarrierCodeRef {
        code: String,
        reply: oneshot::Sender<Option<String>>,
    },
    /// The audit trail: the newest `limit` facts that `query` matches, newest first.
    Facts {
        query: FactQuery,
        limit: usize,
        reply: oneshot::Sender<Vec<locker_core::Fact>>,
    },
    /// Refrigerated units, with the summaries of each since `since`.
    Units {
        since: Option<Millis>,
        reply: oneshot::Sender<UnitsReport>,
    },
    /// One unit and its summaries of the last `hours`.
    UnitHistory {
        bank: String,
        unit: String,
        hours: u64,
        reply: oneshot::Sender<Option<UnitHistory>>,
    },
    /// The analytics page's numbers, bucketed in `zone`, computed over the window's facts in
    /// place.
    Analytics {
        zone: jiff::tz::TimeZone,
        reply: oneshot::Sender<crate::analytics::Analytics>,
    },
    /// The staff accounts (their JSON map from the local, never-synced table).
    LoadAccounts(oneshot::Sender<Result<Option<Vec<u8>>, AppError>>),
    /// Write the staff accounts, durably, before answering.
    SaveAccounts {
        value: Vec<u8>,
        reply: oneshot::Sender<Result<(), AppError>>,
    },
    /// A sync link opened, sent a frame, or closed (`crate::sync`).
    Sync(crate::sync::SyncEvent),
    /// Finish the current step and stop.
    Stop,
}

/// A notification waiting in the outbox, as the notifier gets it (plaintext code included), or
/// why it could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Notification(Queued),
    /// A carrier's new code, for its registered email address.
    CarrierCode(QueuedCarrierCode),
    Undecodable(String),
}

/// A carrier code in the outbox: the core's `notify_carrier` effect, as it was made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedCarrierCode {
    pub carrier: locker_core::CarrierId,
    pub code: String,
    /// The id of the fact that issued it (how staff revoke it).
    pub code_ref: String,
}

/// A notification in the outbox: the core's `notify` effect, as it was made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub resident: ResidentId,
    pub parcels: Vec<ParcelId>,
    pub pin: Option<String>,
    pub qr: Option<String>,
    pub kind: NotifyKind,
}

impl Pending {
    /// An outbox item's bytes (the `notify` effect as `commit` stored it).
    pub fn decode(bytes: &[u8]) -> Pending {
        match serde_json::from_slice::<Effect>(bytes) {
            Ok(Effect::Notify {
                resident,
                parcels,
                pin,
                qr,
                kind,
                ..
            }) => Pending::Notification(Queued {
                resident,
                parcels,
                pin,
                qr,
                kind,
            }),
            Ok(Effect::NotifyCarrier {
                carrier,
                code,
                code_ref,
            }) => Pending::CarrierCode(QueuedCarrierCode {
                carrier,
                code,
                code_ref,
            }),
            Ok(_) => Pending::Undecodable("an outbox item that is not a notification".into()),
            Err(e) => Pending::Undecodable(e.to_string()),
        }
    }
}

/// The local-table key of the staff accounts' map.
const ACCOUNTS_KEY: &str = "web/users";

/// Which facts the audit trail shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactQuery {
    /// Facts at or after this time.
    pub from: Option<Millis>,
    /// Facts before this time.
    pub until: Option<Millis>,
    /// Facts whose actor, as [`actor_name`] shows it, contains this (any case).
    pub actor: Option<String>,
    pub bank: Option<String>,
    /// Facts whose parcel is this one.
    pub parcel: Option<String>,
    /// Facts about this parcel: by their parcel field, or naming it among several parcels
    /// (a pickup, a reassignment).
    pub about_parcel: Option<String>,
    /// Only alerts raised and cleared.
    pub alerts_only: bool,
}

impl FactQuery {
    pub fn matches(&self, f: &locker_core::Fact) -> bool {
        use locker_core::FactKind;
        self.from.is_none_or(|t| f.at >= t)
            && self.until.is_none_or(|t| f.at < t)
            && self.actor.as_ref().is_none_or(|w| {
                actor_name(&f.actor)
                    .to_lowercase()
                    .contains(&w.to_lowercase())
            })
            && self
                .bank
                .as_ref()
                .is_none_or(|b| f.bank.as_deref() == Some(b.as_str()))
            && self
                .parcel
                .as_ref()
                .is_none_or(|p| f.parcel.as_ref().is_some_and(|x| x.as_str() == p))
            && self.about_parcel.as_ref().is_none_or(|p| {
                f.parcel.as_ref().is_some_and(|x| x.as_str() == p)
                    // Multi-parcel facts list their parcels in the body.
                    || serde_json::to_string(&f.kind)
                        .is_ok_and(|k| k.contains(&format!("\"{p}\"")))
            })
            && (!self.alerts_only
                || matches!(
                    f.kind,
                    FactKind::AlertRaised { .. } | FactKind::AlertCleared { .. }
                ))
    }
}

/// Who did it, for people: `staff ann`, `carrier ups`, `hub`.
pub fn actor_name(a: &locker_core::Actor) -> String {
    use locker_core::Actor;
    match a {
        Actor::Carrier { id } => format!("carrier {id}"),
        Actor::Resident { id } => format!("resident {id}"),
        Actor::Staff { id } => format!("staff {id}"),
        Actor::Cloud => "cloud".into(),
        Actor::Controller => "controller".into(),
        Actor::System => "hub".into(),
    }
}

/// Refrigerated units and the summaries of each, at the time of reading.
#[derive(Debug, Clone, Default)]
pub struct UnitsReport {
    pub units: Vec<locker_core::UnitView>,
    /// One list per unit, in the order of `units` (empty without `since`).
    pub history: Vec<Vec<locker_core::SummaryView>>,
    pub now: Millis,
}

/// One unit's summaries since `since`.
#[derive(Debug, Clone)]
pub struct UnitHistory {
    pub unit: locker_core::UnitView,
    pub summaries: Vec<locker_core::SummaryView>,
    pub since: Millis,
}

/// Where a reply goes.
pub enum ReplyTo {
    /// Observations and fire-and-forget commands.
    Nobody,
    /// An MQTT topic named by the requester, and its MQTT 5 correlation data.
    Mqtt {
        topic: String,
        correlation: Option<Vec<u8>>,
    },
    /// An HTTP request waiting for its answer.
    Http(oneshot::Sender<Reply>),
}

/// A message for the bus task to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    /// MQTT 5 correlation data, echoed from the request this answers.
    pub correlation: Option<Vec<u8>>,
}

/// How often the store is compacted and old partitions are unloaded or expired.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);

/// While the storage refuses writes, how often it is checked again.
const STORAGE_RECHECK: Duration = Duration::from_secs(2);

/// What the web page may read while the engine runs (updated after every step).
#[derive(Default, Clone)]
pub struct Snapshot {
    pub compartments: Vec<CompartmentView>,
    pub banks: Vec<BankView>,
}

/// A running engine.
pub struct Engine {
    pub jobs: mpsc::Sender<Job>,
    pub snapshot: Arc<RwLock<Snapshot>>,
    /// Fires after every step that refreshed the snapshot (live updates on the web page).
    pub changes: broadcast::Sender<()>,
    /// This hub's id and its site's, and the site key: what a second hub receives when it
    /// pairs with this one (`locker_app::pairing`).
    pub identity: Identity,
    thread: JoinHandle<()>,
}

/// Who this hub is, for pairing a second hub of its site.
#[derive(Clone)]
pub struct Identity {
    pub hub_id: String,
    pub site_id: String,
    /// The site's key (HMAC of codes and badges): a secret that leaves the hub only to a hub
    /// that pairs with it.
    pub site_key: [u8; 32],
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("hub_id", &self.hub_id)
            .field("site_id", &self.site_id)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Ask the engine to stop and wait for it (its last step's commit included).
    pub fn stop(self) {
        let _ = self.jobs.send(Job::Stop);
        let _ = self.thread.join();
    }
}

/// OS randomness for PINs, QR nonces and ids.
struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        rand::rng().fill_bytes(buf);
    }
}

/// The time as the core reads it: the hub's clock, which never goes back or jumps
/// (`clock.rs`).
pub(crate) fn now() -> Millis {
    crate::clock::now()
}

/// This hub's id, part of every fact id it makes: `[site] hub_id` if set; otherwise the id its
/// data directory was made with (a store from before hub ids keeps its site-derived id, so its
/// old facts and new ones carry one id); otherwise, for a new data directory, a new random one,
/// so two hubs of one site never make the same fact id. The store records it at first open.
pub fn hub_id(config: &Config) -> Result<String, StoreError> {
    if let Some(id) = &config.site.hub_id {
        return Ok(id.clone());
    }
    if let Some(stored) = locker_sync::stored_hub_id(&config.site.data_dir)? {
        return Ok(stored);
    }
    let mut bytes = [0u8; 4];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{}_{hex}", sanitize_hub_id(&config.site.id)))
}

/// Open the store and rebuild the core from its facts.
fn load(config: &Config) -> Result<(Store<StoredFact>, Core), StoreError> {
    let hub_id = hub_id(config)?;
    let opts = StoreOptions {
        site_id: Some(config.site.id.clone()),
        retention_months: config.site.retention_months,
        keep_unsynced: config.sync.is_some(),
        ..StoreOptions::default()
    };
    let (store, mut stored, report) =
        Store::<StoredFact>::open(&config.site.data_dir, &hub_id, opts)?;
    stored.extend(history::older_open_facts(&store, now())?);
    if report.is_clean() {
        info!(facts = stored.len(), "state loaded");
    } else {
        warn!(report = ?report, "state loaded with damage: the damaged parts are quarantined");
    }
    let core = Core::new(
        facts::site_layout(config),
        facts::policies(config),
        store.site_key(),
        &hub_id,
        stored.into_iter().map(|s| s.fact),
    );
    Ok((store, core))
}

/// Open the store, rebuild the core from its facts, and start the engine thread.
pub fn start(
    config: &Config,
    publish: tokio_mpsc::UnboundedSender<Outgoing>,
    notifications: Arc<dyn NotificationSink>,
    storage: Arc<StorageHealth>,
    sync_board: Arc<SyncBoard>,
) -> Result<Engine, StoreError> {
    let (store, core) = load(config)?;
    // New fact ids must sort after every id this hub has made, even if the system clock went
    // back while the hub was down.
    let hub_id = store.hub_id().to_owned();
    info!(hub = %hub_id, "this hub's id");
    if let Some(newest) = core.facts().rev().find(|f| f.id.hub == hub_id) {
        crate::clock::raise_floor(Millis(newest.id.ms.saturating_add(1)));
    }
    let sync_settings = config.sync.as_ref().map(|sync| SyncSettings {
        peer_id: format!("locker-hub-{hub_id}"),
        storage_id: hub_id.clone(),
        reply_timeout_ms: sync.reply_timeout.as_millis() as u64,
        months_back: config.site.retention_months,
    });
    let identity = Identity {
        hub_id: hub_id.clone(),
        site_id: config.site.id.clone(),
        site_key: store.site_key(),
    };
    let (tx, rx) = mpsc::channel();
    let back = tx.clone();
    let snapshot = Arc::new(RwLock::new(Snapshot::default()));
    // Subscribers only need to know "something changed": a lagging one just re-reads.
    let (changes, _) = broadcast::channel(16);
    let kept_codes = kept_codes(&store);
    let mut engine = Runner {
        kept_codes,
        changes: changes.clone(),
        core,
        store: Some(store),
        publish,
        notifications,
        snapshot: snapshot.clone(),
        banks: config.banks.iter().map(|b| b.id.clone()).collect(),
        config: config.clone(),
        storage,
        storage_alert: None,
        notify_alert: None,
        links: Links::new(
            sync_settings,
            sync_board,
            Box::new(move |event| back.send(Job::Sync(event)).is_ok()),
        ),
    };
    let thread = std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || engine.run(rx))
        .map_err(|e| StoreError::Io {
            path: config.site.data_dir.clone(),
            source: e,
        })?;
    Ok(Engine {
        jobs: tx,
        snapshot,
        changes,
        identity,
        thread,
    })
}

struct Runner {
    core: Core,
    /// Always `Some` between steps; `None` only while it is being reopened.
    store: Option<Store<StoredFact>>,
    publish: tokio_mpsc::UnboundedSender<Outgoing>,
    notifications: Arc<dyn NotificationSink>,
    snapshot: Arc<RwLock<Snapshot>>,
    changes: broadcast::Sender<()>,
    banks: Vec<String>,
    /// To reopen the store and rebuild the core after a commit the disk refused.
    config: Config,
    storage: Arc<StorageHealth>,
    /// The alert about the storage, while writes are refused (kept in memory: it cannot be
    /// written).
    storage_alert: Option<locker_core::Alert>,
    /// The alert that a notification channel keeps failing (`Job::NotificationsAlert`).
    notify_alert: Option<locker_core::Alert>,
    /// Open sync links (`crate::sync`).
    links: Links,
    /// The codes whose PIN is kept (sealed, in the local table under `code/<id>`), so that a
    /// reminder or a resend carries a code that works; each is erased once the core says the
    /// code is no longer live.
    kept_codes: BTreeSet<locker_core::CodeId>,
}

/// The local-table key of a live code's kept PIN.
fn kept_code_key(code: &locker_core::CodeId) -> String {
    format!("{KEPT_CODE_PREFIX}{code}")
}

const KEPT_CODE_PREFIX: &str = "code/";

/// The codes whose PIN `store` keeps.
fn kept_codes(store: &Store<StoredFact>) -> BTreeSet<locker_core::CodeId> {
    match store.local_prefixed(KEPT_CODE_PREFIX) {
        Ok(rows) => rows
            .into_iter()
            .filter_map(|(k, _)| {
                k.strip_prefix(KEPT_CODE_PREFIX)
                    .map(|c| locker_core::CodeId(c.to_owned()))
            })
            .collect(),
        Err(e) => {
            warn!(error = %e, "cannot list the kept codes; they are erased when found later");
            BTreeSet::new()
        }
    }
}

impl Runner {
    fn run(&mut self, jobs: mpsc::Receiver<Job>) {
        // The broker forgot everything retained when it last stopped: publish every bank's state.
        for bank in self.banks.clone() {
            self.publish_bank(&bank);
        }
        self.refresh_snapshot();
        // Anything overdue at start (an unlock in flight when the hub stopped, expired holds).
        self.step(None, ReplyTo::Nobody);
        if let Some(store) = self.store.as_mut() {
            history::refresh_mark(store, &self.core);
        }
        self.links.publish_documents(self.store.as_ref());
        let mut next_maintenance = std::time::Instant::now() + MAINTENANCE_EVERY;
        loop {
            // Due sync work (a peer's overdue answer, a document to ask for again) runs even
            // when jobs never leave the queue idle long enough to time out.
            if self.links.next_poll_ms().is_some_and(|t| t <= now().0) {
                self.sync_poll();
            }
            if std::time::Instant::now() >= next_maintenance {
                self.maintain();
                next_maintenance = std::time::Instant::now() + MAINTENANCE_EVERY;
            }
            let until_maintenance =
                next_maintenance.saturating_duration_since(std::time::Instant::now());
            let mut wait = match self.core.next_deadline() {
                Some(at) => Duration::from_millis(at.0.saturating_sub(now().0)),
                None => Duration::from_secs(60),
            }
            .min(until_maintenance);
            if let Some(at) = self.links.next_poll_ms() {
                wait = wait.min(Duration::from_millis(at.saturating_sub(now().0)));
            }
            if self.storage_alert.is_some() {
                // Look again soon: the hub resumes by itself once there is room.
                wait = wait.min(STORAGE_RECHECK);
            }
            match jobs.recv_timeout(wait) {
                Ok(Job::Command {
                    command,
                    caller,
                    reply,
                }) => self.step(Some((Input::Command(command), Some(caller))), reply),
                // Observations are what controllers report, not a caller's request.
                Ok(Job::Observe(obs)) => {
                    self.step(Some((Input::Observation(obs), None)), ReplyTo::Nobody)
                }
                Ok(Job::OutboxList(reply)) => {
                    let _ = reply.send(self.outbox_list());
                }
                Ok(Job::Parcels(reply)) => {
                    let _ = reply.send(self.core.parcels());
                }
                Ok(Job::Alerts(reply)) => {
                    let mut alerts = self.core.alerts();
                    alerts.extend(self.storage_alert.clone());
                    alerts.extend(self.notify_alert.clone());
                    let _ = reply.send(alerts);
                }
                Ok(Job::Facts {
                    query,
                    limit,
                    reply,
                }) => {
                    let mut found: Vec<locker_core::Fact> = Vec::new();
                    // Facts are in id (time) order; walk from the newest end, without first
                    // collecting a year of them.
                    for f in self.core.facts().rev() {
                        if found.len() >= limit {
                            break;
                        }
                        if query.matches(f) {
                            found.push(f.clone());
                        }
                    }
                    let _ = reply.send(found);
                }
                Ok(Job::Residents(reply)) => {
                    let _ = reply.send(self.core.residents());
                }
                Ok(Job::PlanRoll { rows, reply }) => {
                    let _ = reply.send(self.core.plan_roll(&rows, now()));
                }
                Ok(Job::ImportRoll {
                    command,
                    caller,
                    reply,
                }) => {
                    let (tx, mut rx) = oneshot::channel();
                    self.step(
                        Some((Input::Command(command), Some(caller))),
                        ReplyTo::Http(tx),
                    );
                    // What the step applied (nothing when it was refused).
                    let plan = self.core.take_roll_plan().unwrap_or_default();
                    // The step answers before it returns (a refusal for storage included).
                    if let Ok(answer) = rx.try_recv() {
                        let _ = reply.send((plan, answer));
                    }
                }
                Ok(Job::RollReviews(reply)) => {
                    let _ = reply.send((self.core.roll_reviews(), self.core.last_roll_import()));
                }
                Ok(Job::Carriers(reply)) => {
                    let _ = reply.send(self.core.carriers());
                }
                Ok(Job::CarrierCodeRef { code, reply }) => {
                    let _ = reply.send(self.core.carrier_code_ref(&code));
                }
                Ok(Job::Units { since, reply }) => {
                    let units = self.core.units();
                    let history = units
                        .iter()
                        .map(|u| match since {
                            Some(s) => self.core.unit_summaries(&u.bank, &u.unit, s),
                            None => Vec::new(),
                        })
                        .collect();
                    let _ = reply.send(UnitsReport {
                        units,
                        history,
                        now: now(),
                    });
                }
                Ok(Job::UnitHistory {
                    bank,
                    unit,
                    hours,
                    reply,
                }) => {
                    let since = Millis(now().0.saturating_sub(hours.saturating_mul(3_600_000)));
                    let found = self
                        .core
                        .units()
                        .into_iter()
                        .find(|u| u.bank == bank && u.unit == unit)
                        .map(|u| UnitHistory {
                            summaries: self.core.unit_summaries(&u.bank, &u.unit, since),
                            unit: u,
                            since,
                        });
                    let _ = reply.send(found);
                }
                Ok(Job::Analytics { zone, reply }) => {
                    let at = now();
                    let compartments = self.core.compartments();
                    let core = &self.core;
                    let parcel = |id: &locker_core::ParcelId| {
                        core.parcel(id).map(|p| (p.delivered_at, p.expired))
                    };
                    let _ = reply.send(crate::analytics::compute(
                        at,
                        &zone,
                        core.facts_since(crate::analytics::window_start(at)),
                        &compartments,
                        &parcel,
                    ));
                }
                Ok(Job::LoadAccounts(reply)) => {
                    let _ = reply.send(self.store().and_then(|s| {
                        s.local_get(ACCOUNTS_KEY)
                            .map_err(|e| AppError::Storage(e.to_string()))
                    }));
                }
                Ok(Job::SaveAccounts { value, reply }) => {
                    let _ = reply.send(self.store_mut().and_then(|s| {
                        s.local_put(ACCOUNTS_KEY, &value)
                            .map_err(|e| AppError::Storage(e.to_string()))
                    }));
                }
                Ok(Job::OutboxDone { id, done }) => {
                    let _ = done.send(self.outbox_done(&id));
                }
                Ok(Job::NotificationsAlert(message)) => self.notifications_alert(message),
                Ok(Job::Deliveries(reply)) => {
                    let _ = reply.send(self.deliveries());
                }
                Ok(Job::NoteDelivery { id, delivery, done }) => {
                    let _ = done.send(self.note_delivery(&id, &delivery));
                }
                Ok(Job::Sync(event)) => self.sync_event(event),
                Ok(Job::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => self.step(None, ReplyTo::Nobody),
            }
        }
    }

    /// A sync link's event. Facts that arrived are durable (the session committed them with
    /// the peer's sync state); the core folds them, their effects go out, and only then are they
    /// offered to the other links.
    fn sync_event(&mut self, event: SyncEvent) {
        let at = now();
        let Some(store) = self.store.as_mut() else {
            // The store is being reopened after a refused write: the link will sync again.
            if let SyncEvent::Opened { out, .. } = event {
                let _ = out.send(crate::sync::SyncOut::Close("storage unavailable".into()));
            }
            return;
        };
        let arrived = match self.links.event(store, at.0, event) {
            Ok(arrived) => arrived,
            Err(e) => return self.sync_store_failed(e),
        };
        self.core.hold_remote_requests(self.links.catching_up());
        let Some(arrived) = arrived else {
            return;
        };
        let docs: BTreeSet<DocKey> = arrived.merged.iter().map(|(k, _)| *k).collect();
        let facts: Vec<locker_core::Fact> = arrived
            .merged
            .into_iter()
            .flat_map(|(_, facts)| facts.into_iter().map(|s| s.fact))
            .collect();
        info!(
            facts = facts.len(),
            documents = docs.len(),
            "merged from a sync peer"
        );
        let out = self.core.merge(at, facts, &mut OsEntropy);
        // What the merge decided (an alert about a foreign write, a remote request carried out)
        // is committed like any step, and on a refused commit dropped the same way: the merged
        // facts are on disk already, so a reload keeps them and a remote request stays pending.
        let mut out = out;
        match self.commit(&mut out) {
            Ok(()) => self.act(out, ReplyTo::Nobody),
            Err(why) => {
                warn!(reason = %why, "the disk refused what a merge decided; it is decided again once there is room");
                let verdict = self.storage.check(Some(&why));
                self.reload();
                self.storage_changed(&verdict);
                return;
            }
        }
        self.refresh_snapshot();
        self.announce_change();
        if let Some(store) = self.store.as_mut() {
            if let Err(e) = self.links.changed(store, at.0, &docs, Some(arrived.conn)) {
                self.sync_store_failed(e);
            }
        }
    }

    /// Offer documents changed by a local step to every link.
    fn sync_local(&mut self, docs: BTreeSet<DocKey>) {
        if docs.is_empty() {
            return;
        }
        let at = now().0;
        if let Some(store) = self.store.as_mut() {
            if let Err(e) = self.links.changed(store, at, &docs, None) {
                self.sync_store_failed(e);
            }
        }
    }

    fn sync_poll(&mut self) {
        let at = now().0;
        if let Some(store) = self.store.as_mut() {
            if let Err(e) = self.links.poll(store, at) {
                self.sync_store_failed(e);
            }
        }
        self.core.hold_remote_requests(self.links.catching_up());
    }

    /// The store failed under a sync step. Nothing of it was relayed or folded. A full or
    /// read-only disk closes the links and degrades as a refused commit does (the peers send it
    /// again later); any other failure stops the process (fail-stop), as for any commit.
    fn sync_store_failed(&mut self, e: locker_sync::SessionError) {
        let locker_sync::SessionError::Store(inner) = &e;
        if storage::is_out_of_space(inner) || self.storage.check(None) != Verdict::Ok {
            warn!(error = %e, "the disk refused what a sync peer sent; closing the links until there is room");
            self.links.close_all("storage unavailable");
            self.core.hold_remote_requests(false);
            let verdict = self.storage.check(Some(&e.to_string()));
            self.reload();
            self.storage_changed(&verdict);
            return;
        }
        error!(error = %e, "cannot make synced changes durable; stopping so that nothing unrecorded is relayed");
        std::process::exit(70);
    }

    /// One step: decide, make durable, then act.
    ///
    /// While the storage refuses writes, commands that would record something are refused with
    /// a reply that says why (the core never sees them), timers wait, and observations still go
    /// in: the reserve is kept for them.
    fn step(&mut self, input: Option<(Input, Option<Caller>)>, reply_to: ReplyTo) {
        if self.store.is_none() && !self.storage.recently_failed() {
            self.reload();
        }
        let verdict = self.storage.check(None);
        self.storage_changed(&verdict);
        if let Verdict::Refuse(why) = &verdict {
            match input.as_ref() {
                // A caller who may not send it is told so (the core refuses it below, recording
                // nothing), not that the disk is full.
                Some((Input::Command(cmd), Some(caller)))
                    if !read_only(&cmd.request)
                        && locker_core::authorize(caller, &cmd.request).is_ok() =>
                {
                    self.refuse_for_storage(cmd.request_id.clone(), why, reply_to);
                    return;
                }
                None => return,
                Some((Input::Observation(obs), _)) if self.storage.recently_failed() => {
                    warn!(
                        ?obs,
                        "observation not recorded: the disk just refused a write"
                    );
                    return;
                }
                _ => {}
            }
        }
        let request_id = match &input {
            Some((Input::Command(cmd), _)) => Some(cmd.request_id.clone()),
            _ => None,
        };
        let at = now();
        let out = match input {
            Some((input, Some(caller))) => {
                self.core.handle_from(at, &caller, input, &mut OsEntropy)
            }
            Some((input, None)) => self.core.handle(at, input, &mut OsEntropy),
            None => self.core.tick(at, &mut OsEntropy),
        };
        let mut out = out;
        match self.commit(&mut out) {
            Ok(()) => {
                let docs: BTreeSet<DocKey> = out.facts.iter().map(facts::document_of).collect();
                self.act(out, reply_to);
                self.sync_local(docs);
            }
            Err(why) => {
                // Nothing of this step was made durable, and nothing of it leaves the process:
                // rebuild from disk, and tell whoever asked.
                let verdict = self.storage.check(Some(&why));
                self.reload();
                self.storage_changed(&verdict);
                if let Some(id) = request_id {
                    self.refuse_for_storage(id, &why, reply_to);
                } else {
                    warn!(reason = %why, "an observation or timer step could not be recorded: the disk refused it");
                }
            }
        }
    }

    /// Answer a request the storage cannot record.
    fn refuse_for_storage(
        &mut self,
        request_id: locker_core::RequestId,
        why: &str,
        reply_to: ReplyTo,
    ) {
        let reply = Reply {
            request_id,
            outcome: Outcome::Rejected(Rejection::new(
                RejectCode::StorageUnavailable,
                format!("{why}: nothing can be recorded right now; please ask at the front desk"),
            )),
        };
        self.act(
            Output {
                facts: Vec::new(),
                effects: Vec::new(),
                reply: Some(reply),
            },
            reply_to,
        );
    }

    /// Raise or clear the in-memory alert that notifications keep failing.
    fn notifications_alert(&mut self, message: Option<String>) {
        match (message, &self.notify_alert) {
            (Some(message), None) => {
                warn!(%message, "notifications failing");
                let alert = locker_core::Alert {
                    id: AlertId("notifications".into()),
                    kind: AlertKind::NotificationsFailing,
                    bank: None,
                    door: None,
                    parcel: None,
                    message,
                    raised_at: now(),
                    unit: None,
                };
                self.send_json(bus::ALERTS.to_owned(), false, &wire::alert_raised(&alert));
                self.notify_alert = Some(alert);
                self.announce_change();
            }
            (None, Some(alert)) => {
                info!("notifications going out again");
                let id = alert.id.to_string();
                self.notify_alert = None;
                self.send_json(
                    bus::ALERTS.to_owned(),
                    false,
                    &AlertEvent::Cleared { alert: id },
                );
                self.announce_change();
            }
            _ => {}
        }
    }

    /// Raise or clear the in-memory storage alert when the verdict changes.
    fn storage_changed(&mut self, verdict: &Verdict) {
        match (verdict, &self.storage_alert) {
            (Verdict::Refuse(why), None) => {
                let message = format!(
                    "{why}: the hub refuses anything that needs recording (kiosks are told to ask \
                     at the front desk) until there is room; it resumes by itself"
                );
                error!(%message, "storage degraded");
                let alert = locker_core::Alert {
                    id: AlertId("storage".into()),
                    kind: AlertKind::StorageUnavailable,
                    bank: None,
                    door: None,
                    parcel: None,
                    message: message.clone(),
                    raised_at: now(),
                    unit: None,
                };
                self.send_json(bus::ALERTS.to_owned(), false, &wire::alert_raised(&alert));
                self.storage_alert = Some(alert);
                self.announce_change();
            }
            (Verdict::Ok, Some(alert)) => {
                info!("storage writable again: resuming");
                let id = alert.id.clone();
                self.storage_alert = None;
                self.send_json(
                    bus::ALERTS.to_owned(),
                    false,
                    &AlertEvent::Cleared {
                        alert: id.to_string(),
                    },
                );
                self.announce_change();
            }
            _ => {}
        }
    }

    /// Reopen the store and rebuild the core from what is on disk, dropping whatever the last
    /// step decided but could not record. When the disk does not even let the store be opened
    /// (read-only), the hub goes on without one, refusing everything that needs it and trying
    /// again at every step; any other failure stops it (fail-stop).
    fn reload(&mut self) {
        // redb keeps the file locked while it is open: close it first.
        self.store = None;
        match load(&self.config) {
            Ok((store, core)) => {
                self.kept_codes = kept_codes(&store);
                self.store = Some(store);
                self.core = core;
                warn!("state reloaded from disk after a write the disk refused");
                self.refresh_snapshot();
            }
            Err(e) if storage::is_out_of_space(&e) => {
                error!(error = %e, "cannot reopen the state on this disk yet; refusing everything that needs it until it can");
                self.storage
                    .check(Some(&storage::describe(&e, &self.config.site.data_dir)));
            }
            Err(e) => {
                error!(error = %e, "cannot reopen the state after a refused write; stopping");
                std::process::exit(70);
            }
        }
    }

    fn store(&self) -> Result<&Store<StoredFact>, AppError> {
        self.store.as_ref().ok_or_else(closed)
    }

    fn store_mut(&mut self) -> Result<&mut Store<StoredFact>, AppError> {
        self.store.as_mut().ok_or_else(closed)
    }

    /// Durable before acknowledged: the facts and the plaintext codes of notifications are on
    /// disk before anything leaves the process. `Err` (with the reason) when the disk is full or
    /// read-only; any other failure stops the process.
    fn commit(&mut self, out: &mut Output) -> Result<(), String> {
        if out.facts.is_empty() {
            return Ok(());
        }
        // Live codes: a new one's PIN is kept; a message about a kept one gets its PIN; the PIN
        // of a code that stopped opening anything is erased. All in the step's transaction.
        let mut keep: Vec<(String, Vec<u8>)> = Vec::new();
        for effect in &mut out.effects {
            let Effect::Notify {
                pin,
                code: Some(code),
                ..
            } = effect
            else {
                continue;
            };
            match pin {
                Some(p) => keep.push((kept_code_key(code), p.clone().into_bytes())),
                None => {
                    let kept = self
                        .store()
                        .ok()
                        .and_then(|s| s.secret_get(&kept_code_key(code)).ok().flatten());
                    *pin = kept.and_then(|b| String::from_utf8(b).ok());
                }
            }
        }
        let dead: Vec<String> = self
            .kept_codes
            .iter()
            .filter(|c| !self.core.code_is_live(c))
            .map(kept_code_key)
            .collect();
        let mut secrets: Vec<(&str, Option<&[u8]>)> = keep
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
            .collect();
        secrets.extend(dead.iter().map(|k| (k.as_str(), None)));
        let stored: Vec<StoredFact> = out.facts.iter().cloned().map(StoredFact::from).collect();
        let first = stored
            .first()
            .map(|f| f.fact.id.to_string())
            .unwrap_or_default();
        let outbox: Vec<(String, Vec<u8>)> = out
            .effects
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, Effect::Notify { .. } | Effect::NotifyCarrier { .. }))
            .filter_map(|(i, e)| Some((format!("{first}-notify-{i}"), serde_json::to_vec(e).ok()?)))
            .collect();
        let outbox_refs: Vec<(&str, &[u8])> = outbox
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        let store = self.store_mut().map_err(|e| e.to_string())?;
        if let Err(e) = store.append_with(&stored, &outbox_refs, &secrets) {
            if storage::is_out_of_space(&e) || self.storage.check(None) != Verdict::Ok {
                error!(error = %e, "the disk refused a write; nothing of this step is confirmed");
                return Err(match self.storage.check(None) {
                    Verdict::Refuse(why) => why,
                    Verdict::Ok => storage::describe(&e, &self.config.site.data_dir),
                });
            }
            error!(error = %e, "cannot make facts durable; stopping so that nothing unrecorded is confirmed");
            // Fail-stop: the process manager restarts the hub from what is on disk.
            std::process::exit(70);
        }
        for (k, _) in &keep {
            if let Some(c) = k.strip_prefix(KEPT_CODE_PREFIX) {
                self.kept_codes.insert(locker_core::CodeId(c.to_owned()));
            }
        }
        for k in &dead {
            if let Some(c) = k.strip_prefix(KEPT_CODE_PREFIX) {
                self.kept_codes.remove(&locker_core::CodeId(c.to_owned()));
            }
        }
        Ok(())
    }

    fn act(&mut self, out: Output, reply_to: ReplyTo) {
        let mut banks_changed = BTreeSet::new();
        for effect in out.effects {
            match effect {
                Effect::Unlock {
                    bank,
                    door,
                    unlock_id,
                    deadline,
                } => {
                    let valid = deadline.0.saturating_sub(now().0);
                    self.send_command(
                        &bank,
                        &Command::Unlock {
                            unlock_id: unlock_id.to_string(),
                            door,
                            pulse_ms: None,
                            deadline_ms: Some(deadline.0),
                            valid_ms: Some(u32::try_from(valid).unwrap_or(u32::MAX)),
                        },
                    )
                }
                // One command per bank: the controller reads each board once for all of them.
                Effect::QueryDoors { bank, doors } => {
                    self.send_command(&bank, &Command::Query { door: None, doors })
                }
                Effect::Notify {
                    resident,
                    parcels,
                    pin,
                    qr,
                    kind,
                    ..
                } => {
                    // Durable in the local outbox by now (`commit`); the sink says so, or shows it.
                    self.notifications.queued(&Notification {
                        resident: &resident,
                        parcels: &parcels,
                        pin: pin.as_deref(),
                        qr: qr.as_deref(),
                        kind,
                    });
                }
                Effect::NotifyCarrier {
                    carrier,
                    code,
                    code_ref,
                } => self
                    .notifications
                    .carrier_code_queued(&crate::notify::CarrierCode {
                        carrier: &carrier,
                        code: &code,
                        code_ref: &code_ref,
                    }),
                Effect::RaiseAlert {
                    alert,
                    kind,
                    bank,
                    door,
                    message,
                } => {
                    warn!(%alert, ?kind, bank = bank.as_deref(), door, "alert: {message}");
                    // The open alert as the core keeps it (a refrigerated unit's alarm names its
                    // unit and sensor there); the effect's own fields if it is already gone.
                    let event = match self.core.alerts().into_iter().find(|a| a.id == alert) {
                        Some(open) => wire::alert_raised(&open),
                        None => AlertEvent::Raised {
                            alert: alert.to_string(),
                            kind: wire::alert_kind(&kind),
                            bank,
                            door,
                            message,
                            unit: None,
                            sensor: None,
                        },
                    };
                    self.send_json(bus::ALERTS.to_owned(), false, &event);
                }
                Effect::ClearAlert { alert } => {
                    info!(%alert, "alert cleared");
                    self.send_json(
                        bus::ALERTS.to_owned(),
                        false,
                        &AlertEvent::Cleared {
                            alert: alert.to_string(),
                        },
                    );
                }
                Effect::PublishCompartment { bank, .. } | Effect::PublishBank { bank } => {
                    banks_changed.insert(bank);
                }
                Effect::Kiosk {
                    bank,
                    reservation,
                    update,
                } => {
                    let topic = BankTopics::new(&bank).kiosk_update();
                    let reservation = reservation.map(|r| r.to_string());
                    self.send_json(topic, false, &wire::kiosk_update(reservation, &update));
                }
            }
        }
        for bank in &banks_changed {
            self.publish_bank(bank);
        }
        // New facts (a delivery, an alert) or a changed compartment: open pages update.
        if self.refresh_snapshot() || !out.facts.is_empty() {
            self.announce_change();
        }
        match (reply_to, out.reply) {
            (ReplyTo::Mqtt { topic, correlation }, Some(reply)) => {
                if let Ok(payload) = serde_json::to_vec(&wire::kiosk_reply(&reply)) {
                    let _ = self.publish.send(Outgoing {
                        topic,
                        payload,
                        retain: false,
                        correlation,
                    });
                }
            }
            (ReplyTo::Http(tx), Some(reply)) => {
                let _ = tx.send(reply);
            }
            (ReplyTo::Http(_), None) => {
                warn!("a command produced no reply");
            }
            (ReplyTo::Nobody, Some(reply)) => {
                if let locker_core::Outcome::Rejected(r) = &reply.outcome {
                    warn!(request = %reply.request_id, "request refused: {r}");
                }
            }
            _ => {}
        }
    }

    /// Compact documents, unload those that left the live window, drop partitions past retention.
    fn maintain(&mut self) {
        if let Some(store) = self.store.as_mut() {
            history::refresh_mark(store, &self.core);
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        // Retention never deletes the month of the oldest open parcel or alert, or later ones:
        // the same mark that brings them back at start (`history.rs`).
        let keep_from = match history::read_mark(store) {
            Ok(mark) => mark,
            Err(e) => {
                // Without the mark, retention could take an open parcel's month: not now.
                warn!(error = %e, "cannot read the open-since mark; maintenance waits");
                return;
            }
        };
        match store.maintain(now().0, keep_from) {
            Ok(done) => {
                if !(done.compacted.is_empty()
                    && done.unloaded.is_empty()
                    && done.expired.is_empty())
                {
                    info!(
                        compacted = done.compacted.len(),
                        unloaded = done.unloaded.len(),
                        expired = done.expired.len(),
                        "state maintenance"
                    );
                }
            }
            Err(e) => warn!(error = %e, "state maintenance failed; will try again"),
        }
        self.links.publish_documents(self.store.as_ref());
    }

    fn outbox_list(&self) -> Result<Vec<(String, Pending)>, AppError> {
        let pending = self
            .store()?
            .outbox_pending()
            .map_err(|e| AppError::Storage(e.to_string()))?;
        Ok(pending
            .into_iter()
            .map(|(id, bytes)| (id, Pending::decode(&bytes)))
            .collect())
    }

    fn outbox_done(&mut self, id: &str) -> Result<bool, AppError> {
        let pending = self
            .store()?
            .outbox_pending()
            .map_err(|e| AppError::Storage(e.to_string()))?;
        if !pending.iter().any(|(k, _)| k == id) {
            return Ok(false);
        }
        let store = self.store_mut()?;
        store
            .outbox_erase(id)
            .map_err(|e| AppError::Storage(e.to_string()))?;
        store
            .local_delete(&crate::notify::delivery_key(id))
            .map_err(|e| AppError::Storage(e.to_string()))?;
        Ok(true)
    }

    fn deliveries(&self) -> Result<Vec<(String, crate::notify::Delivery)>, AppError> {
        let rows = self
            .store()?
            .local_prefixed(crate::notify::DELIVERY_PREFIX)
            .map_err(|e| AppError::Storage(e.to_string()))?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, bytes)| {
                let id = key.strip_prefix(crate::notify::DELIVERY_PREFIX)?.to_owned();
                serde_json::from_slice(&bytes).ok().map(|d| (id, d))
            })
            .collect())
    }

    fn note_delivery(
        &mut self,
        id: &str,
        delivery: &crate::notify::Delivery,
    ) -> Result<bool, AppError> {
        let waiting = self
            .store()?
            .outbox_pending()
            .map_err(|e| AppError::Storage(e.to_string()))?
            .iter()
            .any(|(k, _)| k == id);
        if !waiting {
            return Ok(false);
        }
        let bytes = serde_json::to_vec(delivery).map_err(|e| AppError::Storage(e.to_string()))?;
        self.store_mut()?
            .local_put(&crate::notify::delivery_key(id), &bytes)
            .map_err(|e| AppError::Storage(e.to_string()))?;
        Ok(true)
    }

    fn send_command(&self, bank: &str, command: &Command) {
        self.send_json(BankTopics::new(bank).command(), false, command);
    }

    fn send_json<T: Serialize>(&self, topic: String, retain: bool, value: &T) {
        match serde_json::to_vec(value) {
            Ok(payload) => {
                let _ = self.publish.send(Outgoing {
                    topic,
                    payload,
                    retain,
                    correlation: None,
                });
            }
            Err(e) => error!(error = %e, "cannot encode an outgoing message"),
        }
    }

    /// The bank's public, retained state. It says what each compartment is doing, never who it
    /// holds parcels for: every client on the bus can read it.
    fn publish_bank(&self, bank: &str) {
        let at = now();
        let online = self
            .core
            .banks(at)
            .into_iter()
            .find(|b| b.bank == bank)
            .map(|b| (b.online, b.keypad_locked_until));
        let compartments = self.core.compartments();
        let state = wire::bank_state(
            bank,
            online.map(|o| o.0),
            online.and_then(|o| o.1).map(|t| t.0),
            compartments.iter().filter(|c| c.bank == bank),
            at.0,
        );
        self.send_json(BankTopics::new(bank).state(), true, &state);
    }

    /// Refresh what the web page reads. Returns whether anything in it changed.
    fn refresh_snapshot(&self) -> bool {
        let compartments = self.core.compartments();
        let banks = self.core.banks(now());
        match self.snapshot.write() {
            Ok(mut snap) => {
                let changed = snap.compartments != compartments || snap.banks != banks;
                snap.compartments = compartments;
                snap.banks = banks;
                changed
            }
            Err(_) => false,
        }
    }

    /// Tell open web pages that something changed (no subscriber is fine: no page is open).
    fn announce_change(&self) {
        let _ = self.changes.send(());
    }
}

/// Requests that record nothing, so they can be answered while the storage refuses writes.
fn read_only(request: &Request) -> bool {
    matches!(
        request,
        Request::SuggestSize { .. } | Request::AuditList { .. }
    )
}

fn closed() -> AppError {
    AppError::Storage("the state store is closed: the disk refused it (see /healthz)".into())
}
