//! Kerong KR-CU12/CU16 lock boards: the "CU" STX/ETX/sum protocol.
//!
//! ```text
//! request  02 ADDR CMD 03 SUM                 ADDR = board << 4 | lock index (0-15)
//! status   02 ADDR 35 L1-8 L9-16 IR1-8 IR9-16 03 SUM
//! pulse    02 ADDR 37 HI LO 03 SUM             unlock time in 10 ms steps, big-endian
//! SUM      (sum of every preceding byte) mod 256
//! ```
//!
//! Up to 16 boards of 16 locks share one bus, 19200 8N1 by default. Whether a set lock bit means
//! "closed" is not agreed on by the sources, so [`BoardStatus`] keeps raw bits and callers
//! interpret them with a configured [`Polarity`]. The unlock command
//! gets no reply on some firmware and a status reply on others, so the driver treats that reply
//! as optional and confirms with a status query.
//!
//! Everything here is sans-IO: bytes in, values out. The [`link`](crate::link) moves the bytes.

use crate::board::{Limits, Polarity};
use crate::codec::Decoded;

pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;

/// Board addresses 0-15 (DIP switch), locks 1-16 (as printed; the wire counts from 0).
pub const LIMITS: Limits = Limits {
    min_board: 0,
    max_board: 15,
    max_lock: 16,
};

/// Default line speed of every Kerong CU board seen.
pub const DEFAULT_BAUD: u32 = 19_200;

mod cmd {
    pub const STATUS: u8 = 0x30;
    pub const UNLOCK: u8 = 0x31;
    pub const STATUS_ALL: u8 = 0x32;
    pub const UNLOCK_ALL: u8 = 0x33;
    pub const STATUS_REPLY: u8 = 0x35;
    pub const STATUS_ALL_REPLY: u8 = 0x36;
    pub const PULSE: u8 = 0x37;
}

/// Longest frame the variable-length decoder looks through before calling it garbage.
const MAX_FRAME: usize = 64;

/// Why a request cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("Kerong board {0} is outside 0-15")]
    Board(u8),
    #[error("Kerong lock {0} is outside 1-16")]
    Lock(u8),
    #[error("Kerong unlock time {0} ms is outside 0-655350 ms")]
    Pulse(u32),
}

/// A request from the hub to the boards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Lock (and sensor) bits of one board; answered by a [`Reply::Status`].
    Status { board: u8 },
    /// Pulse one lock (1-based). The reply is firmware-dependent (none, an echo, or a status).
    Unlock { board: u8, lock: u8 },
    /// Status of every board. The reply (`0x36`) has no public layout; polling uses
    /// [`Request::Status`] board by board instead.
    StatusAll,
    /// Pulse every lock of one board.
    UnlockAll { board: u8 },
    /// Set the unlock pulse of one board, in 10 ms steps.
    SetPulse { board: u8, tens_of_ms: u16 },
}

impl Request {
    pub fn status(board: u8) -> Result<Self, AddressError> {
        Ok(Request::Status {
            board: check_board(board)?,
        })
    }

    pub fn unlock(board: u8, lock: u8) -> Result<Self, AddressError> {
        Ok(Request::Unlock {
            board: check_board(board)?,
            lock: check_lock(lock)?,
        })
    }

    pub fn unlock_all(board: u8) -> Result<Self, AddressError> {
        Ok(Request::UnlockAll {
            board: check_board(board)?,
        })
    }

    /// Set the pulse to `ms`, rounded down to the board's 10 ms step.
    pub fn set_pulse(board: u8, ms: u32) -> Result<Self, AddressError> {
        let tens = u16::try_from(ms / 10).map_err(|_| AddressError::Pulse(ms))?;
        Ok(Request::SetPulse {
            board: check_board(board)?,
            tens_of_ms: tens,
        })
    }

    /// The board this request talks to (`None` for the bus-wide status).
    pub fn board(&self) -> Option<u8> {
        match *self {
            Request::Status { board }
            | Request::Unlock { board, .. }
            | Request::UnlockAll { board }
            | Request::SetPulse { board, .. } => Some(board),
            Request::StatusAll => None,
        }
    }

    /// The frame on the wire. Field values out of range (possible only by building the enum
    /// directly) are masked to their nibble, never allowed to spill into the other.
    pub fn encode(&self) -> Vec<u8> {
        let addr = |board: u8, lock_index: u8| (board & 0x0F) << 4 | (lock_index & 0x0F);
        match *self {
            Request::Status { board } => frame(addr(board, 0), cmd::STATUS, &[]),
            Request::Unlock { board, lock } => {
                frame(addr(board, lock.wrapping_sub(1)), cmd::UNLOCK, &[])
            }
            // lkaas-kerong's address; CartWise uses 0xF0. Both decode as StatusAll.
            Request::StatusAll => frame(0x00, cmd::STATUS_ALL, &[]),
            Request::UnlockAll { board } => frame(addr(board, 0), cmd::UNLOCK_ALL, &[]),
            Request::SetPulse { board, tens_of_ms } => {
                frame(addr(board, 0), cmd::PULSE, &tens_of_ms.to_be_bytes())
            }
        }
    }

