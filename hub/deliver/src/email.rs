//! Email over SMTP with lettre: STARTTLS (required, never skipped) or TLS from the first byte,
//! through rustls with the system's roots plus `ca_file`, the server's certificate and name
//! checked; or no TLS for a relay on a trusted LAN. The password is read from its file at each
//! message, so a new one needs no restart.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use locker_config::{Email, SmtpTls};

use crate::render::Rendered;
use crate::Outcome;

/// Sends rendered messages to one SMTP server.
pub struct Mailer {
    config: Email,
    from: Mailbox,
    /// The domain of the sender's address: the right-hand side of every `Message-ID`.
    domain: String,
    tls: Option<TlsParameters>,
}

impl Mailer {
    pub fn new(config: &Email) -> Result<Mailer, String> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| format!("`from` {:?}: {e}", config.from))?;
        let domain = from.email.domain().to_owned();
        let tls = match config.tls {
            SmtpTls::None => None,
            SmtpTls::StartTls | SmtpTls::Implicit => {
                let mut builder = TlsParameters::builder(config.server.clone());
                if let Some(path) = &config.ca_file {
                    let pem = std::fs::read(path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| format!("{} is not a PEM certificate: {e}", path.display()))?;
                    builder = builder.add_root_certificate(cert);
                }
                Some(builder.build_rustls().map_err(|e| e.to_string())?)
            }
        };
        Ok(Mailer {
            config: config.clone(),
            from,
            domain,
            tls,
        })
    }

    /// The `Message-ID` of outbox item `id`: the same at every try, for the receiver to drop
    /// a copy sent again after a crash.
    pub fn message_id(&self, id: &str) -> String {
        format!("<{id}@{}>", self.domain)
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.config.server.clone())
                .port(self.config.port)
                .timeout(Some(self.config.timeout));
        builder = match (self.config.tls, &self.tls) {
            (SmtpTls::StartTls, Some(p)) => builder.tls(Tls::Required(p.clone())),
            (SmtpTls::Implicit, Some(p)) => builder.tls(Tls::Wrapper(p.clone())),
            _ => builder.tls(Tls::None),
        };
        if let (Some(user), Some(file)) = (&self.config.username, &self.config.password_file) {
            let password = std::fs::read_to_string(file).map_err(|e| {
                format!("cannot read the SMTP password file {}: {e}", file.display())
            })?;
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.trim_end_matches(['\r', '\n']).to_owned(),
            ));
        }
        Ok(builder.build())
    }

    /// The message for outbox item `id`, to `to`.
    pub fn build(&self, id: &str, to: &[&str], m: &Rendered) -> Result<Message, String> {
        let to: Vec<Mailbox> = to
            .iter()
            .map(|a| {
                a.parse()
                    .map_err(|e| format!("the address {a:?} is not usable: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let alternative = MultiPart::alternative_plain_html(m.text.clone(), m.html.clone());
        let body = match &m.qr_png {
            Some(png) => MultiPart::related().multipart(alternative).singlepart(
                Attachment::new_inline("qr".into()).body(
                    png.clone(),
                    ContentType::parse("image/png").map_err(|e| e.to_string())?,
                ),
            ),
            None => alternative,
        };
        let builder = to
            .into_iter()
            .fold(Message::builder().from(self.from.clone()), |b, mailbox| {
                b.to(mailbox)
            });
        builder
            .subject(m.subject.clone())
            .message_id(Some(self.message_id(id)))
            .multipart(body)
            .map_err(|e| e.to_string())
    }

    /// Sends one message to every address of `to`; what the server (or the network) said.
    pub async fn send(&self, id: &str, to: &[&str], m: &Rendered) -> Outcome {
        let message = match self.build(id, to, m) {
            Ok(message) => message,
            Err(why) => return Outcome::Permanent(why),
        };
        let transport = match self.transport() {
            Ok(t) => t,
            Err(why) => return Outcome::Temporary(why),
        };
        // lettre's own timeout covers each command; this bounds the whole conversation.
        let limit = self.config.timeout + Duration::from_secs(5);
        match tokio::time::timeout(limit, transport.send(message)).await {
            Ok(Ok(_)) => Outcome::Sent,
            Ok(Err(e)) if e.is_permanent() => {
                Outcome::Permanent(format!("the mail server refused it: {e}"))
            }
            Ok(Err(e)) => Outcome::Temporary(format!("{e}")),
            Err(_) => Outcome::Temporary(format!(
                "no answer from {}:{} within {} s",
                self.config.server,
                self.config.port,
                limit.as_secs()
            )),
        }
    }
}
