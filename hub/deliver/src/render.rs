//! What a notification says, in the resident's language (English unless they chose Spanish):
//! a subject, a plain-text part, an HTML part, and the QR image of the pickup token when the
//! message carries one. The PIN is printed beside the QR code.

use locker_app::engine::Queued;
use locker_core::{NotifyKind, ResidentView};

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The pickup token's QR code as a PNG, shown inline (`cid:qr`).
    pub qr_png: Option<Vec<u8>>,
}

struct Words {
    subject: &'static str,
    lead: &'static str,
    pin: &'static str,
    qr: &'static str,
    parcels: &'static str,
}

fn words(kind: NotifyKind, spanish: bool) -> Words {
    use NotifyKind as K;
    let (subject, lead) = match (kind, spanish) {
        (K::Delivered, false) => ("Your parcel is in the lockers", "A parcel for you is waiting in the lockers."),
        (K::Delivered, true) => ("Su paquete está en los casilleros", "Tiene un paquete esperando en los casilleros."),
        (K::Reminder, false) => ("Reminder: your parcel is waiting", "Your parcel is still waiting in the lockers. Use the code you were sent with it."),
        (K::Reminder, true) => ("Recordatorio: su paquete le espera", "Su paquete sigue en los casilleros. Use el código que recibió con él."),
        (K::Expired, false) => ("Your parcel's hold has ended", "Your parcel was not collected in time; its code no longer works. Staff will move it to the desk or return it."),
        (K::Expired, true) => ("El plazo de su paquete terminó", "Su paquete no se recogió a tiempo y su código ya no funciona. El personal lo llevará a recepción o lo devolverá."),
        (K::AtDesk, false) => ("Your parcel is at the front desk", "Your parcel is at the front desk. Ask the staff for it."),
        (K::AtDesk, true) => ("Su paquete está en recepción", "Su paquete está en recepción. Pídalo al personal."),
        (K::Withdrawn, false) => ("A parcel notice was withdrawn", "A parcel we told you about was not for you after all. Earlier codes for it no longer work."),
        (K::Withdrawn, true) => ("Se retiró un aviso de paquete", "Un paquete del que le avisamos no era para usted. Los códigos anteriores ya no funcionan."),
    };
    if spanish {
        Words {
            subject,
            lead,
            pin: "Su código (PIN)",
            qr: "O muestre este código QR en la pantalla del casillero.",
            parcels: "Paquetes",
        }
    } else {
        Words {
            subject,
            lead,
            pin: "Your pickup code (PIN)",
            qr: "Or show this QR code at the locker's screen.",
            parcels: "Parcels",
        }
    }
}

/// Renders `n` for `resident`.
pub fn render(n: &Queued, resident: &ResidentView) -> Rendered {
    let spanish = resident.language.as_deref() == Some("es");
    let w = words(n.kind, spanish);
    let parcels: Vec<&str> = n.parcels.iter().map(|p| p.as_str()).collect();
    let mut text = format!("{}\n\n", w.lead);
    let mut html = format!("<p>{}</p>", escape(w.lead));
    if let Some(pin) = &n.pin {
        text.push_str(&format!("{}: {pin}\n", w.pin));
        html.push_str(&format!(
            "<p>{}: <strong style=\"font-size:1.5em;letter-spacing:0.1em\">{}</strong></p>",
            escape(w.pin),
            escape(pin)
        ));
    }
    let qr_png =
        n.qr.as_deref()
            .and_then(|token| match crate::qr::png(token) {
                Ok(png) => Some(png),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot draw the QR code; the PIN alone is sent");
                    None
                }
            });
    if qr_png.is_some() {
        text.push_str(&format!("{}\n", w.qr));
        html.push_str(&format!(
            "<p>{}</p><p><img src=\"cid:qr\" alt=\"QR\" width=\"240\" height=\"240\"></p>",
            escape(w.qr)
        ));
    }
    text.push_str(&format!("\n{}: {}\n", w.parcels, parcels.join(", ")));
    html.push_str(&format!(
        "<p style=\"color:#555\">{}: {}</p>",
        escape(w.parcels),
        escape(&parcels.join(", "))
    ));
    Rendered {
        subject: w.subject.to_owned(),
        text,
        html: format!("<!doctype html><html><body>{html}</body></html>"),
        qr_png,
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
