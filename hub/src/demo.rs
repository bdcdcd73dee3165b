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
