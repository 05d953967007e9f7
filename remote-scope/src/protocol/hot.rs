//! The two frames every call sends, `Invoke` and a `Result` with a value, in MessagePack
//! written and read by hand: the same bytes rmp-serde writes for [`Frame`](super::Frame) (the
//! tests hold both to it), at a fraction of the cost. Anything else, and any variation of these
//! two that rmp-serde would also accept, goes the general way.

use super::{FrameRef, InvokeRef, InvokeResultRef, OutcomeRef};

/// The part of a frame in front of its payload, written by hand: the same bytes as rmp-serde
/// writes for [`Frame`] (a test holds them to it), in a fraction of the time.
pub(super) enum Header<'a> {
    /// `{"Invoke": [id, body, timeout_ms, bin(` ...
    Invoke {
        id: u64,
        body: &'a str,
        timeout_ms: u64,
    },
    /// `{"Result": [id, {"Value": bin(` ...
    Value { id: u64 },
}

/// A header being written, on the stack unless the body name is very long.
pub(super) struct HeaderBytes {
    buf: [u8; 128],
    len: usize,
    /// The whole header, once it outgrew `buf`.
    spill: Vec<u8>,
}

impl Default for HeaderBytes {
    fn default() -> Self {
        HeaderBytes {
            buf: [0; 128],
            len: 0,
            spill: Vec::new(),
        }
    }
}

impl HeaderBytes {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        match self.buf.get_mut(self.len..end) {
            Some(space) if self.spill.is_empty() => space.copy_from_slice(bytes),
            _ => {
                if self.spill.is_empty() {
                    self.spill.extend_from_slice(&self.buf[..self.len]);
                }
                self.spill.extend_from_slice(bytes);
            }
        }
        self.len = end;
    }

    #[inline]
    pub(super) fn as_slice(&self) -> &[u8] {
        if self.spill.is_empty() {
            &self.buf[..self.len]
        } else {
            &self.spill
        }
    }

    /// `n` behind the marker of the narrowest of three widths that holds it: one, two or four
    /// bytes, big-endian (MessagePack's 8, 16 and 32 forms of a uint, string or bin length).
    // Always inlined: each caller passes constant markers, and left to itself the compiler
    // made it a call per field on every frame sent.
    #[inline(always)]
    fn sized(&mut self, n: u32, [one, two, four]: [u8; 3]) {
        match n {
            0..=0xff => self.put(&[one, n as u8]),
            0x100..=0xffff => {
                self.put(&[two]);
                self.put(&(n as u16).to_be_bytes());
            }
            _ => {
                self.put(&[four]);
                self.put(&n.to_be_bytes());
            }
        }
    }

    #[inline]
    fn uint(&mut self, n: u64) {
        match u32::try_from(n) {
            Ok(small @ 0..=0x7f) => self.put(&[small as u8]),
            Ok(n) => self.sized(n, [0xcc, 0xcd, 0xce]),
            Err(_) => {
                self.put(&[0xcf]);
                self.put(&n.to_be_bytes());
            }
        }
    }

    #[inline]
    fn str(&mut self, s: &str) {
        match s.len() {
            n @ 0..=31 => self.put(&[0xa0 | n as u8]),
            n => self.sized(u32::try_from(n).unwrap_or(u32::MAX), [0xd9, 0xda, 0xdb]),
        }
        self.put(s.as_bytes());
    }

    #[inline]
    fn bin_len(&mut self, n: u32) {
        self.sized(n, [0xc4, 0xc5, 0xc6]);
    }
}

impl Header<'_> {
    #[inline]
    pub(super) fn write(&self, out: &mut HeaderBytes, len: u32) {
        // A one-entry map from the variant's name to its fields, as an array.
        match *self {
            Header::Invoke {
                id,
                body,
                timeout_ms,
            } => {
                out.put(&[0x81]);
                out.str("Invoke");
                out.put(&[0x94]);
                out.uint(id);
                out.str(body);
                out.uint(timeout_ms);
            }
            Header::Value { id } => {
                out.put(&[0x81]);
                out.str("Result");
                out.put(&[0x92]);
                out.uint(id);
                out.put(&[0x81]);
                out.str("Value");
            }
        }
        out.bin_len(len);
    }
}

