//! Why a MessagePack value did not decode.

use std::fmt::Display;

/// Why bytes a peer sent did not decode as the type asked for: malformed MessagePack, or a
/// value that does not fit the type (serde's own words then).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The input ends inside a value.
    #[error("the input ends inside a value, at byte {at}")]
    Truncated { at: usize },
    /// A marker MessagePack reserves (0xc1).
    #[error("byte {at} is 0xc1, a marker MessagePack reserves")]
    Reserved { at: usize },
    /// A string whose bytes are not UTF-8, for a type that takes only text.
    #[error("a string that is not UTF-8: {0}")]
    NotUtf8(#[from] std::str::Utf8Error),
    /// A value nested deeper than the decoder's limit.
    #[error("value nested deeper than {limit} levels")]
    TooDeep { limit: usize },
    /// An array or map with more elements than the type took.
    #[error("{found} elements where the type takes {taken}")]
    Excess { found: u32, taken: u32 },
    /// A form that cannot stand for the type asked for, where serde has no visitor to ask.
    #[error("{found} where {wanted} was expected")]
    Mismatch {
        found: &'static str,
        wanted: &'static str,
    },
    /// What the type's `Deserialize` said.
    #[error("{0}")]
    Custom(String),
}

impl serde::de::Error for DecodeError {
    #[cold]
    fn custom<T: Display>(message: T) -> DecodeError {
        DecodeError::Custom(message.to_string())
    }
}
