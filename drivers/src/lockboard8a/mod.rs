//! The "8A/80" RS-485 lock boards (Guangzhou Shuoming and many clones): XOR-checksummed frames.
//!
//! ```text
//! unlock one    8A BB LL 11 X   → 8A BB LL SS X      SS 00 = opened, 11 = still closed
//! unlock all    8A BB 00 11 X   → 8A BB 00 SS X      (sequential: allow n × pulse)
//! query one     80 BB LL 33 X   → 80 BB LL SS X      SS 11 = closed, 00 = open
//! query all     80 BB 00 33 X   → 80 BB S3 S2 S1 33 X   S1 = locks 1-8 … S3 = 17-24, 1 = closed
//! multi-unlock  90 BB M3 M2 M1 X                     bitmap, same order
//! door changed  82 BB LL SS X   (unsolicited; not every firmware)
//! X             XOR of every preceding byte
//! ```
//!
//! Boards 1-32 (DIP switch), up to 24 locks each, 9600 8N1. A query-one reply and a query-all
//! reply start alike and differ in length, so reply decoding is told which [`Shape`] the
//! outstanding request expects. The layout of the unsolicited `0x82` frame is not published; it
//! is read here as the same shape as a query-one reply (**verify on hardware**), and so is the
//! group order of the query-all reply, which the one public parser contradicts itself on.

use crate::board::{Limits, Polarity};
use crate::codec::Decoded;

/// Boards 1-32, locks 1-24.
pub const LIMITS: Limits = Limits {
    min_board: 1,
    max_board: 32,
    max_lock: 24,
};

/// Default line speed of these boards.
pub const DEFAULT_BAUD: u32 = 9_600;

mod head {
    pub const UNLOCK: u8 = 0x8A;
    pub const QUERY: u8 = 0x80;
    pub const CHANGED: u8 = 0x82;
    pub const MULTI: u8 = 0x90;
}

const FUNC_UNLOCK: u8 = 0x11;
const FUNC_QUERY: u8 = 0x33;
/// Status byte: lock/door closed.
pub const CLOSED: u8 = 0x11;
/// Status byte: lock/door open.
pub const OPEN: u8 = 0x00;

/// Why a request cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("8A board {0} is outside 1-32")]
    Board(u8),
    #[error("8A lock {0} is outside 1-24")]
    Lock(u8),
}

/// A request from the hub to a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Unlock {
        board: u8,
        lock: u8,
    },
    UnlockAll {
        board: u8,
    },
    Query {
        board: u8,
        lock: u8,
    },
    QueryAll {
        board: u8,
    },
    /// Pulse every lock whose bit is set (bit 0 = lock 1). No reply is documented.
    MultiUnlock {
        board: u8,
        locks: u32,
    },
}

/// Which reply an outstanding request expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// 5-byte frames (every reply but query-all).
    Short,
    /// The 7-byte query-all reply.
    AllStates,
}

impl Request {
    pub fn unlock(board: u8, lock: u8) -> Result<Self, AddressError> {
        Ok(Request::Unlock {
            board: check_board(board)?,
            lock: check_lock(lock)?,
        })
    }

    pub fn query(board: u8, lock: u8) -> Result<Self, AddressError> {
        Ok(Request::Query {
            board: check_board(board)?,
            lock: check_lock(lock)?,
        })
    }

    pub fn query_all(board: u8) -> Result<Self, AddressError> {
        Ok(Request::QueryAll {
            board: check_board(board)?,
        })
    }

    pub fn unlock_all(board: u8) -> Result<Self, AddressError> {
        Ok(Request::UnlockAll {
            board: check_board(board)?,
        })
    }

    pub fn board(&self) -> u8 {
        match *self {
            Request::Unlock { board, .. }
            | Request::UnlockAll { board }
            | Request::Query { board, .. }
            | Request::QueryAll { board }
            | Request::MultiUnlock { board, .. } => board,
        }
    }

    /// The reply shape this request gets.
    pub fn reply_shape(&self) -> Shape {
        match self {
            Request::QueryAll { .. } => Shape::AllStates,
            _ => Shape::Short,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match *self {
            Request::Unlock { board, lock } => frame(&[head::UNLOCK, board, lock, FUNC_UNLOCK]),
            Request::UnlockAll { board } => frame(&[head::UNLOCK, board, 0, FUNC_UNLOCK]),
            Request::Query { board, lock } => frame(&[head::QUERY, board, lock, FUNC_QUERY]),
            Request::QueryAll { board } => frame(&[head::QUERY, board, 0, FUNC_QUERY]),
            Request::MultiUnlock { board, locks } => {
                let [s1, s2, s3, _] = locks.to_le_bytes();
                frame(&[head::MULTI, board, s3, s2, s1])
            }
        }
    }

    /// Decode a request at the front of `buf` (what a board, or the simulator, does).
    pub fn decode(buf: &[u8]) -> Decoded<Request> {
        let Some(&first) = buf.first() else {
            return Decoded::Incomplete;
        };
        let len = match first {
            head::UNLOCK | head::QUERY => 5,
            head::MULTI => 6,
            _ => return skip_to_head(buf, &[head::UNLOCK, head::QUERY, head::MULTI]),
        };
        let f = match checked(buf, len) {
            Ok(f) => f,
            Err(d) => return d,
        };
        let value = match (f[0], f[3]) {
            (head::UNLOCK, FUNC_UNLOCK) if f[2] == 0 => Request::UnlockAll { board: f[1] },
            (head::UNLOCK, FUNC_UNLOCK) => Request::Unlock {
                board: f[1],
                lock: f[2],
            },
            (head::QUERY, FUNC_QUERY) if f[2] == 0 => Request::QueryAll { board: f[1] },
            (head::QUERY, FUNC_QUERY) => Request::Query {
                board: f[1],
                lock: f[2],
            },
            (head::MULTI, _) => Request::MultiUnlock {
                board: f[1],
                locks: u32::from_le_bytes([f[4], f[3], f[2], 0]),
            },
            _ => return Decoded::Garbage(1),
        };
        Decoded::Frame { value, len }
    }
}

/// A frame from a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Answer to an unlock (`lock` 0: unlock-all). `status` [`OPEN`] means the door opened.
    Unlock { board: u8, lock: u8, status: u8 },
    /// Answer to a query of one lock: [`OPEN`] or [`CLOSED`].
    Lock { board: u8, lock: u8, status: u8 },
    /// Answer to a query-all: raw bits, lock *n* at bit *n-1*.
    All { board: u8, bits: u32 },
    /// Unsolicited: a door changed (firmware that sends it).
    Changed { board: u8, lock: u8, status: u8 },
}

