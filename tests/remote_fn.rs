//! `#[remote_fn]`: named bodies whose captures are their parameters, between real peers.

mod common;

use std::time::Duration;

use common::connected_peers;
use remote_scope::{remote, remote_fn, BodyError, Error, PeerId, Registry};

/// Greets `name`, from the peer that runs it, to the peer that called.
#[remote_fn]
async fn greet(name: String) -> String {
    let caller = remote_scope::caller().map_or("nobody".to_owned(), |p| p.to_string());
    format!("hello {name}, from a body {caller} called")
}

#[remote_fn]
async fn double(n: u64) -> u64 {
    n * 2
}

/// Runs on one peer, and calls `double` back on `back` and a `remote!` there too.
#[remote_fn]
async fn relay(back: PeerId, n: u64) -> Result<u64, Error> {
    let doubled = double(n).on_peer(&back).await?;
    let plus_one = remote!(back, [doubled: u64], { doubled + 1 }).await?;
    Ok(plus_one)
}

#[remote_fn]
async fn patterns((a, b): (u64, u64), mut c: u64) -> u64 {
    c += a * b;
    c
}

#[remote_fn]
async fn sleepy(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[remote_fn]
async fn parse(text: String) -> Result<u64, BodyError> {
    Ok(text.trim().parse::<u64>()?)
}

#[tokio::test]
async fn a_remote_fn_runs_on_the_peer_it_is_sent_to_and_knows_its_caller() {
    let p = connected_peers().await;
    let greeting = p
        .client
        .run(greet("ada".to_owned()).on_peer(&p.server_id))
        .await;
    assert_eq!(
        greeting,
        Ok("hello ada, from a body client called".to_owned())
    );
}

#[tokio::test]
async fn remote_fns_nest_and_hop_back_and_mix_with_remote_blocks() {
    let p = connected_peers().await;
    let client = p.client_id.clone();
    let result = p.client.run(relay(client, 20).on_peer(&p.server_id)).await;
    assert_eq!(result, Ok(Ok(41)));
}

#[tokio::test]
async fn parameters_may_be_patterns() {
    let p = connected_peers().await;
    let result = p
        .client
        .run(patterns((6, 7), 1).on_peer(&p.server_id))
        .await;
    assert_eq!(result, Ok(43));
}

#[tokio::test]
async fn a_remote_fn_call_takes_a_timeout() {
    let p = connected_peers().await;
    let err = p
        .client
        .run(
            sleepy(5_000)
                .on_peer(&p.server_id)
                .timeout(Duration::from_millis(50)),
        )
        .await
        .expect_err("times out");
    assert!(
        matches!(&err, Error::Timeout { body, .. } if body == sleepy::NAME),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_body_error_comes_back_with_its_message_and_type() {
    let p = connected_peers().await;
    let err = p
        .client
        .run(parse("forty-two".to_owned()).on_peer(&p.server_id))
        .await
        .expect("the call itself succeeds")
        .expect_err("not a number");
    assert!(err.is::<std::num::ParseIntError>(), "{err:?}");
    assert_eq!(err.message(), "invalid digit found in string");
}

#[test]
fn a_remote_fn_is_registered_under_its_path_and_signature() {
    let registry = Registry::global().expect("no collisions");
    let body = registry.body(double::NAME).expect("registered");
    assert!(
        double::NAME.starts_with("remote_fn::double#"),
        "{}",
        double::NAME
    );
    assert_eq!(body.module(), "remote_fn");
    assert_eq!(body.captures(), "n: u64");
    assert_eq!(body.result_type(), Some("u64"));
    assert_eq!(double(1).body_name(), double::NAME);
    let relay = registry.body(relay::NAME).expect("registered");
    assert_eq!(relay.captures(), "back: PeerId, n: u64");
    assert_ne!(double::NAME, greet::NAME);
    let patterns = registry.body(patterns::NAME).expect("registered");
    assert_eq!(patterns.captures(), "(a, b): (u64, u64), mut c: u64");
}

#[tokio::test]
async fn awaited_without_a_peer_it_runs_on_the_calling_node() {
    let p = connected_peers().await;
    let greeting = p.client.run(async { greet("me".to_owned()).await }).await;
    assert_eq!(
        greeting,
        Ok("hello me, from a body client called".to_owned())
    );
}
