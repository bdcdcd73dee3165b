//! Kerong request parser (what the simulated boards run): never panics, and what it finds
//! encodes to a frame that decodes to the same request (boards ignore the lock nibble of
//! board-wide commands, so the bytes themselves need not round-trip).
#![no_main]

use libfuzzer_sys::fuzz_target;
use locker_drivers::codec::Decoded;
use locker_drivers::kerong::Request;

fuzz_target!(|data: &[u8]| {
    if let Decoded::Frame { value, len } = Request::decode(data) {
        assert!(len <= data.len());
        let again = value.encode();
        assert_eq!(
            Request::decode(&again),
            Decoded::Frame {
                value,
                len: again.len()
            }
        );
    }
});
