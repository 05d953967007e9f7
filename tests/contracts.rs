//! Per-body contracts: peers built with different bodies connect, tell each other what they
//! serve, and a call to a body the other lacks fails on the caller's side before anything is
//! sent, saying what the other build has instead. The other build is a scripted raw peer that
//! speaks the documented wire format (its list of bodies is written here from the protocol's
//! description, not with the crate's own code).

mod common;

use std::time::Duration;

use common::RawPeer;
use remote_scope::protocol::{Bodies, Frame, Limits, Reject};
use remote_scope::{remote, Call, Error, Missing, Node, PeerId, Registry};

mod images {
    #[remote_scope::remote_fn]
    pub async fn thumbnail(width: u32) -> u32 {
        width / 4
    }
}

mod jobs {
    use super::*;

    pub fn resize(peer: &PeerId, width: u32) -> Call<u32> {
        remote!(peer, [width: u32], { width / 2 })
    }

    pub fn archive(peer: &PeerId, name: String) -> Call<usize> {
        remote!(peer, [name: String], { name.len() })
    }

    pub fn purge(peer: &PeerId) -> Call<bool> {
        remote!(peer, [], { true })
    }
}

mod mail {
    use super::*;

    pub fn send(peer: &PeerId, to: String) -> Call<String> {
        remote!(peer, [to: String], { format!("sent to {to}") })
    }
}

fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn fnv32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn site(name: &str) -> String {
    Registry::global()
        .unwrap()
        .body(name)
        .expect("registered")
        .site()
}

/// A list of bodies as the protocol describes it: for each, FNV-1a 64 of its name and FNV-1a
/// 32 of its site, big-endian.
fn list(entries: &[(String, String)]) -> Frame {
    let mut bytes = Vec::new();
    for (name, site) in entries {
        bytes.extend_from_slice(&fnv64(name.as_bytes()).to_be_bytes());
        bytes.extend_from_slice(&fnv32(site.as_bytes()).to_be_bytes());
    }
    Frame::Bodies(Bodies {
        entries: bytes.into(),
    })
}

/// Every body of this build but those named in `leave_out`, each with its own site.
fn all_but(leave_out: &[&str]) -> Vec<(String, String)> {
    Registry::global()
        .unwrap()
        .names()
        .into_iter()
        .filter(|name| !leave_out.contains(name))
        .map(|name| (name.to_owned(), site(name)))
        .collect()
}

/// A hello from `id`, built with other bodies than the node (another digest): `bodies` of them.
fn other_build(id: &str, limits: Limits, bodies: usize) -> Frame {
    let Frame::Hello(mut hello) = RawPeer::hello(id) else {
        unreachable!()
    };
    hello.digest ^= 1;
    hello.limits = limits;
    hello.bodies = u32::try_from(bodies).expect("few");
    Frame::Hello(hello)
}

/// A peer `id` of another build, serving `bodies`, connects to `node`: the hello and the list
/// it sends, and the hello it gets back. The node's answer is the next frame.
async fn connect_with(node: &Node, id: &str, bodies: &[(String, String)]) -> RawPeer {
    let mut raw = RawPeer::accepted_by(node);
    raw.send(&other_build(id, Limits::default(), bodies.len()))
        .await;
    raw.send(&list(bodies)).await;
    assert!(matches!(raw.recv().await, Some(Frame::Hello(_))));
    raw
}

/// `node` dials a peer `id` of another build, serving `bodies`: the raw peer's side of the
/// exchange, up to the list it answers the node's with; then the dial's outcome.
async fn dialed_with(
    node: &Node,
    id: &str,
    bodies: &[(String, String)],
) -> (RawPeer, Result<PeerId, Error>) {
    let (mut raw, connect) = RawPeer::dialed_by(node);
    assert!(matches!(raw.recv().await, Some(Frame::Hello(_))));
    raw.send(&other_build(id, Limits::default(), bodies.len()))
        .await;
    assert!(matches!(raw.recv().await, Some(Frame::Bodies(_))));
    raw.send(&list(bodies)).await;
    let outcome = connect.await.expect("the dial finishes");
    (raw, outcome)
}

fn names() -> (PeerId, String, String, String, String) {
    let p = PeerId::new("x");
    (
        p.clone(),
        jobs::resize(&p, 0).body_name().to_owned(),
        jobs::archive(&p, String::new()).body_name().to_owned(),
        jobs::purge(&p).body_name().to_owned(),
        mail::send(&p, String::new()).body_name().to_owned(),
    )
}

