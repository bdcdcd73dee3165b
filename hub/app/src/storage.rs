//! Whether the data directory can take writes, as the engine finds out and `/healthz` and the
//! web page report it.
//!
//! A full or read-only disk is not a crash: the hub stays up and says so. The engine checks the
//! filesystem of the data directory before every step (`statvfs`, a few microseconds):
//!
//! - with less than `[site] storage_reserve_mib` free, or read-only, the storage is **degraded**:
//!   requests that would need a durable write are refused with a reply that says why, never
//!   silence; observations of doors and sensors still go in (the reserve is for them, and for the
//!   facts of unlocks already under way), so nothing that happened at the lockers is lost while
//!   there is room;
//! - a commit that fails for lack of space or a read-only filesystem (the reserve was too small,
//!   or set to 0) drops what was not made durable: the engine reopens the store and rebuilds the
//!   core from disk, refuses the request that hit it, and goes on degraded;
//! - it checks again every few seconds, and resumes by itself once there is room, with no
//!   restart.
//!
//! The alert for it is kept in memory (it cannot be written), logged, published on the alerts
//! topic and shown with the other alerts.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The storage health the engine maintains and `/healthz` reads.
pub struct StorageHealth {
    dir: PathBuf,
    reserve: u64,
    state: Mutex<StorageState>,
    /// After a refused commit: refuse everything until then, whatever `statvfs` says (a quota,
    /// or a reserve of 0), so the engine does not reload at every step.
    held: Mutex<Option<(Instant, String)>>,
}

/// How long a refused commit holds writes off before one is tried again.
const HOLD_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// The last check.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StorageState {
    /// Bytes free for the hub in the data directory's filesystem (`None`: not measured yet or
    /// not measurable).
    pub free_bytes: Option<u64>,
    pub reserve_bytes: u64,
    /// Why writes are refused, while they are.
    pub problem: Option<String>,
    /// Since when (Unix milliseconds).
    pub since_ms: Option<u64>,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Writes must be refused: why.
    Refuse(String),
}

impl StorageHealth {
    pub fn new(dir: &Path, reserve: u64) -> StorageHealth {
        StorageHealth {
            dir: dir.to_path_buf(),
            reserve,
            state: Mutex::new(StorageState {
                free_bytes: None,
                reserve_bytes: reserve,
                problem: None,
                since_ms: None,
            }),
            held: Mutex::new(None),
        }
    }

    /// Whether a commit was refused within the last few seconds: then even observations wait.
    pub fn recently_failed(&self) -> bool {
        let held = match self.held.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        held.as_ref()
            .is_some_and(|(until, _)| Instant::now() < *until)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, StorageState> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Measure the filesystem now; a commit that just failed for lack of space (`failed`) keeps
    /// the storage degraded until the next measurement finds room.
    pub fn check(&self, failed: Option<&str>) -> Verdict {
        let measured = free_space(&self.dir);
        let held = {
            let mut held = match self.held.lock() {
                Ok(h) => h,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(why) = failed {
                *held = Some((Instant::now() + HOLD_AFTER_FAILURE, why.to_owned()));
            }
            match held.as_ref() {
                Some((until, why)) if Instant::now() < *until => Some(why.clone()),
                _ => None,
            }
        };
        let mut s = self.state();
        let verdict = match (&measured, held) {
            (_, Some(why)) => Verdict::Refuse(why),
            (Ok(fs), None) if fs.read_only => Verdict::Refuse(format!(
                "storage is read-only: the data directory {} cannot be written",
                self.dir.display()
            )),
            (Ok(fs), None) if fs.available < self.reserve => Verdict::Refuse(format!(
                "storage full: {} free in {}, {} kept in reserve",
                mib(fs.available),
                self.dir.display(),
                mib(self.reserve)
            )),
            // Cannot measure (an odd filesystem): trust the commits to say.
            (Ok(_), None) | (Err(_), None) => Verdict::Ok,
        };
        s.free_bytes = measured.ok().map(|fs| fs.available);
        match &verdict {
            Verdict::Ok => {
                s.problem = None;
                s.since_ms = None;
            }
            Verdict::Refuse(why) => {
                if s.problem.is_none() {
                    s.since_ms = Some(unix_ms());
                }
                s.problem = Some(why.clone());
            }
        }
        verdict
    }

    pub fn snapshot(&self) -> StorageState {
        self.state().clone()
    }
}

/// Whether `error` (anywhere in its chain of causes) says the disk is full or read-only: a state
/// of the machine the hub can wait out, rather than a fault of its own.
pub fn is_out_of_space(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io_is_out_of_space(io) {
                return true;
            }
        }
        cause = e.source();
    }
    // redb wraps I/O errors in its own types and sometimes only in their text.
    let text = error.to_string();
    text.contains("No space left on device")
        || text.contains("Read-only file system")
        || text.contains("Disk quota exceeded")
}

/// The reason to give for a refused write, from the error that refused it.
pub fn describe(error: &(dyn std::error::Error + 'static), dir: &Path) -> String {
    let mut read_only = error.to_string().contains("Read-only file system");
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            read_only |= io.kind() == io::ErrorKind::ReadOnlyFilesystem
                || io.raw_os_error() == Some(libc::EROFS);
        }
        cause = e.source();
    }
    if read_only {
        format!(
            "storage is read-only: the data directory {} cannot be written",
            dir.display()
        )
    } else {
        format!(
            "storage full: the data directory {} refused a write",
            dir.display()
        )
    }
}

fn io_is_out_of_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull
            | io::ErrorKind::ReadOnlyFilesystem
            | io::ErrorKind::QuotaExceeded
    ) || matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EROFS) | Some(libc::EDQUOT)
    )
}

struct FsSpace {
    available: u64,
    read_only: bool,
}

fn free_space(dir: &Path) -> io::Result<FsSpace> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with a NUL byte"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a valid NUL-terminated string and `st` is writable memory of the right
    // size; statvfs fills it on success and we read it only then.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so the struct is initialised.
    let st = unsafe { st.assume_init() };
    Ok(FsSpace {
        available: st.f_bavail.saturating_mul(st.f_frsize),
        read_only: st.f_flag & libc::ST_RDONLY != 0,
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Now on the hub's clock (the one the facts are stamped with).
fn unix_ms() -> u64 {
    crate::clock::now().0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_directory_is_measured_and_a_huge_reserve_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let ok = StorageHealth::new(dir.path(), 0);
        assert_eq!(ok.check(None), Verdict::Ok);
        assert!(ok.snapshot().free_bytes.is_some());
        let full = StorageHealth::new(dir.path(), u64::MAX);
        match full.check(None) {
            Verdict::Refuse(why) => assert!(why.starts_with("storage full"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(full.snapshot().problem.is_some());
        assert!(full.snapshot().since_ms.is_some());
    }

    #[test]
    fn out_of_space_is_recognised_through_wrappers() {
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(is_out_of_space(&e));
        let e = io::Error::from_raw_os_error(libc::EROFS);
        assert!(is_out_of_space(&e));
        let e = io::Error::from_raw_os_error(libc::EIO);
        assert!(!is_out_of_space(&e));
    }
}
