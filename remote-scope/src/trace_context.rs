//! One trace across every hop: the W3C trace context a call carries to the peer that runs its
//! body, and the context the code running now is in.
//!
//! A call made where a trace is under way (inside a body that was called with one, or inside
//! [`TraceContext::scope`]) carries that trace's id and its own span id; the serving peer runs
//! the body in a span of its own, the call's span its parent, and the body's calls carry the
//! trace on. Where no trace is under way, a call starts one if anything listens to this crate's
//! spans at debug level, and carries none otherwise (so it costs nothing when nobody listens).
//! The spans (`call` on the calling side, `serve` on the serving side) record `trace_id`,
//! `span_id` and `parent_id` as W3C hex, which any `tracing` subscriber that records fields
//! can put together into one tree across peers.
//!
//! With feature `opentelemetry`, where a `tracing-opentelemetry` layer records spans, the ids
//! are OpenTelemetry's: a call carries its span's context (or that of the span around it), and
//! the serving peer's span takes it as its remote parent.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};

/// A W3C trace context (`traceparent`, and `tracestate` passed on unchanged): the trace, and
/// the span in it that the code is in.
///
/// ```
/// use remote_scope::TraceContext;
///
/// let ctx = TraceContext::from_traceparent(
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
///     Some("vendor=value"),
/// )
/// .expect("a valid traceparent");
/// assert_eq!(ctx.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
/// assert_eq!(ctx.span_id, 0x00f067aa0ba902b7);
/// assert_eq!(ctx.traceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// assert_eq!(TraceContext::current(), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// The trace: the same on every hop.
    pub trace_id: u128,
    /// The span the code is in; a call made from here is its child.
    pub span_id: u64,
    /// W3C trace flags (bit 0: sampled).
    pub flags: u8,
    /// W3C `tracestate`, passed on unchanged.
    pub state: Option<String>,
}

/// The longest `tracestate` passed on (W3C's limit).
const MAX_TRACESTATE: usize = 512;

thread_local! {
    static CURRENT: RefCell<Option<TraceContext>> = const { RefCell::new(None) };
    /// Whether `CURRENT` holds a context: what every call reads, without borrowing it.
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

impl TraceContext {
    /// The context of the code running now: inside a body called with a trace, the body's
    /// span; inside [`TraceContext::scope`], that scope's. `None` elsewhere.
    pub fn current() -> Option<TraceContext> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// A new trace, sampled, with a root span of its own.
    pub fn new_root() -> TraceContext {
        TraceContext {
            trace_id: random_trace_id(),
            span_id: random_span_id(),
            flags: 1,
            state: None,
        }
    }

    /// Reads a W3C `traceparent` header (`00-<trace id>-<span id>-<flags>`) and its
    /// `tracestate`; `None` if it is malformed or all-zero.
    pub fn from_traceparent(traceparent: &str, tracestate: Option<&str>) -> Option<TraceContext> {
        let mut parts = traceparent.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        if parts.next().is_some()
            || !hex(version, 2)
            || version == "ff"
            || !hex(trace, 32)
            || !hex(span, 16)
            || !hex(flags, 2)
        {
            return None;
        }
        let ctx = TraceContext {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            span_id: u64::from_str_radix(span, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
            state: tracestate.map(str::to_owned),
        }
        .bounded();
        (ctx.trace_id != 0 && ctx.span_id != 0).then_some(ctx)
    }

    /// The W3C `traceparent` header of this context.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }

    /// Runs `future` as part of this trace: the calls it makes carry it (for a request that
    /// came with a `traceparent`, or to give a group of calls one trace). With feature
    /// `opentelemetry` and its layer installed, calls carry the OpenTelemetry context of their
    /// spans instead: enter a span whose parent is the request's context there.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use remote_scope::{remote, Node, TraceContext};
    ///
    /// let node = Node::builder().build()?;
    /// let peer = node.id().clone();
    /// let ctx = TraceContext::new_root();
    /// let seen = node
    ///     .run(ctx.clone().scope(async {
    ///         remote!(peer, [], { TraceContext::current().map(|c| c.trace_id) }).await
    ///     }))
    ///     .await?;
    /// assert_eq!(seen, Some(ctx.trace_id));
    /// # Ok(()) }
    /// ```
    pub fn scope<F: Future>(self, future: F) -> InTrace<F> {
        InTrace {
            ctx: Some(self),
            future: Box::pin(future),
        }
    }

    /// This context with its `tracestate` dropped if it is longer than W3C allows (512
    /// bytes): it travels with every call made in the trace, and may come from anyone.
    pub(crate) fn bounded(mut self) -> TraceContext {
        if self
            .state
            .as_ref()
            .is_some_and(|s| s.len() > MAX_TRACESTATE)
        {
            self.state = None;
        }
        self
    }

    /// This context for a call made from it: the same trace, a span of the call's own.
    pub(crate) fn child(&self) -> TraceContext {
        TraceContext {
            span_id: random_span_id(),
            ..self.clone()
        }
    }
}

/// A future run as part of a trace ([`TraceContext::scope`]).
#[must_use = "futures do nothing unless polled"]
pub struct InTrace<F> {
    ctx: Option<TraceContext>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for InTrace<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let future = &mut this.future;
        with_trace(&mut this.ctx, || future.as_mut().poll(cx))
    }
}

impl<F> std::fmt::Debug for InTrace<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InTrace").field("ctx", &self.ctx).finish()
    }
}

