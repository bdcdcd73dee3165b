//! The shutdown signal every long-running task listens for (as in mini-redis).

use tokio::sync::watch;

/// Sends the shutdown signal once.
pub struct Trigger(watch::Sender<bool>);

/// A task's view of the shutdown signal. Cheap to clone.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger and listener.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    /// Tell every task to stop.
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown has been signalled (at once if it already was).
    pub async fn wait(&mut self) {
        // The borrow guard `wait_for` returns is dropped here, so callers can hold this future
        // across `select!` in tasks that must be `Send`.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