#[tokio::test]
async fn a_peer_with_other_bodies_connects_and_calls_it_cannot_serve_fail_before_sending() {
    let (_, resize, archive, purge, send) = names();
    let node = Node::builder().id("server").build().unwrap();
    let mut raw = RawPeer::accepted_by(&node);
    // The connector's list: `purge` as it is not, `archive` changed in place (another name
    // at its site), no body of `mail`.
    let mut theirs = all_but(&[&archive, &purge, &send]);
    theirs.push(("contracts::jobs::0000000000000000".into(), site(&archive)));
    raw.send(&other_build("older", Limits::default(), theirs.len()))
        .await;
    raw.send(&list(&theirs)).await;
    assert!(matches!(raw.recv().await, Some(Frame::Hello(_))));
    let Some(Frame::Bodies(ours)) = raw.recv().await else {
        panic!("the acceptor sends its list after the connector's");
    };
    assert_eq!(ours.entries.len(), 12 * Registry::global().unwrap().len());

    let older = PeerId::new("older");
    common::wait_until(|| node.is_connected(&older)).await;
    let served = node.peer_bodies(&older).unwrap();
    assert_eq!(served.total, theirs.len());
    assert!(served.known.iter().any(|r| r.name() == resize));
    assert!(!served.known.iter().any(|r| r.name() == purge));

    let failed = |result: Result<(), Error>| match result {
        Err(Error::UnknownBody {
            peer,
            body,
            site,
            missing,
        }) => {
            assert_eq!(peer, older);
            (body, site.expect("this build has the body"), missing)
        }
        other => panic!("expected UnknownBody, got {other:?}"),
    };
    let (body, at, missing) = failed(node.run(jobs::archive(&older, "x".into())).await.map(drop));
    assert_eq!(
        (body.as_str(), missing),
        (archive.as_str(), Missing::ChangedThere)
    );
    assert_eq!(at, site(&archive));
    let (_, _, missing) = failed(node.run(jobs::purge(&older)).await.map(drop));
    assert_eq!(missing, Missing::Body);
    let err = node
        .run(mail::send(&older, "ops".into()))
        .await
        .unwrap_err();
    let (_, _, missing) = failed(Err(err.clone()));
    assert_eq!(missing, Missing::Module);
    let text = err.to_string();
    assert!(
        text.contains("contracts::mail") && text.contains("remote_scope::link!"),
        "{text}"
    );
    // None of them went out; a body both have does.
    assert_eq!(raw.recv_within(Duration::from_millis(200)).await, None);
    let call = tokio::spawn({
        let node = node.clone();
        let older = older.clone();
        async move { node.run(jobs::resize(&older, 640)).await }
    });
    let Some(Frame::Invoke(invoke)) = raw.recv().await else {
        panic!("the call of a body both serve goes out");
    };
    assert_eq!(invoke.body, resize);
    call.abort();
}

#[tokio::test]
async fn a_connector_reads_the_acceptors_list_and_calls_what_it_serves() {
    let (_, resize, _, purge, _) = names();
    let client = Node::builder().id("client").build().unwrap();
    let (mut raw, connect) = RawPeer::dialed_by(&client);
    assert!(matches!(raw.recv().await, Some(Frame::Hello(_))));
    let theirs = all_but(&[&purge]);
    raw.send(&other_build("newer", Limits::default(), theirs.len()))
        .await;
    let Some(Frame::Bodies(_)) = raw.recv().await else {
        panic!("the connector sends its list first");
    };
    raw.send(&list(&theirs)).await;
    let newer = connect.await.unwrap().expect("connects");
    let result = client.run(jobs::purge(&newer)).await;
    assert!(
        matches!(
            &result,
            Err(Error::UnknownBody {
                missing: Missing::Body,
                ..
            })
        ),
        "{result:?}"
    );
    assert!(client
        .peer_bodies(&newer)
        .unwrap()
        .known
        .iter()
        .any(|r| r.name() == resize));
}

#[tokio::test]
async fn a_required_module_the_peer_lacks_refuses_it_on_either_side() {
    let (_, _, _, _, send) = names();
    // As the acceptor: the connector's list lacks `mail`.
    let server = Node::builder()
        .id("server")
        .require_module("contracts::mail")
        .build()
        .unwrap();
    let lacking = all_but(&[&send]);
    let mut raw = connect_with(&server, "lacking", &lacking).await;
    assert_eq!(
        raw.recv().await,
        Some(Frame::Reject(Reject::MissingBodies { missing: 1 }))
    );
    assert!(!server.is_connected(&PeerId::new("lacking")));

    // As the connector: `connect` names the body and its site.
    let client = Node::builder()
        .id("client")
        .require_module("contracts")
        .build()
        .unwrap();
    let (mut raw, outcome) = dialed_with(&client, "lacking", &lacking).await;
    let err = outcome.expect_err("refused");
    match &err {
        Error::MissingBodies { peer, bodies } => {
            assert_eq!(peer.as_str(), "lacking");
            assert_eq!(bodies, &[format!("{send} ({})", site(&send))]);
        }
        other => panic!("expected MissingBodies, got {other:?}"),
    }
    assert_eq!(
        raw.recv().await,
        Some(Frame::Reject(Reject::MissingBodies { missing: 1 }))
    );
    assert!(err.to_string().contains("link!"), "{err}");

    // Refused by the other side: `connect` says so.
    let (mut raw, connect) = RawPeer::dialed_by(&client);
    assert!(matches!(raw.recv().await, Some(Frame::Hello(_))));
    raw.send(&other_build("strict", Limits::default(), 0)).await;
    assert!(matches!(raw.recv().await, Some(Frame::Bodies(_))));
    raw.send(&Frame::Reject(Reject::MissingBodies { missing: 2 }))
        .await;
    let err = connect.await.unwrap().expect_err("refused");
    assert!(
        matches!(&err, Error::RequiredBodies { peer: Some(p), missing: 2 } if p.as_str() == "strict"),
        "{err:?}"
    );
}