/// Runs `f` with `ctx` as the current trace context, then puts the previous one back (also
/// when `f` panics).
pub(crate) fn with_trace<R>(ctx: &mut Option<TraceContext>, f: impl FnOnce() -> R) -> R {
    struct Restore<'a>(&'a mut Option<TraceContext>);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            CURRENT.with(|c| {
                let mut current = c.borrow_mut();
                std::mem::swap(&mut *current, self.0);
                IN_TRACE.with(|t| t.set(current.is_some()));
            });
        }
    }
    CURRENT.with(|c| {
        let mut current = c.borrow_mut();
        std::mem::swap(&mut *current, ctx);
        IN_TRACE.with(|t| t.set(current.is_some()));
    });
    let _restore = Restore(ctx);
    f()
}

/// What a call carries, given its span (none when nothing listens at debug level): the
/// OpenTelemetry context of its span (or of the span around it) where an OpenTelemetry layer
/// records spans; else the current trace with a span of the call's own; else a new trace if
/// the call's span is heard; else nothing. With the parent span, where it is known here.
/// Inlined for its first test, which is all a call pays when nobody listens.
#[inline]
pub(crate) fn for_call(span: &tracing::Span) -> Option<(TraceContext, Option<u64>)> {
    if !cfg!(feature = "opentelemetry") && span.is_none() && !IN_TRACE.with(Cell::get) {
        return None;
    }
    for_traced_call(span)
}

#[inline(never)]
fn for_traced_call(span: &tracing::Span) -> Option<(TraceContext, Option<u64>)> {
    if let Some(otel) = otel::of_span_or_current(span) {
        return Some((otel, None));
    }
    match TraceContext::current() {
        // A call whose span nobody records: the callee's parent is the span around it.
        Some(current) if span.is_none() => Some((current, None)),
        Some(current) => Some((current.child(), Some(current.span_id))),
        None if !span.is_none() => Some((TraceContext::new_root(), None)),
        None => None,
    }
}

/// The context of the body of a call that came with `caller`, run in `span`: its
/// OpenTelemetry context (the caller's span its parent), or a span of its own in the trace.
pub(crate) fn for_body(span: &tracing::Span, caller: &TraceContext) -> TraceContext {
    otel::adopt(span, caller);
    otel::of_span(span).unwrap_or_else(|| caller.child())
}