impl Reply {
    pub fn board(&self) -> u8 {
        match *self {
            Reply::Unlock { board, .. }
            | Reply::Lock { board, .. }
            | Reply::All { board, .. }
            | Reply::Changed { board, .. } => board,
        }
    }

    /// Whether this is the answer to `request` (same board and lock, matching kind).
    pub fn answers(&self, request: &Request) -> bool {
        match (*request, *self) {
            (
                Request::Unlock { board, lock },
                Reply::Unlock {
                    board: b, lock: l, ..
                },
            ) => (board, lock) == (b, l),
            (
                Request::UnlockAll { board },
                Reply::Unlock {
                    board: b, lock: 0, ..
                },
            ) => board == b,
            (
                Request::Query { board, lock },
                Reply::Lock {
                    board: b, lock: l, ..
                },
            ) => (board, lock) == (b, l),
            (Request::QueryAll { board }, Reply::All { board: b, .. }) => board == b,
            _ => false,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match *self {
            Reply::Unlock {
                board,
                lock,
                status,
            } => frame(&[head::UNLOCK, board, lock, status]),
            Reply::Lock {
                board,
                lock,
                status,
            } => frame(&[head::QUERY, board, lock, status]),
            Reply::All { board, bits } => {
                let [s1, s2, s3, _] = bits.to_le_bytes();
                frame(&[head::QUERY, board, s3, s2, s1, FUNC_QUERY])
            }
            Reply::Changed {
                board,
                lock,
                status,
            } => frame(&[head::CHANGED, board, lock, status]),
        }
    }

    /// Decode the reply at the front of `buf`, a `0x80` frame being read as `shape` says.
    pub fn decode(buf: &[u8], shape: Shape) -> Decoded<Reply> {
        let Some(&first) = buf.first() else {
            return Decoded::Incomplete;
        };
        let len = match (first, shape) {
            (head::QUERY, Shape::AllStates) => 7,
            (head::UNLOCK | head::QUERY | head::CHANGED, _) => 5,
            _ => return skip_to_head(buf, &[head::UNLOCK, head::QUERY, head::CHANGED]),
        };
        let f = match checked(buf, len) {
            Ok(f) => f,
            Err(d) => return d,
        };
        let value = match f[0] {
            head::UNLOCK => Reply::Unlock {
                board: f[1],
                lock: f[2],
                status: f[3],
            },
            head::QUERY if len == 7 => {
                if f[5] != FUNC_QUERY {
                    return Decoded::Garbage(1);
                }
                Reply::All {
                    board: f[1],
                    bits: u32::from_le_bytes([f[4], f[3], f[2], 0]),
                }
            }
            head::QUERY => Reply::Lock {
                board: f[1],
                lock: f[2],
                status: f[3],
            },
            _ => Reply::Changed {
                board: f[1],
                lock: f[2],
                status: f[3],
            },
        };
        Decoded::Frame { value, len }
    }
}

/// Whether a query-all bitmap says lock `lock` (1-24) is open, under `polarity`.
pub fn is_open(bits: u32, lock: u8, polarity: Polarity) -> bool {
    let level = (1..=24).contains(&lock) && bits & (1 << (lock - 1)) != 0;
    polarity.is_open(level)
}

/// What a status byte says: `Some(true)` open, `Some(false)` closed, `None` undocumented.
pub fn status_open(status: u8) -> Option<bool> {
    match status {
        OPEN => Some(true),
        CLOSED => Some(false),
        _ => None,
    }
}

/// XOR of `bytes`.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |x, b| x ^ b)
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = body.to_vec();
    f.push(checksum(body));
    f
}

/// The first `len` bytes if they are there and their checksum holds.
fn checked<T>(buf: &[u8], len: usize) -> Result<&[u8], Decoded<T>> {
    let Some(f) = buf.get(..len) else {
        return Err(Decoded::Incomplete);
    };
    if checksum(&f[..len - 1]) != f[len - 1] {
        return Err(Decoded::BadChecksum(1));
    }
    Ok(f)
}

/// Garbage up to the next byte that could start a frame.
fn skip_to_head<T>(buf: &[u8], heads: &[u8]) -> Decoded<T> {
    let n = buf
        .iter()
        .position(|b| heads.contains(b))
        .unwrap_or(buf.len());
    Decoded::Garbage(n.max(1))
}

fn check_board(board: u8) -> Result<u8, AddressError> {
    if (LIMITS.min_board..=LIMITS.max_board).contains(&board) {
        Ok(board)
    } else {
        Err(AddressError::Board(board))
    }
}

fn check_lock(lock: u8) -> Result<u8, AddressError> {
    if (1..=LIMITS.max_lock).contains(&lock) {
        Ok(lock)
    } else {
        Err(AddressError::Lock(lock))
    }
}

#[cfg(test)]
mod tests;

mod driver;
pub use driver::Lockboard8a;
