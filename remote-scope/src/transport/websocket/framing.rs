//! RFC 6455 framing for an established WebSocket, without I/O: what [`super::socket`] reads is
//! cut into messages here, and what it sends is framed here.
//!
//! Why not tungstenite's: it zero-fills its read buffer before every read and copies each
//! message out of it and each outgoing one into its write buffer. Here a message is a slice of
//! the read buffer, unmasked in place, and an outgoing payload is written from where it lies.
//! tungstenite still does the HTTP upgrade (see [`super::upgrade`]).
//!
//! Only what this library speaks is accepted: binary messages, possibly in fragments, and the
//! control frames. No extension is ever negotiated, so reserved bits and opcodes are errors, and
//! so is a text message (frames are binary).

use bytes::{Buf, BufMut, Bytes, BytesMut};

const FIN: u8 = 0x80;
const MASKED: u8 = 0x80;
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// The status code of a normal close.
pub(crate) const NORMAL_CLOSE: u16 = 1000;

/// Which end of the connection this is: a client masks what it sends and a server must not
/// (RFC 6455, section 5.1), and each refuses frames that break that rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

/// A message taken off the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A whole binary message.
    Binary(Bytes),
    /// A ping, to be answered with a pong that carries the same payload.
    Ping(Bytes),
    Pong,
    /// The peer is closing, with its status code if it gave one.
    Close(Option<u16>),
}

/// What breaks the framing. Each ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FramingError {
    #[error("a WebSocket message of {announced} bytes, over the limit of {limit}")]
    TooLarge { announced: u64, limit: usize },
    #[error("a text message; frames are binary")]
    Text,
    #[error("a WebSocket frame with reserved bits set; no extension was negotiated")]
    ReservedBits,
    #[error("a WebSocket frame with the reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("an unmasked WebSocket frame from a client")]
    Unmasked,
    #[error("a masked WebSocket frame from a server")]
    Masked,
    #[error("a fragmented WebSocket control frame")]
    FragmentedControl,
    #[error("a WebSocket control frame of {0} bytes; at most 125 are allowed")]
    LongControl(u64),
    #[error("a WebSocket continuation frame with no message to continue")]
    StrayContinuation,
    #[error("a new WebSocket message before the previous one ended")]
    Interleaved,
    #[error("a WebSocket close frame with a one-byte payload, a reserved code or a reason that is not UTF-8")]
    BadClose,
}

/// Cuts messages off the front of a read buffer.
#[derive(Debug)]
pub(crate) struct Decoder {
    role: Role,
    limit: usize,
    /// The fragments so far of a message that came in pieces.
    fragments: Option<BytesMut>,
    /// How many bytes the buffer must hold before the next frame can be taken.
    wanted: usize,
}

impl Decoder {
    /// A decoder for `role`'s end that refuses messages over `limit` bytes from their header.
    pub(crate) fn new(role: Role, limit: usize) -> Self {
        Decoder {
            role,
            limit,
            fragments: None,
            wanted: 2,
        }
    }

    /// Changes the largest message accepted from the next frame on.
    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// How many bytes the buffer must hold, from its start, before [`Decoder::decode`] can
    /// take the next frame. Never more than the limit plus a header.
    pub(crate) fn wanted(&self) -> usize {
        self.wanted
    }