/// Where `tracing-opentelemetry` records spans, their OpenTelemetry ids are the trace's.
#[cfg(feature = "opentelemetry")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::TraceContext;

    /// The OpenTelemetry context of `span`, if a layer records it.
    pub(super) fn of_span(span: &tracing::Span) -> Option<TraceContext> {
        if span.is_none() {
            return None;
        }
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| {
            let state = sc.trace_state().header();
            TraceContext {
                trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
                span_id: u64::from_be_bytes(sc.span_id().to_bytes()),
                flags: sc.trace_flags().to_u8(),
                state: (!state.is_empty()).then_some(state),
            }
        })
    }

    /// [`of_span`] of `span`, or of the span the code is in when `span` is not heard.
    pub(super) fn of_span_or_current(span: &tracing::Span) -> Option<TraceContext> {
        if span.is_none() {
            of_span(&tracing::Span::current())
        } else {
            of_span(span)
        }
    }

    /// Makes the caller's span `span`'s OpenTelemetry parent.
    pub(super) fn adopt(span: &tracing::Span, caller: &TraceContext) {
        if span.is_none() {
            return;
        }
        let state = caller
            .state
            .as_deref()
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        let parent = SpanContext::new(
            TraceId::from_bytes(caller.trace_id.to_be_bytes()),
            SpanId::from_bytes(caller.span_id.to_be_bytes()),
            TraceFlags::new(caller.flags),
            true,
            state,
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(parent);
        // Refused only where no OpenTelemetry layer listens: the span has no such parent then.
        let _ = span.set_parent(cx);
    }
}

#[cfg(not(feature = "opentelemetry"))]
mod otel {
    use super::TraceContext;

    #[inline]
    pub(super) fn of_span(_: &tracing::Span) -> Option<TraceContext> {
        None
    }

    #[inline]
    pub(super) fn of_span_or_current(_: &tracing::Span) -> Option<TraceContext> {
        None
    }

    #[inline]
    pub(super) fn adopt(_: &tracing::Span, _: &TraceContext) {}
}

/// Records the ids of `ctx` (and its parent span) on `span`, as W3C hex.
pub(crate) fn record(span: &tracing::Span, ctx: &TraceContext, parent: Option<u64>) {
    if span.is_none() {
        return;
    }
    span.record(
        "trace_id",
        tracing::field::display(format_args!("{:032x}", ctx.trace_id)),
    );
    span.record(
        "span_id",
        tracing::field::display(format_args!("{:016x}", ctx.span_id)),
    );
    if let Some(parent) = parent {
        span.record(
            "parent_id",
            tracing::field::display(format_args!("{parent:016x}")),
        );
    }
}

fn random_trace_id() -> u128 {
    loop {
        let id = (u128::from(crate::random::random_u64()) << 64)
            | u128::from(crate::random::random_u64());
        if id != 0 {
            return id;
        }
    }
}

fn random_span_id() -> u64 {
    loop {
        let id = crate::random::random_u64();
        if id != 0 {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::from_traceparent(bad, None), None, "{bad:?}");
        }
    }

    #[test]
    fn a_tracestate_longer_than_w3c_allows_is_dropped() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let long = "k=".to_owned() + &"v".repeat(600);
        let ctx = TraceContext::from_traceparent(parent, Some(&long)).expect("valid");
        assert_eq!(ctx.state, None);
        let ctx = TraceContext::from_traceparent(parent, Some("k=v")).expect("valid");
        assert_eq!(ctx.state.as_deref(), Some("k=v"));
    }

    #[test]
    fn the_current_context_is_restored_after_a_scope_even_a_panicking_one() {
        let ctx = TraceContext::new_root();
        let mut lent = Some(ctx.clone());
        let inside = with_trace(&mut lent, TraceContext::current);
        assert_eq!(inside, Some(ctx.clone()));
        assert_eq!(TraceContext::current(), None);
        let mut lent = Some(ctx);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            with_trace(&mut lent, || panic!("inside"))
        }));
        assert!(panicked.is_err());
        assert_eq!(TraceContext::current(), None);
    }
}
