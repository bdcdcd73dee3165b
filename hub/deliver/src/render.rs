//! What a notification says, in the resident's language (English unless they chose Spanish):
//! the words from the message's template (`templates.rs`), and the QR image of the pickup token
//! when the message carries one.

use locker_app::engine::{Queued, QueuedCarrierCode};
use locker_core::{CarrierView, NotifyKind, ResidentView};

use crate::templates::{
    CarrierCodeContext, CarrierContext, Context, ResidentContext, Templates, CARRIER_CODE,
};

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The pickup token's QR code as a PNG, shown inline (`cid:qr`).
    pub qr_png: Option<Vec<u8>>,
}

/// The template name of a message kind.
pub fn kind_name(kind: NotifyKind) -> &'static str {
    use NotifyKind as K;
    match kind {
        K::Delivered => "delivered",
        K::Reminder => "reminder",
        K::Expiring => "expiring",
        K::Expired => "expired",
        K::AtDesk => "at_desk",
        K::PickedUp => "picked_up",
        K::Withdrawn => "withdrawn",
    }
}

/// Renders `n` for `resident`.
pub fn render(
    templates: &Templates,
    site: &str,
    n: &Queued,
    resident: &ResidentView,
) -> Result<Rendered, String> {
    let qr_png =
        n.qr.as_deref()
            .and_then(|token| match crate::qr::png(token) {
                Ok(png) => Some(png),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot draw the QR code; the PIN alone is sent");
                    None
                }
            });
    let ctx = Context {
        site,
        resident: ResidentContext {
            id: resident.resident.as_str(),
            unit: &resident.unit,
        },
        parcels: n.parcels.iter().map(|p| p.as_str()).collect(),
        pin: n.pin.as_deref(),
        qr: qr_png.is_some(),
    };
    let words = templates.render(
        kind_name(n.kind),
        resident.language.as_deref().unwrap_or("en"),
        &ctx,
    )?;
    Ok(Rendered {
        subject: words.subject,
        text: words.text,
        html: words.html,
        qr_png,
    })
}

/// Renders a carrier's new code for `carrier` (in English: a carrier has no language of its own).
pub fn render_carrier_code(
    templates: &Templates,
    site: &str,
    code: &QueuedCarrierCode,
    carrier: &CarrierView,
) -> Result<Rendered, String> {
    let ctx = CarrierCodeContext {
        site,
        carrier: CarrierContext {
            id: carrier.carrier.as_str(),
            name: &carrier.name,
        },
        code: &code.code,
        code_ref: &code.code_ref,
    };
    let words = templates.render(CARRIER_CODE, "en", &ctx)?;
    Ok(Rendered {
        subject: words.subject,
        text: words.text,
        html: words.html,
        qr_png: None,
    })
}
