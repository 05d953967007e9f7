//! Browser peers: the bodies shared by the native server and the browser, the demo page's entry
//! point (wasm32), and, in `src/bin/browser-server.rs`, the server peer the page talks to.
//!
//! Every body here is compiled into both binaries from this one source, so both register it
//! under the same name; the browser's connect-time registry check proves it.

pub mod checks;
pub mod demo;
#[cfg(target_arch = "wasm32")]
mod page;

// The server calls these bodies on the browser; the page never calls into their modules.
#[cfg(target_arch = "wasm32")]
remote_scope::link!(remote_scope_browser_extra::ask, checks::elsewhere::ask);
