//! A node's settings, as its builder sets them.

use std::time::Duration;

use crate::peer_id::PeerId;
use crate::rate::RateLimit;

/// A node's settings.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) default_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_frame_size: usize,
    pub(crate) max_connections: usize,
    pub(crate) max_bodies_per_connection: usize,
    pub(crate) max_capture_size: usize,
    pub(crate) max_queued_bytes: usize,
    pub(crate) max_queued_bytes_total: usize,
    pub(crate) rate_limit: RateLimit,
    pub(crate) keepalive: Option<Duration>,
    /// Modules whose bodies (this build's) a peer must serve to connect.
    pub(crate) required_modules: Vec<String>,
    /// Bodies (this build's, by name) a peer must serve to connect.
    pub(crate) required_bodies: Vec<&'static str>,
    pub(crate) token: Option<String>,
    /// Peers prove their ids ([`NodeBuilder::peer_tokens`]), so one that connects again under
    /// its id may take over a silent connection of that id.
    pub(crate) ids_proven: bool,
    /// The pools this node is a member of.
    pub(crate) pools: Vec<crate::pool::Pool>,
    /// Certificates (PEM) a native client trusts for `wss://` beside the system's roots.
    pub(crate) trusted_certificates: Vec<Vec<u8>>,
    /// HTTP headers a native client sends with its WebSocket upgrade.
    pub(crate) connect_headers: Vec<(String, String)>,
    /// A native client's TLS settings, made from `trusted_certificates` at the first `wss://`
    /// connect and kept for the later ones (`transport::websocket`'s `tls`).
    #[cfg(all(feature = "tls", not(target_arch = "wasm32")))]
    pub(crate) client_tls: ClientTls,
}

/// Where a node keeps its TLS settings as a client once made.
#[cfg(all(feature = "tls", not(target_arch = "wasm32")))]
pub(crate) type ClientTls =
    std::sync::Arc<std::sync::OnceLock<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>>;

/// Called with each user message that no middleware consumed.
pub(crate) type MessageHandler = dyn Fn(&PeerId, Vec<u8>) + Send + Sync;