    /// Takes the next message off the front of `buf`: `Ok(None)` if it is not all there yet.
    /// A frame is checked from its header, so an oversized or malformed one is refused before
    /// its payload arrives.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, FramingError> {
        loop {
            let Some(head) = self.head(buf)? else {
                return Ok(None);
            };
            let total = head
                .len
                .checked_add(head.payload)
                .ok_or(FramingError::TooLarge {
                    announced: head.payload as u64,
                    limit: self.limit,
                })?;
            if buf.len() < total {
                self.wanted = total;
                return Ok(None);
            }
            self.wanted = 2;
            buf.advance(head.len);
            let mut payload = buf.split_to(head.payload);
            if let Some(key) = head.mask {
                apply_mask(&mut payload, key);
            }
            match head.opcode {
                BINARY if head.fin => return Ok(Some(Incoming::Binary(payload.freeze()))),
                // Copied, so that a slow message does not pin every read buffer under it.
                BINARY => self.fragments = Some(BytesMut::from(&payload[..])),
                CONTINUATION => {
                    let Some(fragments) = self.fragments.as_mut() else {
                        return Err(FramingError::StrayContinuation);
                    };
                    fragments.extend_from_slice(&payload);
                    if head.fin {
                        let whole = self.fragments.take().unwrap_or_default();
                        return Ok(Some(Incoming::Binary(whole.freeze())));
                    }
                }
                PING => return Ok(Some(Incoming::Ping(payload.freeze()))),
                PONG => return Ok(Some(Incoming::Pong)),
                _ => return close_code(&payload).map(|code| Some(Incoming::Close(code))),
            }
        }
    }

    /// Whether a message has begun in fragments and not ended.
    pub(crate) fn in_message(&self) -> bool {
        self.fragments.is_some()
    }

    /// Reads and checks the header at the front of `buf`, if it is all there.
    fn head(&mut self, buf: &[u8]) -> Result<Option<Head>, FramingError> {
        let [first, second, ..] = *buf else {
            self.wanted = 2;
            return Ok(None);
        };
        let fin = first & FIN != 0;
        if first & 0x70 != 0 {
            return Err(FramingError::ReservedBits);
        }
        let opcode = first & 0x0f;
        let masked = second & MASKED != 0;
        match (self.role, masked) {
            (Role::Server, false) => return Err(FramingError::Unmasked),
            (Role::Client, true) => return Err(FramingError::Masked),
            _ => {}
        }
        let (announced, mut len) = match second & 0x7f {
            126 => match buf.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return self.short(4),
            },
            127 => match buf.get(2..10) {
                Some(b) => {
                    let mut be = [0; 8];
                    be.copy_from_slice(b);
                    (u64::from_be_bytes(be), 10)
                }
                None => return self.short(10),
            },
            short => (u64::from(short), 2),
        };
        match opcode {
            CLOSE | PING | PONG if !fin => return Err(FramingError::FragmentedControl),
            CLOSE | PING | PONG if announced > 125 => {
                return Err(FramingError::LongControl(announced))
            }
            CLOSE | PING | PONG => {}
            BINARY if self.fragments.is_some() => return Err(FramingError::Interleaved),
            BINARY => {}
            CONTINUATION if self.fragments.is_none() => {
                return Err(FramingError::StrayContinuation)
            }
            CONTINUATION => {}
            TEXT => return Err(FramingError::Text),
            other => return Err(FramingError::ReservedOpcode(other)),
        }
        if opcode == BINARY || opcode == CONTINUATION {
            let so_far = self.fragments.as_ref().map_or(0, BytesMut::len);
            let whole = announced.saturating_add(so_far as u64);
            if whole > self.limit as u64 {
                return Err(FramingError::TooLarge {
                    announced: whole,
                    limit: self.limit,
                });
            }
        }
        let mask = if masked {
            let Some(key) = buf.get(len..len + 4) else {
                return self.short(len + 4);
            };
            len += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        // Within the limit, which is a usize, so this fits.
        let payload = usize::try_from(announced).map_err(|_| FramingError::TooLarge {
            announced,
            limit: self.limit,
        })?;
        Ok(Some(Head {
            fin,
            opcode,
            mask,
            len,
            payload,
        }))
    }

    fn short(&mut self, wanted: usize) -> Result<Option<Head>, FramingError> {
        self.wanted = wanted;
        Ok(None)
    }
}

/// The status code of a close frame's payload, checked as RFC 6455 (7.4) asks: codes that
/// must not be sent, and a reason that is not UTF-8, fail the connection.
fn close_code(payload: &[u8]) -> Result<Option<u16>, FramingError> {
    let [high, low, reason @ ..] = payload else {
        return match payload {
            [] => Ok(None),
            _ => Err(FramingError::BadClose),
        };
    };
    let code = u16::from_be_bytes([*high, *low]);
    let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !allowed || std::str::from_utf8(reason).is_err() {
        return Err(FramingError::BadClose);
    }
    Ok(Some(code))
}

/// A frame header that has been read and checked.
#[derive(Debug)]
struct Head {
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    /// The header's own length.
    len: usize,
    payload: usize,
}

/// The longest frame header: two bytes, an eight-byte length and a four-byte mask key.
pub(crate) const MAX_HEADER: usize = 14;

