use std::error::Error as _;

use super::*;

/// One of each variant; the match below fails to compile when a variant is added and
/// not sampled.
pub(super) fn samples() -> Vec<(Error, &'static str)> {
    let p = || PeerId::new("server");
    let b = || "app::jobs::2ee355ec6c4b8744".to_owned();
    vec![
        (Error::UnknownBody { peer: p(), body: b(), site: Some("src/jobs.rs:12:5".into()), missing: Missing::ChangedThere },
         "peer `server` does not serve body `app::jobs::2ee355ec6c4b8744` (the `remote!` at src/jobs.rs:12:5): it serves another body from that `remote!`: the two builds differ there; deploy the same version of `app::jobs` to both"),
        (Error::UnknownBody { peer: p(), body: b(), site: Some("src/jobs.rs:12:5".into()), missing: Missing::Module },
         "peer `server` does not serve body `app::jobs::2ee355ec6c4b8744` (the `remote!` at src/jobs.rs:12:5): it serves no body of module `app::jobs`: its build lacks the module (an older version), or its binary gets `app::jobs` from a library it never calls into and the linker left it out (add `remote_scope::link!(<any function of app::jobs>);` to that binary)"),
        (Error::UnknownBody { peer: p(), body: b(), site: None, missing: Missing::Unknown },
         "peer `server` does not serve body `app::jobs::2ee355ec6c4b8744`: it was built without it; deploy the same version of `app::jobs` to both"),
        (Error::Panicked { peer: p(), body: b(), message: "index out of bounds".into() },
         "body `app::jobs::2ee355ec6c4b8744` panicked on peer `server`: index out of bounds"),
        (Error::EncodeCaptures { body: b(), reason: "a map key must be a string".into() },
         "could not encode the captures of `app::jobs::2ee355ec6c4b8744`: a map key must be a string"),
        (Error::DecodeCaptures { peer: p(), body: b(), reason: "invalid type".into() },
         "peer `server` could not decode the captures of `app::jobs::2ee355ec6c4b8744`: invalid type"),
        (Error::EncodeResult { peer: p(), body: b(), reason: "refused".into() },
         "peer `server` could not encode the result of `app::jobs::2ee355ec6c4b8744`: refused"),
        (Error::DecodeResult { peer: p(), body: b(), reason: "invalid type".into() },
         "could not decode the result of `app::jobs::2ee355ec6c4b8744` from peer `server`: invalid type"),
        (Error::ResultType { body: b(), produced: "i32".into(), expected: "u64".into() },
         "body `app::jobs::2ee355ec6c4b8744` produces `i32` when compiled on its own, but this call expects `u64`: give the body's untyped literals a type (e.g. `0_u64`) so both agree"),
        (Error::Busy { peer: p(), body: b(), limit: 4096 },
         "peer `server` is busy: it already runs 4096 bodies for this connection; `app::jobs::2ee355ec6c4b8744` did not run: retry later, or raise that peer's `NodeBuilder::max_bodies_per_connection`"),
        (Error::NotAuthorized { peer: p(), body: b() },
         "peer `server` does not let this peer run `app::jobs::2ee355ec6c4b8744`; it did not run"),
        (Error::CapturesTooLarge { peer: p(), body: b(), limit: 64 },
         "peer `server` accepts captures of at most 64 bytes (encoded); `app::jobs::2ee355ec6c4b8744` did not run: send less, or raise that peer's `NodeBuilder::max_capture_size`"),
        (Error::NotAuthenticated { peer: p() },
         "peer `server` failed authentication: its token is missing or wrong (`NodeBuilder::token` on the connecting side, checked by `NodeBuilder::authenticate` on the other), or its web session names another peer"),
        (Error::QueueFull { peer: p(), limit: 1024 },
         "the queue of frames to peer `server` is full (1024 bytes not yet sent); nothing was sent: the peer reads too slowly; retry later, or raise `NodeBuilder::max_queued_bytes`"),
        (Error::TooManyConnections { peer: None, limit: 2 },
         "the connection with the other peer was refused: the accepting peer holds its maximum of 2 connections (its `NodeBuilder::max_connections`)"),
        (Error::NotConnected { peer: p() },
         "not connected to peer `server`: connect first (`Node::connect`), join a NATS cluster it is on (`Node::join_nats`), or keep the connection with `Node::keep_connected` so calls wait while it is redialled"),
        (Error::NoMembers { pool: crate::pool::Pool::new("resize"), tried: vec![p()] },
         "pool `resize` has no member that can take the call (tried: server): start a member (`NodeBuilder::pool`) and connect to it, or join the NATS cluster its members are on"),
        (Error::Disconnected { peer: p(), body: b() },
         "connection to peer `server` was lost while `app::jobs::2ee355ec6c4b8744` was in flight; the body may have run"),
        (Error::Timeout { peer: p(), body: b(), after: Duration::from_secs(5) },
         "body `app::jobs::2ee355ec6c4b8744` on peer `server` did not answer within 5s; it may have run: give it longer with `Call::timeout` or `NodeBuilder::default_timeout` if it needs longer"),
        (Error::NoCurrentNode { nodes: 2 },
         "no current node here, and this process has 2 nodes: say which one calls, with `node.run(..)` around the code, `node.spawn(..)` for a task (`tokio::spawn` does not carry the node), or `.on(&node)` on the call"),
        (Error::NoCurrentNode { nodes: 0 },
         "no node to call from: build one with `Node::builder()` (a call goes out from the node of the surrounding `Node::run`, of the body running, or else the process's only node)"),
        (Error::Handshake { peer: None, reason: "no handshake within 10s".into(), source: None },
         "handshake with the other peer failed: no handshake within 10s"),
        (Error::Handshake {
            peer: None,
            reason: "the first frame is not a protocol-3 hello".into(),
            source: Some(Cause::new(Error::protocol("frame of 70000 bytes exceeds the limit of 65536 bytes"))),
         },
         "handshake with the other peer failed: the first frame is not a protocol-3 hello\n\nCaused by:\n    protocol error: frame of 70000 bytes exceeds the limit of 65536 bytes"),
        (Error::ProtocolVersion { peer: Some(p()), ours: 3, theirs: 2 },
         "peer `server` speaks protocol version 2, this peer speaks 3: build both with versions of remote-scope that speak the same protocol"),
        (Error::MissingBodies { peer: p(), bodies: vec!["app::jobs::2ee355ec6c4b8744 (src/jobs.rs:12:5)".into()] },
         "peer `server` does not serve 1 body that this node requires of it: app::jobs::2ee355ec6c4b8744 (src/jobs.rs:12:5); deploy the same version of these modules to both, and have the peer link them (`remote_scope::link!`) if it never calls into them"),
        (Error::RequiredBodies { peer: None, missing: 2 },
         "the other peer requires 2 bodies that this build does not serve: build this peer from the same version of the modules that peer requires (`NodeBuilder::require_module`)"),
        (Error::DuplicatePeer { peer: p() },
         "a peer with id `server` is already connected: give each node its own id (`NodeBuilder::id`; the default is a random one)"),
        (Error::DuplicateBody { name: b(), first: "src/a.rs:1:5".into(), second: "src/b.rs:9:1".into() },
         "two different bodies share the name `app::jobs::2ee355ec6c4b8744` (their fingerprints collide): one at src/a.rs:1:5, one at src/b.rs:9:1; change either body, by a token, to tell them apart"),
        (Error::protocol_caused("malformed frame (3 bytes)", Travelled("invalid type: integer `7`, expected a frame".into())),
         "protocol error: malformed frame (3 bytes)\n\nCaused by:\n    invalid type: integer `7`, expected a frame"),
        (Error::transport_caused("could not connect to ws://127.0.0.1:1", std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused")),
         "transport error: could not connect to ws://127.0.0.1:1\n\nCaused by:\n    connection refused"),
        (Error::BadUrl { url: "http://example.com".into(), reason: "the URL must start with ws://".into() },
         "cannot dial `http://example.com`: the URL must start with ws://"),
        (Error::Body { error: BodyError::new("quota exceeded") }, "quota exceeded"),
        (Error::ShuttingDown { peer: p(), body: b() },
         "peer `server` is shutting down and did not run `app::jobs::2ee355ec6c4b8744`: call another peer, or again once it is back"),
        (Error::Setup { reason: "no tokio runtime".into() },
         "node setup failed: no tokio runtime"),
        (Error::NoPeers { pattern: "quorum".into() },
         "`quorum` was given no peers to run on; nothing ran (for the members of a pool, pass `node.members(&pool)`)"),
        (Error::AllFailed { errors: vec![Error::NotConnected { peer: PeerId::new("a") }, Error::ShuttingDown { peer: p(), body: b() }] },
         "all 2 attempts failed; the last: peer `server` is shutting down and did not run `app::jobs::2ee355ec6c4b8744`: call another peer, or again once it is back"),
        (Error::AllFailed { errors: vec![Error::NotConnected { peer: PeerId::new("a") }] },
         "the only attempt failed: not connected to peer `a`: connect first (`Node::connect`), join a NATS cluster it is on (`Node::join_nats`), or keep the connection with `Node::keep_connected` so calls wait while it is redialled"),
        (Error::NoQuorum { replicas: 3, needed: 2, agreed: 1, disagreed: vec![PeerId::new("b")], errors: vec![Error::Disconnected { peer: p(), body: b() }] },
         "no quorum: 1 of 3 replicas agreed, 2 needed (1 disagreed, 1 failed; the first failure: connection to peer `server` was lost while `app::jobs::2ee355ec6c4b8744` was in flight; the body may have run)"),
    ]
}

fn variant(e: &Error) -> usize {
    match e {
        Error::UnknownBody { .. } => 0,
        Error::Panicked { .. } => 1,
        Error::EncodeCaptures { .. } => 2,
        Error::DecodeCaptures { .. } => 3,
        Error::EncodeResult { .. } => 4,
        Error::DecodeResult { .. } => 5,
        Error::ResultType { .. } => 6,
        Error::Busy { .. } => 7,
        Error::NotAuthorized { .. } => 8,
        Error::CapturesTooLarge { .. } => 9,
        Error::NotAuthenticated { .. } => 10,
        Error::QueueFull { .. } => 11,
        Error::TooManyConnections { .. } => 12,
        Error::NotConnected { .. } => 13,
        Error::Disconnected { .. } => 14,
        Error::Timeout { .. } => 15,
        Error::NoCurrentNode { .. } => 16,
        Error::Handshake { .. } => 17,
        Error::ProtocolVersion { .. } => 18,
        Error::MissingBodies { .. } => 19,
        Error::RequiredBodies { .. } => 20,
        Error::DuplicatePeer { .. } => 21,
        Error::DuplicateBody { .. } => 22,
        Error::Protocol { .. } => 23,
        Error::Transport { .. } => 24,
        Error::Setup { .. } => 25,
        Error::BadUrl { .. } => 26,
        Error::Body { .. } => 27,
        Error::ShuttingDown { .. } => 28,
        Error::NoMembers { .. } => 29,
        Error::NoPeers { .. } => 30,
        Error::AllFailed { .. } => 31,
        Error::NoQuorum { .. } => 32,
    }
}

#[test]
fn every_variant_prints_what_happened_and_what_to_do_as_main_shows_it() {
    let samples = samples();
    let mut seen: Vec<usize> = samples.iter().map(|(e, _)| variant(e)).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen,
        (0..=32).collect::<Vec<_>>(),
        "a variant without a sample"
    );
    for (error, expected) in samples {
        // What `fn main() -> Result<(), Error>` prints when it returns this error.
        assert_eq!(format!("Error: {error:?}"), format!("Error: {expected}"));
    }
}