    /// Decode a request at the front of `buf` (what a board, or the simulator, does).
    pub fn decode(buf: &[u8]) -> Decoded<Request> {
        decode_frame(
            buf,
            |cmd| match cmd {
                cmd::STATUS | cmd::UNLOCK | cmd::STATUS_ALL | cmd::UNLOCK_ALL => Some(Some(5)),
                cmd::PULSE => Some(Some(7)),
                _ => None,
            },
            |raw| {
                let board = raw.addr >> 4;
                let lock = (raw.addr & 0x0F) + 1;
                match raw.cmd {
                    cmd::STATUS => Some(Request::Status { board }),
                    cmd::UNLOCK => Some(Request::Unlock { board, lock }),
                    cmd::STATUS_ALL => Some(Request::StatusAll),
                    cmd::UNLOCK_ALL => Some(Request::UnlockAll { board }),
                    cmd::PULSE => match raw.data {
                        [hi, lo] => Some(Request::SetPulse {
                            board,
                            tens_of_ms: u16::from_be_bytes([*hi, *lo]),
                        }),
                        _ => None,
                    },
                    _ => None,
                }
            },
        )
    }
}

/// A board's answer to [`Request::Status`]: raw bits, lock *n* (1-based) at bit *n-1*.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoardStatus {
    pub board: u8,
    pub locks: u16,
    /// Infrared item-present sensors, where fitted (bit set = item present).
    pub sensors: u16,
}

impl BoardStatus {
    /// Whether lock `lock` (1-16) reports open under `polarity`.
    pub fn is_open(&self, lock: u8, polarity: Polarity) -> bool {
        polarity.is_open(bit(self.locks, lock))
    }

    /// Whether the item sensor of `lock` sees something.
    pub fn item_present(&self, lock: u8) -> bool {
        bit(self.sensors, lock)
    }
}

fn bit(bits: u16, lock: u8) -> bool {
    (1..=16).contains(&lock) && bits & (1 << (lock - 1)) != 0
}

/// A frame from a board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `0x35`: one board's lock and sensor bits.
    Status(BoardStatus),
    /// `0x37`: the board's unlock time, in 10 ms steps.
    Pulse { board: u8, tens_of_ms: u16 },
    /// A 5-byte echo of a command (some firmware acknowledges an unlock this way).
    Echo { addr: u8, cmd: u8 },
    /// A well-formed frame whose meaning is not documented publicly (such as `0x36`, the
    /// all-boards status); kept whole for logs.
    Other { addr: u8, cmd: u8, data: Vec<u8> },
}

impl Reply {
    /// The board a reply came from.
    pub fn board(&self) -> u8 {
        match self {
            Reply::Status(s) => s.board,
            Reply::Pulse { board, .. } => *board,
            Reply::Echo { addr, .. } | Reply::Other { addr, .. } => addr >> 4,
        }
    }

    /// Whether this is the answer to `request` (right board, right kind). Anything else is a
    /// stray: a late reply to an earlier request, or another board talking.
    pub fn answers(&self, request: &Request) -> bool {
        match (request, self) {
            (Request::Status { board }, Reply::Status(s)) => s.board == *board,
            // Firmware that answers an unlock sends either a status or an echo.
            (Request::Unlock { board, .. }, Reply::Status(s)) => s.board == *board,
            (Request::Unlock { board, lock }, Reply::Echo { addr, cmd }) => {
                *cmd == cmd::UNLOCK && *addr == (board << 4 | (lock.wrapping_sub(1) & 0x0F))
            }
            (Request::UnlockAll { board }, Reply::Status(s)) => s.board == *board,
            (Request::UnlockAll { board }, Reply::Echo { addr, cmd }) => {
                *cmd == cmd::UNLOCK_ALL && addr >> 4 == *board
            }
            (Request::SetPulse { board, .. }, Reply::Pulse { board: b, .. }) => b == board,
            (Request::StatusAll, Reply::Other { cmd, .. }) => *cmd == cmd::STATUS_ALL_REPLY,
            _ => false,
        }
    }

