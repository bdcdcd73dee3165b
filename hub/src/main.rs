//! `locker-hub`: the command line. Everything it runs is in the library (`lib.rs`): this file
//! parses arguments, sets up the process (logging, fail-stop on panic, the runtime), and calls
//! [`daemon::run`] or a one-shot command.

use locker_hub::{bank_certs, daemon, demo, init, join, logging, user_cli};

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use locker_app::notify::{NotificationSink, OutboxOnly};

#[derive(Parser)]
#[command(
    name = "locker-hub",
    version,
    about = "On-premises edge hub for smart package lockers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub with a configuration file.
    Run {
        /// The site configuration.
        #[arg(long, short, default_value = locker_config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Run a demo site: two simulated banks, no hardware and no configuration needed.
    Demo(demo::DemoArgs),
    /// Check a configuration file: print every problem (exit 2) or a one-line summary (exit 0).
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Read a password on standard input and print its argon2 hash for the configuration file.
    HashPassword,
    /// Manage staff accounts for the web page (on the running hub, through its API).
    #[command(subcommand)]
    User(UserCommand),
    /// Per-bank client certificates for the MQTT TLS listener (`bank_certificates = true`).
    #[command(subcommand)]
    Bank(BankCommand),
    /// Prepare a new installation: a self-signed TLS certificate and the site CA for bank
    /// certificates in DATA_DIR/tls (kept if present). With --join, also join the site of a
    /// hub that ran `locker-hub pair`, before this hub's first start.
    Init {
        /// The hub's data directory (with --join, the configuration's is used).
        #[arg(long, default_value = locker_config::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// The other hub's sync address (`wss://HOST:PORT`), as `locker-hub pair` printed it.
        #[arg(long, requires_all = ["code", "fingerprint"])]
        join: Option<String>,
        /// The pairing code `locker-hub pair` printed on the other hub.
        #[arg(long, requires = "join")]
        code: Option<String>,
        /// The other hub's certificate fingerprint (SHA-256), as `locker-hub pair` printed it.
        #[arg(long, requires = "join")]
        fingerprint: Option<String>,
        /// This hub's configuration (with --join: its data directory and site id).
        #[arg(long, short, default_value = locker_config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Let a second hub of the site join this one: print a one-time pairing code (valid 10
    /// minutes) and this hub's certificate fingerprint, for `locker-hub init --join` there.
    Pair {
        /// The site configuration (`[sync] listen` must be set).
        #[arg(long, short, default_value = locker_config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Stop trusting a paired hub: its next sync connection is refused.
    Unpair {
        /// The other hub's id (as `locker-hub init --join` printed it, and /healthz shows it).
        hub: String,
        /// The site configuration.
        #[arg(long, short, default_value = locker_config::DEFAULT_PATH)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum BankCommand {
    /// Issue a client certificate for one bank's controller, signed by the site CA, and enrol it.
    Enroll {
        /// The bank id, as in the configuration.
        bank: String,
        /// Where to write BANK.crt, BANK.key and site-ca.crt.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// The site configuration (for the data directory and the bank ids).
        #[arg(long, short, default_value = locker_config::DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Revoke every certificate of a bank: its next connection with one is refused.
    Revoke {
        /// The bank id.
        bank: String,
        /// The site configuration.
        #[arg(long, short, default_value = locker_config::DEFAULT_PATH)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input (prompted on a terminal).
    Add {
        /// User name (a-z, 0-9, '.', '_', '-').
        name: String,
        /// admin, staff or kiosk.
        #[arg(long)]
        role: String,
        /// The site configuration (for the web address and the data directory).
        #[arg(long, short, default_value = locker_config::DEFAULT_PATH)]
        config: PathBuf,
        /// The hub's web address, when it is not the configured `[web] bind` (e.g. port 0).
        #[arg(long)]
        web: Option<std::net::SocketAddr>,
    },
}

/// Exit code for a configuration with problems (documented for installers' scripts).
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match locker_config::load(&file) {
            Ok(config) => {
                // The message templates too, each problem with its file and line.
                let templates = config.notify.as_ref().and_then(|n| n.templates.as_deref());
                if let Err(problems) = locker_deliver::templates::Templates::load(templates) {
                    for p in problems {
                        eprintln!("{p}");
                    }
                    return ExitCode::from(EXIT_BAD_CONFIG);
                }
                println!("{}: OK: {}", file.display(), config.summary());
                ExitCode::SUCCESS
            }
            Err(problems) => {
                eprintln!("{problems}");
                ExitCode::from(EXIT_BAD_CONFIG)
            }
        },
        Command::HashPassword => hash_password(),
        Command::User(UserCommand::Add {
            name,
            role,
            config,
            web,
        }) => match user_cli::add(&config, web, &name, &role) {
            Ok(done) => {
                println!("{done}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("locker-hub user add: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Bank(command) => {
            let (what, result) = match command {
                BankCommand::Enroll { bank, out, config } => {
                    ("enroll", bank_certs::enroll(&config, &bank, &out))
                }
                BankCommand::Revoke { bank, config } => {
                    ("revoke", bank_certs::revoke(&config, &bank))
                }
            };
            match result {
                Ok(done) => {
                    println!("{done}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("locker-hub bank {what}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Init {
            data_dir,
            join: None,
            ..
        } => report("init", init::run(&data_dir)),
        Command::Init {
            join: Some(url),
            code,
            fingerprint,
            config,
            ..
        } => {
            let runtime = match runtime() {
                Ok(r) => r,
                Err(code) => return code,
            };
            let joined = runtime.block_on(join::join(
                &config,
                &url,
                code.as_deref().unwrap_or_default(),
                fingerprint.as_deref().unwrap_or_default(),
            ));
            report("init --join", joined)
        }
        Command::Pair { config } => report("pair", join::pair(&config)),
        Command::Unpair { hub, config } => report("unpair", join::unpair(&config, &hub)),
        Command::Run { config } => {
            logging::init();
            let config = match locker_config::load(&config) {
                Ok(c) => c,
                Err(problems) => {
                    eprintln!("{problems}");
                    return ExitCode::from(EXIT_BAD_CONFIG);
                }
            };
            serve(config, Arc::new(OutboxOnly), |hub| {
                println!("{}", hub.listening().ready_line())
            })
        }
        Command::Demo(args) => {
            logging::init();
            let data = match tempfile::Builder::new()
                .prefix("locker-hub-demo-")
                .tempdir()
            {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("cannot create a temporary data directory: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let (config, notes) = demo::config(&args, data.path());
            for note in notes {
                println!("{note}");
            }
            let started = std::time::Instant::now();
            match demo::history(&config, demo::HISTORY_DAYS, 7) {
                Ok(h) => tracing::info!(
                    days = h.days,
                    parcels = h.parcels,
                    facts = h.facts,
                    ms = started.elapsed().as_millis() as u64,
                    "demo history written"
                ),
                // The demo still works without it, with empty charts.
                Err(e) => tracing::warn!(error = %e, "the demo starts without history"),
            }
            let code = serve_demo(config);
            drop(data);
            code
        }
    }
}

/// Print what a one-shot command did, or why it failed.
fn report(what: &str, result: Result<String, String>) -> ExitCode {
    match result {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("locker-hub {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A multi-threaded runtime for the daemon.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

/// The demo: the hub with a printing notification sink, its accounts and directory seeded, and
/// a banner.
fn serve_demo(config: locker_config::Config) -> ExitCode {
    daemon::fail_stop_on_panic();
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let result = runtime.block_on(async {
        let hub = locker_hub::Hub::start(config, Arc::new(demo::Printing)).await?;
        if let Err(e) = demo::seed(hub.app()).await {
            // The banner would advertise accounts and residents that are not there.
            hub.stop().await;
            return Err(locker_hub::StartError::Demo(e));
        }
        println!("{}", hub.listening().ready_line());
        println!("{}", demo::banner(hub.listening()));
        use std::io::Write;
        let _ = std::io::stdout().flush();
        daemon::signal().await;
        tracing::info!("shutting down");
        hub.stop().await;
        tracing::info!("stopped");
        Ok::<(), locker_hub::StartError>(())
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("locker-hub: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run the daemon on a multi-threaded runtime, then leave the process at once: rumqttd's threads
/// cannot be stopped any other way.
fn serve(
    config: locker_config::Config,
    notifications: Arc<dyn NotificationSink>,
    on_ready: impl FnOnce(&locker_hub::Hub),
) -> ExitCode {
    daemon::fail_stop_on_panic();
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let result = runtime.block_on(daemon::run(
        config,
        notifications,
        daemon::signal(),
        |hub| {
            on_ready(hub);
            use std::io::Write;
            let _ = std::io::stdout().flush();
        },
    ));
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("locker-hub: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hash_password() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("cannot read the password from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let password = input.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!(
            "empty password: type it on standard input, e.g. `locker-hub hash-password < file`"
        );
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    match locker_app::passwords::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot hash the password: {e}");
            ExitCode::FAILURE
        }
    }
}
