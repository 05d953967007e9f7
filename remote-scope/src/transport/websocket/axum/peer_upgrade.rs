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
}

impl fmt::Debug for PeerUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerUpgrade")
            .field("session", &self.session)
            .field("from", &self.from)
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

    /// Accepts the connection for `endpoint`'s node: `101 Switching Protocols`, then the
    /// node's handshake in a task of its own. `503 Service Unavailable` instead when the node
    /// is shutting down or the endpoint has [`max_connections`](crate::NodeBuilder::max_connections)
    /// handshakes under way.
    pub fn serve(self, endpoint: &Endpoint) -> Response {
        let shared = &endpoint.shared;
        if shared.node.is_draining() || endpoint.is_closed() {
            return refusal(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
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
            // The time from the `101` to the end of the node's handshake is the handshake
            // timeout's, as on the node's own listener: a peer that upgrades and falls silent
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
            let stream =
                ByteStream::Upgraded(Box::new(hyper_util::rt::TokioIo::new(upgraded)), from);
            let transport = WebSocketTransport::new(stream, Role::Server, Vec::new(), limits(node));
            let admitted = match &session {
                Some(named) => node.accept_session(transport, named).await,
                None => node.accept_transport(transport).await,
            };
            drop(permit);
            match admitted {
                Ok(peer) => Accepted::keep(&endpoint.shared.accepted, node, &peer),
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
                reason: "a peer connects with GET",
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
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or_else(|| bad("the upgrade has no Sec-WebSocket-Key"))?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(PeerUpgradeRejection {
                status: StatusCode::UPGRADE_REQUIRED,
                reason: "this connection cannot be upgraded (HTTP/1.1 with hyper is needed)",
            })?;
        Ok(PeerUpgrade {
            key,
            on_upgrade,
            session: parts.extensions.get::<SessionPeer>().map(|s| s.0.clone()),
            from: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0),
        })
    }
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
}
