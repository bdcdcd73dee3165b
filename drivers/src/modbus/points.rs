//! `modbus-points`: temperature transmitters and refrigeration controllers polled over Modbus,
//! each reading published as a [`UnitReading`] on `…/bank/{bank}/unit/{unit}/sensor/{sensor}`.
//!
//! Every `poll_interval` the sensor's points are read through its bus's [`ModbusLink`] (routine
//! priority: unlocks on the same bus go first). A reading whose temperature could not be read
//! is not published at all: the hub alarms on silence, and a made-up or stale value would hide
//! a dead sensor. Other points (humidity, door, setpoint, alarm bits) are optional: one that
//! fails is left out of that reading.
//!
//! Points are only ever read. The one write path, [`PointSpec::write_request`], refuses points
//! not marked writable and, whatever the map says, a device's own address register: writing it
//! re-addresses the controller and can take the whole bus down (the configuration refuses such
//! a map too; this is the driver's own guard).

use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::adapter::{mqtt_options, BrokerTarget};
use crate::bus::{BankTopics, UnitReading};
use crate::link::{LinkError, LogLimiter, Priority};
use crate::modbus::link::{ModbusData, ModbusLink, ModbusRequest, Op};
use crate::modbus::value::{self, Format};

/// Modbus register tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Register {
    Coil,
    Discrete,
    Input,
    Holding,
}

/// One named value on a device.
#[derive(Debug, Clone, PartialEq)]
pub struct PointSpec {
    /// `temperature`, `humidity`, `door`, `setpoint`, `alarm_*`, `device_address`, ...
    pub name: String,
    pub register: Register,
    pub address: u16,
    /// For registers; bits ignore it.
    pub format: Format,
    pub scale: f64,
    pub writable: bool,
}

/// The point name of a device's own Modbus address.
pub const DEVICE_ADDRESS: &str = "device_address";

impl PointSpec {
    /// The read of this point.
    pub fn read_op(&self) -> Op {
        let (address, count) = (self.address, self.format.words());
        match self.register {
            Register::Coil => Op::ReadCoils { address, count: 1 },
            Register::Discrete => Op::ReadDiscreteInputs { address, count: 1 },
            Register::Input => Op::ReadInputRegisters { address, count },
            Register::Holding => Op::ReadHoldingRegisters { address, count },
        }
    }

    /// The value a reply to [`Self::read_op`] carries: bits as 0/1, registers decoded.
    pub fn decode(&self, data: &ModbusData) -> Result<f64, String> {
        match data {
            ModbusData::Bits(bits) => bits
                .first()
                .map(|b| f64::from(u8::from(*b)))
                .ok_or_else(|| "empty reply".to_owned()),
            ModbusData::Words(words) => {
                value::decode(self.format, words, self.scale).map_err(|e| e.to_string())
            }
            ModbusData::Written => Err("a write confirmation is no reading".into()),
        }
    }

    /// The request that writes `raw` to this point: only for points marked writable, single
    /// registers or coils, and never the device address.
    pub fn write_request(&self, slave: u8, raw: u16) -> Result<ModbusRequest, String> {
        if self.name == DEVICE_ADDRESS {
            return Err(format!(
                "point `{}` is the device's own Modbus address and is never written",
                self.name
            ));
        }
        if !self.writable {
            return Err(format!("point `{}` is not marked writable", self.name));
        }
        let op = match (self.register, self.format.words()) {
            (Register::Coil, _) => Op::WriteCoil {
                address: self.address,
                on: raw != 0,
            },
            (Register::Holding, 1) => Op::WriteRegister {
                address: self.address,
                value: raw,
            },
            _ => return Err(format!("point `{}` cannot be written", self.name)),
        };
        Ok(ModbusRequest::new(slave, op))
    }
}

/// One sensor to poll.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorSpec {
    pub bank: String,
    pub unit: String,
    pub sensor: String,
    pub slave: u8,
    pub points: Vec<PointSpec>,
    pub poll_interval: Duration,
    pub response_timeout: Duration,
}

/// What a poller knows about its sensor, for health pages and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SensorHealth {
    pub mqtt_connected: bool,
    /// Readings published.
    pub readings: u64,
    /// Poll cycles that published nothing because the temperature could not be read.
    pub failures: u64,
    pub last_error: Option<String>,
    pub last: Option<UnitReading>,
}

/// Running pollers; dropping this stops them.
pub struct SensorsHandle {
    health: BTreeMap<(String, String), watch::Receiver<SensorHealth>>,
    tasks: Vec<JoinHandle<()>>,
}

