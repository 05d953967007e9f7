//! Bodies in a crate of their own. The server calls [`ask`] to run a body on a browser; the
//! browser never calls anything here, so only `remote_scope::link!` keeps this crate's
//! registration in the browser's wasm binary.

use remote_scope::{remote, Error, PeerId};

/// Runs a body on `browser` that answers with where it ran.
pub async fn ask(browser: PeerId) -> Result<String, Error> {
    remote!(browser, [], {
        format!(
            "extra crate body ran on {}",
            remote_scope::current_peer().map_or_else(|| "?".into(), |p| p.to_string())
        )
    })
    .await
}
