//! Where a notification goes once it is durable in the local outbox.
//!
//! The engine writes every `Effect::Notify` to the outbox in the same transaction as its facts,
//! then hands it to the hub's [`NotificationSink`]. The daemon's sink only logs that it is
//! queued (a notifier collects it from `GET /api/v1/outbox`); the demo's prints it, codes and
//! all, so the whole flow can be walked through by hand. The engine knows nothing of either.

use locker_core::{CarrierId, NotifyKind, ParcelId, ResidentId};

/// A notification, as the engine hands it over (after it is on disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification<'a> {
    pub resident: &'a ResidentId,
    pub parcels: &'a [ParcelId],
    pub pin: Option<&'a str>,
    pub qr: Option<&'a str>,
    pub kind: NotifyKind,
}

/// A carrier's new code, as the engine hands it over (after it is on disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierCode<'a> {
    pub carrier: &'a CarrierId,
    pub code: &'a str,
    pub code_ref: &'a str,
}

/// Told about every notification once it is durable.
pub trait NotificationSink: Send + Sync {
    fn queued(&self, notification: &Notification<'_>);
    /// A carrier code waits in the outbox for the carrier's email address.
    fn carrier_code_queued(&self, code: &CarrierCode<'_>);
}

/// The daemon's sink: the notification waits in the outbox; only the fact that it does is logged
/// (never a code).
#[derive(Debug, Default, Clone, Copy)]
pub struct OutboxOnly;

impl NotificationSink for OutboxOnly {
    fn queued(&self, n: &Notification<'_>) {
        tracing::info!(resident = %n.resident, kind = ?n.kind, parcels = n.parcels.len(), "notification queued in the local outbox");
    }

    fn carrier_code_queued(&self, c: &CarrierCode<'_>) {
        tracing::info!(carrier = %c.carrier, code_ref = c.code_ref, "a carrier's new code is queued in the local outbox");
    }
}

/// Where one notification in the outbox stands with the hub's own delivery (`[notify]`): kept in
/// the local table next to it (key `delivery/<outbox id>`), erased with it once it is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    pub state: DeliveryState,
    /// Tries made so far.
    pub attempts: u32,
    /// Not to be tried before this (Unix ms).
    pub next_at_ms: u64,
    /// What the last failed try was told (the server's answer, a timeout, no address).
    pub last_error: Option<String>,
    /// The channels that took it already (`email`, `webhook`): not sent there again.
    #[serde(default)]
    pub sent: Vec<String>,
}

/// `queued` (not tried yet), `retrying` (a try failed; another is due at `next_at_ms`), `failed`
/// (the tries are used up, or the failure was permanent: kept, shown, not tried again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    #[default]
    Queued,
    Retrying,
    Failed,
}

/// The local-table key of an outbox item's delivery record.
pub(crate) fn delivery_key(id: &str) -> String {
    format!("{DELIVERY_PREFIX}{id}")
}

pub(crate) const DELIVERY_PREFIX: &str = "delivery/";

/// A notification in the outbox as staff see it: whom and what it is about, and how its
/// delivery stands; never its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub id: String,
    /// `None` for an item that cannot be read, or a carrier's code.
    pub resident: Option<ResidentId>,
    /// The carrier a new code is for (never the code).
    pub carrier: Option<CarrierId>,
    pub parcels: Vec<ParcelId>,
    pub kind: Option<NotifyKind>,
    pub delivery: Delivery,
}