impl SensorsHandle {
    /// Health of sensor `sensor` of unit `unit`.
    pub fn health(&self, unit: &str, sensor: &str) -> Option<SensorHealth> {
        self.health
            .get(&(unit.to_owned(), sensor.to_owned()))
            .map(|rx| rx.borrow().clone())
    }
}

impl Drop for SensorsHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Start polling `sensors` of `bank`, each through its link, publishing over one MQTT
/// connection to `broker`.
pub fn spawn(
    bank: &str,
    sensors: Vec<(SensorSpec, ModbusLink)>,
    broker: &BrokerTarget,
) -> Result<SensorsHandle, String> {
    if !crate::bus::valid_bank_id(bank) {
        return Err(format!("bank id {bank:?} is not usable as a topic level"));
    }
    for (s, _) in &sensors {
        if s.point("temperature").is_none() {
            return Err(format!(
                "sensor {} of unit {}: the map has no temperature point",
                s.sensor, s.unit
            ));
        }
    }
    let options = mqtt_options(format!("sensors-{bank}"), broker);
    let (client, events) = rumqttc::AsyncClient::new(options, 64);
    let (connected_tx, connected_rx) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(mqtt_loop(
        bank.to_owned(),
        events,
        connected_tx,
    ))];
    let mut health = BTreeMap::new();
    let topics = BankTopics::new(bank);
    for (spec, link) in sensors {
        let (tx, rx) = watch::channel(SensorHealth::default());
        health.insert((spec.unit.clone(), spec.sensor.clone()), rx);
        let topic = topics.unit_reading(&spec.unit, &spec.sensor);
        tasks.push(tokio::spawn(poll(
            spec,
            link,
            client.clone(),
            topic,
            tx,
            connected_rx.clone(),
        )));
    }
    Ok(SensorsHandle { health, tasks })
}

impl SensorSpec {
    fn point(&self, name: &str) -> Option<&PointSpec> {
        self.points.iter().find(|p| p.name == name)
    }
}

