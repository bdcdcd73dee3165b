//! The MQTT front door's packet handling (`locker-gate`): arbitrary bytes as a CONNECT, as a
//! client's packet stream and as the broker's, for every role in MQTT 3.1.1 and 5, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    locker_gate::session::exercise(data);
});
