//! `modbus-io`: discrete locks on Modbus relay / digital-input modules, as a [`LockBoards`]
//! protocol, so the shared [`crate::adapter`] presents the bank on the bus.
//!
//! A door is a lock output, an optional door-switch discrete input and a pulse length:
//! - **Coil outputs** (Waveshare-style): FC 05 on, and the link writes off `pulse` later. On
//!   start-up (and whenever a module comes back) every lock coil of the module is written off
//!   first, so a hub that crashed mid-pulse leaves a solenoid energised no longer than one
//!   restart.
//! - **Command registers** (Eletechsup R4D*/RYN4): FC 06 `0x06SS`, on for SS seconds, timed
//!   by the module itself, which is the safer choice: nothing the hub does afterwards matters.
//! - **Feedback**: one FC 02 read per module per poll covers every door switch on it.
//!
//! For the adapter a module is a "board" (its slave id) and its doors are "locks" numbered
//! 1, 2, ... in the order of their door numbers; the [`ModbusIo`] keeps what each one is.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::adapter::{LockBoards, LockState, Reading};
use crate::board::{BoardLock, DoorMap, Limits, MapError, Polarity};
use crate::modbus::link::{ModbusData, ModbusLink, ModbusReply, ModbusRequest, Op};

/// Slave ids a serial Modbus bus allows (0 is broadcast, 248-255 reserved).
pub const LIMITS: Limits = Limits {
    min_board: 1,
    max_board: 247,
    max_lock: u8::MAX,
};

/// What releases a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Coil(u16),
    /// Eletechsup-style command holding register.
    CommandRegister(u16),
}

/// A door-switch input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feedback {
    pub input: u16,
    pub polarity: Polarity,
}

/// One door of a Modbus lock bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoDoor {
    pub door: u16,
    pub slave: u8,
    pub output: Output,
    pub feedback: Option<Feedback>,
    pub pulse: Duration,
}

/// Eletechsup "on for SS seconds, then off" (`0x06SS`).
pub fn delay_command(pulse: Duration) -> u16 {
    let secs = pulse.as_secs().clamp(1, 255) as u16;
    0x0600 | secs
}

/// At most this many bits in one FC 01/02 read (the Modbus limit).
const MAX_BITS: u16 = 2000;

/// The lock bank's Modbus side.
#[derive(Debug, Clone)]
pub struct ModbusIo {
    doors: Arc<BTreeMap<BoardLock, IoDoor>>,
    timeout: Option<Duration>,
}

impl ModbusIo {
    /// The protocol and the door map the adapter uses, from `doors`. `timeout` overrides the
    /// link's response timeout for this bank's requests.
    pub fn new(doors: &[IoDoor], timeout: Option<Duration>) -> Result<(Self, DoorMap), MapError> {
        let mut sorted: Vec<IoDoor> = doors.to_vec();
        sorted.sort_by_key(|d| (d.slave, d.door));
        let mut next_lock: BTreeMap<u8, u16> = BTreeMap::new();
        let mut by_lock = BTreeMap::new();
        let mut entries = Vec::new();
        for d in sorted {
            let n = next_lock.entry(d.slave).or_insert(0);
            *n += 1;
            // More doors on one module than a lock number can count: reported by the map.
            let lock = u8::try_from(*n).unwrap_or(0);
            let at = BoardLock {
                board: d.slave,
                lock,
            };
            entries.push((d.door, at));
            by_lock.insert(at, d);
        }
        let map = DoorMap::new(entries, LIMITS)?;
        Ok((
            ModbusIo {
                doors: Arc::new(by_lock),
                timeout,
            },
            map,
        ))
    }

    fn doors_of(&self, slave: u8) -> impl Iterator<Item = (&BoardLock, &IoDoor)> {
        self.doors.range(
            BoardLock {
                board: slave,
                lock: 0,
            }..=BoardLock {
                board: slave,
                lock: u8::MAX,
            },
        )
    }

    fn request(&self, slave: u8, op: Op) -> ModbusRequest {
        ModbusRequest {
            slave,
            op,
            timeout: self.timeout,
        }
    }

    /// The range of inputs read per poll of `slave`, if any door on it has a switch.
    fn feedback_range(&self, slave: u8) -> Option<(u16, u16)> {
        let inputs: Vec<u16> = self
            .doors_of(slave)
            .filter_map(|(_, d)| d.feedback.map(|f| f.input))
            .collect();
        let first = *inputs.iter().min()?;
        let last = *inputs.iter().max()?;
        Some((first, (last - first + 1).min(MAX_BITS)))
    }
}

impl LockBoards for ModbusIo {
    type Link = ModbusLink;

    fn limits(&self) -> Limits {
        LIMITS
    }

    fn poll(&self, slave: u8) -> ModbusRequest {
        if let Some((address, count)) = self.feedback_range(slave) {
            return self.request(slave, Op::ReadDiscreteInputs { address, count });
        }
        // No door switches: read something cheap the module has, to know it is there.
        let op = match self.doors_of(slave).next().map(|(_, d)| d.output) {
            Some(Output::Coil(address)) => Op::ReadCoils { address, count: 1 },
            Some(Output::CommandRegister(address)) => {
                Op::ReadHoldingRegisters { address, count: 1 }
            }
            None => Op::ReadCoils {
                address: 0,
                count: 1,
            },
        };
        self.request(slave, op)
    }

