//! Per-bank certificates: the strong way for a bank controller to log in (`[mqtt] tls =
//! { …, bank_certificates = true }`).
//!
//! - `locker-hub init` makes a site CA in `DATA_DIR/tls/site-ca.{crt,key}` (kept if present).
//! - `locker-hub bank enroll BANK` issues a client certificate for one bank, signed by that CA,
//!   and records its SHA-256 fingerprint in `DATA_DIR/tls/enrolled.json`.
//! - The TLS listener asks for a client certificate; rustls checks that it chains to the site CA,
//!   and the front door maps the certificate's fingerprint to its bank, reading the enrolment
//!   file at every connect. A bank logged in this way has exactly a bank controller's rights
//!   (`locker_gate::acl`), and no password is involved.
//! - `locker-hub bank revoke BANK` marks the bank's certificates revoked: the next connection
//!   with one of them is refused.
//!
//! Mapping by fingerprint rather than by a name inside the certificate means a certificate the
//! hub did not enrol is refused even if someone got the CA key to sign it, and revocation is a
//! line in a file rather than a CRL to distribute.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};

/// The site CA's certificate and key, relative to the data directory.
pub fn site_ca_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("site-ca.crt"), dir.join("site-ca.key"))
}

/// The enrolment file, relative to the data directory.
pub fn enrolled_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("enrolled.json")
}

/// The CA's distinguished name; fixed, so the CA can be rebuilt from its key to sign.
const CA_NAME: &str = "locker-hub site CA";

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2046, 1, 1);
    params
}

/// Create the site CA unless it exists. Returns what it did.
pub fn ensure_site_ca(data_dir: &Path) -> Result<String, String> {
    let (cert_path, key_path) = site_ca_paths(data_dir);
    if cert_path.exists() && key_path.exists() {
        return Ok(format!("site CA {} already exists", cert_path.display()));
    }
    let dir = cert_path.parent().unwrap_or(data_dir);
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let key = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let cert = ca_params()
        .self_signed(&key)
        .map_err(|e| format!("cannot make the site CA: {e}"))?;
    crate::files::write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    crate::files::write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(format!(
        "created the site CA for bank certificates: {}",
        cert_path.display()
    ))
}

/// One enrolled certificate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Enrolled {
    pub bank: String,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub sha256: String,
    /// When it was issued (Unix ms).
    pub issued_ms: u64,
    /// When it was revoked (Unix ms); a revoked certificate never logs in again.
    #[serde(default)]
    pub revoked_ms: Option<u64>,
}

/// The enrolment file: every certificate `bank enroll` issued.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Registry {
    pub certificates: Vec<Enrolled>,
}

/// What a presented certificate is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Bank(String),
    Revoked(String),
    Unknown,
}

impl Registry {
    /// Read the file; a missing file is an empty registry.
    pub fn load(path: &Path) -> Result<Registry, String> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not a valid enrolment file: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    fn save(&self, path: &Path) -> Result<(), String> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        crate::files::replace_file(path, &bytes, 0o644)
    }

    /// Which bank a certificate (its DER) belongs to.
    pub fn lookup(&self, der: &[u8]) -> Lookup {
        let fp = fingerprint(der);
        match self.certificates.iter().find(|c| c.sha256 == fp) {
            Some(c) if c.revoked_ms.is_some() => Lookup::Revoked(c.bank.clone()),
            Some(c) => Lookup::Bank(c.bank.clone()),
            None => Lookup::Unknown,
        }
    }
}

pub use crate::files::fingerprint;

