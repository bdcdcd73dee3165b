//! 8A/80 request parser (what the simulated boards run): never panics, round-trips frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use locker_drivers::codec::Decoded;
use locker_drivers::lockboard8a::Request;

fuzz_target!(|data: &[u8]| {
    if let Decoded::Frame { value, len } = Request::decode(data) {
        assert!(len <= data.len());
        assert_eq!(value.encode(), data[..len]);
    }
});
