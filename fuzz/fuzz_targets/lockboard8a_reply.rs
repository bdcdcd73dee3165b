//! 8A/80 reply parser in both expected shapes: never panics, every frame found re-encodes to
//! the bytes it came from, and a buffer fed in arbitrary reads always drains.
#![no_main]

use libfuzzer_sys::fuzz_target;
use locker_drivers::codec::{Decoded, FrameBuffer};
use locker_drivers::lockboard8a::{Reply, Shape};

fuzz_target!(|data: &[u8]| {
    for shape in [Shape::Short, Shape::AllStates] {
        if let Decoded::Frame { value, len } = Reply::decode(data, shape) {
            assert!(len <= data.len());
            assert_eq!(value.encode(), data[..len]);
        }
        let mut fb = FrameBuffer::new();
        for chunk in data.chunks(3) {
            fb.push(chunk);
            while fb.next(|b| Reply::decode(b, shape)).is_some() {}
        }
        assert!(fb.len() < 7);
    }
});
