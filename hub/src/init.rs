//! `locker-hub init`: what a new installation needs before the first start.
//!
//! Today that is a self-signed TLS certificate for the MQTT TLS listener and the web page, so a
//! site is encrypted from the first minute (a property replaces it with its own certificate by
//! pointing the configuration elsewhere), and the site CA that signs per-bank client
//! certificates (`bank_certs`). Existing files are never overwritten.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DnType, KeyPair, SanType};

/// Where `init` puts the certificate and key, relative to the data directory.
pub fn tls_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (dir.join("hub.crt"), dir.join("hub.key"))
}

/// Create the self-signed certificate unless both files exist. Returns what it did, for the
/// installer's output.
pub fn run(data_dir: &Path) -> Result<String, String> {
    let server = server_certificate(data_dir)?;
    let ca = crate::bank_certs::ensure_site_ca(data_dir)?;
    Ok(format!("{server}\n{ca}"))
}

fn server_certificate(data_dir: &Path) -> Result<String, String> {
    let (cert_path, key_path) = tls_paths(data_dir);
    if cert_path.exists() && key_path.exists() {
        return Ok(format!(
            "TLS certificate {} already exists",
            cert_path.display()
        ));
    }
    let dir = cert_path.parent().unwrap_or(data_dir);
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let host = hostname();
    let mut params = CertificateParams::new(vec![host.clone(), "localhost".to_owned()])
        .map_err(|e| format!("bad host name {host:?}: {e}"))?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params
        .distinguished_name
        .push(DnType::CommonName, format!("locker-hub on {host}"));
    // Ten years: a self-signed certificate that expires silently in a mail room helps nobody.
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let key = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot make a certificate: {e}"))?;
    crate::files::write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    crate::files::write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(format!(
        "created a self-signed TLS certificate for {host}: {}",
        cert_path.display()
    ))
}

pub(crate) fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "locker-hub".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_usable_certificate_once_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path()).unwrap();
        let (cert, key) = tls_paths(dir.path());
        let first = fs::read(&cert).unwrap();
        crate::tls::acceptor(&cert, &key, &[]).expect("rustls accepts what init made");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        run(dir.path()).unwrap();
        assert_eq!(fs::read(&cert).unwrap(), first, "init never overwrites");
    }
}
