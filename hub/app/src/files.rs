//! Writing the hub's own files (keys, certificates, the enrolment list): whole, with a mode, and
//! synced to disk before the call returns.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Write `bytes` to `path` (created or replaced) with permissions `mode`, and sync it.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Replace `path` whole: write a temporary file next to it, sync it, and rename it over `path`,
/// so a reader (or a crash) sees the old file or the new one, never half of one.
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    write_file(&tmp, bytes, mode)?;
    fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))
}

/// A certificate's SHA-256 fingerprint (of its DER), lowercase hex: how the hub names a bank's
/// or another hub's certificate.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
