//! The request that asks for a peer connection: checked as a WebSocket upgrade, answered with
//! `101`, then handed to the node as its own WebSocket transport over hyper's connection.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use ::axum::body::Body;
use ::axum::extract::{ConnectInfo, FromRequestParts};
use ::axum::http::request::Parts;
use ::axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use ::axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::super::byte_stream::ByteStream;
use super::super::framing::Role;
use super::super::socket::WebSocketTransport;
use super::super::{limits, Accepted};
use super::Endpoint;
use crate::peer_id::PeerId;

/// The peer a web session proved, put into a request's extensions by the app's middleware for
/// [`Endpoint::route`] (or given to [`PeerUpgrade::as_peer`]). The peer's `Hello` must name
/// it; a peer that claims another id is refused as not authenticated.
///
/// ```
/// use remote_scope::axum::SessionPeer;
///
/// let mut request = axum::http::Request::new(());
/// request.extensions_mut().insert(SessionPeer::new("alice"));
/// assert_eq!(request.extensions().get::<SessionPeer>().map(|s| s.id().as_str()), Some("alice"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionPeer(PeerId);

impl SessionPeer {
    /// The session's peer is `id`.
    pub fn new(id: impl Into<PeerId>) -> SessionPeer {
        SessionPeer(id.into())
    }

    /// Its id.
    pub fn id(&self) -> &PeerId {
        &self.0
    }
}

/// An axum extractor: a request to connect as a peer (a WebSocket upgrade). A handler of the
/// app's own takes it beside whatever else it checks, and answers with
/// [`serve`](PeerUpgrade::serve).
///
/// ```
/// use axum::extract::State;
/// use axum::http::{HeaderMap, StatusCode};
/// use axum::response::{IntoResponse, Response};
/// use remote_scope::axum::{Endpoint, PeerUpgrade};
///
/// /// Peers whose `x-api-key` the app knows connect under the key's owner.
/// async fn peer(State(endpoint): State<Endpoint>, headers: HeaderMap, upgrade: PeerUpgrade) -> Response {
///     match headers.get("x-api-key").map(|k| k.as_bytes()) {
///         Some(b"k-reports") => upgrade.as_peer("reports").serve(&endpoint),
///         _ => StatusCode::UNAUTHORIZED.into_response(),
///     }
/// }
///
/// # fn app(node: &remote_scope::Node) -> axum::Router {
/// axum::Router::new()
///     .route("/peer", axum::routing::get(peer))
///     .with_state(Endpoint::new(node))
/// # }
/// ```
pub struct PeerUpgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
    session: Option<PeerId>,
    from: Option<SocketAddr>,
    /// The page's origin and the app's host as the request gave them, for the endpoint's
    /// origin check.
    origin: Option<String>,
    host: Option<String>,
}

