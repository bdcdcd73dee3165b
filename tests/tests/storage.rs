//! A full or read-only disk, through the real binary on a small real filesystem (a tmpfs, or an
//! ext4 image on a loop device, mounted for the test): requests that need recording get a reply that says why, `/healthz` turns
//! `degraded`, an alert is shown, and the hub resumes by itself when space returns, with nothing
//! confirmed lost. Needs root (or password-less sudo) to mount; says so and skips otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use locker_tests::kiosk::Kiosk;
use locker_tests::{base_config, kiosks, Hub};
use serde_json::{json, Value};

/// A small filesystem mounted at `at` for as long as it lives: a tmpfs, or an ext4 image on a
/// loop device (which can be made to fail the way a dying disk does).
struct SmallDisk {
    at: PathBuf,
    sudo: bool,
    /// The loop device of an ext4 image.
    loop_dev: Option<String>,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Run a command as root (directly, or through password-less sudo); `None` if it fails.
fn privileged(args: &[&str]) -> Option<std::process::Output> {
    let mut cmd = if is_root() {
        Command::new(args[0])
    } else {
        let mut c = Command::new("sudo");
        c.arg("-n").arg(args[0]);
        c
    };
    cmd.args(&args[1..])
        .output()
        .ok()
        .filter(|o| o.status.success())
}

impl SmallDisk {
    fn mount(at: &Path, mib: u32) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).ok()?;
        let at_s = at.display().to_string();
        let size = format!("size={mib}m");
        privileged(&["mount", "-t", "tmpfs", "-o", &size, "tmpfs", &at_s])?;
        Some(SmallDisk {
            at: at.to_path_buf(),
            sudo: !is_root(),
            loop_dev: None,
        })
    }

    /// An ext4 filesystem of `mib` MiB (made afresh when `format`) that turns read-only on its
    /// first error.
    fn ext4(at: &Path, image: &Path, mib: u32, format: bool) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).ok()?;
        let image_s = image.display().to_string();
        if format {
            let file = std::fs::File::create(image).ok()?;
            file.set_len(u64::from(mib) * 1024 * 1024).ok()?;
            Command::new("mkfs.ext4")
                .args(["-q", "-F", &image_s])
                .status()
                .ok()
                .filter(|s| s.success())?;
        }
        let at_s = at.display().to_string();
        privileged(&["mount", "-o", "loop,errors=remount-ro", &image_s, &at_s])?;
        let source = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE", &at_s])
            .output()
            .ok()?;
        let dev = String::from_utf8_lossy(&source.stdout).trim().to_owned();
        Some(SmallDisk {
            at: at.to_path_buf(),
            sudo: !is_root(),
            loop_dev: Some(dev),
        })
    }

    /// The filesystem hits an error and the kernel makes it read-only under the running hub,
    /// as ext4 does with `errors=remount-ro` when the disk under it fails.
    fn fail(&self) {
        use std::io::Write;
        let dev = self.loop_dev.as_deref().expect("an ext4 disk");
        let name = dev.trim_start_matches("/dev/");
        let knob = format!("/sys/fs/ext4/{name}/trigger_fs_error");
        let mut cmd = if self.sudo {
            let mut c = Command::new("sudo");
            c.args(["-n", "tee"]);
            c
        } else {
            Command::new("tee")
        };
        let mut child = cmd
            .arg(&knob)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("tee");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"test: the disk failed\n")
            .expect("trigger");
        assert!(child.wait().expect("tee").success(), "cannot write {knob}");
    }

    /// Fill the disk until less than `leave` bytes are free.
    fn fill(&self, leave: u64) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.at.join("filler")).expect("filler");
        let chunk = vec![0x5au8; 64 * 1024];
        loop {
            if free(&self.at) < leave + chunk.len() as u64 {
                break;
            }
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
    }

    fn unfill(&self) {
        let _ = std::fs::remove_file(self.at.join("filler"));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let at = self.at.display().to_string();
        let _ = privileged(&["umount", "-l", &at]);
        if let Some(dev) = &self.loop_dev {
            let _ = privileged(&["losetup", "-d", dev]);
        }
    }
}

fn free(dir: &Path) -> u64 {
    let out = Command::new("stat")
        .args(["-f", "-c", "%a %S"])
        .arg(dir)
        .output()
        .expect("stat");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap_or(0));
    it.next().unwrap_or(0) * it.next().unwrap_or(0)
}

