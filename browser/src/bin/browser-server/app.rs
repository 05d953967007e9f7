//! The axum app: the demo page, its files, and the node's peers on two routes, one port.
//!
//! `/` gives a visitor a session (a cookie holding a random key) and the page, which connects
//! to `/peer` as the peer the session names: the server knows who the page is from its cookie,
//! and no token is in the page's code. `/open` takes any peer from any page (the browser
//! tests' pages come from their own test server and carry no session), so on this server a
//! session's id proves nothing beyond this demo: a test server, not a deployment. Sessions
//! never expire (at most 10 000, for the server's lifetime).

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use remote_scope::axum::{Endpoint, SessionPeer};
use remote_scope::{Node, PeerId};
use ring::rand::{SecureRandom, SystemRandom};

/// Sessions by key. Bounded: a visitor beyond it gets no session (and `503`), rather than
/// memory that grows with every request.
const MAX_SESSIONS: usize = 10_000;

#[derive(Clone)]
struct Site {
    dir: Option<Arc<Path>>,
    sessions: Arc<Mutex<HashMap<String, PeerId>>>,
    secure: bool,
    random: SystemRandom,
}

pub fn router(node: &Node, static_dir: Option<PathBuf>, secure: bool) -> Router {
    // The page's route takes its own pages only (a page elsewhere would bring the visitor's
    // cookie along); the open route takes any page, and trusts nothing it sends by itself.
    let page = Endpoint::new(node);
    let open = Endpoint::new(node).allow_any_origin();
    let site = Site {
        dir: static_dir.map(Arc::from),
        sessions: Arc::default(),
        secure,
        random: SystemRandom::new(),
    };
    Router::new()
        .route("/peer", page.route())
        .route_layer(middleware::from_fn_with_state(site.clone(), session_peer))
        .route("/open", open.route())
        .route("/", get(index))
        .route("/{*file}", get(file))
        .with_state(site)
}

/// The page's session check: its cookie names its peer, or the upgrade is refused.
async fn session_peer(State(site): State<Site>, mut request: Request, next: Next) -> Response {
    let known =
        session_key(request.headers()).and_then(|key| site.sessions.lock().ok()?.get(key).cloned());
    let Some(peer) = known else {
        return (StatusCode::UNAUTHORIZED, "no session: load the page first").into_response();
    };
    request.extensions_mut().insert(SessionPeer::new(peer));
    next.run(request).await
}

fn session_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|cookie| cookie.trim().strip_prefix("session="))
}

/// The page, with the peer id of the visitor's session (a new session if it has none).
async fn index(State(site): State<Site>, headers: HeaderMap) -> Response {
    let Some(dir) = &site.dir else {
        return (StatusCode::NOT_FOUND, "no page here (--static)").into_response();
    };
    let Ok(page) = std::fs::read_to_string(dir.join("index.html")) else {
        return (StatusCode::NOT_FOUND, "no index.html").into_response();
    };
    let Ok(mut sessions) = site.sessions.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let existing = session_key(&headers).and_then(|key| sessions.get(key).cloned());
    let (peer, cookie) = match existing {
        Some(peer) => (peer, None),
        None => {
            if sessions.len() >= MAX_SESSIONS {
                return (StatusCode::SERVICE_UNAVAILABLE, "too many sessions").into_response();
            }
            let (Some(key), Some(name)) =
                (random_hex(&site.random, 16), random_hex(&site.random, 4))
            else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            let peer = PeerId::new(format!("peer-{name}"));
            sessions.insert(key.clone(), peer.clone());
            let secure = if site.secure { "; Secure" } else { "" };
            let cookie = format!("session={key}; Path=/; HttpOnly; SameSite=Strict{secure}");
            (peer, Some(cookie))
        }
    };
    drop(sessions);
    let mut response = page.replace("__PEER_ID__", peer.as_str()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `bytes` random bytes in hex.
fn random_hex(random: &SystemRandom, bytes: usize) -> Option<String> {
    let mut raw = vec![0_u8; bytes];
    random.fill(&mut raw).ok()?;
    Some(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// A file of the page's directory (its wasm and JavaScript).
async fn file(
    State(site): State<Site>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Response {
    let found = site.dir.as_deref().and_then(|dir| file_in(dir, &path));
    match found.and_then(|file| Some((std::fs::read(&file).ok()?, content_type(&file)))) {
        Some((bytes, kind)) => {
            let mut response = bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// The file a URL path names inside `dir`; `None` for anything that would leave it.
fn file_in(dir: &Path, url_path: &str) -> Option<PathBuf> {
    let relative = Path::new(url_path.trim_start_matches('/'));
    relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| dir.join(relative))
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}
