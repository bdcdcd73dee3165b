//! The web page's budgets (issue #6), measured on the real binary:
//!
//! ```text
//! cargo build --release -p locker-hub && cargo run --release -p locker-hub --example web_bench
//! ```
//!
//! 1. Builds a year of history for a site of 300 compartments: the real workflow core
//!    (`locker-core`) is driven with simulated time through deliveries and PIN pickups, and every
//!    step's facts go into the real store (`locker-sync`) in the hub's own document layout
//!    (`locker_app::facts`, `locker_app::history`), as the engine would have written
//!    them over a year.
//! 2. Starts the real `locker-hub run` on that data directory (its banks are simulated
//!    controllers, so they are online) and measures over HTTP on loopback, with the API token:
//!    - the dashboard's server time (`GET /` and its live fragment `GET /dashboard/live`):
//!      request written → last byte read, p50/p99 over many renders, against 50 ms;
//!    - page weight: each page's HTML plus the CSS and JS it references, against 200 KB.
//!
//! The door event → open dashboard latency needs a browser: `tests/browser/latency.mjs`.
//! Numbers and the machine: `docs/performance.md`, "Web".

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use locker_core::{
    CarrierId, Core, Disposition, Effect, Entropy, Input, Millis, NotifyKind, Observation,
    Operator, Outcome, Output, ParcelId, Recipient, Request, RequestId, ResidentId, Size,
    TempClass,
};
use locker_sync::{Store, StoreOptions};

// The hub's own mapping of facts to documents, and its "open since" mark: the same code the
// daemon runs, so the generated store is the one a hub would have after a year.
use locker_app::facts::{self, StoredFact};
use locker_app::history;

const BANKS: usize = 6;
const DOORS_PER_BANK: u16 = 50;
const UNITS: usize = 400;
const PARCELS_PER_DAY: u64 = 160;
const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const RENDERS: usize = 400;
const BUDGET_BYTES: usize = 200 * 1024;

