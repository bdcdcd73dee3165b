//! Residents get their codes: the hub sends what its outbox holds (`[notify]`).
//!
//! The engine puts every notification in the local outbox in the same transaction as the facts
//! that made it (`locker_app::engine`). This crate takes it from there, through the application
//! layer's services like any other adapter: it lists the outbox, renders each notification
//! (`render`: plain text and HTML in the resident's language, the pickup code's QR image inline,
//! `qr`), sends it (`email`: SMTP through lettre), and records what happened:
//! - sent: the item leaves the outbox, and its plaintext code with it;
//! - a failure the server calls temporary, a timeout, no address yet: the item stays, its
//!   delivery record (`locker_app::notify::Delivery`, in the local table, durable before the
//!   next try) says why and when the next try is (the wait doubles from `retry_wait` up to
//!   `max_retry_wait`, with jitter);
//! - a failure the server calls permanent (a 5xx), or the tries used up: `failed`, kept and
//!   shown, not tried again.
//!
//! At least once: an item leaves the outbox only after the server took it, so a crash between
//! the two sends it again, under the same `Message-ID` (`<outbox id@sender's domain>`) for the
//! receiver to drop the copy. Every message is rate-limited (`per_minute`), so days of backlog
//! drain without flooding the server. Nothing here decides a workflow rule: who is told what,
//! and when, is the core's.

pub mod email;
pub mod qr;
pub mod render;
pub mod templates;
pub mod webhook;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use locker_app::engine::{Pending, Queued};
use locker_app::notify::{Delivery, DeliveryState};
use locker_app::services::{Actor, App};
use locker_core::Role;
use tokio::sync::Notify;
use tracing::{info, warn};

/// The name the sender acts under (recorded nowhere: it only reads and erases the outbox).
const SENDER: &str = "locker-hub.notify";
/// How often the outbox is looked at when nothing woke the sender.
const IDLE: Duration = Duration::from_secs(5);

/// Since when each channel has failed every try (a temporary failure: a permanent one is about
/// one address, not the channel), and whether staff were alerted.
#[derive(Default)]
struct Health {
    failing_since: std::collections::BTreeMap<&'static str, std::time::Instant>,
    alerted: bool,
}

impl Health {
    fn took(&mut self, channel: &'static str) {
        self.failing_since.remove(channel);
    }

    fn failed(&mut self, channel: &'static str, outcome: &Outcome) {
        if let Outcome::Temporary(_) = outcome {
            self.failing_since
                .entry(channel)
                .or_insert_with(std::time::Instant::now);
        }
    }

    /// Raises or clears the staff alert when the picture changed.
    async fn report(&mut self, app: &App, sender: &Actor, after: Duration) {
        let long: Vec<&str> = self
            .failing_since
            .iter()
            .filter(|(_, since)| since.elapsed() >= after)
            .map(|(c, _)| *c)
            .collect();
        let message = match (long.is_empty(), self.alerted) {
            (false, false) => Some(format!(
                "residents' notifications are not going out: {} has failed every try for {} \
                 minutes or more (see the Notifications page and the log)",
                long.join(" and "),
                after.as_secs().div_ceil(60)
            )),
            (true, true) if self.failing_since.is_empty() => None,
            _ => return,
        };
        let raise = message.is_some();
        if app.notifications_alert(sender, message).await.is_ok() {
            self.alerted = raise;
        }
    }
}

/// What one try came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// Try again later.
    Temporary(String),
    /// Trying again cannot help (the server refused the address for good).
    Permanent(String),
}

/// The channels configured, ready to send.
struct Channels {
    email: Option<email::Mailer>,
    webhook: Option<webhook::Poster>,
    site: String,
    templates: templates::Templates,
}

/// Runs the sender until `shutdown` completes. `wake` is notified when a notification was
/// queued, so it goes out at once instead of at the next look.
pub async fn run(
    app: App,
    site: String,
    config: locker_config::Notify,
    wake: Arc<Notify>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let email = match config.email.as_ref().map(email::Mailer::new).transpose() {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up email; notifications stay in the outbox");
            return;
        }
    };
    let webhook = match config
        .webhook
        .as_ref()
        .map(webhook::Poster::new)
        .transpose()
    {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the webhook; notifications stay in the outbox");
            return;
        }
    };
    // check-config reports bad templates with their file and line; here the built-in ones
    // stand in for a directory that broke after the check, so residents are still told.
    let templates = match templates::Templates::load(config.templates.as_deref()) {
        Ok(t) => t,
        Err(problems) => {
            for p in &problems {
                tracing::error!(problem = %p, "a message template cannot be used; the built-in ones are used");
            }
            match templates::Templates::load(None) {
                Ok(t) => t,
                Err(_) => return,
            }
        }
    };
    let channels = Channels {
        email,
        webhook,
        site,
        templates,
    };
    let sender = Actor::new(SENDER, Role::Admin);
    let gap = Duration::from_secs(60) / config.per_minute.max(1);
    tokio::pin!(shutdown);
    info!(
        email = channels.email.is_some(),
        webhook = channels.webhook.is_some(),
        "sending residents' notifications"
    );
    let mut health = Health::default();
    loop {
        let next = match round(
            &app,
            &sender,
            &config,
            &channels,
            gap,
            &mut health,
            &mut shutdown,
        )
        .await
        {
            Some(next) => next,
            None => return,
        };
        health.report(&app, &sender, config.alert_after).await;
        tokio::select! {
            _ = &mut shutdown => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(next) => {}
        }
    }
}

