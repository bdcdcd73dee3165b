//! The test vectors of `docs/protocols/lock-boards.md` §2, read from that file byte for byte
//! (worked examples from the sources, XOR verified, and frames derived from the documented
//! layout), round trips, and framing of split, noisy input.

use proptest::prelude::*;

use super::*;
use crate::codec::{Event, FrameBuffer};

use crate::codec::vectors::{doc, doc_vectors, hex, DOC_PATH};

#[test]
fn every_documented_vector_decodes_and_encodes_byte_for_byte() {
    let vectors = doc_vectors("8a-");
    assert!(
        vectors.len() >= 9,
        "{DOC_PATH}: only {} 8A test vectors found",
        vectors.len()
    );
    for (id, kind, wire) in vectors {
        let (decoded, encoded) = match kind {
            "request" => match Request::decode(&wire) {
                Decoded::Frame { value, len } => (len, value.encode()),
                other => panic!("{id}: not a request frame: {other:?}"),
            },
            "reply" | "reply-all" => {
                let shape = if kind == "reply" {
                    Shape::Short
                } else {
                    Shape::AllStates
                };
                match Reply::decode(&wire, shape) {
                    Decoded::Frame { value, len } => (len, value.encode()),
                    other => panic!("{id}: not a reply frame: {other:?}"),
                }
            }
            other => panic!("{id}: unknown kind {other:?} in {DOC_PATH}"),
        };
        assert_eq!(decoded, wire.len(), "{id}: frame length");
        assert_eq!(encoded, wire, "{id}: encodes differently");
    }
}

#[test]
fn worked_example_requests() {
    for (req, id) in [
        (Request::unlock(1, 1).unwrap(), "8a-unlock-b1-l1"),
        (Request::unlock_all(1).unwrap(), "8a-unlock-all-b1"),
        (Request::query(1, 1).unwrap(), "8a-query-b1-l1"),
        (Request::query_all(1).unwrap(), "8a-query-all-b1"),
        (
            Request::MultiUnlock {
                board: 1,
                locks: 1 << 1 | 1 << 9 | 1 << 17,
            },
            "8a-multi-unlock-b1",
        ),
    ] {
        let wire = doc(id);
        assert_eq!(req.encode(), wire, "{req:?}");
        assert_eq!(
            Request::decode(&wire),
            Decoded::Frame {
                value: req,
                len: wire.len()
            }
        );
    }
}

#[test]
fn worked_example_unlock_reply() {
    // Seen in the C# implementation: board 1 lock 1 opened.
    let reply = Reply::decode(&doc("8a-unlock-reply-b1-l1-open"), Shape::Short);
    let value = Reply::Unlock {
        board: 1,
        lock: 1,
        status: OPEN,
    };
    assert_eq!(reply, Decoded::Frame { value, len: 5 });
    assert!(value.answers(&Request::Unlock { board: 1, lock: 1 }));
    assert!(!value.answers(&Request::Unlock { board: 1, lock: 2 }));
    assert_eq!(status_open(OPEN), Some(true));
}

#[test]
fn worked_example_query_all_reply() {
    let wire = doc("8a-query-all-reply-b1");
    let Decoded::Frame {
        value: Reply::All { board, bits },
        len: 7,
    } = Reply::decode(&wire, Shape::AllStates)
    else {
        panic!("not a query-all reply");
    };
    assert_eq!(board, 1);
    // S3 S2 S1 = 01 01 01: locks 17, 9 and 1 report "closed".
    assert_eq!(bits, 1 | 1 << 8 | 1 << 16);
    for lock in 1..=24 {
        let closed = [1, 9, 17].contains(&lock);
        assert_eq!(
            is_open(bits, lock, Polarity::OneIsClosed),
            !closed,
            "lock {lock}"
        );
    }
    assert!(is_open(bits, 1, Polarity::ZeroIsClosed));
}

#[test]
fn query_all_reply_groups_are_highest_first() {
    // S3 S2 S1 = 80 04 03: lock 24, lock 11, locks 1 and 2 closed (the documented order).
    let Decoded::Frame {
        value: Reply::All { board, bits },
        ..
    } = Reply::decode(&doc("8a-query-all-reply-b2"), Shape::AllStates)
    else {
        panic!("not a query-all reply");
    };
    assert_eq!(board, 2);
    let closed: Vec<u8> = (1..=24)
        .filter(|&lock| !is_open(bits, lock, Polarity::OneIsClosed))
        .collect();
    assert_eq!(closed, vec![1, 2, 11, 24]);
}

#[test]
fn the_expected_shape_decides_between_short_and_long_0x80_frames() {
    let short = Reply::Lock {
        board: 3,
        lock: 4,
        status: CLOSED,
    };
    let wire = doc("8a-query-reply-b3-l4-closed");
    assert_eq!(short.encode(), wire);
    assert_eq!(
        Reply::decode(&wire, Shape::Short),
        Decoded::Frame {
            value: short,
            len: 5
        }
    );
    assert!(short.answers(&Request::Query { board: 3, lock: 4 }));
    assert!(!short.answers(&Request::Query { board: 4, lock: 3 }));
    assert_eq!(status_open(CLOSED), Some(false));
    // The same five bytes while a query-all is outstanding: wait for the two more it needs.
    assert_eq!(Reply::decode(&wire, Shape::AllStates), Decoded::Incomplete);
}