#[tokio::test]
async fn captures_over_the_peers_limits_fail_before_sending() {
    let node = Node::builder().id("server").build().unwrap();
    let mut raw = RawPeer::accepted_by(&node);
    let mut hello = RawPeer::hello("small");
    if let Frame::Hello(h) = &mut hello {
        h.limits = Limits {
            max_frame_size: 1 << 20,
            max_capture_size: 64,
        };
    }
    raw.send(&hello).await;
    assert!(matches!(raw.recv().await, Some(Frame::Hello(_))));
    let small = PeerId::new("small");
    common::wait_until(|| node.is_connected(&small)).await;

    let result = node.run(jobs::archive(&small, "x".repeat(100))).await;
    assert!(
        matches!(&result, Err(Error::CapturesTooLarge { limit: 64, .. })),
        "{result:?}"
    );
    assert_eq!(raw.recv_within(Duration::from_millis(200)).await, None);
    // Over the frame limit with captures the peer would take otherwise.
    if let Frame::Hello(h) = &mut hello {
        h.peer = PeerId::new("narrow");
        h.limits = Limits {
            max_frame_size: 256,
            max_capture_size: 1 << 20,
        };
    }
    let mut raw = RawPeer::accepted_by(&node);
    raw.send(&hello).await;
    assert!(matches!(raw.recv().await, Some(Frame::Hello(_))));
    let narrow = PeerId::new("narrow");
    common::wait_until(|| node.is_connected(&narrow)).await;
    let result = node.run(jobs::archive(&narrow, "x".repeat(300))).await;
    assert!(
        matches!(&result, Err(Error::CapturesTooLarge { limit, .. }) if *limit < 256),
        "{result:?}"
    );
}

#[tokio::test]
async fn peers_with_the_same_bodies_send_no_lists() {
    let node = Node::builder().id("server").build().unwrap();
    let mut raw = RawPeer::connected_to(&node, "same").await;
    assert_eq!(raw.recv_within(Duration::from_millis(200)).await, None);
    let served = node.peer_bodies(&PeerId::new("same")).unwrap();
    assert_eq!(served.total, Registry::global().unwrap().len());
}

#[tokio::test]
async fn a_list_longer_than_the_hello_announced_closes_the_connection() {
    let node = Node::builder().id("server").build().unwrap();
    let mut raw = RawPeer::accepted_by(&node);
    let theirs = all_but(&[]);
    raw.send(&other_build("liar", Limits::default(), theirs.len() - 1))
        .await;
    raw.send(&list(&theirs)).await;
    assert!(matches!(raw.recv().await, Some(Frame::Hello(_))));
    assert_eq!(raw.recv().await, None, "the node closes the connection");
    assert!(!node.is_connected(&PeerId::new("liar")));
}

#[tokio::test]
async fn a_remote_fn_is_required_and_missed_by_its_name() {
    let thumbnail = images::thumbnail::NAME;
    let lacking = all_but(&[thumbnail]);

    // Required by name: a peer without it is refused.
    let server = Node::builder()
        .id("server")
        .require_body(thumbnail)
        .build()
        .unwrap();
    let mut raw = connect_with(&server, "lacking", &lacking).await;
    assert_eq!(
        raw.recv().await,
        Some(Frame::Reject(Reject::MissingBodies { missing: 1 }))
    );
    assert!(!server.is_connected(&PeerId::new("lacking")));

    // Not required: the peer connects, and a call of it fails before it is sent, naming the
    // function's module.
    let client = Node::builder().id("client").build().unwrap();
    let (mut raw, outcome) = dialed_with(&client, "older", &lacking).await;
    let older = outcome.expect("connects");
    let err = client
        .run(images::thumbnail(640).on_peer(&older))
        .await
        .expect_err("not served");
    match &err {
        Error::UnknownBody {
            body,
            site,
            missing,
            ..
        } => {
            assert_eq!(body, thumbnail);
            assert_eq!(site.as_deref(), Some(self::site(thumbnail).as_str()));
            assert_eq!(*missing, Missing::Module);
        }
        other => panic!("expected UnknownBody, got {other:?}"),
    }
    assert!(err.to_string().contains("contracts::images"), "{err}");
    assert_eq!(raw.recv_within(Duration::from_millis(200)).await, None);
}
