//! [`Error`] on the wire, in the encoding serde's derive gives an enum of struct variants
//! (externally tagged; fields as an array or a map, as the format chooses), from one
//! table-driven implementation.
//!
//! Why not the derive: it writes a visitor for each of the 33 variants, and every deserializer
//! repeats each of them. In the browser's page, where the project's decoder reads results that
//! may hold an `Error`, that was a sixth of the wasm. Here the variants and their fields are a
//! table, every field type is one of a few [`Kind`]s, and one visitor reads any variant.
//!
//! [`BodyError`], which `Error::Body` holds, is read by the same visitor over a table of its own
//! three fields (its encoding is its derived `Serialize`'s).
//!
//! The table names each field's type; the compiler holds it to the enum's: `parts` borrows
//! each field as its listed type and `build` constructs each field from it, and the match in
//! `parts` fails to compile when a variant is missing from the table.

use std::fmt;
use std::time::Duration;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IgnoredAny, MapAccess, SeqAccess, Unexpected, VariantAccess,
    Visitor,
};
use serde::ser::SerializeStructVariant;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Cause, Error, Missing};
use crate::body_error::BodyError;
use crate::peer_id::PeerId;
use crate::pool::Pool;

/// A type a field of `Error` has: how the table borrows it for encoding and takes it back from
/// a decoded [`Value`].
trait Wire: Sized {
    const KIND: Kind;
    fn field(&self) -> Field<'_>;
    fn take(value: Value) -> Option<Self>;
    /// What `build` puts in a field it finds no value of this kind for. It cannot happen (the
    /// values were decoded by the same table's kinds), so `build` need not drop a half-built
    /// error; it reports the error malformed instead.
    fn placeholder() -> Self;
}

/// Declares the kinds of field: [`Kind`] (which also decodes one, as a seed), [`Field`] (one
/// borrowed, to encode), [`Value`] (one decoded), and each type's [`Wire`].
macro_rules! kinds {
    ($($kind:ident($ty:ty) = $placeholder:expr,)*) => {
        #[derive(Clone, Copy)]
        enum Kind {
            $($kind,)*
        }

        enum Field<'a> {
            $($kind(&'a $ty),)*
        }

        enum Value {
            $($kind($ty),)*
        }

        impl Serialize for Field<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(Field::$kind(value) => value.serialize(serializer),)*
                }
            }
        }

        impl<'de> DeserializeSeed<'de> for Kind {
            type Value = Value;

            fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
                match self {
                    $(Kind::$kind => <$ty>::deserialize(deserializer).map(Value::$kind),)*
                }
            }
        }

        $(impl Wire for $ty {
            const KIND: Kind = Kind::$kind;

            fn field(&self) -> Field<'_> {
                Field::$kind(self)
            }

            fn take(value: Value) -> Option<Self> {
                match value {
                    Value::$kind(value) => Some(value),
                    _ => None,
                }
            }

            fn placeholder() -> Self {
                $placeholder
            }
        })*
    };
}

kinds! {
    Peer(PeerId) = PeerId::new(""),
    MaybePeer(Option<PeerId>) = None,
    Peers(Vec<PeerId>) = Vec::new(),
    Text(String) = String::new(),
    MaybeText(Option<String>) = None,
    Texts(Vec<String>) = Vec::new(),
    Missing(Missing) = Missing::Unknown,
    U32(u32) = 0,
    U64(u64) = 0,
    Usize(usize) = 0,
    Duration(Duration) = Duration::ZERO,
    Pool(Pool) = Pool::new(""),
    Cause(Option<Cause>) = None,
    Body(BodyError) = BodyError::new(""),
    Errors(Vec<Error>) = Vec::new(),
}

/// The decoded fields of one variant, taken in order.
struct Values {
    values: std::vec::IntoIter<Value>,
    /// Whether every field found a value of its kind.
    intact: bool,
}

impl Values {
    fn new(values: Vec<Value>) -> Values {
        Values {
            values: values.into_iter(),
            intact: true,
        }
    }

    /// `made` from these values, if every field found one of its kind.
    fn checked<T, E: de::Error>(self, made: T, what: &str) -> Result<T, E> {
        match self.intact {
            true => Ok(made),
            false => Err(E::custom(format_args!("malformed {what}"))),
        }
    }

