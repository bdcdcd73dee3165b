//! The application's services: one typed call per thing an adapter may ask, each answering
//! `Result<_, AppError>`. Adapters (web pages, the JSON API, demo seeding) are thin: they parse
//! their wire format, call a service with the authenticated [`Actor`], and render the answer.
//!
//! Reads check the actor's role here ([`Need`]); requests to the core are checked by the core
//! itself (`Core::handle_from`), so a page, an API call and `POST /api/v1/commands` cannot
//! differ on who may do what.

use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::tz::TimeZone;
use locker_core::{
    Alert, Caller, CarrierId, CarrierView, Command, Fact, Need, Operator, Outcome, ParcelView,
    RejectCode, Reply, Request, RequestId, ResidentId, ResidentView, Role,
};
use rand::Rng;
use tokio::sync::{broadcast, oneshot};

use crate::accounts::{self, AccountView, Accounts, User};
use crate::analytics::Analytics;
use crate::engine::{FactQuery, Job, Pending, ReplyTo, Snapshot, UnitHistory, UnitsReport};
use crate::error::AppError;
use crate::passwords::{Argon2Pool, Busy};

/// How long a service waits for the engine before giving up (`AppError::Timeout`).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an import may take: a whole roll is planned and written in one step.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(300);

/// Generated carrier codes: 8 digits, above the core's minimum, still quick on a keypad.
const GENERATED_DIGITS: usize = 8;

/// Who is asking, as an adapter authenticated them: recorded as the actor of every staff action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

impl Actor {
    pub fn new(name: impl Into<String>, role: Role) -> Actor {
        Actor {
            name: name.into(),
            role,
        }
    }

    /// Staff actions are recorded under the actor's name.
    pub fn operator(&self) -> Operator {
        Operator::Staff {
            id: locker_core::StaffId(self.name.clone()),
        }
    }

    /// `Forbidden` unless the actor's role meets `need`.
    pub fn need(&self, need: Need) -> Result<(), AppError> {
        if self.role.meets(need) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "the {} role may not do this",
                self.role.as_str()
            )))
        }
    }
}

/// A carrier code just issued: the plaintext (shown once) and the reference that names it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub code: String,
    pub code_ref: String,
}

/// The handle adapters hold: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: Sender<Job>,
    snapshot: Arc<RwLock<Snapshot>>,
    changes: broadcast::Sender<()>,
    accounts: Accounts,
    argon2: Arc<Argon2Pool>,
    zone: TimeZone,
    roll: crate::roll::RollSettings,
}

impl App {
    /// The application over a running engine; loads the staff accounts.
    pub async fn new(
        engine: &crate::engine::Engine,
        argon2: Arc<Argon2Pool>,
        zone: TimeZone,
        roll: crate::roll::RollSettings,
    ) -> Result<App, AppError> {
        let accounts = Accounts::load(engine.jobs.clone()).await?;
        Ok(App {
            inner: Arc::new(Inner {
                jobs: engine.jobs.clone(),
                snapshot: engine.snapshot.clone(),
                changes: engine.changes.clone(),
                accounts,
                argon2,
                zone,
                roll,
            }),
        })
    }

    /// The site's time zone, for times shown and days bucketed.
    pub fn zone(&self) -> &TimeZone {
        &self.inner.zone
    }

    /// Fires whenever something on the staff pages may have changed.
    pub fn changes(&self) -> broadcast::Receiver<()> {
        self.inner.changes.subscribe()
    }

