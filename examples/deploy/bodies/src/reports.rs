//! Reports, version 1. Version 2 (`bodies-next`) summarizes differently behind the same
//! signature: a `#[remote_fn]` is named by its signature, so callers of either version reach
//! whichever implementation the server runs.

use remote_scope::remote_fn;

/// A summary of `text`, made on the peer it is sent to.
#[remote_fn]
pub async fn summary(text: String) -> String {
    format!("{} words", text.split_whitespace().count())
}
