//! What a `remote!` asks of its peer, its captures and its value, each as one trait.
//!
//! Each is a trait of this crate, and not a list of serde bounds, for the compiler's message:
//! a type that does not qualify is reported once, at the user's token, in words about remote
//! bodies (`#[diagnostic::on_unimplemented]`), instead of once per serde trait and once more
//! per generic function of the expansion that the type passes through. The expansion asks for
//! [`Capture`] and [`Returnable`] at one place each; everywhere else it reaches the encoders
//! through `__private`'s probes, which ask for nothing. The traits have no supertraits, and
//! their blanket impls are `do_not_recommend`, for the same reason: a supertrait or an impl's
//! bound that fails would be reported on its own, once per serde trait.

use std::any::type_name;
use std::future::Future;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::peer_id::PeerId;
use crate::protocol::{decode_payload, Encoded};
use crate::runtime::MaybeSend;

/// A type that can be captured: a capture is encoded, sent to the peer that runs the body and
/// decoded there, so it is an owned type that serde can encode and decode. Every such type is a
/// `Capture`; the trait exists so that the compiler can say so when one is not.
///
/// ```
/// use remote_scope::Capture;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Job {
///     id: u64,
///     input: Vec<u8>,
/// }
///
/// fn capturable<T: Capture>() {}
/// capturable::<Job>();
/// capturable::<(String, Vec<u64>)>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be captured: a capture is sent to the peer that runs the body, so \
               it must be an owned type that serde can encode and decode",
    label = "not Serialize + Deserialize",
    note = "derive them with `#[derive(serde::Serialize, serde::Deserialize)]`, or capture a value \
            that has them (e.g. the fields the body needs)"
)]
pub trait Capture {
    #[doc(hidden)]
    const CAPTURABLE: () = ();
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned + MaybeSend + 'static> Capture for T {}

/// A type a remote body can return: the value is encoded on the peer that ran the body and
/// decoded by the caller, so it is an owned type that serde can encode and decode.
///
/// ```
/// use remote_scope::Returnable;
///
/// fn returnable<T: Returnable>() {}
/// returnable::<String>();
/// returnable::<Result<Vec<u64>, remote_scope::BodyError>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the value of a remote body: it is sent back to the caller, so \
               it must be an owned type that serde can encode and decode",
    label = "the body's value, of type `{Self}`",
    note = "return an owned type (`String` for `&str`, `Vec<T>` for `&[T]`), and derive \
            `serde::Serialize` and `serde::Deserialize` for types of your own; for an error that \
            has neither (`ParseIntError`, `io::Error`), return `Result<T, remote_scope::BodyError>`: \
            `?` in the body turns any error into one, as does `.map_err(BodyError::from)`"
)]
pub trait Returnable {
    #[doc(hidden)]
    const RETURNABLE: () = ();

    /// Checks the type of a body's value, which the expansion cannot write out.
    #[doc(hidden)]
    fn __check(_: &Probe<Self>)
    where
        Self: Sized,
    {
    }
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Returnable for T {}

/// What a body that uses `?` can have as its value: a `Result` or an `Option`, which `?`
/// returns its error (or `None`) in. A body's value of another type is reported, once, in the
/// words below (the expansion passes such a body's value through [`Fallible::__value`], which
/// also keeps rustc from reporting the `?` itself).
///
/// ```
/// use remote_scope::Fallible;
///
/// fn fallible<T: Fallible>() {}
/// fallible::<Result<u64, remote_scope::BodyError>>();
/// fallible::<Option<String>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "a remote body that uses `?` must have a `Result` (or an `Option`) as its value, \
               not `{Self}`",
    label = "the body's value, of type `{Self}`",
    note = "`?` returns the error from the body to the caller: end the body with `Ok(value)`, \
            e.g. `Ok::<u64, remote_scope::BodyError>(n)` (any error converts into a `BodyError`)"
)]
pub trait Fallible {
    /// The value, unchanged.
    type Value;

    #[doc(hidden)]
    fn __value(self) -> Self::Value;
}

#[diagnostic::do_not_recommend]
impl<T, E> Fallible for Result<T, E> {
    type Value = Self;

    #[inline(always)]
    fn __value(self) -> Self {
        self
    }
}

#[diagnostic::do_not_recommend]
impl<T> Fallible for Option<T> {
    type Value = Self;

    #[inline(always)]
    fn __value(self) -> Self {
        self
    }
}

/// The probe of a fallible body's value as the call's type (see [`Fallible`]).
#[doc(hidden)]
pub fn fallible<T: Fallible>(_: Probe<T>) -> Probe<T::Value> {
    Probe::new()
}

/// What names the peer a call goes to: a [`PeerId`], or its text (`"server"`, a `String`),
/// or a type of the application's that knows its peer.
///
/// ```
/// use remote_scope::{AsPeer, PeerId};
///
/// struct Worker {
///     peer: PeerId,
///     slots: usize,
/// }
///
/// impl AsPeer for Worker {
///     fn peer_id(&self) -> PeerId {
///         self.peer.clone()
///     }
/// }
///
/// let worker = Worker { peer: PeerId::from("worker-1"), slots: 4 };
/// assert_eq!(worker.peer_id(), "worker-1".peer_id());
/// # let _ = worker.slots;
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not name a peer: a remote body runs on the peer its first argument \
               names",
    label = "not a peer",
    note = "pass a `PeerId` (`PeerId::from(\"server\")`, a connected peer's id from \
            `node.peers()`), its text (`\"server\"`), or a `Pool` (one of its members runs it); to \
            call from a node of this process, use `node.run(..)` around the call or `.on(&node)` \
            on it"
)]
pub trait AsPeer {
    /// The peer's id.
    fn peer_id(&self) -> PeerId;

