//! `locker-hub`: the on-premises edge hub for smart package lockers, as a library the binary
//! (`main.rs`) and the tests drive.
//!
//! Read it top-down: [`daemon`] starts the pieces ([`broker`], [`bus`], the drivers in [`banks`],
//! the web page from `locker-web`, the sync links in [`link`]) around the application (`locker-app`) and stops them;
//! [`demo`] builds a site that needs no hardware. [`daemon::Hub::start`] takes a configuration
//! and a notification sink, so a test runs the real hub in-process on ephemeral ports.

pub mod bank_certs;
pub mod banks;
pub mod broker;
pub mod bus;
pub mod daemon;
pub mod demo;
pub use locker_app::files;
pub mod inbound;
pub mod init;
pub mod join;
pub mod link;
pub mod logging;
pub mod shutdown;
pub mod status;
pub mod systemd;
pub mod tls;
pub mod user_cli;

pub use daemon::{run, Hub, Listening, StartError};