/// Writes the header of a final frame with `opcode` and a payload of `len` bytes, masked with
/// `mask` if there is one (a client's frames).
fn put_header(out: &mut BytesMut, opcode: u8, len: usize, mask: Option<[u8; 4]>) {
    let masked = if mask.is_some() { MASKED } else { 0 };
    out.put_u8(FIN | opcode);
    match len {
        0..=125 => out.put_u8(masked | len as u8),
        126..=0xffff => {
            out.put_u8(masked | 126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(masked | 127);
            out.put_u64(len as u64);
        }
    }
    if let Some(key) = mask {
        out.put_slice(&key);
    }
}

/// Appends a whole binary message with `payload`, masked if `mask` is given.
pub(crate) fn put_binary(out: &mut BytesMut, payload: &[u8], mask: Option<[u8; 4]>) {
    put_frame(out, BINARY, payload, mask);
}

/// Appends a pong answering a ping with `payload`.
pub(crate) fn put_pong(out: &mut BytesMut, payload: &[u8], mask: Option<[u8; 4]>) {
    put_frame(out, PONG, payload, mask);
}

/// Appends a close frame with `code`, or with no payload if there is none.
pub(crate) fn put_close(out: &mut BytesMut, code: Option<u16>, mask: Option<[u8; 4]>) {
    match code {
        Some(code) => put_frame(out, CLOSE, &code.to_be_bytes(), mask),
        None => put_frame(out, CLOSE, &[], mask),
    }
}

/// The header of a final binary frame of `len` bytes, masked with `mask` if given, for a
/// payload written from where it lies (and masked there).
pub(crate) fn binary_header(out: &mut BytesMut, len: usize, mask: Option<[u8; 4]>) {
    put_header(out, BINARY, len, mask);
}

fn put_frame(out: &mut BytesMut, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    put_header(out, opcode, payload.len(), mask);
    let Some(key) = mask else {
        out.extend_from_slice(payload);
        return;
    };
    if payload.len() <= MASK_BLOCK {
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], key);
        return;
    }
    out.reserve(payload.len());
    // Masked a block at a time on the stack: copying a large payload whole and then masking it
    // would go over it twice, the second time no longer in cache. Blocks are a multiple of four
    // bytes long, so each starts with the key's first byte.
    let mut block = [0; MASK_BLOCK];
    for piece in payload.chunks(MASK_BLOCK) {
        let block = &mut block[..piece.len()];
        block.copy_from_slice(piece);
        apply_mask(block, key);
        out.extend_from_slice(block);
    }
}

const MASK_BLOCK: usize = 4 << 10;