async fn mqtt_loop(bank: String, mut events: rumqttc::EventLoop, connected: watch::Sender<bool>) {
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!(bank, "sensor poller connected to the broker");
                connected.send_replace(true);
            }
            Ok(_) => {}
            Err(e) => {
                connected.send_replace(false);
                debug!(bank, error = %e, "sensor poller lost the broker; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// What a reading's point names mean in a [`UnitReading`]; points not listed are not read.
fn alarm_name(point: &str) -> Option<String> {
    let rest = point.strip_prefix("alarm_")?;
    Some(match rest {
        "high" => "high_temp".into(),
        "low" => "low_temp".into(),
        other => other.to_owned(),
    })
}

fn published(point: &PointSpec) -> bool {
    matches!(
        point.name.as_str(),
        "temperature" | "humidity" | "door" | "setpoint"
    ) || alarm_name(&point.name).is_some()
}

async fn poll(
    spec: SensorSpec,
    link: ModbusLink,
    client: AsyncClient,
    topic: String,
    health: watch::Sender<SensorHealth>,
    mut connected: watch::Receiver<bool>,
) {
    let mut log = LogLimiter::new(Duration::from_secs(60));
    // The temperature first: without it nothing else is worth the bus time.
    let mut points: Vec<&PointSpec> = spec.points.iter().filter(|p| published(p)).collect();
    points.sort_by_key(|p| p.name != "temperature");
    // The first reading waits for the broker, so it is not dropped on the way.
    let _ = tokio::time::timeout(Duration::from_secs(5), connected.wait_for(|c| *c)).await;
    loop {
        let start = Instant::now();
        match read(&spec, &points, &link).await {
            Ok(reading) => match serde_json::to_vec(&reading) {
                Ok(payload) => {
                    // Never wait on a broker that is down: a stale reading is worth nothing.
                    let sent = client.try_publish(&topic, QoS::AtLeastOnce, false, payload);
                    health.send_modify(|h| {
                        h.mqtt_connected = *connected.borrow();
                        match sent {
                            Ok(()) => h.readings += 1,
                            Err(e) => h.last_error = Some(format!("not published: {e}")),
                        }
                        h.last = Some(reading);
                    });
                }
                Err(e) => warn!(error = %e, "cannot serialise a unit reading"),
            },
            Err(e) => {
                if let Some(held_back) = log.allow(std::time::Instant::now()) {
                    warn!(bank = %spec.bank, unit = %spec.unit, sensor = %spec.sensor,
                        error = %e, held_back, "no temperature reading; nothing published");
                }
                health.send_modify(|h| {
                    h.failures += 1;
                    h.last_error = Some(e);
                });
            }
        }
        tokio::time::sleep_until(start + spec.poll_interval).await;
    }
}

/// One reading of every published point; `Err` when the temperature could not be read.
async fn read(
    spec: &SensorSpec,
    points: &[&PointSpec],
    link: &ModbusLink,
) -> Result<UnitReading, String> {
    let mut reading = UnitReading {
        temperature_c: f64::NAN,
        humidity_pct: None,
        door_open: None,
        setpoint_c: None,
        device_alarms: Vec::new(),
    };
    for point in points {
        let request = ModbusRequest {
            slave: spec.slave,
            op: point.read_op(),
            timeout: Some(spec.response_timeout),
        };
        let value = match link.request(request, Priority::Routine).await {
            Ok(Some(reply)) => point.decode(&reply.data),
            Ok(None) => Err("no reply".into()),
            Err(e) => {
                if point.name == "temperature" {
                    return Err(e.to_string());
                }
                // A silent or absent device will not answer the next point either.
                if matches!(
                    e,
                    LinkError::Timeout { .. }
                        | LinkError::Offline { .. }
                        | LinkError::PortDown { .. }
                        | LinkError::Interrupted { .. }
                ) {
                    break;
                }
                Err(e.to_string())
            }
        };
        let value = match value {
            Ok(v) => v,
            Err(e) if point.name == "temperature" => return Err(e),
            Err(e) => {
                debug!(sensor = %spec.sensor, point = %point.name, error = %e, "optional point not read");
                continue;
            }
        };
        match point.name.as_str() {
            "temperature" => reading.temperature_c = value,
            "humidity" => reading.humidity_pct = Some(value),
            "setpoint" => reading.setpoint_c = Some(value),
            "door" => reading.door_open = Some(value != 0.0),
            name => {
                if let Some(alarm) = alarm_name(name).filter(|_| value != 0.0) {
                    reading.device_alarms.push(alarm);
                }
            }
        }
    }
    if reading.temperature_c.is_finite() {
        Ok(reading)
    } else {
        Err("temperature not read".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &str, register: Register, writable: bool) -> PointSpec {
        PointSpec {
            name: name.into(),
            register,
            address: 0x0101,
            format: Format::U16,
            scale: 1.0,
            writable,
        }
    }

    #[test]
    fn the_device_address_is_never_written_whatever_the_map_says() {
        let err = point(DEVICE_ADDRESS, Register::Holding, true)
            .write_request(1, 8)
            .unwrap_err();
        assert!(err.contains("never written"), "{err}");
        let err = point("setpoint", Register::Holding, false)
            .write_request(1, 40)
            .unwrap_err();
        assert!(err.contains("not marked writable"), "{err}");
        assert_eq!(
            point("setpoint", Register::Holding, true)
                .write_request(2, 40)
                .unwrap(),
            ModbusRequest::new(
                2,
                Op::WriteRegister {
                    address: 0x0101,
                    value: 40
                }
            )
        );
        assert!(point("temp", Register::Input, true)
            .write_request(1, 1)
            .is_err());
    }

    #[test]
    fn reads_span_the_format_and_bits_read_as_zero_or_one() {
        let mut p = point("temperature", Register::Input, false);
        p.format = Format::F32(value::WordOrder::HighFirst);
        assert_eq!(
            p.read_op(),
            Op::ReadInputRegisters {
                address: 0x0101,
                count: 2
            }
        );
        assert_eq!(p.decode(&ModbusData::Words(vec![0xC088, 0])), Ok(-4.25));
        let door = point("door", Register::Discrete, false);
        assert_eq!(door.decode(&ModbusData::Bits(vec![true])), Ok(1.0));
        assert!(door.decode(&ModbusData::Bits(vec![])).is_err());
        assert!(door.decode(&ModbusData::Written).is_err());
    }

    #[test]
    fn only_the_points_a_reading_carries_are_read() {
        assert!(published(&point("temperature", Register::Input, false)));
        assert!(published(&point("alarm_high", Register::Coil, false)));
        assert!(!published(&point(DEVICE_ADDRESS, Register::Holding, false)));
        assert!(!published(&point("evaporator", Register::Input, false)));
        assert_eq!(alarm_name("alarm_high").as_deref(), Some("high_temp"));
        assert_eq!(alarm_name("alarm_probe").as_deref(), Some("probe"));
    }
}
