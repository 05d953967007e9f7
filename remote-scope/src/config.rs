//! A node's settings, as its builder sets them.

use std::time::Duration;

use crate::peer_id::PeerId;
use crate::rate::RateLimit;

/// What to do when a peer's registry digest differs from ours at connect time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryCheck {
    /// Refuse the connection with [`Error::RegistryMismatch`](crate::Error::RegistryMismatch): both peers must be built with the
    /// same bodies. The default, so a stale deployment fails at connect time, not mid-call.
    #[default]
    Strict,
    /// Connect anyway and log a warning; a call to a body the peer lacks fails with
    /// [`Error::UnknownBody`](crate::Error::UnknownBody).
    Lenient,
}

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
    pub(crate) registry_check: RegistryCheck,
    pub(crate) token: Option<String>,
    /// Peers prove their ids ([`NodeBuilder::peer_tokens`]), so one that connects again under
    /// its id may take over a silent connection of that id.
    pub(crate) ids_proven: bool,
}

/// Called with each user message that no middleware consumed.
pub(crate) type MessageHandler = dyn Fn(&PeerId, Vec<u8>) + Send + Sync;
