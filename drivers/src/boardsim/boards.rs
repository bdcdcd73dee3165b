//! What simulated boards do with a request: the doors they open and the reply they send.

use std::collections::{BTreeMap, BTreeSet};

use crate::board::Polarity;
use crate::codec::Decoded;
use crate::{kerong, lockboard8a};

/// Which protocol the simulated boards speak, and their firmware quirks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Kerong {
        unlock_reply: KerongUnlockReply,
    },
    /// `unsolicited`: send a `0x82` frame when a door changes by hand.
    Lockboard8a {
        unsolicited: bool,
    },
}

/// What a Kerong board sends back after an unlock; firmware differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KerongUnlockReply {
    /// kerong-lib's boards: nothing.
    Nothing,
    /// A 5-byte echo of the command.
    Echo,
    /// A status frame (CartWise's boards).
    Status,
}

/// The doors and locks of every simulated board.
#[derive(Debug, Clone)]
pub struct Boards {
    pub dialect: Dialect,
    pub polarity: Polarity,
    pub locks_per_board: u8,
    /// Door open, per (board, lock).
    pub open: BTreeMap<(u8, u8), bool>,
    /// Unlock pulses received, per (board, lock).
    pub pulses: BTreeMap<(u8, u8), u32>,
    /// Boards that are powered off (no reply, no action).
    pub silent: BTreeSet<u8>,
    /// Locks that pulse but whose doors stay shut.
    pub stuck: BTreeSet<(u8, u8)>,
    /// Boards that carry out the next unlock they receive and then go silent (power lost just
    /// as a pickup arrives).
    pub silent_after_unlock: BTreeSet<u8>,
    /// Pulse time set on each Kerong board, in 10 ms steps.
    pub pulse_setting: BTreeMap<u8, u16>,
}

impl Boards {
    pub fn new(dialect: Dialect, boards: &[u8], locks_per_board: u8, polarity: Polarity) -> Self {
        let open = boards
            .iter()
            .flat_map(|b| (1..=locks_per_board).map(move |l| ((*b, l), false)))
            .collect();
        Boards {
            dialect,
            polarity,
            locks_per_board,
            open,
            pulses: BTreeMap::new(),
            silent: BTreeSet::new(),
            stuck: BTreeSet::new(),
            silent_after_unlock: BTreeSet::new(),
            pulse_setting: BTreeMap::new(),
        }
    }

    fn exists(&self, board: u8) -> bool {
        self.open.contains_key(&(board, 1)) && !self.silent.contains(&board)
    }

    fn pulse(&mut self, board: u8, lock: u8) {
        if !self.open.contains_key(&(board, lock)) {
            return;
        }
        *self.pulses.entry((board, lock)).or_default() += 1;
        if !self.stuck.contains(&(board, lock)) {
            self.open.insert((board, lock), true);
        }
        if self.silent_after_unlock.remove(&board) {
            self.silent.insert(board);
        }
    }

    fn bits(&self, board: u8) -> u32 {
        (1..=self.locks_per_board.min(24))
            .filter(|l| {
                let open = self.open.get(&(board, *l)).copied().unwrap_or(false);
                self.polarity.level(open)
            })
            .fold(0, |bits, l| bits | 1 << (l - 1))
    }

    /// Decode the request at the front of `buf`, in this bus's dialect.
    pub fn decode(&self, buf: &[u8]) -> Decoded<AnyRequest> {
        match self.dialect {
            Dialect::Kerong { .. } => convert(kerong::Request::decode(buf), AnyRequest::Kerong),
            Dialect::Lockboard8a { .. } => {
                convert(lockboard8a::Request::decode(buf), AnyRequest::Lockboard8a)
            }
        }
    }

    /// Act on one request; the reply to send, if any.
    pub fn answer(&mut self, request: AnyRequest) -> Option<Vec<u8>> {
        match (request, self.dialect) {
            (AnyRequest::Kerong(req), Dialect::Kerong { unlock_reply }) => {
                self.answer_kerong(req, unlock_reply)
            }
            (AnyRequest::Lockboard8a(req), Dialect::Lockboard8a { .. }) => self.answer_8a(req),
            _ => None,
        }
    }

