//! Who may connect, and which bodies each connected peer may run.
//!
//! Authentication happens once, in the handshake: each `Hello` carries the sender's token
//! ([`NodeBuilder::token`](crate::NodeBuilder::token)) and the receiver's
//! [`NodeBuilder::authenticate`](crate::NodeBuilder::authenticate) accepts or refuses it. A
//! refused peer never gets a connection, so it can invoke nothing. Authorization happens per
//! call: [`NodeBuilder::authorize`](crate::NodeBuilder::authorize) sees the calling peer and the
//! body's name before anything is decoded, and a denied call fails with
//! [`Error::NotAuthorized`](crate::Error::NotAuthorized) without running.
//!
//! A node's id is what the peer claims in its `Hello`. With one shared token
//! ([`NodeBuilder::require_token`](crate::NodeBuilder::require_token)) any holder may claim any
//! id; with a token per id ([`NodeBuilder::peer_tokens`](crate::NodeBuilder::peer_tokens)) ids
//! are proven, and per-peer authorization can rely on them. Whatever the policy, two connected
//! peers never share an id: a second one is refused.
//!
//! Tokens travel in the clear inside a plain connection: put the peers behind TLS
//! (`Node::listen_tls` and `wss://` with the `tls` feature, or a
//! terminating proxy in front of the server; browsers connect with `wss://`) or on a network
//! you trust.

use crate::peer_id::PeerId;

/// Decides whether a connected peer may run a body, given the peer's id and the body's name
/// (`module::path::fingerprint`, see [`Call::body_name`](crate::Call::body_name)).
///
/// Implemented for closures `Fn(&PeerId, &str) -> bool` and for [`Allowlist`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use remote_scope::{Node, PeerId};
///
/// // Only peers whose id starts with `admin-` may run anything here.
/// let node = Node::builder()
///     .authorize(|peer: &PeerId, _body: &str| peer.as_str().starts_with("admin-"))
///     .build()?;
/// # let _ = node;
/// # Ok(()) }
/// ```
pub trait Authorize: Send + Sync + 'static {
    /// Whether `peer` may run the body named `body`.
    fn authorize(&self, peer: &PeerId, body: &str) -> bool;
}

impl<F> Authorize for F
where
    F: Fn(&PeerId, &str) -> bool + Send + Sync + 'static,
{
    fn authorize(&self, peer: &PeerId, body: &str) -> bool {
        self(peer, body)
    }
}

/// An [`Authorize`] that lets peers run the bodies of listed modules, and nothing else.
///
/// Body names start with the module path of the `remote!` that defines them, so keeping the
/// bodies a peer may run in their own module (`my_app::api`) makes the list short. A module
/// entry covers its submodules too.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use remote_scope::{Allowlist, Node};
///
/// let allow = Allowlist::new()
///     // Any peer may run the bodies written in `my_app::api`.
///     .module("my_app::api")
///     // Only `ops` may run those in `my_app::admin`.
///     .module_for("ops", "my_app::admin");
/// assert!(allow.allows(&"anyone".into(), "my_app::api::00112233aabbccdd"));
/// assert!(allow.allows(&"ops".into(), "my_app::admin::jobs::00112233aabbccdd"));
/// assert!(!allow.allows(&"anyone".into(), "my_app::admin::00112233aabbccdd"));
/// assert!(!allow.allows(&"anyone".into(), "my_app::api_internal::00112233aabbccdd"));
///
/// let node = Node::builder().authorize(allow).build()?;
/// # let _ = node;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Allowlist {
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
struct Rule {
    /// `None`: every peer.
    peer: Option<PeerId>,
    module: String,
}

impl Allowlist {
    /// An empty list: it allows nothing.
    pub fn new() -> Self {
        Allowlist::default()
    }

    /// Lets every peer run the bodies of `module` (a path as `module_path!()` gives it).
    pub fn module(mut self, module: impl Into<String>) -> Self {
        self.rules.push(Rule {
            peer: None,
            module: module.into(),
        });
        self
    }

    /// Lets `peer` run the bodies of `module`.
    pub fn module_for(mut self, peer: impl Into<PeerId>, module: impl Into<String>) -> Self {
        self.rules.push(Rule {
            peer: Some(peer.into()),
            module: module.into(),
        });
        self
    }

    /// Whether `peer` may run the body named `body`.
    pub fn allows(&self, peer: &PeerId, body: &str) -> bool {
        self.rules.iter().any(|rule| {
            rule.peer.as_ref().is_none_or(|p| p == peer)
                && body
                    .strip_prefix(rule.module.as_str())
                    .is_some_and(|rest| rest.starts_with("::"))
        })
    }
}

impl Authorize for Allowlist {
    fn authorize(&self, peer: &PeerId, body: &str) -> bool {
        self.allows(peer, body)
    }
}

/// Decides whether a peer may connect, given the id it claims and the token it sent.
pub(crate) type Authenticate = dyn Fn(&PeerId, Option<&str>) -> bool + Send + Sync;

/// Compares two tokens in time that depends on their lengths only, so a peer cannot find the
/// token a byte at a time by timing refusals.
pub(crate) fn same_token(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0_u8, |diff, (a, b)| diff | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(same_token("s3cret", "s3cret"));
        assert!(!same_token("s3cres", "s3cret"));
        assert!(!same_token("s3cre", "s3cret"));
        assert!(!same_token("", "s3cret"));
        assert!(same_token("", ""));
    }

    #[test]
    fn an_empty_allowlist_allows_nothing_and_rules_bind_to_their_peer() {
        let peer = PeerId::new("p");
        assert!(!Allowlist::new().allows(&peer, "m::0"));
        let allow = Allowlist::new().module_for("q", "m");
        assert!(!allow.allows(&peer, "m::0"));
        assert!(allow.allows(&PeerId::new("q"), "m::0"));
        // A name that only starts like the module is another module.
        assert!(!allow.allows(&PeerId::new("q"), "mm::0"));
        assert!(!allow.allows(&PeerId::new("q"), "m"));
    }
}
