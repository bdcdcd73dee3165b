//! What the wire codecs share: the answer of a decoder looking at the front of a receive
//! buffer, and a buffer that turns a stream of reads into frames.
//!
//! RS-485 hands us bytes, not frames: a reply can arrive in several reads, line noise can put
//! garbage before it, and a corrupted frame must not make us lose the one after it. Each codec
//! only answers "what is at the front of these bytes?"; [`FrameBuffer`] does the bookkeeping.

/// What a decoder found at the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<T> {
    /// The bytes so far could be the start of a frame: read more.
    Incomplete,
    /// The first `n` bytes (n ≥ 1) cannot start a frame: drop them.
    Garbage(usize),
    /// A frame-shaped run whose checksum is wrong: drop the first `n` bytes (n ≥ 1) and look
    /// again, since a real frame may start inside it.
    BadChecksum(usize),
    /// A whole, valid frame of `len` bytes.
    Frame { value: T, len: usize },
}

/// Something taken off the front of a [`FrameBuffer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<T> {
    Frame(T),
    /// `n` bytes that were not part of any frame were dropped.
    Garbage(usize),
    /// A frame with a wrong checksum was dropped.
    BadChecksum,
}

/// Bytes received and not yet consumed.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
}

/// A decoder that keeps getting incomplete input would let a babbling device grow the buffer
/// without bound; no frame of any protocol here is near this long.
const MAX_BUFFERED: usize = 4096;

impl FrameBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Forget everything received so far.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Take the next event off the front, or `None` when more bytes are needed.
    pub fn next<T>(&mut self, decode: impl FnOnce(&[u8]) -> Decoded<T>) -> Option<Event<T>> {
        if self.buf.is_empty() {
            return None;
        }
        let (event, used) = match decode(&self.buf) {
            Decoded::Incomplete if self.buf.len() >= MAX_BUFFERED => (Event::Garbage(1), 1),
            Decoded::Incomplete => return None,
            Decoded::Garbage(n) => {
                let n = n.clamp(1, self.buf.len());
                (Event::Garbage(n), n)
            }
            Decoded::BadChecksum(n) => (Event::BadChecksum, n.clamp(1, self.buf.len())),
            Decoded::Frame { value, len } => (Event::Frame(value), len.clamp(1, self.buf.len())),
        };
        self.buf.drain(..used);
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy decoder: frames are `0xAA x`, anything else is garbage.
    fn toy(buf: &[u8]) -> Decoded<u8> {
        match buf {
            [0xAA] => Decoded::Incomplete,
            [0xAA, x, ..] => Decoded::Frame { value: *x, len: 2 },
            _ => Decoded::Garbage(1),
        }
    }

    #[test]
    fn frames_split_across_pushes_and_garbage_are_separated() {
        let mut fb = FrameBuffer::new();
        fb.push(&[0x01, 0xAA]);
        assert_eq!(fb.next(toy), Some(Event::Garbage(1)));
        assert_eq!(fb.next(toy), None, "half a frame waits for more");
        fb.push(&[0x07]);
        assert_eq!(fb.next(toy), Some(Event::Frame(0x07)));
        assert!(fb.is_empty());
    }

    #[test]
    fn a_decoder_that_never_completes_cannot_grow_the_buffer_forever() {
        let mut fb = FrameBuffer::new();
        fb.push(&vec![0u8; MAX_BUFFERED + 10]);
        let mut dropped = 0;
        while let Some(e) = fb.next(|_| Decoded::<()>::Incomplete) {
            assert_eq!(e, Event::Garbage(1));
            dropped += 1;
        }
        assert_eq!(dropped, 11);
        assert_eq!(fb.len(), MAX_BUFFERED - 1);
    }
}

/// The lock-board test vectors of `docs/protocols/lock-boards.md`, shared by the Kerong and 8A/80
/// codec tests.
#[cfg(test)]
pub(crate) mod vectors {
    /// The protocol facts the codec relies on, with their sources and test vectors. The vectors
    /// come from the sources, not from our simulator, which runs on this very codec.
    pub(crate) const DOC: &str = include_str!("../../docs/protocols/lock-boards.md");
    pub(crate) const DOC_PATH: &str = "docs/protocols/lock-boards.md";

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("test hex"))
            .collect()
    }

    /// Rows `| `id` | kind | `frame` | meaning | source |` of the document's test-vector tables
    /// whose id starts with `prefix`.
    pub(crate) fn doc_vectors(prefix: &str) -> Vec<(&'static str, &'static str, Vec<u8>)> {
        DOC.lines()
            .filter_map(|line| {
                let cells: Vec<&'static str> = line.split('|').map(str::trim).collect();
                let &[_, id, kind, frame, ..] = cells.as_slice() else {
                    return None;
                };
                let id = id.strip_prefix('`')?.strip_suffix('`')?;
                let frame = frame.strip_prefix('`')?.strip_suffix('`')?;
                id.starts_with(prefix).then(|| (id, kind, hex(frame)))
            })
            .collect()
    }

    /// The frame of the documented test vector `id`, byte for byte.
    pub(crate) fn doc(id: &str) -> Vec<u8> {
        let found: Vec<Vec<u8>> = doc_vectors(id)
            .into_iter()
            .filter(|(i, ..)| *i == id)
            .map(|(.., frame)| frame)
            .collect();
        match found.as_slice() {
            [frame] => frame.clone(),
            _ => panic!(
                "{DOC_PATH} has {} test vectors `{id}`, expected one",
                found.len()
            ),
        }
    }
}
