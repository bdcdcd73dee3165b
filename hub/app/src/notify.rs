//! Where a notification goes once it is durable in the local outbox.
//!
//! The engine writes every `Effect::Notify` to the outbox in the same transaction as its facts,
//! then hands it to the hub's [`NotificationSink`]. The daemon's sink only logs that it is
//! queued (a notifier collects it from `GET /api/v1/outbox`); the demo's prints it, codes and
//! all, so the whole flow can be walked through by hand. The engine knows nothing of either.

use locker_core::{NotifyKind, ParcelId, ResidentId};

/// A notification, as the engine hands it over (after it is on disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification<'a> {
    pub resident: &'a ResidentId,
    pub parcels: &'a [ParcelId],
    pub pin: Option<&'a str>,
    pub qr: Option<&'a str>,
    pub kind: NotifyKind,
}

/// Told about every notification once it is durable.
pub trait NotificationSink: Send + Sync {
    fn queued(&self, notification: &Notification<'_>);
}

/// The daemon's sink: the notification waits in the outbox; only the fact that it does is logged
/// (never a code).
#[derive(Debug, Default, Clone, Copy)]
pub struct OutboxOnly;

impl NotificationSink for OutboxOnly {
    fn queued(&self, n: &Notification<'_>) {
        tracing::info!(resident = %n.resident, kind = ?n.kind, parcels = n.parcels.len(), "notification queued in the local outbox");
    }
}
