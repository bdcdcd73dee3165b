//! Live updates: `GET /events` is a server-sent-event stream that says "changed" whenever the
//! engine finished a step that changed what the dashboard shows (a door opened, a parcel landed,
//! a bank went offline). The page then fetches the fresh fragment it shows. The event carries no
//! information (its data is a constant "1"), so nothing leaks to a stream that outlives a
//! sign-out beyond "something happened".

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;

use super::auth::{Api, Staff};
use super::Web;

pub async fn events(State(web): State<Arc<Web>>, _who: Api<Staff>) -> Response {
    Sse::new(changes(web.app.changes()))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn changes(
    rx: tokio::sync::broadcast::Receiver<()>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            // A subscriber that fell behind just re-reads once: same answer.
            // The data must not be empty: browsers drop an event whose data is empty (the SSE
            // spec's dispatch rule), and the page would never hear of a change.
            Ok(()) | Err(RecvError::Lagged(_)) => {
                Some((Ok(Event::default().event("changed").data("1")), rx))
            }
            Err(RecvError::Closed) => None,
        }
    })
}
