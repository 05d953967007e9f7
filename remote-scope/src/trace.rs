//! Tracing spans that cost nothing when nobody listens.

/// A debug span for a call, a served body or a connection's tasks, or none at all when nothing
/// listens at debug level: a disabled span still costs a little on every poll where `tracing`'s
/// `log` feature is on (some dependency may turn it on), and these are polled all the time.
macro_rules! call_span {
    ($($args:tt)*) => {
        if ::tracing::enabled!(::tracing::Level::DEBUG) {
            ::tracing::debug_span!($($args)*)
        } else {
            ::tracing::Span::none()
        }
    };
}

/// Enters `span` unless it is none (see `call_span!`): entering and leaving even a disabled
/// span costs a little, and bodies and calls are polled all the time.
pub(crate) fn entered(span: &tracing::Span) -> Option<tracing::span::Entered<'_>> {
    (!span.is_none()).then(|| span.enter())
}

/// Runs `f` in `span` (see [`entered`]).
pub(crate) fn in_span<R>(span: &tracing::Span, f: impl FnOnce() -> R) -> R {
    let _entered = entered(span);
    f()
}
