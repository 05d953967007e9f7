//! A browser built with a body the server lacks: it connects (peers built with other bodies
//! call what both have), and calling that body fails at once with `UnknownBody`, naming the
//! body's site, not a hang; requiring the module refuses the server when it connects. A test
//! binary of its own, so its extra body does not change the registry of the other browser
//! tests.
#![cfg(target_arch = "wasm32")]

use remote_scope::{remote, Error, Missing, Node};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WS_URL: &str = match option_env!("REMOTE_SCOPE_WS_URL") {
    Some(url) => url,
    None => "ws://127.0.0.1:9/REMOTE_SCOPE_WS_URL-was-not-set-at-compile-time",
};

#[wasm_bindgen_test]
async fn a_body_the_server_lacks_fails_before_it_is_sent() {
    let node = Node::builder().build().expect("node");
    let server = node
        .connect(WS_URL)
        .await
        .expect("peers built with other bodies connect");
    let n: u32 = 20;
    let result = node.run(remote!(server, [n: u32], { n + 1 })).await;
    assert!(
        matches!(
            &result,
            Err(Error::UnknownBody { peer, site: Some(site), missing: Missing::Module, .. })
                if peer.as_str() == "server" && site.contains("unknown_body.rs")
        ),
        "{result:?}"
    );
}

#[wasm_bindgen_test]
async fn requiring_the_module_refuses_a_server_without_it() {
    let node = Node::builder()
        .require_module(module_path!())
        .build()
        .expect("node");
    let refused = node.connect(WS_URL).await;
    assert!(
        matches!(&refused, Err(Error::MissingBodies { peer, bodies }) if peer.as_str() == "server" && bodies.len() == 1),
        "{refused:?}"
    );
}