/// XORs `data` with the repeated `key`, eight bytes at a time (masking and unmasking are the
/// same operation).
pub(crate) fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The remainder starts at a multiple of eight, so the key lines up from its first byte.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn decode_all(decoder: &mut Decoder, bytes: &[u8]) -> Result<Vec<Incoming>, FramingError> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(message) = decoder.decode(&mut buf)? {
            out.push(message);
        }
        Ok(out)
    }

    #[test]
    fn the_rfc_example_of_a_masked_hello_decodes() {
        // RFC 6455, section 5.7: a single-frame masked text message "Hello", as binary.
        let frame = [
            0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let mut server = Decoder::new(Role::Server, 1 << 20);
        assert_eq!(
            decode_all(&mut server, &frame),
            Ok(vec![Incoming::Binary(Bytes::from_static(b"Hello"))])
        );
        let mut out = BytesMut::new();
        put_binary(&mut out, b"Hello", Some(KEY));
        assert_eq!(&out[..], &frame[..]);
    }

    #[test]
    fn every_length_form_round_trips_whether_masked_or_not() {
        for len in [0, 1, 7, 8, 9, 125, 126, 127, 65_535, 65_536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            for (role, mask) in [(Role::Server, Some(KEY)), (Role::Client, None)] {
                let mut out = BytesMut::new();
                put_binary(&mut out, &payload, mask);
                let mut decoder = Decoder::new(role, 1 << 20);
                let got = decode_all(&mut decoder, &out).expect("decodes");
                assert_eq!(got, vec![Incoming::Binary(Bytes::from(payload.clone()))]);
            }
        }
    }

    #[test]
    fn a_frame_split_anywhere_waits_and_says_how_much_it_wants() {
        let mut whole = BytesMut::new();
        put_binary(&mut whole, &[7; 300], Some(KEY));
        put_pong(&mut whole, b"p", Some(KEY));
        for cut in 0..whole.len() {
            let mut decoder = Decoder::new(Role::Server, 1 << 20);
            let mut buf = BytesMut::from(&whole[..cut]);
            let mut got = Vec::new();
            while let Some(message) = decoder.decode(&mut buf).expect("decodes") {
                got.push(message);
            }
            assert!(decoder.wanted() > buf.len(), "cut at {cut}");
            buf.extend_from_slice(&whole[cut..]);
            while let Some(message) = decoder.decode(&mut buf).expect("decodes") {
                got.push(message);
            }
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn fragments_join_with_control_frames_between_them() {
        let mut out = BytesMut::new();
        out.extend_from_slice(&[BINARY, 3, b'a', b'b', b'c']);
        put_frame(&mut out, PING, b"x", None);
        out.extend_from_slice(&[CONTINUATION, 2, b'd', b'e']);
        out.extend_from_slice(&[FIN | CONTINUATION, 1, b'f']);
        let mut client = Decoder::new(Role::Client, 6);
        assert_eq!(
            decode_all(&mut client, &out),
            Ok(vec![
                Incoming::Ping(Bytes::from_static(b"x")),
                Incoming::Binary(Bytes::from_static(b"abcdef")),
            ])
        );
        // The same message against a limit of five is refused at its last fragment's header.
        let mut small = Decoder::new(Role::Client, 5);
        assert_eq!(
            decode_all(&mut small, &out),
            Err(FramingError::TooLarge {
                announced: 6,
                limit: 5
            })
        );
    }

    #[test]
    fn an_oversized_message_is_refused_from_its_header_alone() {
        let mut decoder = Decoder::new(Role::Client, 1 << 16);
        let header = [FIN | BINARY, 127, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            decode_all(&mut decoder, &header),
            Err(FramingError::TooLarge {
                announced: 1 << 32,
                limit: 1 << 16
            })
        );
        let mut decoder = Decoder::new(Role::Client, usize::MAX);
        let huge = [
            FIN | BINARY,
            127,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
        ];
        assert!(decode_all(&mut decoder, &huge).is_err());
    }

    #[test]
    fn frames_that_break_the_rules_are_refused() {
        let cases: &[(&[u8], Role, FramingError)] = &[
            (&[FIN | BINARY, 0], Role::Server, FramingError::Unmasked),
            (
                &[FIN | BINARY, MASKED, 0, 0, 0, 0],
                Role::Client,
                FramingError::Masked,
            ),
            (&[FIN | TEXT, 1, b'a'], Role::Client, FramingError::Text),
            (
                &[FIN | 0x40 | BINARY, 0],
                Role::Client,
                FramingError::ReservedBits,
            ),
            (
                &[FIN | 0x3, 0],
                Role::Client,
                FramingError::ReservedOpcode(3),
            ),
            (
                &[FIN | 0xB, 0],
                Role::Client,
                FramingError::ReservedOpcode(0xB),
            ),
            (&[PING, 0], Role::Client, FramingError::FragmentedControl),
            (
                &[FIN | PING, 126, 0, 126],
                Role::Client,
                FramingError::LongControl(126),
            ),
            (
                &[FIN | CONTINUATION, 0],
                Role::Client,
                FramingError::StrayContinuation,
            ),
            (
                &[BINARY, 0, FIN | BINARY, 0],
                Role::Client,
                FramingError::Interleaved,
            ),
            (&[FIN | CLOSE, 1, 3], Role::Client, FramingError::BadClose),
            // 1005 and 999 must never be sent; a reason must be UTF-8.
            (
                &[FIN | CLOSE, 2, 0x03, 0xed],
                Role::Client,
                FramingError::BadClose,
            ),
            (
                &[FIN | CLOSE, 2, 0x03, 0xe7],
                Role::Client,
                FramingError::BadClose,
            ),
            (
                &[FIN | CLOSE, 3, 0x03, 0xe8, 0xff],
                Role::Client,
                FramingError::BadClose,
            ),
        ];
        for (bytes, role, expected) in cases {
            let mut decoder = Decoder::new(*role, 1 << 20);
            assert_eq!(
                decode_all(&mut decoder, bytes).as_ref(),
                Err(expected),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn close_frames_carry_their_code() {
        let mut out = BytesMut::new();
        put_close(&mut out, Some(NORMAL_CLOSE), Some(KEY));
        put_close(&mut out, None, Some(KEY));
        let mut server = Decoder::new(Role::Server, 1 << 20);
        assert_eq!(
            decode_all(&mut server, &out),
            Ok(vec![
                Incoming::Close(Some(NORMAL_CLOSE)),
                Incoming::Close(None)
            ])
        );
    }

    #[test]
    fn masking_matches_the_byte_at_a_time_definition() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut fast = data.clone();
            apply_mask(&mut fast, KEY);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ KEY[i % 4])
                .collect();
            assert_eq!(fast, slow);
        }
    }
}