    #[inline(never)]
    fn take<T: Wire>(&mut self) -> T {
        match self.values.next().and_then(T::take) {
            Some(value) => value,
            None => {
                self.intact = false;
                T::placeholder()
            }
        }
    }
}

impl Kind {
    /// What a field of this kind is when a map leaves it out: `None` for an option, as the
    /// derive decodes it; the others are required.
    fn absent(self) -> Option<Value> {
        match self {
            Kind::MaybePeer => Some(Value::MaybePeer(None)),
            Kind::MaybeText => Some(Value::MaybeText(None)),
            Kind::Cause => Some(Value::Cause(None)),
            _ => None,
        }
    }
}

/// Declares the table of variants: their names and fields in declaration order (a variant's
/// position is its index, as the derive numbers them), `parts` to encode and `build` to decode.
macro_rules! variants {
    ($($variant:ident { $($field:ident: $ty:ty),* $(,)? },)*) => {
        #[derive(Clone, Copy)]
        enum Variant {
            $($variant,)*
        }

        const ALL: &[Variant] = &[$(Variant::$variant,)*];
        const VARIANTS: &[&str] = &[$(stringify!($variant),)*];
        const FIELDS: &[&[&str]] = &[$(&[$(stringify!($field)),*],)*];
        const KINDS: &[&[Kind]] = &[$(&[$(<$ty as Wire>::KIND),*],)*];

        /// The error's variant and its fields, in order.
        fn parts(error: &Error) -> (Variant, Vec<Field<'_>>) {
            match error {
                $(Error::$variant { $($field),* } => {
                    (Variant::$variant, vec![$(<$ty as Wire>::field($field)),*])
                })*
            }
        }

        /// The error of `variant` with these fields (their kinds as `KINDS` lists them).
        fn build(variant: Variant, values: &mut Values) -> Error {
            match variant {
                $(Variant::$variant => Error::$variant {
                    $($field: values.take::<$ty>(),)*
                },)*
            }
        }
    };
}

variants! {
    UnknownBody { peer: PeerId, body: String, site: Option<String>, missing: Missing },
    Panicked { peer: PeerId, body: String, message: String },
    EncodeCaptures { body: String, reason: String },
    DecodeCaptures { peer: PeerId, body: String, reason: String },
    EncodeResult { peer: PeerId, body: String, reason: String },
    DecodeResult { peer: PeerId, body: String, reason: String },
    ResultType { body: String, produced: String, expected: String },
    Busy { peer: PeerId, body: String, limit: u32 },
    NotAuthorized { peer: PeerId, body: String },
    CapturesTooLarge { peer: PeerId, body: String, limit: u64 },
    NotAuthenticated { peer: PeerId },
    QueueFull { peer: PeerId, limit: u64 },
    TooManyConnections { peer: Option<PeerId>, limit: u32 },
    NotConnected { peer: PeerId },
    NoMembers { pool: Pool, tried: Vec<PeerId> },
    Disconnected { peer: PeerId, body: String },
    Timeout { peer: PeerId, body: String, after: Duration },
    NoCurrentNode { nodes: usize },
    Handshake { peer: Option<PeerId>, reason: String, source: Option<Cause> },
    ProtocolVersion { peer: Option<PeerId>, ours: u32, theirs: u32 },
    MissingBodies { peer: PeerId, bodies: Vec<String> },
    RequiredBodies { peer: Option<PeerId>, missing: u32 },
    DuplicatePeer { peer: PeerId },
    DuplicateBody { name: String, first: String, second: String },
    Protocol { reason: String, source: Option<Cause> },
    Transport { reason: String, source: Option<Cause> },
    ShuttingDown { peer: PeerId, body: String },
    Body { error: BodyError },
    BadUrl { url: String, reason: String },
    NoPeers { pattern: String },
    AllFailed { errors: Vec<Error> },
    NoQuorum {
        replicas: usize,
        needed: usize,
        agreed: usize,
        disagreed: Vec<PeerId>,
        errors: Vec<Error>,
    },
    Setup { reason: String },
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (variant, fields) = parts(self);
        let index = variant as usize;
        let names = FIELDS[index];
        let mut out = serializer.serialize_struct_variant(
            "Error",
            index as u32,
            VARIANTS[index],
            fields.len(),
        )?;
        for (name, field) in names.iter().zip(&fields) {
            out.serialize_field(name, field)?;
        }
        out.end()
    }
}