impl fmt::Debug for PeerUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerUpgrade")
            .field("session", &self.session)
            .field("from", &self.from)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl PeerUpgrade {
    /// The peer is `id`, as a web session proved: its `Hello` must name it, and no token is
    /// asked for.
    pub fn as_peer(mut self, id: impl Into<PeerId>) -> PeerUpgrade {
        self.session = Some(id.into());
        self
    }

    /// The peer the session named, if one did.
    pub fn session_peer(&self) -> Option<&PeerId> {
        self.session.as_ref()
    }

    /// The page's origin (its `Origin` header), if a page asked.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// Accepts the connection for `endpoint`'s node: `101 Switching Protocols`, then the
    /// node's handshake in a task of its own. Instead: `403 Forbidden` for a page of an origin
    /// the endpoint does not take ([`Endpoint::allow_origin`]); `503 Service Unavailable` when
    /// the node is shutting down or the endpoint has
    /// [`max_connections`](crate::NodeBuilder::max_connections) handshakes under way; `500`
    /// if the session names an id no peer may have.
    pub fn serve(self, endpoint: &Endpoint) -> Response {
        let shared = &endpoint.shared;
        if !endpoint.allows(self.origin.as_deref(), self.host.as_deref()) {
            tracing::debug!(origin = ?self.origin, "a page of another origin; refusing an upgrade");
            return refusal(
                StatusCode::FORBIDDEN,
                "pages of this origin may not connect here",
            );
        }
        if endpoint.is_closed() {
            return refusal(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
        }
        if self.session.as_ref().is_some_and(|id| !id.is_valid()) {
            // The app's mistake, not the peer's: an id the handshake would refuse anyway.
            tracing::warn!("a session names a peer id that is not valid; refusing an upgrade");
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the session names an invalid peer id",
            );
        }
        // Refused at once rather than queued, as the node's own listener does.
        let Ok(permit) = Arc::clone(&shared.in_progress).try_acquire_owned() else {
            tracing::debug!(from = ?self.from, "too many handshakes under way; refusing an upgrade");
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many peers are connecting at once; try again",
            );
        };
        let accept = derive_accept_key(self.key.as_bytes());
        let PeerUpgrade {
            on_upgrade,
            session,
            from,
            ..
        } = self;
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let node = &endpoint.shared.node;
            // The upgrade gets the handshake timeout, and the node's handshake gets it again for
            // the `Hello`, as on the node's own listener: a peer that upgrades and falls silent
            // does not keep its task or its socket.
            let upgraded =
                match tokio::time::timeout(node.config().handshake_timeout, on_upgrade).await {
                    Ok(Ok(upgraded)) => upgraded,
                    Ok(Err(e)) => {
                        tracing::debug!(?from, error = %e, "HTTP upgrade failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(?from, "HTTP upgrade timed out");
                        return;
                    }
                };
            // The node may have begun to stop while the `101` went out.
            if endpoint.is_closed() {
                return;
            }
            let stream =
                ByteStream::Upgraded(Box::new(hyper_util::rt::TokioIo::new(upgraded)), from);
            let transport = WebSocketTransport::new(stream, Role::Server, Vec::new(), limits(node));
            let admitted = node.accept_connection(transport, session.as_ref()).await;
            drop(permit);
            match admitted {
                Ok(conn) => Accepted::keep(&endpoint.shared.accepted, node, &conn),
                Err(e) => tracing::warn!(?from, error = %e, "refused a peer"),
            }
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PeerUpgrade {
    type Rejection = PeerUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let bad = |reason| PeerUpgradeRejection {
            status: StatusCode::BAD_REQUEST,
            reason,
        };
        if parts.method != Method::GET {
            return Err(PeerUpgradeRejection {
                status: StatusCode::METHOD_NOT_ALLOWED,
                reason: "a peer connects with GET, over HTTP/1.1",
            });
        }
        if !has_token(&parts.headers, header::CONNECTION, "upgrade")
            || !has_token(&parts.headers, header::UPGRADE, "websocket")
        {
            return Err(PeerUpgradeRejection {
                status: StatusCode::UPGRADE_REQUIRED,
                reason: "this is where peers connect with a WebSocket upgrade",
            });
        }
        if !has_token(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(PeerUpgradeRejection {
                status: StatusCode::UPGRADE_REQUIRED,
                reason: "only WebSocket version 13 is spoken here",
            });
        }
        let mut keys = parts.headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
        let key = match (keys.next(), keys.next()) {
            (Some(key), None) if is_key(key.as_bytes()) => key.clone(),
            _ => {
                return Err(bad(
                    "the upgrade needs one Sec-WebSocket-Key: 16 bytes in base64",
                ))
            }
        };
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(PeerUpgradeRejection {
                status: StatusCode::UPGRADE_REQUIRED,
                reason: "this connection cannot be upgraded (HTTP/1.1 with hyper is needed)",
            })?;
        let text = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(PeerUpgrade {
            key,
            on_upgrade,
            origin: text(header::ORIGIN),
            host: text(header::HOST),
            session: parts.extensions.get::<SessionPeer>().map(|s| s.0.clone()),
            from: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0),
        })
    }
}

/// Whether `key` is 16 bytes in base64 (RFC 6455, 4.2.1): 22 characters of the alphabet, then
/// `==`.
fn is_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Whether `name`'s values list `token` (comma-separated, any case).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Why a request is not a peer's upgrade; its response says so with the status it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerUpgradeRejection {
    status: StatusCode,
    reason: &'static str,
}

impl PeerUpgradeRejection {
    /// The response's status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl fmt::Display for PeerUpgradeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for PeerUpgradeRejection {}

impl IntoResponse for PeerUpgradeRejection {
    fn into_response(self) -> Response {
        refusal(self.status, self.reason)
    }
}

fn refusal(status: StatusCode, reason: &'static str) -> Response {
    let mut response = (status, reason).into_response();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
    }
    if status == StatusCode::UPGRADE_REQUIRED {
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tokens_are_found_in_lists_and_any_case() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(has_token(&headers, header::CONNECTION, "upgrade"));
        assert!(!has_token(&headers, header::CONNECTION, "close"));
        assert!(!has_token(&headers, header::UPGRADE, "websocket"));
    }

    #[test]
    fn a_key_is_sixteen_bytes_in_base64() {
        assert!(is_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_key(b"dGhlIHNhbXBsZSBub25jZQ="));
        assert!(!is_key(b"dGhlIHNhbXBsZSBub25j*Q=="));
        assert!(!is_key(b""));
    }
}
