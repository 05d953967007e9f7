//! The seam between `remote!` expansions and the runtime. Not public API: expansions name these
//! items by absolute path (`::remote_scope::__private::..`), so the runtime's internals can change
//! without breaking them.

use std::any::type_name;
use std::future::Future;

use crate::bounds::{Decoder, Encoder};
use crate::call::{Call, Unsent};
use crate::error::Error;
use crate::protocol::{invoke_headroom, Encoded, Failure, RESULT_HEADROOM};
use crate::registry::Registry;

pub use crate::bounds::{
    awaited, fallible, probe, returned, Decodes, DecodesNot, Encodes, EncodesNot, Fallible, Probe,
};
pub use crate::registry::{Handled, Handler, HandlerFuture, HandlerInput, Registration};
pub use crate::streams::{drain, stream, Drained, StreamSink};
pub use inventory;
pub use remote_scope_macros::remote_typing;

/// The body of a registered handler that waits: decode the captures and start the body, or name
/// the value's type. The expansion boxes what runs (`Serving::Running`): the future must be
/// `Send` to run on a thread pool, and a body that is not is reported there, as the cast of
/// its future, not as a bound of this function's.
pub fn serve<A, F, Fut>(
    input: HandlerInput<'_>,
    decode: Decoder<A>,
    encode: Encoder<Fut::Output>,
    body: F,
) -> Serving<impl Future<Output = Result<Encoded, Failure>>>
where
    F: FnOnce(A) -> Fut,
    Fut: Future + 'static,
{
    let captures = match input {
        HandlerInput::OutputType => {
            return Serving::Done(Handled::OutputType(type_name::<Fut::Output>()))
        }
        HandlerInput::Run(captures) => captures,
    };
    match decode_captures(decode, captures) {
        Ok(args) => {
            let running = body(args);
            Serving::Running(async move { encode_value(encode, &running.await) })
        }
        Err(failure) => Serving::Done(Handled::Finished(Err(failure))),
    }
}

/// What [`serve`] gives: a body to box and run, or an answer already.
pub enum Serving<W> {
    Running(W),
    Done(Handled),
}

/// [`serve`] for a body that cannot wait (the macro found no `.await` and no macro call in
/// it): it runs at once, and no future is allocated for it.
pub fn serve_now<A, F, R>(
    input: HandlerInput<'_>,
    decode: Decoder<A>,
    encode: Encoder<R>,
    body: F,
) -> Handled
where
    F: FnOnce(A) -> R,
{
    let captures = match input {
        HandlerInput::OutputType => return Handled::OutputType(type_name::<R>()),
        HandlerInput::Run(captures) => captures,
    };
    Handled::Finished(
        decode_captures(decode, captures).and_then(|args| encode_value(encode, &body(args))),
    )
}

#[inline]
fn decode_captures<A>(decode: Decoder<A>, captures: &[u8]) -> Result<A, Failure> {
    decode(captures).map_err(|reason| Failure::DecodeCaptures { reason })
}

#[inline]
fn encode_value<R>(encode: Encoder<R>, value: &R) -> Result<Encoded, Failure> {
    encode(value, RESULT_HEADROOM).map_err(|reason| Failure::EncodeResult { reason })
}

/// The call a `remote!` evaluates to.
pub fn call<C, R>(
    peer: crate::pool::Target,
    body: &'static str,
    checked: &'static ResultTypeChecked,
    captures: &C,
    encode: Encoder<C>,
    decode: Decoder<R>,
) -> Call<R> {
    let captures = match checked.get_or_init(|| check_result_type::<R>(body)) {
        Ok(()) => encode(captures, invoke_headroom(body)).map_err(|reason| Error::EncodeCaptures {
            body: body.to_owned(),
            reason,
        }),
        Err(mismatch) => Err(mismatch.clone()),
    };
    Call::new(peer, body, captures, decode)
}

/// The call a `#[remote]` function's caller gets: its arguments encoded, to be sent to the
/// peer [`Unsent::on_peer`] names. Its result type is the function's, written out, so it needs
/// no check against the handler's.
pub fn unsent<C, R>(
    body: &'static str,
    captures: &C,
    encode: Encoder<C>,
    decode: Decoder<R>,
) -> Unsent<R> {
    let captures =
        encode(captures, invoke_headroom(body)).map_err(|reason| Error::EncodeCaptures {
            body: body.to_owned(),
            reason,
        });
    Unsent::new(body, captures, decode)
}

/// One per call site: the result type check runs on its first call only.
pub type ResultTypeChecked = std::sync::OnceLock<Result<(), Error>>;

/// The call site's result type against the handler's, which this binary also holds. They differ
/// only when the caller's expected type changed what an untyped literal in the body became in
/// the typing copy (the handler is compiled on its own); then every peer would send one type and
/// the caller read another, so the call fails before anything is sent.
fn check_result_type<R>(body: &'static str) -> Result<(), Error> {
    let expected = type_name::<R>();
    match Registry::global().ok().and_then(|r| r.output_type(body)) {
        Some(produced) if produced != expected => Err(Error::ResultType {
            body: body.to_owned(),
            produced: produced.to_owned(),
            expected: expected.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// The typing-only form of a nested `remote!` inside a typing copy, or of one with a compile
/// error; never awaited.
pub fn typing_only<R>(_value: Probe<R>) -> Call<R> {
    unreachable_call()
}

/// What a `remote!` with a compile error evaluates to, so no further errors cascade from it.
/// The program does not compile, so it never runs.
pub fn unreachable_call<R>() -> Call<R> {
    unreachable!("a remote! with a compile error is never run")
}

/// The addresses `link!` keeps; only their presence in the binary matters.
pub struct Keep(pub &'static [*const ()]);

// Never dereferenced: the pointers are only there so the linker keeps what they point to.
unsafe impl Sync for Keep {}