    /// The frame on the wire (what a board sends; used by the simulator).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Status(s) => {
                let [l1, l2] = s.locks.to_le_bytes();
                let [i1, i2] = s.sensors.to_le_bytes();
                frame((s.board & 0x0F) << 4, cmd::STATUS_REPLY, &[l1, l2, i1, i2])
            }
            Reply::Pulse { board, tens_of_ms } => {
                frame((board & 0x0F) << 4, cmd::PULSE, &tens_of_ms.to_be_bytes())
            }
            Reply::Echo { addr, cmd } => frame(*addr, *cmd, &[]),
            Reply::Other { addr, cmd, data } => frame(*addr, *cmd, data),
        }
    }

    /// Decode the reply at the front of `buf`.
    pub fn decode(buf: &[u8]) -> Decoded<Reply> {
        decode_frame(
            buf,
            |cmd| match cmd {
                cmd::STATUS_REPLY => Some(Some(9)),
                cmd::PULSE => Some(Some(7)),
                0x30..=0x34 | 0x38 => Some(Some(5)),
                cmd::STATUS_ALL_REPLY => Some(None),
                _ => None,
            },
            |raw| {
                Some(match (raw.cmd, raw.data) {
                    (cmd::STATUS_REPLY, [l1, l2, i1, i2]) => Reply::Status(BoardStatus {
                        board: raw.addr >> 4,
                        locks: u16::from_le_bytes([*l1, *l2]),
                        sensors: u16::from_le_bytes([*i1, *i2]),
                    }),
                    (cmd::PULSE, [hi, lo]) => Reply::Pulse {
                        board: raw.addr >> 4,
                        tens_of_ms: u16::from_be_bytes([*hi, *lo]),
                    },
                    (cmd, []) if cmd != cmd::STATUS_ALL_REPLY => Reply::Echo {
                        addr: raw.addr,
                        cmd,
                    },
                    (cmd, data) => Reply::Other {
                        addr: raw.addr,
                        cmd,
                        data: data.to_vec(),
                    },
                })
            },
        )
    }
}

fn check_board(board: u8) -> Result<u8, AddressError> {
    if board <= LIMITS.max_board {
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

/// Modulo-256 sum of `bytes`.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
}

fn frame(addr: u8, cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + data.len());
    f.extend_from_slice(&[STX, addr, cmd]);
    f.extend_from_slice(data);
    f.push(ETX);
    f.push(checksum(&f));
    f
}

/// A structurally valid frame, before its command is interpreted.
struct RawFrame<'a> {
    addr: u8,
    cmd: u8,
    data: &'a [u8],
}

/// Find the frame at the front of `buf` and interpret it with `meaning`; a frame of a known
/// command whose payload makes no sense is dropped like garbage.
fn decode_frame<T>(
    buf: &[u8],
    length_of: impl Fn(u8) -> Option<Option<usize>>,
    meaning: impl FnOnce(RawFrame<'_>) -> Option<T>,
) -> Decoded<T> {
    match decode_raw(buf, length_of) {
        Decoded::Frame { value, len } => match meaning(value) {
            Some(value) => Decoded::Frame { value, len },
            None => Decoded::Garbage(1),
        },
        Decoded::Incomplete => Decoded::Incomplete,
        Decoded::Garbage(n) => Decoded::Garbage(n),
        Decoded::BadChecksum(n) => Decoded::BadChecksum(n),
    }
}

/// `length_of(cmd)` says how long a frame with that command is: `Some(Some(n))` fixed,
/// `Some(None)` variable (ended by ETX and a matching sum), `None` not a command of this
/// direction.
fn decode_raw(
    buf: &[u8],
    length_of: impl Fn(u8) -> Option<Option<usize>>,
) -> Decoded<RawFrame<'_>> {
    let Some(start) = buf.iter().position(|b| *b == STX) else {
        return match buf.len() {
            0 => Decoded::Incomplete,
            n => Decoded::Garbage(n),
        };
    };
    if start > 0 {
        return Decoded::Garbage(start);
    }
    let (Some(&addr), Some(&cmd)) = (buf.get(1), buf.get(2)) else {
        return Decoded::Incomplete;
    };
    let len = match length_of(cmd) {
        None => return Decoded::Garbage(1),
        Some(Some(len)) => {
            if buf.len() < len {
                return Decoded::Incomplete;
            }
            if buf[len - 2] != ETX {
                return Decoded::Garbage(1);
            }
            if checksum(&buf[..len - 1]) != buf[len - 1] {
                return Decoded::BadChecksum(1);
            }
            len
        }
        Some(None) => {
            let found = (3..buf.len().min(MAX_FRAME) - 1)
                .find(|&k| buf[k] == ETX && checksum(&buf[..=k]) == buf[k + 1]);
            match found {
                Some(k) => k + 2,
                None if buf.len() < MAX_FRAME => return Decoded::Incomplete,
                None => return Decoded::Garbage(1),
            }
        }
    };
    Decoded::Frame {
        value: RawFrame {
            addr,
            cmd,
            data: &buf[3..len - 2],
        },
        len,
    }
}

#[cfg(test)]
mod tests;

mod driver;
pub use driver::Kerong;
