//! The two frames every call sends, `Invoke` and a `Result` with a value, and user messages,
//! in MessagePack written and read by hand: the same bytes rmp-serde writes for
//! [`Frame`](super::Frame) (the tests hold both to it), at a fraction of the cost. Anything
//! else, and any variation of these that rmp-serde would also accept, goes the general way.

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
    /// `{"Message": bin(` ...
    Message,
}

/// What the fast path read of a frame in front of its payload, which runs to the frame's end.
/// `N` is the body name: first its bytes as read, then the name they are.
pub(super) enum Hot<N> {
    Invoke { id: u64, body: N, timeout_ms: u64 },
    Value { id: u64 },
    Message,
}

/// Where a header is written: the exact room [`Header::len`] asked for, in front of the
/// payload.
struct Out<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Out<'_> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.at + bytes.len();
        self.buf[self.at..end].copy_from_slice(bytes);
        self.at = end;
    }

    /// `n` behind the marker of the narrowest of three widths that holds it: one, two or four
    /// bytes, big-endian (MessagePack's 8, 16 and 32 forms of a uint, string or bin length).
    // Always inlined: each caller passes constant markers.
    #[inline(always)]
    fn sized(&mut self, n: u32, [one, two, four]: [u8; 3]) {
        match n {
            0..=0xff => self.put(&[one, n as u8]),
            0x100..=0xffff => {
                let [hi, lo] = (n as u16).to_be_bytes();
                self.put(&[two, hi, lo]);
            }
            _ => {
                let [a, b, c, d] = n.to_be_bytes();
                self.put(&[four, a, b, c, d]);
            }
        }
    }

    #[inline(always)]
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

    #[inline(always)]
    fn str(&mut self, s: &str) {
        match s.len() {
            n @ 0..=31 => self.put(&[0xa0 | n as u8]),
            n => self.sized(u32::try_from(n).unwrap_or(u32::MAX), [0xd9, 0xda, 0xdb]),
        }
        self.put(s.as_bytes());
    }
}

/// The bytes [`Out::sized`] takes for `n`.
#[inline(always)]
fn sized_len(n: u64) -> usize {
    match n {
        0..=0xff => 2,
        0x100..=0xffff => 3,
        _ => 5,
    }
}

/// The bytes [`Out::uint`] takes for `n`.
#[inline(always)]
fn uint_len(n: u64) -> usize {
    match n {
        0..=0x7f => 1,
        0x80..=0xffff_ffff => sized_len(n),
        _ => 9,
    }
}

/// The bytes [`Out::str`] takes for `s`.
#[inline(always)]
fn str_len(s: &str) -> usize {
    let marker = match s.len() {
        0..=31 => 1,
        // Longer than 4 GiB cannot be a body name that passed the frame limit.
        n => sized_len(n as u64),
    };
    marker + s.len()
}

/// `{"Invoke": [` and `{"Result": [`, with the array's length: the same for every frame.
const INVOKE_OPEN: [u8; 9] = [0x81, 0xa6, b'I', b'n', b'v', b'o', b'k', b'e', 0x94];
const RESULT_OPEN: [u8; 9] = [0x81, 0xa6, b'R', b'e', b's', b'u', b'l', b't', 0x92];
/// `{"Value": ` in front of the value's bin.
const VALUE_OPEN: [u8; 7] = [0x81, 0xa5, b'V', b'a', b'l', b'u', b'e'];
/// `{"Message": ` in front of the message's bin.
const MESSAGE_OPEN: [u8; 9] = [0x81, 0xa7, b'M', b'e', b's', b's', b'a', b'g', b'e'];

impl Header<'_> {
    /// The bytes the header takes in front of a payload of `len` bytes.
    #[inline]
    pub(super) fn len(&self, len: u32) -> usize {
        let fields = match *self {
            Header::Invoke {
                id,
                body,
                timeout_ms,
            } => INVOKE_OPEN.len() + uint_len(id) + str_len(body) + uint_len(timeout_ms),
            Header::Value { id } => RESULT_OPEN.len() + uint_len(id) + VALUE_OPEN.len(),
            Header::Message => MESSAGE_OPEN.len(),
        };
        fields + sized_len(u64::from(len))
    }

    /// Writes the header of a payload of `len` bytes into `out`, which is exactly
    /// [`Header::len`] long: a one-entry map from the variant's name to its fields, as an
    /// array, ending with the payload's bin marker.
    #[inline]
    pub(super) fn write(&self, out: &mut [u8], len: u32) {
        let mut out = Out { buf: out, at: 0 };
        match *self {
            Header::Invoke {
                id,
                body,
                timeout_ms,
            } => {
                out.put(&INVOKE_OPEN);
                out.uint(id);
                out.str(body);
                out.uint(timeout_ms);
            }
            Header::Value { id } => {
                out.put(&RESULT_OPEN);
                out.uint(id);
                out.put(&VALUE_OPEN);
            }
            Header::Message => out.put(&MESSAGE_OPEN),
        }
        out.sized(len, [0xc4, 0xc5, 0xc6]);
        debug_assert_eq!(
            out.at,
            out.buf.len(),
            "Header::len and Header::write disagree"
        );
    }
}

