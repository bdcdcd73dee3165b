//! Secrets: keyed hashes of codes, PIN generation, signed QR tokens, random ids.
//!
//! Plaintext codes never enter facts. A PIN, badge id or carrier code is stored as
//! `HMAC-SHA256(key, domain || code)` in hex, with a key derived from the site key, so a leaked
//! fact log does not reveal codes and a 6-digit PIN cannot be brute-forced offline without the key.

use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ids::{CodeId, Millis, ParcelId, ResidentId};

type HmacSha256 = Hmac<Sha256>;

/// Cryptographically random bytes, supplied by the shell (OS RNG in the daemon, a seeded RNG in
/// tests). The core owns no randomness of its own.
pub trait Entropy {
    fn fill(&mut self, buf: &mut [u8]);
}

/// Keys derived from the site key, one per use, so a hash of one kind can never be replayed as
/// another and QR signatures are independent of code hashes.
#[derive(Clone)]
pub(crate) struct Keys {
    hash: [u8; 32],
    qr: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for p in parts {
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

impl Keys {
    pub(crate) fn derive(site_key: &[u8; 32]) -> Keys {
        Keys {
            hash: hmac(site_key, &[b"locker-core/code-hash/v1"]),
            qr: hmac(site_key, &[b"locker-core/qr-token/v1"]),
        }
    }

    pub(crate) fn pin_hash(&self, pin: &str) -> String {
        hex(&hmac(&self.hash, &[b"pin", pin.as_bytes()]))
    }

    pub(crate) fn badge_hash(&self, badge: &str) -> String {
        hex(&hmac(&self.hash, &[b"badge", badge.trim().as_bytes()]))
    }

    pub(crate) fn carrier_code_hash(&self, code: &str) -> String {
        hex(&hmac(&self.hash, &[b"carrier", code.trim().as_bytes()]))
    }

    /// Fingerprint of a request, to detect a request id reused for a different request. Keyed,
    /// because requests carry codes (a carrier code being issued, a PIN typed at a kiosk) and the
    /// fingerprint is recorded in a synced fact: a plain hash of a 6-digit code is brute-forced
    /// in a second.
    pub(crate) fn fingerprint<T: Serialize>(&self, value: &T) -> String {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        hex(&hmac(&self.hash, &[b"request", &bytes])[..16])
    }

    /// `LH1.<base64url payload>.<base64url HMAC>`: self-contained, so the kiosk can pass it on
    /// verbatim, and unforgeable without the site key.
    pub(crate) fn sign_qr(&self, token: &QrToken) -> String {
        let payload = match serde_json::to_vec(token) {
            Ok(p) => p,
            Err(_) => unreachable!("QrToken is plain data and always serialises"),
        };
        let body = BASE64URL_NOPAD.encode(&payload);
        let mac = hmac(&self.qr, &[QR_PREFIX.as_bytes(), body.as_bytes()]);
        format!("{QR_PREFIX}.{body}.{}", BASE64URL_NOPAD.encode(&mac))
    }

    /// Checks the signature (in constant time) and decodes the token. Expiry is the caller's.
    pub(crate) fn verify_qr(&self, token: &str) -> Result<QrToken, QrError> {
        let mut parts = token.trim().split('.');
        let (Some(prefix), Some(body), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(QrError::Malformed);
        };
        if prefix != QR_PREFIX {
            return Err(QrError::Malformed);
        }
        let sig = BASE64URL_NOPAD
            .decode(sig.as_bytes())
            .map_err(|_| QrError::Malformed)?;
        let mut mac = match HmacSha256::new_from_slice(&self.qr) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        for p in [QR_PREFIX.as_bytes(), body.as_bytes()] {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.verify_slice(&sig).map_err(|_| QrError::BadSignature)?;
        let payload = BASE64URL_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| QrError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| QrError::Malformed)
    }
}

const QR_PREFIX: &str = "LH1";

/// What a QR token carries. Single use follows from the state: once its parcels are collected
/// (or voided by a reassignment) the token opens nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QrToken {
    #[serde(rename = "c")]
    pub code: CodeId,
    #[serde(rename = "r")]
    pub resident: ResidentId,
    #[serde(rename = "p")]
    pub parcels: Vec<ParcelId>,
    #[serde(rename = "x")]
    pub expires: Millis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QrError {
    Malformed,
    BadSignature,
}

/// `digits` uniformly random decimal digits. Rejection sampling (bytes >= 250 are redrawn) keeps
/// every digit exactly uniform.
pub(crate) fn random_pin(entropy: &mut dyn Entropy, digits: usize) -> String {
    let mut pin = String::with_capacity(digits);
    let mut buf = [0u8; 16];
    while pin.len() < digits {
        entropy.fill(&mut buf);
        for b in buf {
            if b < 250 && pin.len() < digits {
                pin.push(char::from(b'0' + b % 10));
            }
        }
    }
    pin
}

/// A random id with a readable prefix: 64 bits is plenty against collisions between replicas.
pub(crate) fn random_id(entropy: &mut dyn Entropy, prefix: &str) -> String {
    let mut buf = [0u8; 8];
    entropy.fill(&mut buf);
    format!("{prefix}{}", hex(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u8);
    impl Entropy for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.0;
                self.0 = self.0.wrapping_add(37);
            }
        }
    }

    fn token() -> QrToken {
        QrToken {
            code: "c1".into(),
            resident: "r1".into(),
            parcels: vec!["p1".into()],
            expires: Millis(99),
        }
    }

    #[test]
    fn qr_token_round_trips() {
        let keys = Keys::derive(&[7; 32]);
        let t = keys.sign_qr(&token());
        assert_eq!(keys.verify_qr(&t), Ok(token()));
    }

    #[test]
    fn qr_token_from_another_key_or_tampered_is_rejected() {
        let keys = Keys::derive(&[7; 32]);
        let other = Keys::derive(&[8; 32]);
        let t = other.sign_qr(&token());
        assert_eq!(keys.verify_qr(&t), Err(QrError::BadSignature));

        // Swap in a payload naming another parcel but keep the old signature.
        let good = keys.sign_qr(&token());
        let mut forged = token();
        forged.parcels = vec!["p2".into()];
        let forged_body = keys.sign_qr(&forged);
        let sig = good.rsplit('.').next().unwrap_or_default();
        let body = forged_body.split('.').nth(1).unwrap_or_default();
        assert_eq!(
            keys.verify_qr(&format!("LH1.{body}.{sig}")),
            Err(QrError::BadSignature)
        );
        assert_eq!(keys.verify_qr("LH1.x"), Err(QrError::Malformed));
        assert_eq!(keys.verify_qr("nonsense"), Err(QrError::Malformed));
    }

    #[test]
    fn hashes_are_domain_separated_and_keyed() {
        let a = Keys::derive(&[1; 32]);
        let b = Keys::derive(&[2; 32]);
        assert_ne!(a.pin_hash("123456"), a.badge_hash("123456"));
        assert_ne!(a.pin_hash("123456"), a.carrier_code_hash("123456"));
        assert_ne!(a.pin_hash("123456"), b.pin_hash("123456"));
        assert_eq!(a.pin_hash("123456").len(), 64);
    }

    #[test]
    fn pins_have_the_requested_number_of_digits() {
        let mut e = Counter(0);
        for digits in [4, 6, 12] {
            let pin = random_pin(&mut e, digits);
            assert_eq!(pin.len(), digits);
            assert!(pin.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
