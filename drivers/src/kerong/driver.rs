//! Kerong boards as the [`link`](crate::link) and the [bank adapter](crate::adapter) drive them.

use std::time::Duration;

use super::{Reply, Request, LIMITS};
use crate::adapter::{LockBoards, LockState, Reading};
use crate::board::{BoardLock, Limits, Polarity};
use crate::codec::Decoded;
use crate::link::{Expect, Protocol};

/// How a bank of Kerong boards is wired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kerong {
    /// Meaning of the lock bits (sources disagree: verify on the hardware).
    pub polarity: Polarity,
    /// Unlock pulse written to each board when it first answers (and again whenever it comes
    /// back); `None` leaves the board's own setting. 500 ms suits solenoids, 1 s motor locks.
    pub pulse: Option<Duration>,
    /// How long to listen for the reply some firmware sends to an unlock. Without one, the
    /// unlock is confirmed by a status query instead (default 100 ms).
    pub unlock_reply_window: Duration,
    /// Whether the compartments have the boards' infrared item sensors wired.
    pub item_sensors: bool,
}

impl Default for Kerong {
    fn default() -> Self {
        Kerong {
            polarity: Polarity::OneIsClosed,
            pulse: None,
            unlock_reply_window: Duration::from_millis(100),
            item_sensors: false,
        }
    }
}

impl Protocol for Kerong {
    type Request = Request;
    type Reply = Reply;

    fn name(&self) -> &'static str {
        "kerong"
    }

    fn encode(&self, request: &Request) -> Vec<u8> {
        request.encode()
    }

    fn decode(&self, buf: &[u8], _pending: Option<&Request>) -> Decoded<Reply> {
        Reply::decode(buf)
    }

    fn answers(&self, reply: &Reply, request: &Request) -> bool {
        reply.answers(request)
    }

    fn expect(&self, request: &Request, timeout: Duration) -> Expect {
        match request {
            Request::Status { .. } | Request::StatusAll => Expect::Reply(timeout),
            // kerong-lib: no reply; CartWise: a status frame. Either is fine.
            Request::Unlock { .. } | Request::UnlockAll { .. } => {
                Expect::Optional(self.unlock_reply_window)
            }
            // Some firmware echoes the setting, most say nothing. Waiting a whole reply window
            // for it would hold up the first unlocks after start and after every board return;
            // a late echo is never taken for another request's answer (it must match it).
            Request::SetPulse { .. } => {
                Expect::Optional(self.unlock_reply_window.min(SETUP_REPLY_WINDOW))
            }
        }
    }

    fn device(&self, request: &Request) -> Option<u8> {
        request.board()
    }

    /// Without a reply we cannot tell a lost unlock from one that worked, and a second pulse
    /// on a door that just opened is not wanted: unlocks are sent once and then confirmed.
    fn retry_safe(&self, request: &Request) -> bool {
        !matches!(request, Request::Unlock { .. } | Request::UnlockAll { .. })
    }
}

/// How long a pulse-time write waits for an echo that most boards never send.
const SETUP_REPLY_WINDOW: Duration = Duration::from_millis(20);

impl LockBoards for Kerong {
    type Link = crate::link::Link<Self>;

    fn limits(&self) -> Limits {
        LIMITS
    }

    fn poll(&self, board: u8) -> Request {
        Request::Status { board }
    }

    fn unlock(&self, at: BoardLock) -> Request {
        Request::Unlock {
            board: at.board,
            lock: at.lock,
        }
    }

    fn setup(&self, board: u8) -> Option<Request> {
        let ms = self.pulse?.as_millis();
        Some(Request::SetPulse {
            board,
            tens_of_ms: u16::try_from(ms / 10).unwrap_or(u16::MAX),
        })
    }

    fn reading(&self, reply: &Reply) -> Option<Reading> {
        let Reply::Status(status) = reply else {
            return None;
        };
        let locks = (1..=16)
            .map(|lock| {
                let state = LockState {
                    open: status.is_open(lock, self.polarity),
                    occupied: self.item_sensors.then(|| status.item_present(lock)),
                };
                (lock, state)
            })
            .collect();
        Some(Reading {
            board: status.board,
            locks,
        })
    }

    fn firmware(&self) -> String {
        "Kerong KR-CU boards (locker-hub kerong driver)".into()
    }
}
