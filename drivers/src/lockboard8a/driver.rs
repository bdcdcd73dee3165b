//! 8A/80 boards as the [`link`](crate::link) and the [bank adapter](crate::adapter) drive them.

use std::time::Duration;

use super::{is_open, status_open, Reply, Request, LIMITS};
use crate::adapter::{LockBoards, LockState, Reading};
use crate::board::{BoardLock, Limits, Polarity};
use crate::codec::Decoded;
use crate::link::{Expect, Protocol};

/// How a bank of 8A/80 boards is wired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockboard8a {
    /// Meaning of the bits of the query-all reply (documented: 1 = closed).
    pub polarity: Polarity,
    /// Deadline for "unlock all", which pulses the locks one after another (default 10 s, as
    /// the one implementation that documents it waits).
    pub unlock_all_timeout: Duration,
}

impl Default for Lockboard8a {
    fn default() -> Self {
        Lockboard8a {
            polarity: Polarity::OneIsClosed,
            unlock_all_timeout: Duration::from_secs(10),
        }
    }
}

impl Protocol for Lockboard8a {
    type Request = Request;
    type Reply = Reply;

    fn name(&self) -> &'static str {
        "lockboard-8a"
    }

    fn encode(&self, request: &Request) -> Vec<u8> {
        request.encode()
    }

    fn decode(&self, buf: &[u8], pending: Option<&Request>) -> Decoded<Reply> {
        let shape = pending.map_or(super::Shape::Short, Request::reply_shape);
        Reply::decode(buf, shape)
    }

    fn answers(&self, reply: &Reply, request: &Request) -> bool {
        reply.answers(request)
    }

    fn expect(&self, request: &Request, timeout: Duration) -> Expect {
        match request {
            Request::UnlockAll { .. } => Expect::Reply(self.unlock_all_timeout.max(timeout)),
            Request::MultiUnlock { .. } => Expect::Nothing,
            _ => Expect::Reply(timeout),
        }
    }

    fn device(&self, request: &Request) -> Option<u8> {
        Some(request.board())
    }

    fn unsolicited(&self, reply: &Reply) -> bool {
        matches!(reply, Reply::Changed { .. })
    }

    /// Only reads are repeated. A lost or garbled reply to an unlock does not say the frame
    /// was lost: the board may have pulsed the lock, and a second frame is a second pulse, on
    /// a door the person may already have opened, used and left. So every frame that opens a
    /// door (unlock, unlock-all, multi-unlock) goes on the wire once, and an unconfirmed one is
    /// reported as such (the adapter's `unknown`), as on Kerong and Modbus banks. Listed by
    /// what may be repeated, so that a request added later is sent once until shown harmless.
    fn retry_safe(&self, request: &Request) -> bool {
        match request {
            Request::Query { .. } | Request::QueryAll { .. } => true,
            Request::Unlock { .. } | Request::UnlockAll { .. } | Request::MultiUnlock { .. } => {
                false
            }
        }
    }
}

impl LockBoards for Lockboard8a {
    type Link = crate::link::Link<Self>;

    fn limits(&self) -> Limits {
        LIMITS
    }

    fn poll(&self, board: u8) -> Request {
        Request::QueryAll { board }
    }

    fn unlock(&self, at: BoardLock) -> Request {
        Request::Unlock {
            board: at.board,
            lock: at.lock,
        }
    }

    fn setup(&self, _board: u8) -> Option<Request> {
        None
    }

    fn reading(&self, reply: &Reply) -> Option<Reading> {
        let one = |board: u8, lock: u8, status: u8| {
            let open = status_open(status)?;
            (lock != 0).then(|| Reading {
                board,
                locks: vec![(
                    lock,
                    LockState {
                        open,
                        occupied: None,
                    },
                )],
            })
        };
        match *reply {
            Reply::All { board, bits } => Some(Reading {
                board,
                locks: (1..=24)
                    .map(|lock| {
                        let open = is_open(bits, lock, self.polarity);
                        (
                            lock,
                            LockState {
                                open,
                                occupied: None,
                            },
                        )
                    })
                    .collect(),
            }),
            Reply::Unlock {
                board,
                lock,
                status,
            }
            | Reply::Lock {
                board,
                lock,
                status,
            }
            | Reply::Changed {
                board,
                lock,
                status,
            } => one(board, lock, status),
        }
    }

    fn firmware(&self) -> String {
        "8A/80 lock boards (locker-hub lockboard-8a driver)".into()
    }
}