/// `bytes` as one of the frames [`Header`] writes, when it is one in that form (any width of
/// integer, string and bin markers), with where its payload starts: the payload is a bin that
/// ends exactly where the frame does. `None` sends the frame to the general decoder, which
/// accepts or refuses it as it does any frame.
pub(super) fn decode(bytes: &[u8]) -> Option<(Hot<&[u8]>, usize)> {
    let mut r = Reader(bytes);
    r.byte(0x81)?;
    let hot = match r.raw_str()? {
        b"Invoke" => {
            r.byte(0x94)?;
            let id = r.uint()?;
            let body = r.raw_str()?;
            let timeout_ms = r.uint()?;
            Hot::Invoke {
                id,
                body,
                timeout_ms,
            }
        }
        b"Result" => {
            r.byte(0x92)?;
            let id = r.uint()?;
            r.byte(0x81)?;
            if r.raw_str()? != b"Value" {
                return None;
            }
            Hot::Value { id }
        }
        b"Message" => Hot::Message,
        _ => return None,
    };
    r.bin_to_end()?;
    Some((hot, bytes.len() - r.0.len()))
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

    /// The marker of a bin that takes up exactly the rest of the frame.
    fn bin_to_end(&mut self) -> Option<()> {
        let len = match self.marker()? {
            0xc4 => self.be(1)?,
            0xc5 => self.be(2)?,
            0xc6 => self.be(4)?,
            _ => return None,
        };
        (usize::try_from(len).ok()? == self.0.len()).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::{decode_frame, decode_with, encode, Frame, Invoke, InvokeResult, Outcome};
    use super::*;

    fn samples() -> Vec<Frame> {
        let mut frames = Vec::new();
        for (i, id) in [0_u64, 0x7f, 0x80, 0x1_0000, u64::MAX]
            .into_iter()
            .enumerate()
        {
            for size in [0_usize, 5, 300, 70_000] {
                let payload: Bytes = (0..size).map(|b| b as u8).collect();
                frames.push(Frame::Invoke(Invoke {
                    id,
                    body: ("m::".to_owned() + &"x".repeat([0, 29, 200, 300][i % 4])).into(),
                    timeout_ms: id / 7,
                    captures: payload.clone(),
                }));
                frames.push(Frame::Result(InvokeResult {
                    id,
                    outcome: Outcome::Value(payload.clone()),
                }));
                frames.push(Frame::Message(payload));
            }
        }
        frames
    }

    /// What the fast path makes of `bytes`, with `known` the one name it has.
    fn fast(bytes: &[u8], known: Option<&'static str>) -> Option<Frame> {
        decode(bytes)?;
        let names = |name: &[u8]| known.filter(|k| k.as_bytes() == name);
        decode_with(Bytes::copy_from_slice(bytes), usize::MAX, names).ok()
    }

    /// What the general decoder makes of `bytes`.
    fn general(bytes: &[u8]) -> Option<Frame> {
        decode_frame::<Frame>(bytes).ok()
    }

    #[test]
    fn reads_every_width_of_its_frames_as_the_general_decoder_does() {
        for frame in samples() {
            let bytes = encode(&frame).expect("encodes");
            assert_eq!(fast(&bytes, None).as_ref(), Some(&frame));
            assert_eq!(general(&bytes).as_ref(), Some(&frame));
        }
    }

    #[test]
    fn never_accepts_what_the_general_decoder_reads_otherwise() {
        // Every frame cut short or made longer, and every byte of small ones changed: what the
        // fast path accepts, the general decoder reads the same way.
        let small = samples()
            .into_iter()
            .map(|f| encode(&f).expect("encodes").to_vec())
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
                // "m::" is the name of some samples: known, it is compared, not checked.
                for known in [None, Some("m::")] {
                    tried += 1;
                    if let Some(fast) = fast(&variant, known) {
                        assert_eq!(Some(fast), general(&variant), "{variant:02x?}");
                    }
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

    #[test]
    fn a_known_name_is_taken_as_it_is_and_only_that_name() {
        static KNOWN: &str = "m::known";
        let invoke = |body: &'static str| {
            encode(&Frame::Invoke(Invoke {
                id: 1,
                body: body.into(),
                timeout_ms: 5,
                captures: Bytes::from_static(&[1, 2]),
            }))
            .expect("encodes")
            .to_vec()
        };
        let body_of = |bytes: &[u8]| match fast(bytes, Some(KNOWN)) {
            Some(Frame::Invoke(invoke)) => Some((invoke.body.to_string(), invoke.body.as_ptr())),
            _ => None,
        };
        let known = invoke(KNOWN);
        assert_eq!(body_of(&known), Some((KNOWN.to_owned(), KNOWN.as_ptr())));
        let other = invoke("m::other");
        let (name, at) = body_of(&other).expect("decodes");
        assert_eq!(name, "m::other");
        assert_ne!(at, KNOWN.as_ptr());
        // Not UTF-8, and not the known name: refused, as without one.
        let mut broken = invoke("m::knowm");
        let at = broken
            .windows(5)
            .position(|w| w == b"knowm")
            .expect("in the frame");
        broken[at + 4] = 0xff;
        assert_eq!(body_of(&broken), None);
    }

    #[test]
    fn payloads_are_parts_of_the_message_not_copies() {
        let frame = Frame::Invoke(Invoke {
            id: 9,
            body: "m::b".into(),
            timeout_ms: 1,
            captures: Bytes::from(vec![3; 100]),
        });
        let message = encode(&frame).expect("encodes");
        let Ok(Frame::Invoke(decoded)) = super::super::decode(message.clone(), 1 << 10) else {
            panic!("not an invoke");
        };
        assert!(message.as_ptr_range().contains(&decoded.captures.as_ptr()));
    }
}
