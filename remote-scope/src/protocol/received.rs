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
    /// `bytes` inline, if they fit.
    pub(crate) fn inline(bytes: &[u8]) -> Option<Received> {
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE => {
                let mut inline = [0; INLINE];
                inline[..bytes.len()].copy_from_slice(bytes);
                Some(Received::Inline { len, bytes: inline })
            }
            _ => None,
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
    fn a_few_bytes_are_kept_inline_and_no_more() {
        let small = Received::inline(&[1; INLINE]).expect("fits");
        assert!(matches!(small, Received::Inline { .. }));
        assert_eq!(&*small, &[1; INLINE][..]);
        let empty = Received::inline(&[]).expect("fits");
        assert!(empty.is_empty());
        assert!(Received::inline(&[2; INLINE + 1]).is_none());
        let large = Received::Bytes(Bytes::from(vec![2; INLINE + 1]));
        assert_eq!(&*large, &[2; INLINE + 1][..]);
    }
}
