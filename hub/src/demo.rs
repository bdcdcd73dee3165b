//! `locker-hub demo`: a working site with no hardware and no configuration.
//!
//! The built-in demo configuration has two simulated banks whose controllers connect through the
//! broker like real ones. Data lives in a temporary directory that is removed on exit. Fixed
//! default ports make the printed URLs predictable; a port that is taken falls back to a free one
//! with a message saying so.

use std::net::{IpAddr, SocketAddr, TcpListener};

use locker_app::notify::{Notification, NotificationSink};
use locker_app::{Actor, App, AppError};
use locker_config::{Config, Listener};
use locker_core::{
    CarrierId, Command, Operator, RegisterMode, Request, RequestId, ResidentId, Role,
};

/// Demo-mode options from the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// MQTT port (falls back to a free port if taken).
    #[arg(long, default_value_t = 1883)]
    pub mqtt_port: u16,
    /// Web page port (falls back to a free port if taken).
    #[arg(long, default_value_t = 8080)]
    pub web_port: u16,
    /// Address to listen on; 0.0.0.0 makes the demo reachable from other machines on the LAN.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
}

/// The demo configuration with its ports and data directory filled in. Returns the messages to
/// show about ports that were taken.
pub fn config(args: &DemoArgs, data_dir: &std::path::Path) -> (Config, Vec<String>) {
    let mut config = locker_config::demo();
    let mut notes = Vec::new();
    config.site.data_dir = data_dir.to_path_buf();
    let mqtt = pick_port(args.bind, args.mqtt_port, "MQTT", &mut notes);
    let web = pick_port(args.bind, args.web_port, "web", &mut notes);
    config.mqtt.listener = Some(Listener {
        bind: mqtt,
        allow: Vec::new(),
    });
    config.mqtt.tls = None;
    config.web.bind = web;
    config.web.tls = None;
    (config, notes)
}

/// `port` on `ip` if it can be bound now; otherwise a free one (and a note saying so).
fn pick_port(ip: IpAddr, port: u16, what: &str, notes: &mut Vec<String>) -> SocketAddr {
    let wanted = SocketAddr::new(ip, port);
    if TcpListener::bind(wanted).is_ok() {
        return wanted;
    }
    match TcpListener::bind(SocketAddr::new(ip, 0)).and_then(|l| l.local_addr()) {
        Ok(free) => {
            notes.push(format!(
                "{what} port {port} is taken; using {} instead (choose one with --{}-port)",
                free.port(),
                what.to_lowercase()
            ));
            free
        }
        // Let the daemon report the bind error with its own message.
        Err(_) => wanted,
    }
}

/// What demo mode prints once the hub is up.
pub fn banner(listening: &crate::daemon::Listening) -> String {
    let host = |a: SocketAddr| {
        if a.ip().is_unspecified() {
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), a.port())
        } else {
            a
        }
    };
    let mut text =
        String::from("\nlocker-hub demo is running (two simulated banks, no hardware needed)\n");
    text += &format!("  web page:       http://{}/\n", host(listening.web));
    text += &format!("  health:         http://{}/healthz\n", host(listening.web));
    if let Some(m) = listening.mqtt {
        let m = host(m);
        text +=
            &format!("  MQTT broker:    mqtt://{m}  (anonymous clients may read; kiosks log in as kiosk-A or kiosk-B, password {DEMO_ADMIN_PASSWORD}, replies under lockerhub/v1/bank/A|B/kiosk/reply/demo)\n");
        text += &format!(
            "  watch the bus:  mosquitto_sub -h {} -p {} -t 'lockerhub/v1/bank/+/state' -t 'lockerhub/v1/site/alerts' -v\n",
            m.ip(),
            m.port()
        );
    }
    text += &format!(
        "  try it:         carrier code {DEMO_CARRIER_CODE}; residents r-101 to r-112 live in units 101 to 112\n"
    );
    text += &format!(
        "  history:        the last {HISTORY_DAYS} days of deliveries (all collected) fill the charts, audit and parcel history\n"
    );
    text += &format!(
        "  sign in:        admin, staff or kiosk (the kiosk page), password {DEMO_ADMIN_PASSWORD}\n"
    );
    text += "  stop with Ctrl-C; demo data is thrown away on exit\n";
    text
}

/// The password of the demo's `admin`, `staff` and `kiosk` web accounts (printed in the banner;
/// demo data is thrown away on exit).
pub const DEMO_ADMIN_PASSWORD: &str = "demo-password";