/// One pass over the outbox: everything due, in id order, one every `gap`. Returns how long
/// to wait before the next pass (`None`: stopping).
async fn round(
    app: &App,
    sender: &Actor,
    config: &locker_config::Notify,
    channels: &Channels,
    gap: Duration,
    health: &mut Health,
    shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Option<Duration> {
    let (items, records) = match (app.outbox(sender).await, app.deliveries(sender).await) {
        (Ok(items), Ok(records)) => (items, records),
        (Err(e), _) | (_, Err(e)) => {
            warn!(error = %e, "cannot read the outbox; trying again");
            return Some(IDLE);
        }
    };
    let records: std::collections::BTreeMap<String, Delivery> = records.into_iter().collect();
    let mut wait = IDLE;
    let mut contacts: Option<Vec<locker_core::ResidentView>> = None;
    let mut carriers: Option<Vec<locker_core::CarrierView>> = None;
    for (id, pending) in items {
        let mut record = records.get(&id).cloned().unwrap_or_default();
        if record.state == DeliveryState::Failed {
            continue;
        }
        let now = now_ms();
        if record.next_at_ms > now {
            wait = wait.min(Duration::from_millis(record.next_at_ms - now));
            continue;
        }
        let (outcome, to) = match pending {
            Pending::Notification(queued) => {
                if contacts.is_none() {
                    contacts = app.residents(sender).await.ok();
                }
                let resident = contacts
                    .as_ref()
                    .and_then(|all| all.iter().find(|r| r.resident == queued.resident));
                let outcome =
                    send(channels, &id, &queued, resident, &mut record.sent, health).await;
                (
                    outcome,
                    format!("resident {} ({:?})", queued.resident, queued.kind),
                )
            }
            Pending::CarrierCode(code) => {
                if carriers.is_none() {
                    carriers = app.carriers(sender).await.ok();
                }
                let carrier = carriers
                    .as_ref()
                    .and_then(|all| all.iter().find(|c| c.carrier == code.carrier));
                let outcome = send_carrier_code(channels, &id, &code, carrier, health).await;
                (
                    outcome,
                    format!("carrier {} (code {})", code.carrier, code.code_ref),
                )
            }
            Pending::Undecodable(_) => {
                let unreadable = Outcome::Permanent("the outbox item cannot be read".into());
                note(app, sender, &id, record, config, unreadable).await;
                continue;
            }
        };
        match &outcome {
            Outcome::Sent => {
                info!(notification = %id, to = %to, "notification sent");
                if let Err(e) = app.outbox_done(sender, &id).await {
                    warn!(notification = %id, error = %e, "sent, but not erased from the outbox; it may be sent again");
                }
            }
            Outcome::Temporary(why) | Outcome::Permanent(why) => {
                warn!(notification = %id, to = %to, reason = %why, "notification not sent");
                note(app, sender, &id, record, config, outcome.clone()).await;
            }
        }
        // The rate limit, and a chance to stop between two sends.
        tokio::select! {
            _ = shutdown.as_mut() => return None,
            _ = tokio::time::sleep(gap) => {}
        }
    }
    Some(wait)
}

/// Sends on every channel that applies and has not taken it yet (`sent`, updated). Sent when
/// all have; otherwise a temporary failure if any was one, else a permanent one.
async fn send(
    channels: &Channels,
    id: &str,
    queued: &Queued,
    resident: Option<&locker_core::ResidentView>,
    sent: &mut Vec<String>,
    health: &mut Health,
) -> Outcome {
    let Some(resident) = resident else {
        return Outcome::Temporary(format!(
            "resident {} is not in the directory",
            queued.resident
        ));
    };
    let message = match render::render(&channels.templates, &channels.site, queued, resident) {
        Ok(m) => m,
        Err(why) => return Outcome::Permanent(why),
    };
    // The resident's choice of channels; a second person gets the same message.
    let choice = resident.notify.as_deref().unwrap_or("both");
    if choice == "none" {
        info!(notification = %id, resident = %resident.resident, "not sent: the resident asked for no messages");
        return Outcome::Sent;
    }
    let by_email = matches!(choice, "both" | "email");
    let by_webhook = matches!(choice, "both" | "webhook");
    let mut failures: Vec<Outcome> = Vec::new();
    let mut tried = 0;
    let addresses: Vec<&str> = [&resident.email, &resident.secondary_email]
        .into_iter()
        .filter_map(|a| a.as_deref())
        .collect();
    if let (Some(mailer), true) = (&channels.email, by_email) {
        if !addresses.is_empty() {
            tried += 1;
            if !sent.iter().any(|c| c == "email") {
                match mailer.send(id, &addresses, &message).await {
                    Outcome::Sent => {
                        health.took("email");
                        sent.push("email".into())
                    }
                    other => {
                        health.failed("email", &other);
                        failures.push(other)
                    }
                }
            }
        }
    }
    if let (Some(poster), true) = (&channels.webhook, by_webhook) {
        tried += 1;
        if !sent.iter().any(|c| c == "webhook") {
            let body = webhook::Body {
                version: 1,
                id,
                site: &channels.site,
                kind: render::kind_name(queued.kind),
                resident: webhook::Resident {
                    id: resident.resident.as_str(),
                    unit: &resident.unit,
                    email: resident.email.as_deref(),
                    phone: resident.phone.as_deref(),
                    language: resident.language.as_deref().unwrap_or("en"),
                    secondary_email: resident.secondary_email.as_deref(),
                    secondary_phone: resident.secondary_phone.as_deref(),
                },
                parcels: queued.parcels.iter().map(|p| p.as_str()).collect(),
                pin: queued.pin.as_deref(),
                qr: queued.qr.as_deref(),
                subject: &message.subject,
                text: &message.text,
            };
            match poster.post(&body).await {
                Outcome::Sent => {
                    health.took("webhook");
                    sent.push("webhook".into())
                }
                other => {
                    health.failed("webhook", &other);
                    failures.push(other)
                }
            }
        }
    }
    if tried == 0 {
        let why = if !by_webhook {
            "they asked for email only and have no email address"
        } else if !by_email {
            "they asked for text/push only and no webhook is configured"
        } else {
            "they have no email address and no webhook is configured"
        };
        return Outcome::Temporary(format!(
            "resident {}: {why}; fix the contact and it goes at the next try",
            queued.resident
        ));
    }
    let temporary = failures.iter().find(|f| matches!(f, Outcome::Temporary(_)));
    match (temporary, failures.first()) {
        (Some(t), _) => t.clone(),
        (None, Some(p)) => p.clone(),
        (None, None) => Outcome::Sent,
    }
}

/// Emails a carrier's new code to the address an admin registered for the carrier. Email only:
/// the webhook's receiver texts residents, and a carrier has no phone in the directory. A code
/// revoked before it went out is not sent: it opens nothing. A deactivated carrier's code waits
/// (its codes work again if it is registered again).
async fn send_carrier_code(
    channels: &Channels,
    id: &str,
    code: &locker_app::engine::QueuedCarrierCode,
    carrier: Option<&locker_core::CarrierView>,
    health: &mut Health,
) -> Outcome {
    let Some(carrier) = carrier else {
        return Outcome::Temporary(format!("carrier {} is not in the directory", code.carrier));
    };
    if !carrier.codes.iter().any(|c| c.code_ref == code.code_ref) {
        info!(notification = %id, carrier = %code.carrier, "not sent: the code was revoked before it went out");
        return Outcome::Sent;
    }
    // Deactivated: its codes open nothing now, and work again if it is registered again.
    if carrier.revoked {
        return Outcome::Temporary(format!(
            "carrier {} is deactivated; the code goes if it is registered again",
            code.carrier
        ));
    }
    let Some(address) = carrier.email.as_deref() else {
        return Outcome::Temporary(format!(
            "carrier {} has no email address; add one on the Carriers page and it goes at the next try",
            code.carrier
        ));
    };
    let Some(mailer) = &channels.email else {
        return Outcome::Temporary(
            "a carrier's code is sent by email and no email server is configured ([notify.email])"
                .into(),
        );
    };
    let message =
        match render::render_carrier_code(&channels.templates, &channels.site, code, carrier) {
            Ok(m) => m,
            Err(why) => return Outcome::Permanent(why),
        };
    let outcome = mailer.send(id, &[address], &message).await;
    match &outcome {
        Outcome::Sent => health.took("email"),
        other => health.failed("email", other),
    }
    outcome
}

/// Records a failed try, durably, before the next one.
async fn note(
    app: &App,
    sender: &Actor,
    id: &str,
    mut record: Delivery,
    config: &locker_config::Notify,
    outcome: Outcome,
) {
    record.attempts += 1;
    let (state, why) = match outcome {
        Outcome::Sent => return,
        Outcome::Permanent(why) => (DeliveryState::Failed, why),
        Outcome::Temporary(why) if record.attempts >= config.max_attempts => (
            DeliveryState::Failed,
            format!("{why} ({} tries)", record.attempts),
        ),
        Outcome::Temporary(why) => (DeliveryState::Retrying, why),
    };
    record.state = state;
    record.last_error = Some(why);
    record.next_at_ms = now_ms() + backoff(config, record.attempts).as_millis() as u64;
    if let Err(e) = app.note_delivery(sender, id, record).await {
        warn!(notification = %id, error = %e, "cannot record the try");
    }
}

/// The wait after the `attempts`-th failed try: `retry_wait` doubled each time, at most
/// `max_retry_wait`, give or take a fifth (so a backlog's retries do not move in step).
pub fn backoff(config: &locker_config::Notify, attempts: u32) -> Duration {
    let doubled = config
        .retry_wait
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let base = doubled.min(config.max_retry_wait);
    let jitter = rand::random_range(0.8..1.2);
    base.mul_f64(jitter)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
