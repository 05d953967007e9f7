//! What a body receives and where it goes: `mut` captures are the body's own copy, and a peer
//! can be named by its text.

mod common;

use common::connected_peers;
use remote_scope::remote;

#[tokio::test]
async fn a_mut_capture_is_the_bodys_own_copy_to_change() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let v: Vec<u64> = vec![1, 2];
    let changed = p
        .client
        .run(remote!(server, [mut v: Vec<u64>], {
            v.push(3);
            v
        }))
        .await;
    assert_eq!(changed, Ok(vec![1, 2, 3]));
    assert_eq!(v, vec![1, 2], "the caller's value is untouched");
}

#[tokio::test]
async fn a_peer_may_be_named_by_its_text() {
    let p = connected_peers().await;
    let by_str = p.client.run(remote!("server", [], { 1_u8 })).await;
    let name = String::from("server");
    let by_string = p.client.run(remote!(name, [], { 2_u8 })).await;
    let by_ref = p.client.run(remote!(&p.server_id, [], { 3_u8 })).await;
    assert_eq!((by_str, by_string, by_ref), (Ok(1), Ok(2), Ok(3)));
}