#[test]
fn a_transport_error_keeps_its_io_error_here_and_its_text_on_another_peer() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused by the test");
    let here = Error::transport_caused("could not connect to ws://127.0.0.1:1", io);
    let source = here.source().expect("a source");
    assert_eq!(source.to_string(), "refused by the test");
    let Error::Transport {
        source: Some(cause),
        ..
    } = &here
    else {
        panic!("{here:?}")
    };
    assert_eq!(
        cause.downcast_ref::<std::io::Error>().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );

    // A body may return an `Error`: it travels, and its cause becomes text.
    let bytes = rmp_serde::to_vec(&here).expect("encoded");
    let there: Error = rmp_serde::from_slice(&bytes).expect("decoded");
    assert_eq!(there, here);
    assert_eq!(
        there.source().map(|s| s.to_string()).as_deref(),
        Some("refused by the test")
    );
    let Error::Transport {
        source: Some(cause),
        ..
    } = &there
    else {
        panic!("{there:?}")
    };
    assert!(cause.downcast_ref::<std::io::Error>().is_none());
}

#[test]
fn a_duration_reads_as_its_debug_does() {
    let nanos = [
        0,
        1,
        7,
        999,
        1_000,
        1_500,
        20_000,
        999_999,
        1_000_000,
        1_000_001,
        250_000_000,
        999_999_999,
    ];
    for secs in [0, 1, 5, 59, 3_600, u64::MAX] {
        for n in nanos {
            let d = Duration::new(secs, n);
            assert_eq!(Lasting(d).to_string(), format!("{d:?}"));
        }
    }
}

#[test]
fn a_list_in_a_message_reads_as_join_does() {
    for items in [&[][..], &["a"], &["a", "b", "c"], &["", "x"], &["", ""]] {
        assert_eq!(listed(items.iter().copied()), items.join(", "));
    }
}
