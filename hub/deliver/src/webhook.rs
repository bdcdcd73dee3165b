//! The webhook channel: each notification POSTed as JSON to the property's gateway (an SMS or
//! push provider's, or its own), signed so the gateway knows it came from this hub and was not
//! replayed from long ago.
//!
//! Headers: `X-Locker-Hub-Id` (the outbox id, the same at every try: the receiver drops copies),
//! `X-Locker-Hub-Timestamp` (Unix seconds), and `X-Locker-Hub-Signature: v1=<hex>`, the
//! HMAC-SHA256 under the shared secret of `<timestamp>.<body>`. A 2xx is sent; 408, 429, 5xx,
//! no answer or no connection is tried again; any other answer is failed (a gateway that says
//! the request is wrong will say it again).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use locker_config::Webhook;
use serde::Serialize;
use sha2::Sha256;

use crate::Outcome;

/// The body, version 1 (`docs/notify.md`).
#[derive(Debug, Clone, Serialize)]
pub struct Body<'a> {
    pub version: u32,
    /// The outbox id: stable across tries.
    pub id: &'a str,
    pub site: &'a str,
    /// `delivered`, `reminder`, `expiring`, `expired`, `at_desk`, `withdrawn`, `picked_up`.
    pub kind: &'a str,
    pub resident: Resident<'a>,
    pub parcels: Vec<&'a str>,
    pub pin: Option<&'a str>,
    pub qr: Option<&'a str>,
    /// The message as the email says it, for a gateway that forwards text.
    pub subject: &'a str,
    pub text: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resident<'a> {
    pub id: &'a str,
    pub unit: &'a str,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub language: &'a str,
    /// A second person the resident asked to have told too (send to them as well).
    pub secondary_email: Option<&'a str>,
    pub secondary_phone: Option<&'a str>,
}

/// POSTs to one gateway.
pub struct Poster {
    config: Webhook,
    client: reqwest::Client,
}

impl Poster {
    pub fn new(config: &Webhook) -> Result<Poster, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("locker-hub/", env!("CARGO_PKG_VERSION")));
        if !config.allow_plaintext {
            builder = builder.https_only(true);
        }
        if let Some(path) = &config.ca_file {
            let pem =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("{} is not a PEM certificate: {e}", path.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        Ok(Poster {
            config: config.clone(),
            client,
        })
    }

    pub async fn post(&self, body: &Body<'_>) -> Outcome {
        let secret = match std::fs::read(&self.config.secret_file) {
            Ok(s) => trim_line_end(s),
            Err(e) => {
                return Outcome::Temporary(format!(
                    "cannot read the webhook secret {}: {e}",
                    self.config.secret_file.display()
                ))
            }
        };
        let bytes = match serde_json::to_vec(body) {
            Ok(b) => b,
            Err(e) => return Outcome::Permanent(e.to_string()),
        };
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .to_string();
        let signature = sign(&secret, &timestamp, &bytes);
        let sent = self
            .client
            .post(&self.config.url)
            .header("content-type", "application/json")
            .header("x-locker-hub-id", body.id)
            .header("x-locker-hub-timestamp", &timestamp)
            .header("x-locker-hub-signature", format!("v1={signature}"))
            .body(bytes)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Outcome::Sent,
            Ok(r) => {
                let status = r.status();
                let said: String = r
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                let why = format!("the gateway answered {status}: {}", said.trim());
                if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
                    Outcome::Temporary(why)
                } else {
                    Outcome::Permanent(why)
                }
            }
            Err(e) if e.is_timeout() => Outcome::Temporary(format!(
                "no answer from the gateway within {} s",
                self.config.timeout.as_secs()
            )),
            Err(e) => Outcome::Temporary(format!("cannot reach the gateway: {e}")),
        }
    }
}

/// Hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        // Any key length is accepted by HMAC; this cannot happen.
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn trim_line_end(mut s: Vec<u8>) -> Vec<u8> {
    while matches!(s.last(), Some(b'\n' | b'\r')) {
        s.pop();
    }
    s
}
