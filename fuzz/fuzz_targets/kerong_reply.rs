//! Kerong reply parser: arbitrary bytes, in arbitrary read sizes, never panic, every step
//! consumes bytes, and every frame found encodes to a frame that decodes to the same reply.
//! (Not byte-for-byte: a status or pulse reply is accepted whatever its lock nibble, since
//! firmware that answers an unlock may put the lock there.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use locker_drivers::codec::{Decoded, Event, FrameBuffer};
use locker_drivers::kerong::Reply;

fuzz_target!(|data: &[u8]| {
    if let Decoded::Frame { value, len } = Reply::decode(data) {
        assert!(len <= data.len());
        let again = value.encode();
        assert_eq!(
            Reply::decode(&again),
            Decoded::Frame {
                value,
                len: again.len()
            }
        );
    }
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let mut fb = FrameBuffer::new();
    for chunk in rest.chunks(usize::from(step).max(1)) {
        fb.push(chunk);
        while let Some(event) = fb.next(Reply::decode) {
            if let Event::Garbage(n) = event {
                assert!(n >= 1);
            }
        }
    }
});