/// `bytes` as one of the two frames, when it is one in the form [`Header`] writes (any width of
/// integer, string and bin markers), ending exactly where its payload does. `None` sends the
/// frame to the general decoder, which then accepts or refuses it as before.
pub(super) fn decode(bytes: &[u8]) -> Option<FrameRef<'_>> {
    let mut r = Reader(bytes);
    r.byte(0x81)?;
    match r.raw_str()? {
        b"Invoke" => {
            r.byte(0x94)?;
            let id = r.uint()?;
            let body = r.str()?;
            let timeout_ms = r.uint()?;
            let captures = r.bin_to_end()?;
            Some(FrameRef::Invoke(InvokeRef {
                id,
                body,
                timeout_ms,
                captures,
            }))
        }
        b"Result" => {
            r.byte(0x92)?;
            let id = r.uint()?;
            r.byte(0x81)?;
            if r.raw_str()? != b"Value" {
                return None;
            }
            let value = r.bin_to_end()?;
            Some(FrameRef::Result(InvokeResultRef {
                id,
                outcome: OutcomeRef::Value(value),
            }))
        }
        _ => None,
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(taken)
    }

    fn marker(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn byte(&mut self, expected: u8) -> Option<()> {
        (self.marker()? == expected).then_some(())
    }

    fn be(&mut self, n: usize) -> Option<u64> {
        Some(
            self.take(n)?
                .iter()
                .fold(0_u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    }

    fn uint(&mut self) -> Option<u64> {
        match self.marker()? {
            m @ 0x00..=0x7f => Some(u64::from(m)),
            0xcc => self.be(1),
            0xcd => self.be(2),
            0xce => self.be(4),
            0xcf => self.be(8),
            _ => None,
        }
    }

    /// A string's bytes, not yet checked to be UTF-8 (a variant name is compared as bytes).
    fn raw_str(&mut self) -> Option<&'a [u8]> {
        let len = match self.marker()? {
            m @ 0xa0..=0xbf => u64::from(m & 0x1f),
            0xd9 => self.be(1)?,
            0xda => self.be(2)?,
            0xdb => self.be(4)?,
            _ => return None,
        };
        self.take(usize::try_from(len).ok()?)
    }

    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.raw_str()?).ok()
    }

    /// A bin that takes up exactly the rest of the frame.
    fn bin_to_end(&mut self) -> Option<&'a [u8]> {
        let len = match self.marker()? {
            0xc4 => self.be(1)?,
            0xc5 => self.be(2)?,
            0xc6 => self.be(4)?,
            _ => return None,
        };
        (usize::try_from(len).ok()? == self.0.len()).then_some(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{encode, Frame, Invoke, InvokeResult, Outcome};
    use super::*;

    fn samples() -> Vec<Frame> {
        let mut frames = Vec::new();
        for (i, id) in [0_u64, 0x7f, 0x80, 0x1_0000, u64::MAX]
            .into_iter()
            .enumerate()
        {
            for size in [0_usize, 5, 300, 70_000] {
                let payload: Vec<u8> = (0..size).map(|b| b as u8).collect();
                frames.push(Frame::Invoke(Invoke {
                    id,
                    body: "m::".to_owned() + &"x".repeat([0, 29, 200, 300][i % 4]),
                    timeout_ms: id / 7,
                    captures: payload.clone(),
                }));
                frames.push(Frame::Result(InvokeResult {
                    id,
                    outcome: Outcome::Value(payload),
                }));
            }
        }
        frames
    }

    /// What the general decoder makes of `bytes`.
    fn general(bytes: &[u8]) -> Option<Frame> {
        rmp_serde::from_slice::<FrameRef<'_>>(bytes)
            .ok()
            .map(FrameRef::into_owned)
    }

    #[test]
    fn reads_every_width_of_both_frames_as_the_general_decoder_does() {
        for frame in samples() {
            let bytes = encode(&frame).expect("encodes");
            let fast = decode(&bytes).map(FrameRef::into_owned);
            assert_eq!(fast.as_ref(), Some(&frame));
            assert_eq!(general(&bytes).as_ref(), Some(&frame));
        }
    }

    #[test]
    fn never_accepts_what_the_general_decoder_reads_otherwise() {
        // Every frame cut short or made longer, and every byte of small ones changed: what the
        // fast path accepts, the general decoder reads the same way.
        let small = samples()
            .into_iter()
            .map(|f| encode(&f).expect("encodes"))
            .filter(|b| b.len() < 600);
        let mut tried = 0;
        for bytes in small {
            let mut variants: Vec<Vec<u8>> =
                (0..bytes.len()).map(|n| bytes[..n].to_vec()).collect();
            variants.push([bytes.as_slice(), &[0]].concat());
            for at in 0..bytes.len() {
                for value in [0x00, 0x7f, 0x80, 0xc0, 0xc4, 0xcc, 0xd9, 0xff] {
                    let mut changed = bytes.clone();
                    changed[at] = value;
                    variants.push(changed);
                }
                let mut changed = bytes.clone();
                changed[at] = changed[at].wrapping_add(1);
                variants.push(changed);
            }
            for variant in variants {
                tried += 1;
                if let Some(fast) = decode(&variant) {
                    assert_eq!(Some(fast.into_owned()), general(&variant), "{variant:02x?}");
                }
            }
        }
        assert!(tried > 10_000, "{tried}");
    }

    #[test]
    fn other_frames_go_the_general_way() {
        let cancel = encode(&Frame::Cancel(3)).expect("encodes");
        assert!(decode(&cancel).is_none());
        let failure = encode(&Frame::Result(InvokeResult {
            id: 1,
            outcome: Outcome::Failure(super::super::Failure::UnknownBody),
        }))
        .expect("encodes");
        assert!(decode(&failure).is_none());
    }
}