fn main() {
    // WEB_BENCH_DIR keeps the generated year there and reuses it on the next run.
    let scratch;
    let dir: PathBuf = match std::env::var_os("WEB_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            scratch = tempfile::Builder::new()
                .prefix("locker-hub-web-bench-")
                .tempdir()
                .expect("temporary directory");
            scratch.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir).expect("bench directory");
    let config_path = write_config(&dir);
    let config = locker_config::load(&config_path).unwrap_or_else(|e| panic!("{e}"));

    if dir.join("data/state.redb").exists() {
        println!("history: reusing {}", dir.display());
    } else {
        let started = Instant::now();
        let made = generate_year(&config);
        println!(
            "history: {} parcels over {} days ({} more found no room), {} facts, {} still in lockers ({} overdue), made in {:.1} s",
            made.parcels,
            days(),
            made.no_room,
            made.facts,
            made.left_in,
            made.overdue,
            started.elapsed().as_secs_f64()
        );
    }
    let size = std::fs::metadata(dir.join("data/state.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("store: {:.1} MB", size as f64 / 1e6);
    if std::env::args().any(|a| a == "--year-only") {
        // `tests/bench --year DIR`: the year and its hub.toml, nothing measured.
        println!(
            "serve it with: locker-hub run --config {}",
            config_path.display()
        );
        return;
    }

    let mut hub = RunningHub::start(&config_path);
    let token = std::fs::read_to_string(dir.join("data/api-token"))
        .expect("api-token")
        .trim()
        .to_owned();
    let mut http = Http::connect(hub.web, &token);
    // The simulated controllers connect within moments: measure with every bank online.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = http.get("/api/v1/banks");
        if body.matches("\"online\":true").count() == BANKS {
            break;
        }
        assert!(Instant::now() < until, "banks did not come online: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A hub that is busy while nobody asks anything makes every page wait for its engine.
    let before = hub.cpu_ticks();
    std::thread::sleep(Duration::from_secs(3));
    let busy = (hub.cpu_ticks() - before) as f64 / 100.0 / 3.0;
    println!("hub CPU while idle (3 s): {:.1} % of a core", busy * 100.0);
    println!("hub RSS after start: {:.1} MB", hub.rss_mb());

    println!("\ndashboard, {BANKS} banks x {DOORS_PER_BANK} = {} compartments, {RENDERS} renders each (request -> last byte, loopback, keep-alive):", BANKS * DOORS_PER_BANK as usize);
    // The dashboard's parts: the engine's alert list (a job on the engine thread), the
    // snapshot behind the compartments API, and a route that touches neither.
    for path in [
        "/",
        "/dashboard/live",
        "/api/v1/alerts",
        "/api/v1/compartments",
        "/healthz",
    ] {
        for _ in 0..20 {
            http.get(path);
        }
        let mut times = Vec::with_capacity(RENDERS);
        let mut bytes = 0;
        for _ in 0..RENDERS {
            let t = Instant::now();
            let (status, body) = http.get(path);
            times.push(t.elapsed());
            assert_eq!(status, 200, "{path}: {body}");
            bytes = body.len();
        }
        times.sort();
        let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!(
            "  GET {path:<20} {bytes:>7} B  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  (target < 50 ms)",
            ms(p(0.5)),
            ms(p(0.99)),
            ms(p(1.0))
        );
    }

    println!("\npage weight (HTML + referenced CSS/JS, budget 200 KB) with a year of history:");
    for path in [
        "/",
        "/parcels",
        "/alerts",
        "/audit",
        "/kiosk/b1/pickup",
        "/system",
        "/analytics",
        "/units",
        "/residents",
        "/carriers",
    ] {
        let (status, html) = http.get(path);
        if status != 200 {
            println!("  {path:<18} (answers {status}: not measured)");
            continue;
        }
        let mut assets = 0;
        let mut names = Vec::new();
        for asset in referenced_assets(&html) {
            let (s, body) = http.get(&asset);
            assert_eq!(s, 200, "{asset}");
            assets += body.len();
            names.push(asset);
        }
        let total = html.len() + assets;
        println!(
            "  {path:<18} {:>7} B html + {:>5} B assets = {:>6.1} KB  {}",
            html.len(),
            assets,
            total as f64 / 1024.0,
            if total <= BUDGET_BYTES {
                "ok"
            } else {
                "OVER BUDGET"
            }
        );
    }
    hub.stop();
}

/// Days of history: a year, unless `WEB_BENCH_DAYS` says otherwise (a quick trial run).
fn days() -> u64 {
    std::env::var("WEB_BENCH_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(365)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `/assets/...` named in `src=` or `href=` attributes (quoted or not).
fn referenced_assets(html: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for attr in ["src=", "href="] {
        for (i, _) in html.match_indices(attr) {
            let rest = html[i + attr.len()..].trim_start_matches('"');
            if let Some(path) = rest.strip_prefix("/assets/") {
                let end = path
                    .find(|c: char| c == '"' || c == '>' || c.is_whitespace())
                    .unwrap_or(path.len());
                let asset = format!("/assets/{}", &path[..end]);
                if !out.contains(&asset) {
                    out.push(asset);
                }
            }
        }
    }
    out
}

/// Six banks of 50 doors in five columns, each a simulated controller (so the hub shows them
/// online); 400 units.
fn write_config(dir: &Path) -> PathBuf {
    let mut text = format!(
        "[site]\nid = \"bench\"\nname = \"Web benchmark\"\ndata_dir = \"{}/data\"\n\n\
         [mqtt]\nlistener = {{ bind = \"127.0.0.1:0\" }}\nallow_anonymous = true\n\n\
         [web]\nbind = \"127.0.0.1:0\"\n",
        dir.display()
    );
    for b in 1..=BANKS {
        text += &format!(
            "\n[[bank]]\nid = \"b{b}\"\nname = \"Bank {b}\"\nlocation = \"Floor {b}\"\n\
             driver = {{ kind = \"sim\" }}\ncompartments = [\n\
             {{ doors = \"1-10\", size = \"XS\", column = 1 }},\n\
             {{ doors = \"11-20\", size = \"S\", column = 2 }},\n\
             {{ doors = \"21-30\", size = \"S\", column = 3 }},\n\
             {{ doors = \"31-38\", size = \"M\", column = 4 }},\n\
             {{ doors = \"39-40\", size = \"M\", column = 4, accessible = true }},\n\
             {{ doors = \"41-46\", size = \"L\", column = 5 }},\n\
             {{ doors = \"47-49\", size = \"XL\", column = 5 }},\n\
             {{ door = 50, size = \"bulk\", column = 5, accessible = true }},\n]\n"
        );
    }
    let path = dir.join("hub.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// SplitMix64: a repeatable year (the daemon uses the OS RNG).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

impl Entropy for Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

struct Made {
    parcels: u64,
    facts: u64,
    left_in: usize,
    overdue: usize,
    /// Drop-offs that found no free compartment (the parcel went to the desk).
    no_room: u64,
}

/// What happens to a delivered parcel later.
enum Later {
    Pickup {
        bank: String,
        pin: String,
    },
    Remove {
        bank: String,
        door: u16,
    },
    /// Staff hand a parcel that went to the desk (no compartment free) over.
    Desk {
        parcel: ParcelId,
    },
}

/// The core with simulated time, and the facts it made since the last append.
struct Sim {
    core: Core,
    rng: Rng,
    pending: Vec<StoredFact>,
    facts: u64,
    requests: u64,
}

impl Sim {
    fn step(&mut self, at: u64, input: Option<Input>) -> Output {
        let out = match input {
            Some(i) => self.core.handle(Millis(at), i, &mut self.rng),
            None => self.core.tick(Millis(at), &mut self.rng),
        };
        self.facts += out.facts.len() as u64;
        self.pending
            .extend(out.facts.iter().cloned().map(StoredFact::from));
        out
    }

    fn cmd(&mut self, at: u64, request: Request) -> Option<Outcome> {
        self.requests += 1;
        let input = Input::Command(locker_core::Command {
            request_id: RequestId(format!("bench-{}", self.requests)),
            request,
        });
        self.step(at, Some(input)).reply.map(|r| r.outcome)
    }

    fn obs(&mut self, at: u64, obs: Observation) -> Output {
        self.step(at, Some(Input::Observation(obs)))
    }

    /// The lock pulses, the door opens, and closes again at `closed_at`.
    fn door_cycle(&mut self, bank: &str, door: u16, at: u64, closed_at: u64) -> Output {
        let bank = bank.to_owned();
        self.obs(
            at + 400,
            Observation::LockAcknowledged {
                bank: bank.clone(),
                door,
                unlock: None,
            },
        );
        self.obs(
            at + 900,
            Observation::DoorOpened {
                bank: bank.clone(),
                door,
            },
        );
        self.obs(closed_at, Observation::DoorClosed { bank, door })
    }
}

/// The year, event by event in time order, through the real core; facts are appended to the
/// store once per simulated hour (the engine commits per step; batching only saves fsyncs).
fn generate_year(config: &locker_config::Config) -> Made {
    let hub_id = locker_core::sanitize_hub_id(&config.site.id);
    let opts = StoreOptions {
        site_id: Some(config.site.id.clone()),
        retention_months: config.site.retention_months,
        ..StoreOptions::default()
    };
    let (mut store, _, _) =
        Store::<StoredFact>::open(&config.site.data_dir, &hub_id, opts).expect("open the store");
    let mut sim = Sim {
        core: Core::new(
            facts::site_layout(config),
            facts::policies(config),
            store.site_key(),
            &hub_id,
            Vec::new(),
        ),
        rng: Rng(42),
        pending: Vec::new(),
        facts: 0,
        requests: 0,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let start = now - days() * DAY;
    let mut parcels = 0u64;
    let mut no_room = 0u64;
    let by = Operator::Staff { id: "bench".into() };
    for u in 0..UNITS {
        sim.cmd(
            start,
            Request::RegisterResident {
                by: by.clone(),
                resident: ResidentId(format!("r-{u}")),
                unit: format!("{}", 100 + u),
                accessible: u % 25 == 0,
                mode: locker_core::RegisterMode::Upsert,
                contact: Default::default(),
            },
        );
    }
    sim.cmd(
        start,
        Request::RegisterCarrier {
            by: by.clone(),
            carrier: CarrierId("acme".into()),
            name: "Acme Parcels".into(),
            email: None,
        },
    );
    sim.cmd(
        start,
        Request::IssueCarrierCode {
            by,
            carrier: CarrierId("acme".into()),
            code: "135790".into(),
        },
    );
    let banks: Vec<String> = config.banks.iter().map(|b| b.id.clone()).collect();
    for bank in &banks {
        sim.obs(start, Observation::ControllerOnline { bank: bank.clone() });
    }

    // Pickups (and staff removals) waiting to happen, in time order: (time, parcel number).
    let mut pickups: BTreeMap<(u64, u64), Later> = BTreeMap::new();
    let sizes = [
        Size::ExtraSmall,
        Size::Small,
        Size::Small,
        Size::Medium,
        Size::Medium,
        Size::Large,
    ];
    let mut hour = start;
    let mut month_end = start + 30 * DAY;
    while hour < now {
        let next_hour = (hour + HOUR).min(now);
        // Deliveries this hour: all in the daytime, none at night.
        let h = (hour / HOUR) % 24;
        let expected = if (8..20).contains(&h) {
            PARCELS_PER_DAY / 12
        } else {
            0
        };
        let mut arrivals: Vec<u64> = (0..expected).map(|_| hour + sim.rng.below(HOUR)).collect();
        arrivals.sort();
        let later = pickups.split_off(&(next_hour, 0));
        let mut due = std::mem::replace(&mut pickups, later)
            .into_iter()
            .peekable();
        let mut arrivals = arrivals.into_iter().peekable();
        loop {
            let pickup_first = match (due.peek(), arrivals.peek()) {
                (Some(((t, _), _)), Some(a)) => t <= a,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if pickup_first {
                let Some(((at, _), later)) = due.next() else {
                    break;
                };
                let (bank, request) = match later {
                    Later::Desk { parcel } => {
                        sim.cmd(
                            at,
                            Request::DeskPickup {
                                by: Operator::Staff { id: "bench".into() },
                                parcels: vec![parcel],
                            },
                        );
                        continue;
                    }
                    Later::Pickup { bank, pin } => {
                        (bank.clone(), Request::PickupByPin { bank, pin })
                    }
                    Later::Remove { bank, door } => (
                        bank.clone(),
                        Request::RemoveParcels {
                            by: Operator::Staff { id: "bench".into() },
                            bank,
                            door,
                            disposition: Disposition::ReturnToSender,
                            reason: "not collected".into(),
                        },
                    ),
                };
                if let Some(Outcome::Opening { doors, .. }) = sim.cmd(at, request) {
                    for door in doors {
                        sim.door_cycle(&bank, door, at, at + 30_000);
                    }
                }
                continue;
            }
            let Some(at) = arrivals.next() else { break };
            let resident = ResidentId(format!("r-{}", sim.rng.below(UNITS as u64)));
            let bank = banks[sim.rng.below(banks.len() as u64) as usize].clone();
            let size = sizes[sim.rng.below(sizes.len() as u64) as usize];
            let reserved = sim.cmd(
                at,
                Request::StartDropOff {
                    bank,
                    carrier_code: "135790".into(),
                    recipient: Recipient::Resident { resident },
                    size: Some(size),
                    dimensions: None,
                    temperature: TempClass::Ambient,
                    share: false,
                    tracking: Some(format!("1Z{at:x}")),
                },
            );
            let Some(Outcome::Reserved {
                reservation,
                bank,
                door,
                ..
            }) = reserved
            else {
                no_room += 1;
                // It went to the desk: the resident fetches it there within two days.
                if let Some(Outcome::LockerFull { parcel }) = reserved {
                    let after = HOUR + sim.rng.below(47 * HOUR);
                    pickups.insert((at + after, u64::MAX - no_room), Later::Desk { parcel });
                }
                continue;
            };
            sim.obs(
                at + 400,
                Observation::LockAcknowledged {
                    bank: bank.clone(),
                    door,
                    unlock: None,
                },
            );
            sim.obs(
                at + 900,
                Observation::DoorOpened {
                    bank: bank.clone(),
                    door,
                },
            );
            sim.cmd(
                at + 5_000,
                Request::ConfirmParcel {
                    reservation,
                    tracking: None,
                },
            );
            let out = sim.obs(
                at + 8_000,
                Observation::DoorClosed {
                    bank: bank.clone(),
                    door,
                },
            );
            parcels += 1;
            let pin = out.effects.iter().find_map(|e| match e {
                Effect::Notify {
                    pin: Some(pin),
                    kind: NotifyKind::Delivered,
                    ..
                } => Some(pin.clone()),
                _ => None,
            });
            // Most residents come within two days. One in 50 never comes: staff send it back
            // a few days after the hold ran out, except in the last three weeks, so the page
            // has overdue doors to draw.
            if let Some(pin) = pin {
                if sim.rng.below(50) != 0 {
                    let after = HOUR + sim.rng.below(47 * HOUR);
                    pickups.insert((at + after, parcels), Later::Pickup { bank, pin });
                } else if now - at > 21 * DAY {
                    let after = 8 * DAY + sim.rng.below(DAY);
                    pickups.insert((at + after, parcels), Later::Remove { bank, door });
                }
            }
        }
        sim.step(next_hour, None);
        store.append(&sim.pending).expect("append");
        sim.pending.clear();
        if next_hour >= month_end {
            // What the engine's hourly maintenance does, once a simulated month.
            history::refresh_mark(&mut store, &sim.core);
            let keep_from = history::read_mark(&store).expect("mark");
            store.maintain(next_hour, keep_from).expect("maintain");
            month_end += 30 * DAY;
        }
        hour = next_hour;
    }
    history::refresh_mark(&mut store, &sim.core);
    let compartments = sim.core.compartments();
    Made {
        parcels,
        facts: sim.facts,
        left_in: compartments
            .iter()
            .filter(|c| !c.parcels.is_empty())
            .count(),
        overdue: compartments
            .iter()
            .filter(|c| c.status == locker_core::CompartmentStatus::Expired)
            .count(),
        no_room,
    }
}

/// The real binary, started like the tests start it (`tests/src/lib.rs`): its ready line says
/// where it listens.
struct RunningHub {
    child: Child,
    web: SocketAddr,
}

impl RunningHub {
    fn start(config: &Path) -> RunningHub {
        let bin = std::env::var_os("LOCKER_HUB_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                // target/<profile>/examples/web_bench → target/<profile>/locker-hub
                let exe = std::env::current_exe().expect("own path");
                exe.parent()
                    .and_then(Path::parent)
                    .expect("target directory")
                    .join("locker-hub")
            });
        assert!(
            bin.exists(),
            "{} is missing: build it first (cargo build --release -p locker-hub)",
            bin.display()
        );
        let started = Instant::now();
        let mut child = Command::new(&bin)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start locker-hub");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let web = loop {
            let line = lines
                .next()
                .expect("locker-hub exited before its ready line")
                .expect("read");
            if let Some(rest) = line.strip_prefix("locker-hub ready:") {
                let w = rest
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("web=http://"))
                    .expect("web address");
                break w.parse().expect("address");
            }
        };
        // Keep reading so the hub never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        println!(
            "hub: {} started on the year's store in {:.0} ms ({})",
            bin.display(),
            ms(started.elapsed()),
            web
        );
        RunningHub { child, web }
    }

    /// User + system CPU time of the hub so far, in clock ticks (100 per second on Linux).
    fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at ") ".
        let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
        f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
    }

    /// Resident set size, in MB.
    fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    }

    fn stop(&mut self) {
        // SIGTERM: a clean shutdown.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client with keep-alive: the time measured is the hub's, not a client
/// library's.
struct Http {
    stream: BufReader<TcpStream>,
    token: String,
}

impl Http {
    fn connect(addr: SocketAddr, token: &str) -> Http {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        Http {
            stream: BufReader::new(s),
            token: token.to_owned(),
        }
    }

    fn get(&mut self, path: &str) -> (u16, String) {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {}\r\n\r\n",
            self.token
        );
        self.stream
            .get_mut()
            .write_all(req.as_bytes())
            .expect("send");
        let mut status_line = String::new();
        self.stream.read_line(&mut status_line).expect("status");
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut length = None;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).expect("header");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                self.stream.read_line(&mut size).expect("chunk size");
                let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
                let mut chunk = vec![0; n + 2];
                self.stream.read_exact(&mut chunk).expect("chunk");
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            self.stream.read_exact(&mut body).expect("body");
        }
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}