/// The demo's carrier access code, printed in the banner.
pub const DEMO_CARRIER_CODE: &str = "246810";

/// The demo's notification sink: each notification printed, codes and all, so the whole flow
/// can be walked through by hand (the demo's data is thrown away on exit).
pub struct Printing;

impl NotificationSink for Printing {
    fn queued(&self, n: &Notification<'_>) {
        let parcels: Vec<&str> = n.parcels.iter().map(|p| p.as_str()).collect();
        let line = format!(
            "demo notification ({:?}) for resident {}: parcels {}, PIN {}, QR {}",
            n.kind,
            n.resident,
            parcels.join(" "),
            n.pin.unwrap_or("-"),
            n.qr.unwrap_or("-"),
        );
        tracing::info!("{line}");
        println!("{line}");
    }

    fn carrier_code_queued(&self, c: &locker_app::notify::CarrierCode<'_>) {
        let line = format!(
            "demo carrier code for {}: {} (ref {})",
            c.carrier, c.code, c.code_ref
        );
        tracing::info!("{line}");
        println!("{line}");
    }
}

/// Seed the demo site through the application's services, as its admin would: an admin, a staff
/// and a kiosk account, residents in units 101 to 112 (unit 104 needs accessible compartments)
/// and one carrier with a code, so a drop-off and a pickup can be tried at once. Request ids
/// are fixed: seeding twice is a no-op.
pub async fn seed(app: &App) -> Result<(), AppError> {
    for (name, role) in [("admin", "admin"), ("staff", "staff"), ("kiosk", "kiosk")] {
        match app.create_account(name, role, DEMO_ADMIN_PASSWORD).await {
            Ok(_) | Err(AppError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let admin = Actor::new("demo", Role::Admin);
    let mut requests: Vec<(String, Request)> = (101..=112)
        .map(|unit| {
            (
                format!("demo-seed-resident-{unit}"),
                Request::RegisterResident {
                    by: Operator::Cloud,
                    resident: ResidentId(format!("r-{unit}")),
                    unit: unit.to_string(),
                    accessible: unit == 104,
                    mode: RegisterMode::Upsert,
                    contact: Default::default(),
                },
            )
        })
        .collect();
    requests.push((
        "demo-seed-carrier".into(),
        Request::RegisterCarrier {
            by: Operator::Cloud,
            carrier: CarrierId("demo-carrier".into()),
            name: "Demo Parcel Co".into(),
            email: None,
        },
    ));
    requests.push((
        "demo-seed-carrier-code".into(),
        Request::IssueCarrierCode {
            by: Operator::Cloud,
            carrier: CarrierId("demo-carrier".into()),
            code: DEMO_CARRIER_CODE.into(),
        },
    ));
    for (id, request) in requests {
        let command = Command {
            request_id: RequestId(id),
            request,
        };
        app.command(&admin, command).await?;
    }
    Ok(())
}

/// What [`history`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct History {
    pub days: u64,
    pub parcels: u64,
    pub facts: u64,
}

/// Days of past activity the demo starts with.
pub const HISTORY_DAYS: u64 = 30;

/// A month of past deliveries and pickups, so a newcomer's dashboard, analytics, audit trail and
/// parcel history have something to show. It runs the real workflow core with simulated time,
/// as `hub/examples/web_bench.rs` does for a year, and writes its facts into the demo's fresh
/// store before the hub opens it: 4 to 12 parcels a working day, at both banks, by a carrier
/// of the past ("Old Parcel Co", whose code is revoked at the end), each collected with its PIN
/// within a day, a few at the desk. Nothing is left in a locker and no alert stays open, so the
/// site starts as the banner says; notifications of the past are not sent.
pub fn history(config: &Config, days: u64, seed: u64) -> Result<History, String> {
    use locker_app::facts::{self, StoredFact};
    use locker_core::{
        Core, Effect, Entropy, Input, Millis, NotifyKind, Observation, Outcome, Recipient, Size,
        TempClass,
    };

    const HOUR: u64 = 3_600_000;
    const DAY: u64 = 24 * HOUR;

    struct Sim {
        core: Core,
        rng: rand::rngs::StdRng,
        pending: Vec<StoredFact>,
        facts: u64,
        requests: u64,
    }
    struct Rng<'a>(&'a mut rand::rngs::StdRng);
    impl Entropy for Rng<'_> {
        fn fill(&mut self, buf: &mut [u8]) {
            rand::RngCore::fill_bytes(self.0, buf);
        }
    }
    impl Sim {
        fn step(&mut self, at: u64, input: Option<Input>) -> locker_core::Output {
            let mut entropy = Rng(&mut self.rng);
            let out = match input {
                Some(i) => self.core.handle(Millis(at), i, &mut entropy),
                None => self.core.tick(Millis(at), &mut entropy),
            };
            self.facts += out.facts.len() as u64;
            self.pending
                .extend(out.facts.iter().cloned().map(StoredFact::from));
            out
        }
        fn cmd(&mut self, at: u64, request: Request) -> Option<Outcome> {
            self.requests += 1;
            let input = Input::Command(Command {
                request_id: RequestId(format!("demo-history-{}", self.requests)),
                request,
            });
            self.step(at, Some(input)).reply.map(|r| r.outcome)
        }
        fn obs(&mut self, at: u64, obs: Observation) -> locker_core::Output {
            self.step(at, Some(Input::Observation(obs)))
        }
        /// The lock pulses, the door opens, and it is shut `open_ms` later.
        fn door_cycle(&mut self, bank: &str, door: u16, at: u64, open_ms: u64) {
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
            self.obs(at + open_ms, Observation::DoorClosed { bank, door });
        }
    }

    let hub_id = locker_app::engine::hub_id(config).map_err(|e| e.to_string())?;
    let options = locker_sync::StoreOptions {
        site_id: Some(config.site.id.clone()),
        retention_months: config.site.retention_months,
        ..locker_sync::StoreOptions::default()
    };
    let (mut store, stored, _) =
        locker_sync::Store::<StoredFact>::open(&config.site.data_dir, &hub_id, options)
            .map_err(|e| e.to_string())?;
    if !stored.is_empty() {
        return Err("the demo's history goes into a fresh data directory only".into());
    }
    let mut sim = Sim {
        core: Core::new(
            facts::site_layout(config),
            facts::policies(config),
            store.site_key(),
            &hub_id,
            Vec::new(),
        ),
        rng: rand::SeedableRng::seed_from_u64(seed),
        pending: Vec::new(),
        facts: 0,
        requests: 0,
    };
    let below = |sim: &mut Sim, n: u64| rand::Rng::random_range(&mut sim.rng, 0..n.max(1));
    let now = locker_app::clock::now().0;
    // Whole days of the site's own time, ending at its last midnight: everything of the past is
    // over by then, and deliveries fall in its working hours. (A change of summer time within
    // the month moves them by an hour.)
    let zone = locker_app::time::site_zone(config.site.time_zone.as_deref());
    let offset = i64::from(
        zone.to_offset(locker_app::time::instant(Millis(now)))
            .seconds(),
    ) * 1000;
    let local = now as i64 + offset;
    let end = (local - local.rem_euclid(DAY as i64) - offset) as u64;
    let start = end - days * DAY;
    // The time of the last thing done: nothing is done before it.
    let mut clock = start;
    let staff = Operator::Staff {
        id: locker_core::StaffId("demo".into()),
    };
    for unit in 101..=112 {
        sim.cmd(
            start,
            Request::RegisterResident {
                by: staff.clone(),
                resident: ResidentId(format!("r-{unit}")),
                unit: unit.to_string(),
                accessible: unit == 104,
                mode: RegisterMode::Upsert,
                contact: Default::default(),
            },
        );
    }
    let carrier = CarrierId("old-parcel-co".into());
    const OLD_CODE: &str = "975310";
    sim.cmd(
        start,
        Request::RegisterCarrier {
            by: staff.clone(),
            carrier: carrier.clone(),
            name: "Old Parcel Co".into(),
            email: None,
        },
    );
    sim.cmd(
        start,
        Request::IssueCarrierCode {
            by: staff.clone(),
            carrier: carrier.clone(),
            code: OLD_CODE.into(),
        },
    );
    let banks: Vec<String> = config.banks.iter().map(|b| b.id.clone()).collect();
    for bank in &banks {
        sim.obs(start, Observation::ControllerOnline { bank: bank.clone() });
    }
    let sizes = [
        Size::ExtraSmall,
        Size::Small,
        Size::Small,
        Size::Medium,
        Size::Large,
    ];
    // A pickup waiting to happen: at a bank with the PIN, or a desk parcel (no bank, its id).
    type Later = (Option<String>, String);
    let mut later: std::collections::BTreeMap<(u64, u64), Later> =
        std::collections::BTreeMap::new();
    let mut parcels = 0;
    for day in 0..days {
        let midnight = start + day * DAY;
        // Monday is 0; 1970-01-01 was a Thursday (3).
        let weekday = (((midnight as i64 + offset).div_euclid(DAY as i64)) + 3).rem_euclid(7);
        let count = if weekday < 5 {
            4 + below(&mut sim, 9)
        } else {
            below(&mut sim, 4)
        };
        let mut arrivals: Vec<u64> = (0..count)
            .map(|_| midnight + 9 * HOUR + below(&mut sim, 9 * HOUR))
            .collect();
        arrivals.sort_unstable();
        let mut hour = midnight;
        while hour < midnight + DAY {
            let next = hour + HOUR;
            let due = later.split_off(&(next, 0));
            let due = std::mem::replace(&mut later, due);
            // This hour's pickups and arrivals in time order, each after the last one's door
            // shut: facts are folded in time order at every start, so they are made in it too.
            let mut events: Vec<(u64, Option<Later>)> = due
                .into_iter()
                .map(|((at, _), p)| (at, Some(p)))
                .chain(
                    arrivals
                        .iter()
                        .filter(|a| (hour..next).contains(*a))
                        .map(|&at| (at, None)),
                )
                .collect();
            events.sort_by_key(|(at, _)| *at);
            for (at, event) in events {
                let at = at.max(clock + 1_000);
                let Some((bank, pin)) = event else {
                    clock = at + 8_000;
                    let resident = ResidentId(format!("r-{}", 101 + below(&mut sim, 12)));
                    let bank = banks[below(&mut sim, banks.len() as u64) as usize].clone();
                    let size = sizes[below(&mut sim, sizes.len() as u64) as usize];
                    let reserved = sim.cmd(
                        at,
                        Request::StartDropOff {
                            bank,
                            carrier_code: OLD_CODE.into(),
                            recipient: Recipient::Resident { resident },
                            size: Some(size),
                            dimensions: None,
                            temperature: TempClass::Ambient,
                            share: false,
                            tracking: Some(format!("1ZDEMO{at:x}")),
                        },
                    );
                    // Collected within a day, and before the history ends.
                    let collect = (at + HOUR + below(&mut sim, 20 * HOUR)).min(end - HOUR);
                    match reserved {
                        Some(Outcome::Reserved {
                            reservation,
                            bank,
                            door,
                            ..
                        }) => {
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
                            if let Some(pin) = pin {
                                later.insert((collect, parcels), (Some(bank), pin));
                            }
                        }
                        Some(Outcome::LockerFull { parcel }) => {
                            parcels += 1;
                            later.insert((collect, parcels), (None, parcel.to_string()));
                        }
                        _ => {}
                    }
                    continue;
                };
                clock = at + 20_000;
                match bank {
                    Some(bank) => {
                        let pickup = Request::PickupByPin {
                            bank: bank.clone(),
                            pin,
                        };
                        if let Some(Outcome::Opening { doors, .. }) = sim.cmd(at, pickup) {
                            for door in doors {
                                sim.door_cycle(&bank, door, at, 20_000);
                            }
                        }
                    }
                    None => {
                        sim.cmd(
                            at,
                            Request::DeskPickup {
                                by: staff.clone(),
                                parcels: vec![locker_core::ParcelId(pin)],
                            },
                        );
                    }
                }
            }
            sim.step(next, None);
            hour = next;
        }
        store.append(&sim.pending).map_err(|e| e.to_string())?;
        sim.pending.clear();
    }
    // The past carrier's code stops working; whatever is still open is settled.
    let last = clock.max(end - HOUR) + 1_000;
    let code_ref = sim.core.carrier_code_ref(OLD_CODE);
    if let Some(code_ref) = code_ref {
        sim.cmd(
            last,
            Request::RevokeCarrierCodeRef {
                by: staff.clone(),
                carrier,
                code_ref,
            },
        );
    }
    for alert in sim.core.alerts() {
        sim.cmd(
            last,
            Request::AcknowledgeAlert {
                by: staff.clone(),
                alert: alert.id,
                note: Some("demo history".into()),
            },
        );
    }
    store.append(&sim.pending).map_err(|e| e.to_string())?;
    locker_app::history::refresh_mark(&mut store, &sim.core);
    Ok(History {
        days,
        parcels,
        facts: sim.facts,
    })
}