    /// Send the job made by `make` and wait (bounded) for its answer.
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Job) -> Result<T, AppError> {
        self.ask_within(ENGINE_TIMEOUT, make).await
    }

    /// [`App::ask`] for a job that may take longer than a page can wait (a whole rent roll):
    /// answering "no answer" while the engine goes on to apply it would tell staff it failed.
    async fn ask_within<T>(
        &self,
        wait: Duration,
        make: impl FnOnce(oneshot::Sender<T>) -> Job,
    ) -> Result<T, AppError> {
        let (tx, rx) = oneshot::channel();
        if self.inner.jobs.send(make(tx)).is_err() {
            return Err(AppError::Stopping);
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(v)) => Ok(v),
            // The engine dropped the job unanswered: it is stopping.
            Ok(Err(_)) => Err(AppError::Stopping),
            Err(_) => Err(AppError::Timeout),
        }
    }

    // --- requests to the core ---------------------------------------------------------------

    /// One command with the caller's own request id (idempotent across retries), through the
    /// core's checks for `who`. A refusal is `Err(AppError::Rejected)`.
    pub async fn command(&self, who: &Actor, command: Command) -> Result<Reply, AppError> {
        let role = who.role;
        let reply = self
            .ask(|tx| Job::Command {
                command,
                caller: Caller::User(role),
                reply: ReplyTo::Http(tx),
            })
            .await?;
        match reply.outcome {
            Outcome::Rejected(r) => Err(AppError::Rejected(r)),
            _ => Ok(reply),
        }
    }

    /// One request with a fresh request id (`prefix-<random>`), as a person's action on a page.
    pub async fn request(
        &self,
        who: &Actor,
        prefix: &str,
        request: Request,
    ) -> Result<Reply, AppError> {
        self.command(
            who,
            Command {
                request_id: request_id(prefix),
                request,
            },
        )
        .await
    }

    // --- reads ----------------------------------------------------------------------------

    /// Compartments and banks as of the engine's last step (no round trip).
    pub fn snapshot(&self, who: &Actor) -> Result<Snapshot, AppError> {
        who.need(Need::Staff)?;
        self.inner
            .snapshot
            .read()
            .map(|s| s.clone())
            .map_err(|_| AppError::Storage("the state snapshot is unavailable".into()))
    }

    pub async fn residents(&self, who: &Actor) -> Result<Vec<ResidentView>, AppError> {
        who.need(Need::Staff)?;
        self.ask(Job::Residents).await
    }

    pub async fn carriers(&self, who: &Actor) -> Result<Vec<CarrierView>, AppError> {
        who.need(Need::Staff)?;
        self.ask(Job::Carriers).await
    }

    /// Every parcel the hub has loaded, with where it is.
    pub async fn parcels(&self, who: &Actor) -> Result<Vec<ParcelView>, AppError> {
        who.need(Need::Staff)?;
        self.ask(Job::Parcels).await
    }

    /// The open alerts, newest last.
    pub async fn alerts(&self, who: &Actor) -> Result<Vec<Alert>, AppError> {
        who.need(Need::Staff)?;
        self.ask(Job::Alerts).await
    }

    /// The newest `limit` facts `query` matches, newest first.
    pub async fn facts(
        &self,
        who: &Actor,
        query: FactQuery,
        limit: usize,
    ) -> Result<Vec<Fact>, AppError> {
        who.need(Need::Staff)?;
        self.ask(|reply| Job::Facts {
            query,
            limit,
            reply,
        })
        .await
    }

    /// Refrigerated units, and their summaries since `since` when asked.
    pub async fn units(
        &self,
        who: &Actor,
        since: Option<locker_core::Millis>,
    ) -> Result<UnitsReport, AppError> {
        who.need(Need::Staff)?;
        self.ask(|reply| Job::Units { since, reply }).await
    }

    /// One unit's summaries of the last `hours`; `NotFound` for a unit that is not configured.
    pub async fn unit_history(
        &self,
        who: &Actor,
        bank: &str,
        unit: &str,
        hours: u64,
    ) -> Result<UnitHistory, AppError> {
        who.need(Need::Staff)?;
        let (b, u) = (bank.to_owned(), unit.to_owned());
        self.ask(|reply| Job::UnitHistory {
            bank: b,
            unit: u,
            hours,
            reply,
        })
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no refrigerated unit {unit} in bank {bank}")))
    }

    /// The analytics page's numbers, on the site's wall clock.
    pub async fn analytics(&self, who: &Actor) -> Result<Analytics, AppError> {
        who.need(Need::Staff)?;
        let zone = self.inner.zone.clone();
        self.ask(|reply| Job::Analytics { zone, reply }).await
    }

    // --- the directory ----------------------------------------------------------------------

    /// Issue `typed`, or a generated code, to `carrier`. The core checks the code and the
    /// carrier; a generated code that happens to be in use is drawn again.
    pub async fn issue_carrier_code(
        &self,
        who: &Actor,
        carrier: &str,
        typed: Option<&str>,
    ) -> Result<Issued, AppError> {
        for _ in 0..3 {
            let code = typed.map(str::to_owned).unwrap_or_else(generate_code);
            let request = Request::IssueCarrierCode {
                by: who.operator(),
                carrier: CarrierId(carrier.to_owned()),
                code: code.clone(),
            };
            match self.request(who, "carrier-code", request).await {
                Err(e) if typed.is_none() && e.code() == Some(RejectCode::AlreadyExists) => {
                    continue
                }
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            let lookup = code.clone();
            let code_ref = self
                .ask(|reply| Job::CarrierCodeRef {
                    code: lookup,
                    reply,
                })
                .await?
                .unwrap_or_default();
            return Ok(Issued { code, code_ref });
        }
        Err(AppError::Conflict(
            "could not draw an unused code; try again".into(),
        ))
    }

    /// Register a resident (`mode` says add, update or either); the core checks it all.
    pub async fn register_resident(
        &self,
        who: &Actor,
        resident: &str,
        unit: &str,
        accessible: bool,
        mode: locker_core::RegisterMode,
        contact: locker_core::Contact,
    ) -> Result<Reply, AppError> {
        let request = Request::RegisterResident {
            by: who.operator(),
            resident: ResidentId(resident.to_owned()),
            unit: unit.trim().to_owned(),
            accessible,
            mode,
            contact,
        };
        self.request(who, "resident", request).await
    }

    // --- the rent roll ----------------------------------------------------------------------

    /// The site's import settings (layouts staff may choose, the default).
    pub fn roll_settings(&self) -> &crate::roll::RollSettings {
        &self.inner.roll
    }

    /// Read a rent-roll file (off the async threads: a big roll takes a moment).
    pub async fn read_roll(
        &self,
        who: &Actor,
        bytes: Vec<u8>,
        layout: Option<crate::roll::Layout>,
        encoding: Option<locker_roll::Encoding>,
    ) -> Result<(crate::roll::Layout, locker_roll::Roll), AppError> {
        who.need(Need::Staff)?;
        let settings = self.inner.roll.clone();
        let layout = layout.unwrap_or(settings.default);
        let read =
            tokio::task::spawn_blocking(move || settings.read(&bytes, Some(layout), encoding))
                .await
                .map_err(|_| AppError::Stopping)?;
        read.map(|roll| (layout, roll)).map_err(|message| {
            AppError::Rejected(locker_core::Rejection::new(
                RejectCode::InvalidInput,
                message,
            ))
        })
    }

    /// What importing `rows` would do now (a dry run).
    pub async fn plan_roll(
        &self,
        who: &Actor,
        rows: Vec<locker_core::RollRow>,
    ) -> Result<locker_core::RollPlan, AppError> {
        who.need(Need::Staff)?;
        self.ask_within(IMPORT_TIMEOUT, |reply| Job::PlanRoll { rows, reply })
            .await
    }

    /// Import `rows` (the whole roll), planned and applied in one engine step: the plan
    /// returned is what was applied.
    pub async fn import_roll(
        &self,
        who: &Actor,
        source: &str,
        rows: Vec<locker_core::RollRow>,
        skip_rejected: bool,
    ) -> Result<(locker_core::RollPlan, Reply), AppError> {
        let command = Command {
            request_id: request_id("roll"),
            request: Request::ImportRoll {
                by: who.operator(),
                source: source.to_owned(),
                rows,
                skip_rejected,
            },
        };
        let role = who.role;
        let (plan, reply) = self
            .ask_within(IMPORT_TIMEOUT, |reply| Job::ImportRoll {
                command,
                caller: Caller::User(role),
                reply,
            })
            .await?;
        match reply.outcome {
            Outcome::Rejected(r) => Err(AppError::Rejected(r)),
            _ => Ok((plan, reply)),
        }
    }

    /// The rows of the last import waiting for staff, and the last import.
    pub async fn roll_reviews(
        &self,
        who: &Actor,
    ) -> Result<
        (
            Vec<locker_core::RollReviewItem>,
            Option<locker_core::RollImportView>,
        ),
        AppError,
    > {
        who.need(Need::Staff)?;
        self.ask(Job::RollReviews).await
    }

    // --- the outbox -------------------------------------------------------------------------

    /// Notifications waiting to be sent, with their plaintext codes (admins and the API token).
    pub async fn outbox(&self, who: &Actor) -> Result<Vec<(String, Pending)>, AppError> {
        who.need(Need::Admin)?;
        self.ask(Job::OutboxList).await?
    }

    /// The delivery records of the outbox (the hub's own sender's, `[notify]`).
    pub async fn deliveries(
        &self,
        who: &Actor,
    ) -> Result<Vec<(String, crate::notify::Delivery)>, AppError> {
        who.need(Need::Admin)?;
        self.ask(Job::Deliveries).await?
    }

    /// The notifications waiting in the outbox, without their codes, each with its delivery
    /// record (staff see what is stuck and why).
    pub async fn notifications(
        &self,
        who: &Actor,
    ) -> Result<Vec<crate::notify::Waiting>, AppError> {
        who.need(Need::Staff)?;
        let items = self.ask(Job::OutboxList).await??;
        let records: std::collections::BTreeMap<String, crate::notify::Delivery> =
            self.ask(Job::Deliveries).await??.into_iter().collect();
        Ok(items
            .into_iter()
            .map(|(id, pending)| {
                let delivery = records.get(&id).cloned().unwrap_or_default();
                let (resident, carrier, parcels, kind) = match pending {
                    Pending::Notification(q) => (Some(q.resident), None, q.parcels, Some(q.kind)),
                    Pending::CarrierCode(c) => (None, Some(c.carrier), Vec::new(), None),
                    Pending::Undecodable(_) => (None, None, Vec::new(), None),
                };
                crate::notify::Waiting {
                    id,
                    resident,
                    carrier,
                    parcels,
                    kind,
                    delivery,
                }
            })
            .collect())
    }

    /// Try notification `id` again at once, from its first try (after a contact was fixed).
    pub async fn retry_notification(&self, who: &Actor, id: &str) -> Result<(), AppError> {
        who.need(Need::Staff)?;
        let records = self.ask(Job::Deliveries).await??;
        let sent = records
            .into_iter()
            .find(|(k, _)| k == id)
            .map(|(_, d)| d.sent)
            .unwrap_or_default();
        let fresh = crate::notify::Delivery {
            sent,
            ..Default::default()
        };
        let key = id.to_owned();
        match self
            .ask(|done| Job::NoteDelivery {
                id: key,
                delivery: fresh,
                done,
            })
            .await??
        {
            true => Ok(()),
            false => Err(AppError::NotFound(format!(
                "no notification {id} in the outbox"
            ))),
        }
    }

    /// Raise (`Some`) or clear (`None`) the alert that notifications keep failing (the hub's
    /// sender).
    pub async fn notifications_alert(
        &self,
        who: &Actor,
        message: Option<String>,
    ) -> Result<(), AppError> {
        who.need(Need::Admin)?;
        self.inner
            .jobs
            .send(Job::NotificationsAlert(message))
            .map_err(|_| AppError::Stopping)
    }

    /// Record a try of notification `id` durably; `false` if it left the outbox meanwhile.
    pub async fn note_delivery(
        &self,
        who: &Actor,
        id: &str,
        delivery: crate::notify::Delivery,
    ) -> Result<bool, AppError> {
        who.need(Need::Admin)?;
        let id = id.to_owned();
        self.ask(|done| Job::NoteDelivery { id, delivery, done })
            .await?
    }

    /// A notifier has handed `id` off: erase it and its code. `NotFound` if it is not waiting.
    pub async fn outbox_done(&self, who: &Actor, id: &str) -> Result<(), AppError> {
        who.need(Need::Admin)?;
        let key = id.to_owned();
        match self.ask(|done| Job::OutboxDone { id: key, done }).await?? {
            true => Ok(()),
            false => Err(AppError::NotFound(format!(
                "no notification {id} in the outbox"
            ))),
        }
    }

    // --- staff accounts ---------------------------------------------------------------------

    /// Is there no account at all yet (a fresh install)?
    pub fn no_accounts(&self) -> bool {
        self.inner.accounts.list().is_empty()
    }

    /// The account signed in as `name`, if it exists and is active.
    pub fn active_account(&self, name: &str) -> Option<AccountView> {
        self.inner
            .accounts
            .get(name)
            .filter(|u| u.active)
            .map(|u| u.view())
    }

    /// Check a sign-in on the shared argon2 pool: the active account, or `None`. `Err(Busy)`
    /// when the pool is full.
    pub async fn sign_in(&self, name: &str, password: &str) -> Result<Option<AccountView>, Busy> {
        Ok(self
            .inner
            .accounts
            .verify(&self.inner.argon2, name, password)
            .await?
            .map(|u| u.view()))
    }

    /// Open a pairing for a second hub of the site (admins): its one-time code, shown once
    /// (`crate::pairing`). `data_dir` is the hub's, where the pairing is kept.
    pub fn open_pairing(
        &self,
        who: &Actor,
        data_dir: &std::path::Path,
    ) -> Result<crate::pairing::Opened, AppError> {
        who.need(Need::Admin)?;
        crate::pairing::open(data_dir, crate::clock::now().0)
            .map_err(|e| AppError::Storage(e.to_string()))
    }

    /// Names, roles and whether active; never the hashes (admins).
    pub fn accounts(&self, who: &Actor) -> Result<Vec<AccountView>, AppError> {
        who.need(Need::Admin)?;
        Ok(self.inner.accounts.list().iter().map(User::view).collect())
    }

    /// Add an account (admins). `Conflict` if the name is taken.
    pub async fn add_account(
        &self,
        who: &Actor,
        name: &str,
        role: &str,
        password: &str,
    ) -> Result<AccountView, AppError> {
        who.need(Need::Admin)?;
        self.create_account(name, role, password).await
    }

    /// Add an account with no caller: the demo's and a test's set-up (never reachable from a
    /// request).
    pub async fn create_account(
        &self,
        name: &str,
        role: &str,
        password: &str,
    ) -> Result<AccountView, AppError> {
        accounts::check_name(name).map_err(AppError::Invalid)?;
        let role = Role::parse(role).map_err(|r| AppError::Invalid(r.message))?;
        accounts::check_password(password).map_err(AppError::Invalid)?;
        if self.inner.accounts.get(name).is_some() {
            return Err(AppError::Conflict(format!(
                "a user named {name} already exists"
            )));
        }
        let user = User {
            name: name.to_owned(),
            role,
            hash: accounts::hash(password).await?,
            active: true,
        };
        let view = user.view();
        self.inner.accounts.put(user).await?;
        tracing::info!(user = name, role = role.as_str(), "staff account added");
        Ok(view)
    }

    /// Change an account's role, state and (optionally) password (admins). Nobody may demote or
    /// deactivate themselves: a site must keep an admin who can sign in.
    pub async fn change_account(
        &self,
        who: &Actor,
        name: &str,
        role: &str,
        active: bool,
        password: Option<&str>,
    ) -> Result<AccountView, AppError> {
        who.need(Need::Admin)?;
        let Some(mut user) = self.inner.accounts.get(name) else {
            return Err(AppError::NotFound(format!("no user named {name}")));
        };
        user.role = Role::parse(role).map_err(|r| AppError::Invalid(r.message))?;
        user.active = active;
        if name == who.name && (!user.active || user.role != Role::Admin) {
            return Err(AppError::Invalid(
                "you cannot deactivate or demote yourself (ask another admin)".into(),
            ));
        }
        if let Some(pw) = password {
            accounts::check_password(pw).map_err(AppError::Invalid)?;
            user.hash = accounts::hash(pw).await?;
        }
        let view = user.view();
        self.inner.accounts.put(user).await?;
        tracing::info!(by = %who.name, user = %name, "staff account changed");
        Ok(view)
    }
}

/// A fresh, unique request id for an action taken by a person: `prefix-<24 hex digits>`.
pub fn request_id(prefix: &str) -> RequestId {
    let mut bytes = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    RequestId(format!("{prefix}-{hex}"))
}

/// A fresh carrier code from the OS-seeded generator the hub uses for every secret
/// (`rand::rng()`, as the engine's entropy), each digit uniform.
fn generate_code() -> String {
    let mut rng = rand::rng();
    (0..GENERATED_DIGITS)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}