#[test]
fn bad_sums_and_strangers() {
    assert_eq!(
        Reply::decode(&hex("8A 01 01 00 8B"), Shape::Short),
        Decoded::BadChecksum(1)
    );
    assert_eq!(
        Reply::decode(&hex("00 11 22 80 01"), Shape::Short),
        Decoded::Garbage(3)
    );
    assert_eq!(
        Reply::decode(&hex("80 01"), Shape::Short),
        Decoded::Incomplete
    );
    assert_eq!(
        Request::unlock(1, 25).unwrap_err().to_string(),
        "8A lock 25 is outside 1-24"
    );
    assert_eq!(Request::unlock(0, 1), Err(AddressError::Board(0)));
    assert_eq!(Request::unlock(33, 1), Err(AddressError::Board(33)));
}

#[test]
fn unsolicited_door_change_is_decoded_in_any_shape() {
    let change = Reply::Changed {
        board: 2,
        lock: 7,
        status: OPEN,
    };
    for shape in [Shape::Short, Shape::AllStates] {
        assert_eq!(
            Reply::decode(&change.encode(), shape),
            Decoded::Frame {
                value: change,
                len: 5
            }
        );
    }
}

fn any_request() -> impl Strategy<Value = Request> {
    let board = 1u8..=32;
    let lock = 1u8..=24;
    prop_oneof![
        (board.clone(), lock.clone()).prop_map(|(board, lock)| Request::Unlock { board, lock }),
        board.clone().prop_map(|board| Request::UnlockAll { board }),
        (board.clone(), lock).prop_map(|(board, lock)| Request::Query { board, lock }),
        board.clone().prop_map(|board| Request::QueryAll { board }),
        (board, 0u32..1 << 24).prop_map(|(board, locks)| Request::MultiUnlock { board, locks }),
    ]
}

/// A reply, with the shape the request it answers would expect.
fn any_reply() -> impl Strategy<Value = (Reply, Shape)> {
    let board = 1u8..=32;
    let lock = 0u8..=24;
    let status = prop_oneof![Just(OPEN), Just(CLOSED)];
    prop_oneof![
        (board.clone(), lock.clone(), status.clone()).prop_map(|(board, lock, status)| (
            Reply::Unlock {
                board,
                lock,
                status
            },
            Shape::Short
        )),
        (board.clone(), lock.clone(), status.clone()).prop_map(|(board, lock, status)| (
            Reply::Lock {
                board,
                lock,
                status
            },
            Shape::Short
        )),
        (board.clone(), 0u32..1 << 24)
            .prop_map(|(board, bits)| (Reply::All { board, bits }, Shape::AllStates)),
        (board, lock, status).prop_map(|(board, lock, status)| (
            Reply::Changed {
                board,
                lock,
                status
            },
            Shape::Short
        )),
    ]
}

fn is_head(b: u8) -> bool {
    [0x8A, 0x80, 0x82].contains(&b)
}

proptest! {
    #[test]
    fn requests_round_trip(req in any_request()) {
        let wire = req.encode();
        prop_assert_eq!(Request::decode(&wire), Decoded::Frame { value: req, len: wire.len() });
    }

    #[test]
    fn replies_round_trip((reply, shape) in any_reply()) {
        let wire = reply.encode();
        prop_assert_eq!(Reply::decode(&wire, shape), Decoded::Frame { value: reply, len: wire.len() });
    }

    #[test]
    fn random_bytes_never_panic_and_always_make_progress(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        for shape in [Shape::Short, Shape::AllStates] {
            let mut fb = FrameBuffer::new();
            fb.push(&bytes);
            let before = fb.len();
            while let Some(_event) = fb.next(|b| Reply::decode(b, shape)) {}
            prop_assert!(fb.len() < 7 && fb.len() <= before);
        }
        let mut fb = FrameBuffer::new();
        fb.push(&bytes);
        while let Some(_event) = fb.next(Request::decode) {}
        prop_assert!(fb.len() < 6);
    }

    /// Replies (each read with its own expected shape, as the link does) survive any split into
    /// reads and any head-free garbage before them.
    #[test]
    fn frames_are_found_through_splits_and_garbage(
        replies in proptest::collection::vec(any_reply(), 1..6),
        garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no head", |b| !is_head(*b)), 0..8), 6),
        cut in 1usize..7,
    ) {
        let mut fb = FrameBuffer::new();
        let mut bad = 0;
        for ((reply, shape), junk) in replies.iter().zip(&garbage) {
            let mut bytes = junk.clone();
            bytes.extend_from_slice(&reply.encode());
            let mut got = None;
            for chunk in bytes.chunks(cut) {
                fb.push(chunk);
                while let Some(event) = fb.next(|b| Reply::decode(b, *shape)) {
                    match event {
                        Event::Frame(f) => got = Some(f),
                        Event::BadChecksum => bad += 1,
                        Event::Garbage(_) => {}
                    }
                }
            }
            prop_assert_eq!(got, Some(*reply));
        }
        prop_assert_eq!(bad, 0);
    }
}
