//! The seam between `remote!` expansions and the runtime. Not public API: expansions name these
//! items by absolute path (`::remote_scope::__private::..`), so the runtime's internals can change
//! without breaking them.

use std::any::type_name;
use std::borrow::Borrow;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::call::Call;
use crate::error::Error;
use crate::peer_id::PeerId;
use crate::protocol::{decode_payload, invoke_headroom, Encoded, Failure, RESULT_HEADROOM};
use crate::registry::Registry;
use crate::runtime::MaybeSend;

pub use crate::registry::{Handled, HandlerFuture, HandlerInput, Registration};
pub use inventory;
pub use remote_scope_macros::remote_typing;

/// Every capture type satisfies this; the bound exists for its error message.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be captured: a capture is sent to another peer, so it must be Serialize + Deserialize",
    label = "this capture type is not Serialize + DeserializeOwned",
    note = "derive them with `#[derive(serde::Serialize, serde::Deserialize)]`, or capture a value that has them"
)]
pub trait Capture: Serialize + DeserializeOwned + MaybeSend + 'static {}

impl<T: Serialize + DeserializeOwned + MaybeSend + 'static> Capture for T {}

/// Fails to compile, at the capture's type, unless it can be captured.
pub const fn assert_capture<T: Capture>() {}

/// The body of a registered handler: decode the captures, run, encode the value; or name the
/// value's type.
pub fn serve<A, F, Fut>(input: HandlerInput<'_>, body: F) -> Handled
where
    A: DeserializeOwned,
    F: FnOnce(A) -> Fut,
    Fut: Future + MaybeSend + 'static,
    Fut::Output: Serialize,
{
    let captures = match input {
        HandlerInput::OutputType => return Handled::OutputType(type_name::<Fut::Output>()),
        HandlerInput::Run(captures) => captures,
    };
    match decode_captures::<A>(captures) {
        Ok(args) => {
            let running = body(args);
            Handled::Running(Box::pin(async move { encode_value(&running.await) }))
        }
        Err(failure) => Handled::Finished(Err(failure)),
    }
}

/// [`serve`] for a body that cannot wait (the macro found no `.await` and no macro call in
/// it): it runs at once, and no future is allocated for it.
pub fn serve_now<A, F, R>(input: HandlerInput<'_>, body: F) -> Handled
where
    A: DeserializeOwned,
    F: FnOnce(A) -> R,
    R: Serialize,
{
    let captures = match input {
        HandlerInput::OutputType => return Handled::OutputType(type_name::<R>()),
        HandlerInput::Run(captures) => captures,
    };
    Handled::Finished(decode_captures::<A>(captures).and_then(|args| encode_value(&body(args))))
}

fn decode_captures<A: DeserializeOwned>(captures: &[u8]) -> Result<A, Failure> {
    decode_payload(captures).map_err(|e| Failure::DecodeCaptures {
        reason: e.to_string(),
    })
}

fn encode_value<R: Serialize>(value: &R) -> Result<Encoded, Failure> {
    Encoded::new(value, RESULT_HEADROOM).map_err(|e| Failure::EncodeResult {
        reason: e.to_string(),
    })
}

/// The call a `remote!` evaluates to. `_typing` is never called: its output type is the body's
/// type, which becomes the call's result type. (That the type can be encoded is checked once,
/// by `serve`.)
pub fn call<P, A, F, Fut>(
    peer: &P,
    body: &'static str,
    checked: &'static ResultTypeChecked,
    captures: &impl Serialize,
    _typing: F,
) -> Call<Fut::Output>
where
    P: Borrow<PeerId> + ?Sized,
    F: FnOnce(A) -> Fut,
    Fut: Future,
    Fut::Output: DeserializeOwned,
{
    let verdict = checked.get_or_init(|| check_result_type::<Fut::Output>(body));
    let captures = verdict.clone().and_then(|()| {
        Encoded::new(captures, invoke_headroom(body)).map_err(|e| Error::EncodeCaptures {
            body: body.to_owned(),
            reason: e.to_string(),
        })
    });
    Call::new(peer.borrow().clone(), body, captures, decode::<Fut::Output>)
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

fn decode<R: DeserializeOwned>(bytes: &[u8]) -> Result<R, String> {
    decode_payload(bytes).map_err(|e| e.to_string())
}

/// The typing-only form of a nested `remote!` inside a typing copy; never awaited.
pub fn typing_only<A, F, Fut>(_typing: F) -> Call<Fut::Output>
where
    F: FnOnce(A) -> Fut,
    Fut: Future,
{
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
