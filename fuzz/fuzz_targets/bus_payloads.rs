//! Bus payloads from banks and kiosks, and what the hub publishes (`locker-bus`), and topic names: any bytes parse or are
//! refused, never panic, and what parses serializes and parses back to the same value (floats
//! included: the workspace turns on serde_json's `float_roundtrip`, which this target asked for).
#![no_main]

use libfuzzer_sys::fuzz_target;
use locker_bus::{
    AlertEvent, BankState, BankStatus, Command, CommandAck, DoorObservation, KioskReply,
    KioskRequest, KioskUpdateMessage, UnitReading,
};

fn round_trip<T>(data: &[u8])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let text = serde_json::to_vec(&value).expect("serializes");
        let again: T = serde_json::from_slice(&text).expect("parses back");
        assert_eq!(value, again);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<BankStatus>(data);
    round_trip::<DoorObservation>(data);
    round_trip::<UnitReading>(data);
    round_trip::<Command>(data);
    round_trip::<CommandAck>(data);
    // What kiosks send the hub and what the hub publishes.
    round_trip::<KioskRequest>(data);
    round_trip::<KioskReply>(data);
    round_trip::<KioskUpdateMessage>(data);
    round_trip::<BankState>(data);
    round_trip::<AlertEvent>(data);
    let _ = locker_bus::parse(&String::from_utf8_lossy(data));
});