fn config(dir: &Path, reserve_mib: u32) -> String {
    base_config(dir).replace(
        "\n[mqtt]\n",
        &format!("storage_reserve_mib = {reserve_mib}\n\n[mqtt]\n"),
    ) + &format!(
        r#"
[policies]
carrier_open_reservations = 100

[[bank]]
id = "A"
driver = {{ kind = "mqtt" }}
{}compartments = [{{ doors = "1-300", size = "S" }}]
"#,
        kiosks(&["disk"])
    )
}

/// Mount a small disk where `base_config` keeps the data, and start the hub on it.
fn start(mib: u32, reserve_mib: u32) -> Option<(SmallDisk, Hub)> {
    let mut disk = None;
    let hub = Hub::start(|d| {
        disk = SmallDisk::mount(&d.join("data"), mib);
        config(d, reserve_mib)
    });
    match disk {
        Some(disk) => Some((disk, hub)),
        None => {
            eprintln!("SKIPPED: cannot mount a tmpfs (needs root or password-less sudo)");
            None
        }
    }
}

fn setup(hub: &Hub) {
    hub.register_unit_7_and_acme();
}

fn drop_off(id: &str) -> Value {
    json!({"request_id": id, "type": "start_drop_off", "bank": "A", "carrier_code": "555777",
        "recipient": {"type": "unit", "unit": "7"}, "size": "s"})
}

fn api_drop_off(hub: &Hub, id: &str) -> (u16, Value) {
    hub.api("POST", "/api/v1/commands", Some(&drop_off(id).to_string()))
}

fn wait_health(hub: &Hub, status: &str) -> Value {
    let start = Instant::now();
    loop {
        let h = hub.health();
        if h["status"] == status {
            return h;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "health never became {status}: {h}\n{}",
            hub.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn storage_alerts(hub: &Hub) -> Vec<Value> {
    hub.alerts_of("storage_unavailable")
}

fn reservations(hub: &Hub) -> usize {
    let (_, list) = hub.api("GET", "/api/v1/compartments", None);
    list.as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "reserved")
        .count()
}

#[test]
fn a_full_disk_is_a_clear_refusal_and_the_hub_resumes_by_itself() {
    let Some((disk, mut hub)) = start(48, 4) else {
        return;
    };
    setup(&hub);
    assert_eq!(api_drop_off(&hub, "before").0, 200);
    assert_eq!(hub.health()["status"], "ok");

    disk.fill(2 * 1024 * 1024);
    let (code, reply) = api_drop_off(&hub, "while-full");
    assert_eq!(code, 503, "{reply}");
    assert_eq!(reply["code"], "storage_unavailable", "{reply}");
    let message = reply["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("storage full") && message.contains("front desk"),
        "{message}"
    );
    // The kiosk on the bus gets the same answer, not silence.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answer = rt.block_on(async {
        let kiosk = Kiosk::connect_configured(hub.mqtt(), "A", "disk").await;
        kiosk
            .request(drop_off("kiosk-while-full"), Duration::from_secs(10))
            .await
    });
    let answer = answer.expect("the kiosk got a reply");
    assert_eq!(answer["type"], "rejected", "{answer}");
    assert_eq!(answer["code"], "storage_unavailable", "{answer}");
    let health = wait_health(&hub, "degraded");
    assert!(
        health["problems"].as_array().is_some_and(|p| p
            .iter()
            .any(|p| p.as_str().unwrap_or("").contains("storage full"))),
        "{health}"
    );
    assert!(health["storage"]["problem"].is_string(), "{health}");
    assert_eq!(storage_alerts(&hub).len(), 1, "the alert is shown");
    assert_eq!(
        reservations(&hub),
        1,
        "nothing was recorded for the refused requests"
    );

    // Space returns: the hub resumes by itself, no restart.
    let pid = hub.pid();
    disk.unfill();
    wait_health(&hub, "ok");
    assert!(storage_alerts(&hub).is_empty());
    let (code, reply) = api_drop_off(&hub, "after");
    assert_eq!(code, 200, "{reply}");
    assert_eq!(hub.pid(), pid);
    assert_eq!(reservations(&hub), 2);

    // Nothing confirmed was lost.
    hub.crash_and_restart();
    assert_eq!(reservations(&hub), 2);
}

