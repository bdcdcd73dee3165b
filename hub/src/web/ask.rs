//! Asking the engine: every web handler talks to the engine thread only through `Job`s on its
//! queue, and waits (bounded) for the answer.

use std::sync::mpsc::Sender;
use std::time::Duration;

use axum::http::StatusCode;
use locker_core::{Caller, Command, Operator, Reply, Request, RequestId, Role};
use tokio::sync::oneshot;

use crate::engine::{Job, ReplyTo};

/// How long a handler waits for the engine before answering 504.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(10);

/// The engine could not answer.
#[derive(Debug)]
pub struct Unavailable {
    pub status: StatusCode,
    pub message: String,
}

/// Send the job made by `make` and wait for its answer.
pub async fn job<T>(
    jobs: &Sender<Job>,
    make: impl FnOnce(oneshot::Sender<T>) -> Job,
) -> Result<T, Unavailable> {
    let (tx, rx) = oneshot::channel();
    if jobs.send(make(tx)).is_err() {
        return Err(Unavailable {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the hub is stopping".into(),
        });
    }
    match tokio::time::timeout(ENGINE_TIMEOUT, rx).await {
        Ok(Ok(v)) => Ok(v),
        _ => Err(Unavailable {
            status: StatusCode::GATEWAY_TIMEOUT,
            message: "no answer from the engine".into(),
        }),
    }
}

/// Compute something from the core on the engine thread (`read` gets the core and the time) and
/// wait for it. Keep `read` short: every other job waits while it runs.
pub async fn read<T: Send + 'static>(
    jobs: &Sender<Job>,
    read: impl FnOnce(&locker_core::Core, locker_core::Millis) -> T + Send + 'static,
) -> Result<T, Unavailable> {
    job(jobs, |tx| {
        Job::Read(Box::new(move |core, now| {
            let _ = tx.send(read(core, now));
        }))
    })
    .await
}

/// Run one workflow command for a caller with `role` through the engine and wait for the
/// core's reply (the core refuses what the role may not ask).
pub async fn command(
    jobs: &Sender<Job>,
    role: Role,
    command: Command,
) -> Result<Reply, Unavailable> {
    job(jobs, |tx| Job::Command {
        command,
        caller: Caller::User(role),
        reply: ReplyTo::Http(tx),
    })
    .await
}

/// A fresh, unique request id for an action taken on the web page.
pub fn request_id(prefix: &str) -> RequestId {
    let mut bytes = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    RequestId(format!("{prefix}-{hex}"))
}

/// A staff action by `user`, recorded under their name.
pub fn staff(user: &str) -> Operator {
    Operator::Staff {
        id: locker_core::StaffId(user.to_owned()),
    }
}

/// Wrap a request as a command with a fresh id.
pub fn new_command(prefix: &str, request: Request) -> Command {
    Command {
        request_id: request_id(prefix),
        request,
    }
}
