//! Local secrets sealed at rest: the outbox's notifications (plaintext pickup codes) and the
//! kept PINs of live codes are written to `state.redb` encrypted (ChaCha20-Poly1305 from
//! aws-lc-rs, the library rustls already runs on), under a key derived from the site key, with
//! the row's key as associated data (a sealed value moved to another row does not open).
//!
//! What it buys: no code is ever in the file in plain, so neither a row nor a page redb freed
//! after the row was erased shows one to a scan, a backup or a support bundle. What it does
//! not: the key is in the same file (`meta`), so whoever holds the whole disk can open what is
//! still there; full-disk encryption is the protection against a stolen hub (docs/state.md).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Marks a sealed value (a plaintext one, from an earlier version, starts with `{`).
const MAGIC: &[u8] = b"\0ls1";

pub(crate) struct Sealer {
    key: LessSafeKey,
}

impl Sealer {
    pub(crate) fn new(site_key: &[u8; 32]) -> Sealer {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(site_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"locker-hub local secrets v1");
        let derived = mac.finalize().into_bytes();
        let key = UnboundKey::new(&CHACHA20_POLY1305, &derived)
            .unwrap_or_else(|_| unreachable!("32 bytes is ChaCha20-Poly1305's key length"));
        Sealer {
            key: LessSafeKey::new(key),
        }
    }

    /// `plain`, sealed for the row `label`.
    pub(crate) fn seal(&self, label: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        if getrandom::fill(&mut nonce).is_err() {
            // No OS randomness: the process cannot make keys or codes either; the caller's
            // write fails below on the poisoned value rather than reusing a nonce.
            return Vec::new();
        }
        let mut body = plain.to_vec();
        if self
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(label.as_bytes()),
                &mut body,
            )
            .is_err()
        {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out
    }

    /// What `bytes` (read from row `label`) holds: opened if sealed, as it is if it was written
    /// in plain by an earlier version; `None` if it is sealed and does not open.
    pub(crate) fn open(&self, label: &str, bytes: &[u8]) -> Option<Vec<u8>> {
        let Some(rest) = bytes.strip_prefix(MAGIC) else {
            return Some(bytes.to_vec());
        };
        if rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(label.as_bytes()), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_their_row_and_hide_the_plaintext() {
        let s = Sealer::new(&[7; 32]);
        let sealed = s.seal("code/c-1", b"048202");
        assert!(!sealed.windows(6).any(|w| w == b"048202"));
        assert_eq!(s.open("code/c-1", &sealed).as_deref(), Some(&b"048202"[..]));
        assert_eq!(s.open("code/c-2", &sealed), None, "moved to another row");
        assert_eq!(
            Sealer::new(&[8; 32]).open("code/c-1", &sealed),
            None,
            "another site"
        );
        assert_ne!(
            s.seal("code/c-1", b"048202"),
            sealed,
            "a fresh nonce each time"
        );
        // An earlier version's plaintext row reads as it is.
        assert_eq!(
            s.open("x", b"{\"a\":1}").as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
    }
}
