//! Browser peers: the demo's bodies, shared by the native server and the page, the demo page's
//! entry point (wasm32), and, in `src/bin/browser-server/`, the server peer the page talks to.
//! The browser tests' bodies are in `checks/` (and `extra/`), which the server and the tests
//! link and the page does not.
//!
//! Every body here is compiled into both binaries from this one source, so both register it
//! under the same name; the browser's connect-time registry check proves it.

pub mod demo;
#[cfg(target_arch = "wasm32")]
mod page;