    fn unlock(&self, at: BoardLock) -> ModbusRequest {
        let op = match self.doors.get(&at) {
            Some(d) => match d.output {
                Output::Coil(address) => Op::PulseCoil {
                    address,
                    pulse: d.pulse,
                },
                Output::CommandRegister(address) => Op::WriteRegister {
                    address,
                    value: delay_command(d.pulse),
                },
            },
            // The adapter only asks for locks of its map, which are all here.
            None => Op::ReadCoils {
                address: 0,
                count: 1,
            },
        };
        self.request(at.board, op)
    }

    fn setup(&self, slave: u8) -> Option<ModbusRequest> {
        let addresses: Vec<u16> = self
            .doors_of(slave)
            .filter_map(|(_, d)| match d.output {
                Output::Coil(a) => Some(a),
                Output::CommandRegister(_) => None,
            })
            .collect();
        (!addresses.is_empty()).then(|| self.request(slave, Op::CoilsOff { addresses }))
    }

    fn reading(&self, reply: &ModbusReply) -> Option<Reading> {
        let (Op::ReadDiscreteInputs { address, count }, ModbusData::Bits(bits)) =
            (&reply.op, &reply.data)
        else {
            return None;
        };
        if Some((*address, *count)) != self.feedback_range(reply.slave) {
            return None;
        }
        let locks = self
            .doors_of(reply.slave)
            .filter_map(|(at, d)| {
                let f = d.feedback?;
                let level = *bits.get(usize::from(f.input.checked_sub(*address)?))?;
                Some((
                    at.lock,
                    LockState {
                        open: f.polarity.is_open(level),
                        occupied: None,
                    },
                ))
            })
            .collect();
        Some(Reading {
            board: reply.slave,
            locks,
        })
    }

    fn firmware(&self) -> String {
        "modbus-io".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door(door: u16, slave: u8, output: Output, input: Option<u16>) -> IoDoor {
        IoDoor {
            door,
            slave,
            output,
            feedback: input.map(|input| Feedback {
                input,
                polarity: Polarity::ZeroIsClosed,
            }),
            pulse: Duration::from_millis(500),
        }
    }

    #[test]
    fn one_discrete_read_per_module_covers_its_door_switches() {
        let (io, map) = ModbusIo::new(
            &[
                door(2, 3, Output::Coil(1), Some(11)),
                door(1, 3, Output::Coil(0), Some(10)),
                door(9, 4, Output::CommandRegister(1), None),
            ],
            None,
        )
        .unwrap();
        assert_eq!(map.boards(), vec![3, 4]);
        assert_eq!(
            io.poll(3).op,
            Op::ReadDiscreteInputs {
                address: 10,
                count: 2
            }
        );
        assert_eq!(
            io.poll(4).op,
            Op::ReadHoldingRegisters {
                address: 1,
                count: 1
            }
        );
        let reply = ModbusReply {
            slave: 3,
            op: io.poll(3).op,
            data: ModbusData::Bits(vec![false, true]),
        };
        let reading = io.reading(&reply).unwrap();
        let door_of = |lock| map.door_at(BoardLock { board: 3, lock }).unwrap();
        let states: Vec<(u16, bool)> = reading
            .locks
            .iter()
            .map(|(lock, s)| (door_of(*lock), s.open))
            .collect();
        assert_eq!(states, vec![(1, false), (2, true)]);
        // A write's reply or another range is no reading.
        let written = ModbusReply {
            slave: 3,
            op: Op::WriteCoil {
                address: 0,
                on: true,
            },
            data: ModbusData::Written,
        };
        assert_eq!(io.reading(&written), None);
    }

    #[test]
    fn coils_pulse_through_the_link_and_registers_time_themselves() {
        let (io, map) = ModbusIo::new(
            &[
                door(1, 1, Output::Coil(4), None),
                door(2, 2, Output::CommandRegister(1), None),
            ],
            Some(Duration::from_millis(300)),
        )
        .unwrap();
        let coil = io.unlock(map.get(1).unwrap());
        assert_eq!(
            coil.op,
            Op::PulseCoil {
                address: 4,
                pulse: Duration::from_millis(500)
            }
        );
        assert_eq!(coil.timeout, Some(Duration::from_millis(300)));
        // 0x06SS with SS = 1 s (the pulse rounds to whole seconds, at least one).
        let reg = io.unlock(map.get(2).unwrap());
        assert_eq!(
            reg.op,
            Op::WriteRegister {
                address: 1,
                value: 0x0601
            }
        );
        assert_eq!(delay_command(Duration::from_secs(5)), 0x0605);
        assert_eq!(delay_command(Duration::from_secs(900)), 0x06FF);
        // Start-up writes the coils off; command registers need nothing.
        assert_eq!(io.setup(1).unwrap().op, Op::CoilsOff { addresses: vec![4] });
        assert_eq!(io.setup(2), None);
    }
}