/// `locker-hub bank enroll`: issue a certificate for `bank` of the site configured at
/// `config_path`, write `BANK.crt`, `BANK.key` and the CA a controller needs into `out`, and
/// enrol it. Returns what to tell the installer.
pub fn enroll(config_path: &Path, bank: &str, out: &Path) -> Result<String, String> {
    let config = locker_config::load(config_path).map_err(|p| p.to_string())?;
    if config.bank(bank).is_none() {
        return Err(format!(
            "no bank `{bank}` in {}: enrol banks the configuration names",
            config_path.display()
        ));
    }
    let data_dir = &config.site.data_dir;
    ensure_site_ca(data_dir)?;
    let (ca_cert_path, ca_key_path) = site_ca_paths(data_dir);
    let ca_key_pem = fs::read_to_string(&ca_key_path)
        .map_err(|e| format!("cannot read {}: {e}", ca_key_path.display()))?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)
        .map_err(|e| format!("{} is not a key: {e}", ca_key_path.display()))?;
    let ca = ca_params()
        .self_signed(&ca_key)
        .map_err(|e| format!("cannot load the site CA: {e}"))?;

    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, bank);
    params.distinguished_name.push(
        DnType::OrganizationName,
        format!("locker bank of site {}", config.site.id),
    );
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    // Five years; revoke and enrol again if a controller is replaced or compromised.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let year = 1970 + (now.as_secs() / 31_557_600) as i32;
    params.not_after = rcgen::date_time_ymd(year + 5, 1, 1);
    let key = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .map_err(|e| format!("cannot sign the certificate: {e}"))?;

    fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let cert_out = out.join(format!("{bank}.crt"));
    let key_out = out.join(format!("{bank}.key"));
    crate::files::write_file(&key_out, key.serialize_pem().as_bytes(), 0o600)?;
    crate::files::write_file(&cert_out, cert.pem().as_bytes(), 0o644)?;
    let ca_out = out.join("site-ca.crt");
    fs::copy(&ca_cert_path, &ca_out)
        .map_err(|e| format!("cannot copy the site CA to {}: {e}", ca_out.display()))?;

    let path = enrolled_path(data_dir);
    let mut registry = Registry::load(&path)?;
    let sha256 = fingerprint(cert.der());
    registry.certificates.push(Enrolled {
        bank: bank.to_owned(),
        sha256: sha256.clone(),
        issued_ms: now.as_millis() as u64,
        revoked_ms: None,
    });
    registry.save(&path)?;
    Ok(format!(
        "enrolled a certificate for bank {bank} (SHA-256 {sha256}):\n  {}\n  {}\n\
         Install both on the bank's controller; it connects to the hub's TLS listener with them \
         and no password. The hub's own certificate is the server certificate to trust.",
        cert_out.display(),
        key_out.display()
    ))
}

/// `locker-hub bank revoke`: every certificate of `bank` is refused from the next connect on.
pub fn revoke(config_path: &Path, bank: &str) -> Result<String, String> {
    let config = locker_config::load(config_path).map_err(|p| p.to_string())?;
    let path = enrolled_path(&config.site.data_dir);
    let mut registry = Registry::load(&path)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut count = 0;
    for c in registry
        .certificates
        .iter_mut()
        .filter(|c| c.bank == bank && c.revoked_ms.is_none())
    {
        c.revoked_ms = Some(now);
        count += 1;
    }
    if count == 0 {
        return Err(format!("bank {bank} has no certificate to revoke"));
    }
    registry.save(&path)?;
    Ok(format!(
        "revoked {count} certificate(s) of bank {bank}; connections already open stay until they drop"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_maps_fingerprints_and_knows_revoked_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enrolled.json");
        assert_eq!(Registry::load(&path).unwrap(), Registry::default());
        let reg = Registry {
            certificates: vec![
                Enrolled {
                    bank: "A".into(),
                    sha256: fingerprint(b"cert-a"),
                    issued_ms: 1,
                    revoked_ms: None,
                },
                Enrolled {
                    bank: "B".into(),
                    sha256: fingerprint(b"cert-b"),
                    issued_ms: 1,
                    revoked_ms: Some(2),
                },
            ],
        };
        reg.save(&path).unwrap();
        let reg = Registry::load(&path).unwrap();
        assert_eq!(reg.lookup(b"cert-a"), Lookup::Bank("A".into()));
        assert_eq!(reg.lookup(b"cert-b"), Lookup::Revoked("B".into()));
        assert_eq!(reg.lookup(b"other"), Lookup::Unknown);
        fs::write(&path, b"not json").unwrap();
        assert!(Registry::load(&path).is_err());
    }
}
