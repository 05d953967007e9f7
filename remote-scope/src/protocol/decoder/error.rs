//! Why a MessagePack value did not decode.

use std::fmt::{self, Display};

use serde::de::{Expected, Unexpected};

/// Why bytes a peer sent did not decode as the type asked for: malformed MessagePack, or a
/// value that does not fit the type (serde's own words then).
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
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

/// Its message: a derived `Debug` would print its strings with `str`'s `Debug`, and with them
/// Unicode's tables of printable characters into every page (see `crate::text`).
impl fmt::Debug for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Display::fmt(self, f)
    }
}

impl serde::de::Error for DecodeError {
    // A message a type's `Deserialize` made may hold what the peer sent (serde's derive writes
    // an unknown field of a struct with a flattened field so): escaped where it must be.
    #[cold]
    fn custom<T: Display>(message: T) -> DecodeError {
        DecodeError::Custom(crate::text::shown(message.to_string()))
    }

    #[cold]
    fn invalid_type(found: Unexpected<'_>, expected: &dyn Expected) -> DecodeError {
        DecodeError::Custom(format!(
            "invalid type: {}, expected {expected}",
            Found(found)
        ))
    }

    #[cold]
    fn invalid_value(found: Unexpected<'_>, expected: &dyn Expected) -> DecodeError {
        DecodeError::Custom(format!(
            "invalid value: {}, expected {expected}",
            Found(found)
        ))
    }

    // serde's words, with the name the peer sent escaped.
    #[cold]
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> DecodeError {
        unknown("variant", variant, expected)
    }

    #[cold]
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> DecodeError {
        unknown("field", field, expected)
    }
}

fn unknown(what: &str, name: &str, expected: &[&str]) -> DecodeError {
    let expected = match expected {
        [] => format!("there are no {what}s"),
        [one] => format!("expected `{one}`"),
        [one, other] => format!("expected `{one}` or `{other}`"),
        names => {
            let mut list = String::from("expected one of ");
            for (n, name) in names.iter().enumerate() {
                if n > 0 {
                    list.push_str(", ");
                }
                list.extend(["`", name, "`"]);
            }
            list
        }
    };
    DecodeError::Custom(format!(
        "unknown {what} `{}`, {expected}",
        crate::text::Escaped(name)
    ))
}

/// What serde's `Unexpected` prints, in serde's words, but a float without core's float
/// printing: the only use of it a page had left, 17 KB of its wasm (the browser's decoder
/// errors are all this printing is for).
struct Found<'a>(Unexpected<'a>);

impl Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Unexpected::Float(value) => {
                f.write_str("floating point `")?;
                float(value, f)?;
                f.write_str("`")
            }
            // Every other kind prints with integers, chars and strings only.
            Unexpected::Bool(b) => write!(f, "boolean `{b}`"),
            Unexpected::Unsigned(n) => write!(f, "integer `{n}`"),
            Unexpected::Signed(n) => write!(f, "integer `{n}`"),
            Unexpected::Char(c) => write!(f, "character `{c}`"),
            Unexpected::Str(s) => write!(f, "string {}", crate::text::Quoted(s)),
            Unexpected::Bytes(_) => f.write_str("byte array"),
            Unexpected::Unit => f.write_str("unit value"),
            Unexpected::Option => f.write_str("Option value"),
            Unexpected::NewtypeStruct => f.write_str("newtype struct"),
            Unexpected::Seq => f.write_str("sequence"),
            Unexpected::Map => f.write_str("map"),
            Unexpected::Enum => f.write_str("enum"),
            Unexpected::UnitVariant => f.write_str("unit variant"),
            Unexpected::NewtypeVariant => f.write_str("newtype variant"),
            Unexpected::TupleVariant => f.write_str("tuple variant"),
            Unexpected::StructVariant => f.write_str("struct variant"),
            Unexpected::Other(other) => f.write_str(other),
        }
    }
}

/// `value` to six decimal places at most, trailing zeros dropped (`1.5`, `-3.0`, `0.000001`);
/// from 9.2e18 in magnitude on (about 2^63), `9.2e18 or more`.
fn float(value: f64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if value.is_nan() {
        return f.write_str("NaN");
    }
    if value.is_sign_negative() {
        f.write_str("-")?;
    }
    let magnitude = value.abs();
    if magnitude.is_infinite() {
        return f.write_str("inf");
    }
    if magnitude >= 9.2e18 {
        return f.write_str("9.2e18 or more");
    }
    let mut whole = magnitude.trunc() as u64;
    let mut fraction = ((magnitude - magnitude.trunc()) * 1e6).round() as u64;
    if fraction == 1_000_000 {
        (whole, fraction) = (whole + 1, 0);
    }
    write!(f, "{whole}")?;
    if fraction == 0 {
        return f.write_str(".0");
    }
    let mut digits = 6;
    while fraction.is_multiple_of(10) {
        fraction /= 10;
        digits -= 1;
    }
    write!(f, ".{fraction:0digits$}")
}