    /// Where a call goes: the peer [`peer_id`](AsPeer::peer_id) names, unless this names a
    /// [`Pool`](crate::Pool), whose calls go to one member.
    fn target(&self) -> crate::pool::Target {
        crate::pool::Target::Peer(self.peer_id())
    }
}

/// A pool's calls go to one of its members; as a peer id, it is its name (for logs).
impl AsPeer for crate::pool::Pool {
    fn peer_id(&self) -> PeerId {
        PeerId::new(self.name())
    }

    fn target(&self) -> crate::pool::Target {
        crate::pool::Target::Pool(self.clone())
    }
}

impl AsPeer for PeerId {
    fn peer_id(&self) -> PeerId {
        self.clone()
    }
}

impl AsPeer for str {
    fn peer_id(&self) -> PeerId {
        PeerId::from(self)
    }
}

impl AsPeer for String {
    fn peer_id(&self) -> PeerId {
        PeerId::from(self.as_str())
    }
}

impl<T: AsPeer + ?Sized> AsPeer for &T {
    fn peer_id(&self) -> PeerId {
        (**self).peer_id()
    }

    fn target(&self) -> crate::pool::Target {
        (**self).target()
    }
}

impl<T: AsPeer + ?Sized> AsPeer for std::sync::Arc<T> {
    fn peer_id(&self) -> PeerId {
        (**self).peer_id()
    }

    fn target(&self) -> crate::pool::Target {
        (**self).target()
    }
}

/// Not public API. A type, for the expansion to choose its encoder and decoder by method resolution: the impls
/// that work are on `&Probe<T>` and ask for serde's traits; the ones on `Probe<T>` ask for
/// nothing and are chosen only when those fail (the "autoref" way of choosing among impls). A
/// type that fails is reported once, by [`Capture`](crate::Capture) or
/// [`Returnable`](crate::Returnable) where the expansion asks for them, and not again by each
/// function it passes through; the fallbacks are never run, since that program does not
/// compile.
#[doc(hidden)]
pub struct Probe<T>(PhantomData<fn() -> T>);

impl<T> Probe<T> {
    #[allow(missing_docs)]
    pub const fn new() -> Probe<T> {
        Probe(PhantomData)
    }
}

impl<T> Default for Probe<T> {
    fn default() -> Probe<T> {
        Probe::new()
    }
}

/// The probe of a value's type.
#[doc(hidden)]
pub fn probe<T>(_: &T) -> Probe<T> {
    Probe::new()
}

/// The probe of what a body that waits produces.
#[doc(hidden)]
pub fn awaited<A, F, Fut>(_: &F) -> Probe<Fut::Output>
where
    F: FnOnce(A) -> Fut,
    Fut: Future,
{
    Probe::new()
}

/// The probe of what a body that cannot wait returns.
#[doc(hidden)]
pub fn returned<A, F, R>(_: &F) -> Probe<R>
where
    F: FnOnce(A) -> R,
{
    Probe::new()
}

/// Encodes a value after a headroom of so many bytes.
#[doc(hidden)]
pub type Encoder<T> = fn(&T, usize) -> Result<Encoded, String>;

/// Decodes a value.
#[doc(hidden)]
pub type Decoder<T> = fn(&[u8]) -> Result<T, String>;

/// The encoder of a type that serde can encode.
#[doc(hidden)]
pub trait Encodes<T> {
    #[allow(missing_docs)]
    fn encoder(&self) -> Encoder<T>;
}

impl<T: Serialize> Encodes<T> for &Probe<T> {
    #[inline]
    fn encoder(&self) -> Encoder<T> {
        |value, headroom| Encoded::new(value, headroom).map_err(|e| e.to_string())
    }
}

/// The fallback when it cannot: never run.
#[doc(hidden)]
pub trait EncodesNot<T> {
    #[allow(missing_docs)]
    fn encoder(&self) -> Encoder<T>;
}

impl<T> EncodesNot<T> for Probe<T> {
    fn encoder(&self) -> Encoder<T> {
        |_, _| Err(format!("`{}` cannot be encoded", type_name::<T>()))
    }
}

/// The decoder of a type that serde can decode.
#[doc(hidden)]
pub trait Decodes<T> {
    #[allow(missing_docs)]
    fn decoder(&self) -> Decoder<T>;
}

impl<T: DeserializeOwned> Decodes<T> for &Probe<T> {
    #[inline]
    fn decoder(&self) -> Decoder<T> {
        |bytes| decode_payload(bytes).map_err(|e| e.to_string())
    }
}

/// The fallback when it cannot: never run.
#[doc(hidden)]
pub trait DecodesNot<T> {
    #[allow(missing_docs)]
    fn decoder(&self) -> Decoder<T>;
}

impl<T> DecodesNot<T> for Probe<T> {
    fn decoder(&self) -> Decoder<T> {
        |_| Err(format!("`{}` cannot be decoded", type_name::<T>()))
    }
}