    fn kerong_status(&self, board: u8) -> kerong::Reply {
        kerong::Reply::Status(kerong::BoardStatus {
            board,
            locks: self.bits(board) as u16,
            sensors: 0,
        })
    }

    fn answer_kerong(
        &mut self,
        req: kerong::Request,
        unlock_reply: KerongUnlockReply,
    ) -> Option<Vec<u8>> {
        use kerong::{Reply, Request};
        if let Some(board) = req.board() {
            if !self.exists(board) {
                return None;
            }
        }
        let reply = match req {
            Request::Status { board } => self.kerong_status(board),
            Request::Unlock { board, lock } => {
                self.pulse(board, lock);
                match unlock_reply {
                    KerongUnlockReply::Nothing => return None,
                    KerongUnlockReply::Echo => Reply::Echo {
                        addr: board << 4 | (lock - 1),
                        cmd: 0x31,
                    },
                    KerongUnlockReply::Status => self.kerong_status(board),
                }
            }
            Request::UnlockAll { board } => {
                for lock in 1..=self.locks_per_board {
                    self.pulse(board, lock);
                }
                return None;
            }
            Request::SetPulse { board, tens_of_ms } => {
                self.pulse_setting.insert(board, tens_of_ms);
                Reply::Pulse { board, tens_of_ms }
            }
            // Its reply layout is not public; the simulated boards stay quiet.
            Request::StatusAll => return None,
        };
        Some(reply.encode())
    }

    fn answer_8a(&mut self, req: lockboard8a::Request) -> Option<Vec<u8>> {
        use lockboard8a::{Reply, Request, CLOSED, OPEN};
        if !self.exists(req.board()) {
            return None;
        }
        let status = |open: bool| if open { OPEN } else { CLOSED };
        let reply = match req {
            Request::Unlock { board, lock } => {
                self.pulse(board, lock);
                let open = self.open.get(&(board, lock)).copied().unwrap_or(false);
                Reply::Unlock {
                    board,
                    lock,
                    status: status(open),
                }
            }
            Request::UnlockAll { board } => {
                for lock in 1..=self.locks_per_board {
                    self.pulse(board, lock);
                }
                Reply::Unlock {
                    board,
                    lock: 0,
                    status: OPEN,
                }
            }
            Request::Query { board, lock } => Reply::Lock {
                board,
                lock,
                status: status(self.open.get(&(board, lock)).copied().unwrap_or(false)),
            },
            Request::QueryAll { board } => Reply::All {
                board,
                bits: self.bits(board),
            },
            Request::MultiUnlock { board, locks } => {
                for lock in 1..=self.locks_per_board.min(24) {
                    if locks & 1 << (lock - 1) != 0 {
                        self.pulse(board, lock);
                    }
                }
                return None;
            }
        };
        Some(reply.encode())
    }

    /// The unsolicited frame an 8A board that reports changes sends when a door moves.
    pub fn change_frame(&self, board: u8, lock: u8, open: bool) -> Option<Vec<u8>> {
        match self.dialect {
            Dialect::Lockboard8a { unsolicited: true } if self.exists(board) => Some(
                lockboard8a::Reply::Changed {
                    board,
                    lock,
                    status: if open {
                        lockboard8a::OPEN
                    } else {
                        lockboard8a::CLOSED
                    },
                }
                .encode(),
            ),
            _ => None,
        }
    }
}

/// A request in either dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyRequest {
    Kerong(kerong::Request),
    Lockboard8a(lockboard8a::Request),
}

fn convert<T>(d: Decoded<T>, f: impl FnOnce(T) -> AnyRequest) -> Decoded<AnyRequest> {
    match d {
        Decoded::Incomplete => Decoded::Incomplete,
        Decoded::Garbage(n) => Decoded::Garbage(n),
        Decoded::BadChecksum(n) => Decoded::BadChecksum(n),
        Decoded::Frame { value, len } => Decoded::Frame {
            value: f(value),
            len,
        },
    }
}
