//! Bytes taken out of a received frame to be kept after it: an encoded value for a waiting
//! call, or the captures of a body not yet started.

use bytes::Bytes;

use crate::buffers::INLINE_RECEIVED as INLINE;

/// Received bytes: a few (most values and captures are: a number, a short string) inline,
/// copied out of the message without a buffer or a reference count, so the thread that takes
/// them never touches the read buffer's; more in bytes of their own.
pub(crate) enum Received {
    Inline { len: u8, bytes: [u8; INLINE] },
    Bytes(Bytes),
}

impl Received {
    /// `bytes` inline if they fit, else as `large` makes them.
    pub(crate) fn new(bytes: &[u8], large: impl FnOnce() -> Bytes) -> Received {
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE => {
                let mut inline = [0; INLINE];
                inline[..bytes.len()].copy_from_slice(bytes);
                Received::Inline { len, bytes: inline }
            }
            _ => Received::Bytes(large()),
        }
    }
}

impl std::ops::Deref for Received {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Received::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Received::Bytes(bytes) => bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_bytes_are_kept_inline_and_more_in_bytes_of_their_own() {
        let large_made = std::cell::Cell::new(false);
        let small = Received::new(&[1; INLINE], || {
            large_made.set(true);
            Bytes::new()
        });
        assert!(matches!(small, Received::Inline { .. }));
        assert_eq!(&*small, &[1; INLINE][..]);
        assert!(!large_made.get());
        let empty = Received::new(&[], Bytes::new);
        assert!(empty.is_empty());
        let bytes = [2; INLINE + 1];
        let large = Received::new(&bytes, || Bytes::copy_from_slice(&bytes));
        assert!(matches!(large, Received::Bytes(_)));
        assert_eq!(&*large, &bytes[..]);
    }
}