/// With no reserve, the first write that does not fit fails in the middle of a commit: the hub
/// drops what it had decided, answers the request with a refusal and stays up.
#[test]
fn a_commit_the_disk_refuses_is_answered_and_loses_nothing_confirmed() {
    let Some((disk, mut hub)) = start(48, 0) else {
        return;
    };
    setup(&hub);
    disk.fill(0);
    let pid = hub.pid();
    let mut confirmed = 0;
    let mut refused = None;
    for i in 0..200 {
        let (code, reply) = api_drop_off(&hub, &format!("fill-{i}"));
        match code {
            200 if reply["type"] == "reserved" => confirmed += 1,
            200 | 409 => panic!("{reply}"),
            503 => {
                refused = Some(reply);
                break;
            }
            other => panic!("{other}: {reply}\n{}", hub.output()),
        }
    }
    let refused = refused.unwrap_or_else(|| {
        panic!(
            "the disk never refused a write ({confirmed} confirmed)\n{}",
            hub.output()
        )
    });
    assert_eq!(refused["code"], "storage_unavailable", "{refused}");
    assert_eq!(hub.pid(), pid, "the hub stayed up");
    // It was the commit that failed (no reserve to refuse it earlier), and the hub rebuilt its
    // state from disk.
    let out = hub.output();
    assert!(
        out.contains("the disk refused a write") && out.contains("state reloaded from disk"),
        "{out}"
    );
    eprintln!("{confirmed} reservations confirmed before the disk refused one");
    wait_health(&hub, "degraded");
    disk.unfill();
    wait_health(&hub, "ok");
    assert_eq!(reservations(&hub), confirmed);
    let (code, reply) = api_drop_off(&hub, "after");
    assert_eq!(code, 200, "{reply}");
    hub.crash_and_restart();
    assert_eq!(
        reservations(&hub),
        confirmed + 1,
        "every confirmed reservation survived"
    );
}

/// The disk fails under the running hub and the kernel makes it read-only: a clear refusal and
/// `degraded`, the hub stays up, and what was confirmed before is all there once the disk is
/// repaired (the hub stopped, the filesystem checked and mounted again).
#[test]
fn a_disk_that_turns_read_only_is_a_clear_refusal_and_the_hub_stays_up() {
    let mut disk = None;
    let images = tempfile::tempdir().expect("image dir");
    let image = images.path().join("disk.img");
    let img = image.clone();
    let mut hub = Hub::start(|d| {
        disk = SmallDisk::ext4(&d.join("data"), &img, 48, true);
        config(d, 4)
    });
    let Some(disk) = disk else {
        eprintln!("SKIPPED: cannot mount an ext4 image (needs root or password-less sudo)");
        return;
    };
    setup(&hub);
    assert_eq!(api_drop_off(&hub, "before").0, 200);
    let pid = hub.pid();
    disk.fail();
    let (code, reply) = api_drop_off(&hub, "read-only");
    assert_eq!(code, 503, "{reply}\n{}", hub.output());
    assert!(
        reply["message"]
            .as_str()
            .unwrap_or("")
            .contains("read-only"),
        "{reply}"
    );
    let health = wait_health(&hub, "degraded");
    assert!(
        health["storage"]["problem"]
            .as_str()
            .unwrap_or("")
            .contains("read-only"),
        "{health}"
    );
    assert_eq!(storage_alerts(&hub).len(), 1);
    // Still refusing, still up, a while later.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(api_drop_off(&hub, "still-read-only").0, 503);
    assert_eq!(hub.pid(), pid, "the hub stayed up");
    // Repaired while the hub is down: the confirmed reservation is there.
    let data = disk.at.clone();
    let mut repaired = None;
    hub.crash_and_restart_with(|| {
        drop(disk);
        let image_s = image.display().to_string();
        let _ = Command::new("e2fsck").args(["-fy", &image_s]).output();
        repaired = SmallDisk::ext4(&data, &image, 48, false);
    });
    assert!(repaired.is_some(), "the repaired disk mounts");
    assert_eq!(reservations(&hub), 1);
}

#[test]
fn a_hub_started_on_a_full_disk_says_so_instead_of_ok() {
    let Some((disk, mut hub)) = start(48, 4) else {
        return;
    };
    setup(&hub);
    assert_eq!(api_drop_off(&hub, "before").0, 200);
    disk.fill(1024 * 1024);
    hub.crash_and_restart();
    let h = hub.health();
    assert_eq!(h["status"], "degraded", "{h}");
    let (code, _) = api_drop_off(&hub, "while-full");
    assert_eq!(code, 503);
    disk.unfill();
    wait_health(&hub, "ok");
    assert_eq!(api_drop_off(&hub, "after").0, 200);
    assert_eq!(reservations(&hub), 2);
}
