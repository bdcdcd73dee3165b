//! What lock-board drivers share: which level of a status bit means "closed", and which door is
//! which (board, lock).

use std::collections::BTreeMap;

/// Which level of a lock-status bit means "closed". Sources disagree for Kerong boards (and
/// clones differ), so it is configured per bank rather than assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Polarity {
    /// Bit set = lock closed (lkaas-kerong, CartWise; the 8A boards' documented meaning).
    #[default]
    OneIsClosed,
    /// Bit clear = lock closed (kerong-lib's README).
    ZeroIsClosed,
}

impl Polarity {
    /// Whether a status bit at `level` means the door is open.
    pub fn is_open(self, level: bool) -> bool {
        match self {
            Polarity::OneIsClosed => !level,
            Polarity::ZeroIsClosed => level,
        }
    }

    /// The bit level that reports `open`; the simulator uses it to speak either dialect.
    pub fn level(self, open: bool) -> bool {
        match self {
            Polarity::OneIsClosed => !open,
            Polarity::ZeroIsClosed => open,
        }
    }
}

/// Where one door's lock is: board address (as on its DIP switch) and lock channel (1-based, as
/// printed on the board).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoardLock {
    pub board: u8,
    pub lock: u8,
}

/// Why a door map was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("door 0 does not exist: doors are numbered from 1")]
    DoorZero,
    #[error("door {0} is mapped twice")]
    DuplicateDoor(u16),
    #[error("doors {first} and {second} are both mapped to board {board} lock {lock}")]
    SharedLock {
        first: u16,
        second: u16,
        board: u8,
        lock: u8,
    },
    #[error("door {door}: board {board} is outside {min}-{max}")]
    Board {
        door: u16,
        board: u8,
        min: u8,
        max: u8,
    },
    #[error("door {door}: lock {lock} is outside 1-{max}")]
    Lock { door: u16, lock: u8, max: u8 },
    #[error("no doors are mapped")]
    Empty,
}

/// Door number → (board, lock), checked for the limits of one protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorMap {
    doors: BTreeMap<u16, BoardLock>,
    by_lock: BTreeMap<BoardLock, u16>,
}

/// The address ranges a protocol allows.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub min_board: u8,
    pub max_board: u8,
    pub max_lock: u8,
}

impl DoorMap {
    /// Check `entries` (door, board, lock) against `limits`.
    pub fn new(
        entries: impl IntoIterator<Item = (u16, BoardLock)>,
        limits: Limits,
    ) -> Result<Self, MapError> {
        let mut doors = BTreeMap::new();
        let mut by_lock = BTreeMap::new();
        for (door, at) in entries {
            if door == 0 {
                return Err(MapError::DoorZero);
            }
            if !(limits.min_board..=limits.max_board).contains(&at.board) {
                return Err(MapError::Board {
                    door,
                    board: at.board,
                    min: limits.min_board,
                    max: limits.max_board,
                });
            }
            if !(1..=limits.max_lock).contains(&at.lock) {
                return Err(MapError::Lock {
                    door,
                    lock: at.lock,
                    max: limits.max_lock,
                });
            }
            if doors.insert(door, at).is_some() {
                return Err(MapError::DuplicateDoor(door));
            }
            if let Some(first) = by_lock.insert(at, door) {
                return Err(MapError::SharedLock {
                    first,
                    second: door,
                    board: at.board,
                    lock: at.lock,
                });
            }
        }
        if doors.is_empty() {
            return Err(MapError::Empty);
        }
        Ok(DoorMap { doors, by_lock })
    }

    /// Where door `door` is.
    pub fn get(&self, door: u16) -> Option<BoardLock> {
        self.doors.get(&door).copied()
    }

    /// The door wired to `at`, if any.
    pub fn door_at(&self, at: BoardLock) -> Option<u16> {
        self.by_lock.get(&at).copied()
    }

    /// Boards with at least one door, ascending.
    pub fn boards(&self) -> Vec<u8> {
        let mut boards: Vec<u8> = self.by_lock.keys().map(|bl| bl.board).collect();
        boards.dedup();
        boards
    }

    /// (lock, door) for every mapped lock of `board`.
    pub fn locks_of(&self, board: u8) -> impl Iterator<Item = (u8, u16)> + '_ {
        self.by_lock
            .range(
                BoardLock { board, lock: 0 }..=BoardLock {
                    board,
                    lock: u8::MAX,
                },
            )
            .map(|(at, door)| (at.lock, *door))
    }

    /// Every door, ascending.
    pub fn doors(&self) -> impl Iterator<Item = (u16, BoardLock)> + '_ {
        self.doors.iter().map(|(d, at)| (*d, *at))
    }

    pub fn len(&self) -> usize {
        self.doors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.doors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        min_board: 0,
        max_board: 15,
        max_lock: 16,
    };

    fn at(board: u8, lock: u8) -> BoardLock {
        BoardLock { board, lock }
    }

    #[test]
    fn lookups_both_ways() {
        let map = DoorMap::new([(1, at(0, 1)), (2, at(0, 2)), (17, at(1, 1))], LIMITS).unwrap();
        assert_eq!(map.get(17), Some(at(1, 1)));
        assert_eq!(map.door_at(at(0, 2)), Some(2));
        assert_eq!(map.boards(), vec![0, 1]);
        assert_eq!(map.locks_of(0).collect::<Vec<_>>(), vec![(1, 1), (2, 2)]);
        assert_eq!(map.get(3), None);
    }

    #[test]
    fn bad_maps_say_which_door_and_why() {
        assert_eq!(
            DoorMap::new([(1, at(0, 1)), (1, at(0, 2))], LIMITS),
            Err(MapError::DuplicateDoor(1))
        );
        assert_eq!(
            DoorMap::new([(1, at(0, 1)), (2, at(0, 1))], LIMITS),
            Err(MapError::SharedLock {
                first: 1,
                second: 2,
                board: 0,
                lock: 1
            })
        );
        assert_eq!(
            DoorMap::new([(4, at(16, 1))], LIMITS)
                .unwrap_err()
                .to_string(),
            "door 4: board 16 is outside 0-15"
        );
        assert_eq!(
            DoorMap::new([(4, at(0, 0))], LIMITS)
                .unwrap_err()
                .to_string(),
            "door 4: lock 0 is outside 1-16"
        );
        assert_eq!(
            DoorMap::new([(0, at(0, 1))], LIMITS),
            Err(MapError::DoorZero)
        );
        assert_eq!(DoorMap::new([], LIMITS), Err(MapError::Empty));
    }

    #[test]
    fn polarity_is_symmetric() {
        for p in [Polarity::OneIsClosed, Polarity::ZeroIsClosed] {
            for open in [false, true] {
                assert_eq!(p.is_open(p.level(open)), open);
            }
        }
        assert!(Polarity::OneIsClosed.is_open(false));
        assert!(Polarity::ZeroIsClosed.is_open(true));
    }
}
