//! `locker-app`: the application layer between the workflow core and the hub's adapters (the
//! web page and JSON API in `locker-web`, the MQTT bus and the daemon in `locker-hub`).
//!
//! Read it in this order: [`engine`] (the one thread that owns the core and the store: every
//! input becomes a [`engine::Job`] on one queue, decided, made durable, then acted on), then
//! [`App`] (the handle adapters hold) and its typed services in [`services`], then [`AppError`]
//! (the one error type the services answer with).
//!
//! Every service takes the [`Actor`] the adapter authenticated. Workflow rules and who may send
//! which request live in `locker-core` (`need_for`, `authorize`); the services add only what is
//! not a workflow: staff accounts, the outbox hand-off, read access to views.

pub mod accounts;
pub mod analytics;
pub mod clock;
pub mod engine;
pub mod error;
pub mod facts;
pub mod files;
pub mod health;
pub mod history;
pub mod notify;
pub mod pairing;
pub mod passwords;
pub mod roll;
pub mod services;
pub mod storage;
pub mod sync;
pub mod time;
pub mod wire;

pub use error::AppError;
pub use services::{Actor, App, Issued};
