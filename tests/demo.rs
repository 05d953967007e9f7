//! The README's demos and the shapes of results, over real WebSockets.

mod common;

use common::{connected_peers, nested};
use remote_scope::{current_peer, remote, Error, PeerId};

#[tokio::test]
async fn nested_demo_runs_server_client_server() {
    let p = connected_peers().await;
    let result = p
        .client
        .run(nested(p.server_id.clone(), p.client_id.clone()))
        .await
        .expect("demo runs");
    assert_eq!(result, (vec![42; 43], 44));
}

#[tokio::test]
async fn pair_demo_computes_one_value_on_each_peer() {
    let p = connected_peers().await;
    let (server, client) = (p.server_id.clone(), p.client_id.clone());
    let result = p
        .client
        .run(async move {
            let base: u64 = 42;
            let on_client = remote!(client, [base: u64], { (base + 1, current_peer()) }).await?;
            let on_server = remote!(server, [base: u64], { (base + 2, current_peer()) }).await?;
            Ok::<_, Error>(vec![on_client, on_server])
        })
        .await
        .expect("demo runs");
    assert_eq!(
        result,
        vec![
            (43, Some(PeerId::new("client"))),
            (44, Some(PeerId::new("server")))
        ]
    );
}

#[tokio::test]
async fn each_step_runs_on_the_peer_it_names() {
    let p = connected_peers().await;
    let (server, client) = (p.server_id.clone(), p.client_id.clone());
    let trail = p
        .client
        .run(async move {
            remote!(server, [client: PeerId], {
                let first = current_peer();
                let (second, third) = remote!(client, [], {
                    let second = current_peer();
                    let third = remote!(server_of_client(), [], { current_peer() }).await?;
                    Ok::<_, Error>((second, third))
                })
                .await??;
                Ok::<_, Error>(vec![first, second, third])
            })
            .await?
        })
        .await
        .expect("runs");
    let names: Vec<String> = trail
        .into_iter()
        .map(|p| p.expect("in a node").to_string())
        .collect();
    assert_eq!(names, ["server", "client", "server"]);
}

/// An item, not a capture: bodies may call functions freely.
fn server_of_client() -> PeerId {
    PeerId::new("server")
}

#[tokio::test]
async fn unit_and_option_results_round_trip() {
    let p = connected_peers().await;
    let (server, client) = (p.server_id.clone(), p.client_id.clone());
    p.client
        .run(async move {
            let unit: () = remote!(server, [], {}).await?;
            assert_eq!(unit, ());

            let none: Option<u64> = remote!(server, [], { None::<u64> }).await?;
            assert_eq!(none, None);

            let some: Option<String> = remote!(server, [], { Some("x".to_string()) }).await?;
            assert_eq!(some.as_deref(), Some("x"));

            for n in [1_u64, 7] {
                let branch: Option<u64> =
                    remote!(server, [n: u64], { if n > 5 { Some(n) } else { None } }).await?;
                assert_eq!(branch, (n > 5).then_some(n));
            }

            let two_hops: Option<u64> = remote!(server, [client: PeerId], {
                remote!(client, [], { None::<u64> }).await
            })
            .await??;
            assert_eq!(two_hops, None);
            Ok::<(), Error>(())
        })
        .await
        .expect("all results round-trip");
}

#[tokio::test]
async fn structs_and_strings_travel_both_ways() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Order {
        id: u32,
        items: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        note: Option<String>,
    }
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let order = Order {
        id: 9,
        items: vec!["tea".into(), "bread".into()],
        note: None,
    };
    let expected = order.clone();
    let back: Order = p
        .client
        .run(async move {
            remote!(server, [order: Order], {
                let mut order = order;
                order.items.push("jam".into());
                order.note = Some(format!("{} items", order.items.len()));
                order
            })
            .await
        })
        .await
        .expect("round trip");
    assert_eq!(back.id, expected.id);
    assert_eq!(back.items, ["tea", "bread", "jam"]);
    assert_eq!(back.note.as_deref(), Some("3 items"));
}