impl<'de> Deserialize<'de> for Error {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Error, D::Error> {
        deserializer.deserialize_enum("Error", VARIANTS, ErrorVisitor)
    }
}

struct ErrorVisitor;

impl<'de> Visitor<'de> for ErrorVisitor {
    type Value = Error;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("enum Error")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Error, A::Error> {
        let (index, content) = data.variant_seed(Name {
            names: VARIANTS,
            variant: true,
        })?;
        // `Name` gives a variant's index only when it is in the table.
        let index = index.ok_or_else(|| de::Error::custom("unknown variant of Error"))?;
        let fields = Fields {
            of: VARIANTS[index],
            names: FIELDS[index],
            kinds: KINDS[index],
        };
        let mut values = Values::new(content.struct_variant(FIELDS[index], fields)?);
        let error = build(ALL[index], &mut values);
        values.checked(error, "Error")
    }
}

/// Reads a variant's or a field's name, or its index, as the position in `names`: `None` for a
/// field this build does not know (skipped, as the derive skips it); an unknown variant is an
/// error.
struct Name {
    names: &'static [&'static str],
    variant: bool,
}

impl Name {
    fn found<E: de::Error>(&self, position: Option<usize>, name: &str) -> Result<Option<usize>, E> {
        match position {
            None if self.variant => Err(E::unknown_variant(name, VARIANTS)),
            position => Ok(position),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Name {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for Name {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.variant {
            "a variant of Error"
        } else {
            "a field name"
        })
    }

    fn visit_u64<E: de::Error>(self, index: u64) -> Result<Option<usize>, E> {
        let position = usize::try_from(index)
            .ok()
            .filter(|&i| i < self.names.len());
        match position {
            None if self.variant => Err(E::invalid_value(
                Unexpected::Unsigned(index),
                &"a variant index of Error",
            )),
            position => Ok(position),
        }
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Option<usize>, E> {
        let position = self.names.iter().position(|n| *n == name);
        self.found(position, name)
    }

    fn visit_bytes<E: de::Error>(self, name: &[u8]) -> Result<Option<usize>, E> {
        let position = self.names.iter().position(|n| n.as_bytes() == name);
        self.found(position, &String::from_utf8_lossy(name))
    }
}

/// Reads the fields of a variant (or of [`BodyError`]), by the kinds the table gives them.
struct Fields {
    /// What they are the fields of, for an error.
    of: &'static str,
    names: &'static [&'static str],
    kinds: &'static [Kind],
}

impl<'de> Visitor<'de> for Fields {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} fields of {}", self.names.len(), self.of)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        let kinds = self.kinds;
        let mut values = Vec::with_capacity(kinds.len());
        for (read, kind) in kinds.iter().enumerate() {
            match seq.next_element_seed(*kind)? {
                Some(value) => values.push(value),
                None => return Err(de::Error::invalid_length(read, &self)),
            }
        }
        Ok(values)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Value>, A::Error> {
        let (kinds, names) = (self.kinds, self.names);
        let mut slots: Vec<Option<Value>> = kinds.iter().map(|_| None).collect();
        while let Some(position) = map.next_key_seed(Name {
            names,
            variant: false,
        })? {
            match position {
                Some(i) if slots[i].is_some() => return Err(de::Error::duplicate_field(names[i])),
                Some(i) => slots[i] = Some(map.next_value_seed(kinds[i])?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        slots
            .into_iter()
            .zip(kinds)
            .zip(names)
            .map(|((slot, kind), name)| {
                slot.or_else(|| kind.absent())
                    .ok_or_else(|| de::Error::missing_field(name))
            })
            .collect()
    }
}

/// [`BodyError`]'s fields, for its `Deserialize`: the same visitor as `Error`'s variants', where
/// serde's derive would add another of its own to every decoder.
const BODY_ERROR: (&[&str], &[Kind]) = (
    &["type_name", "message", "sources"],
    &[Kind::Text, Kind::Text, Kind::Texts],
);

impl<'de> Deserialize<'de> for BodyError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BodyError, D::Error> {
        let (names, kinds) = BODY_ERROR;
        let fields = Fields {
            of: "BodyError",
            names,
            kinds,
        };
        let values = deserializer.deserialize_struct("BodyError", names, fields)?;
        let mut values = Values::new(values);
        let error = BodyError::from_parts(values.take(), values.take(), values.take());
        values.checked(error, "BodyError")
    }
}

#[cfg(test)]
mod tests;
