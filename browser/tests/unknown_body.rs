//! A browser built with a body the server lacks: connecting needs the lenient registry check,
//! and calling that body fails with `UnknownBody`, not a hang. A test binary of its own, so
//! its extra body does not change the registry of the other browser tests.
#![cfg(target_arch = "wasm32")]

use remote_scope::{remote, Error, Node, RegistryCheck};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WS_URL: &str = match option_env!("REMOTE_SCOPE_WS_URL") {
    Some(url) => url,
    None => "ws://127.0.0.1:9/REMOTE_SCOPE_WS_URL-was-not-set-at-compile-time",
};

#[wasm_bindgen_test]
async fn strict_check_refuses_a_server_built_with_other_bodies() {
    let node = Node::builder().build().expect("node");
    let refused = node.connect(WS_URL).await;
    assert!(
        matches!(refused, Err(Error::RegistryMismatch { .. })),
        "{refused:?}"
    );
}

#[wasm_bindgen_test]
async fn body_the_server_lacks_is_unknown_body() {
    let node = Node::builder()
        .registry_check(RegistryCheck::Lenient)
        .build()
        .expect("node");
    let server = node.connect(WS_URL).await.expect("lenient connect");
    let n: u32 = 20;
    let result = node.run(remote!(server, [n: u32], { n + 1 })).await;
    assert!(
        matches!(&result, Err(Error::UnknownBody { peer, .. }) if peer.as_str() == "server"),
        "{result:?}"
    );
}
