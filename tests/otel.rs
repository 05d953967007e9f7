//! With feature `opentelemetry`, the nested demo is one OpenTelemetry trace in the user's own
//! exporter: here the SDK's in-memory one, behind `tracing-opentelemetry`.

mod common;

use common::{connected_peers, nested};
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nested_demo_is_one_opentelemetry_trace_with_each_hop_the_child_of_the_last() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("remote-scope-test"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("the only subscriber of this test binary");

    let p = connected_peers().await;
    let outcome = p
        .client
        .run(
            nested(p.server_id.clone(), p.client_id.clone())
                .instrument(tracing::info_span!("request")),
        )
        .await
        .expect("the nested demo runs");
    assert_eq!(outcome, (vec![42; 43], 44));
    // A span is exported when it closes, and a serving peer answers a call before its body's
    // span closes: wait for all six.
    let mut spans = Vec::new();
    for _ in 0..500 {
        provider.force_flush().expect("flushed");
        spans = exporter.get_finished_spans().expect("the exported spans");
        if spans.len() >= 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let request = spans
        .iter()
        .find(|s| s.name == "request")
        .expect("the application's span");
    let trace = request.span_context.trace_id();
    let in_trace: Vec<_> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    let peer = |s: &opentelemetry_sdk::trace::SpanData| {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == "peer")
            .map(|kv| kv.value.to_string())
            .unwrap_or_default()
    };
    let summary: Vec<String> = in_trace
        .iter()
        .map(|s| {
            let (id, parent) = (s.span_context.span_id(), s.parent_span_id);
            format!("{} {} id={id} parent={parent}", s.name, peer(s))
        })
        .collect();
    // The spans whose parent is `parent`, as "name peer", sorted; and their ids.
    let children = |parent: SpanId| -> (Vec<String>, Vec<SpanId>) {
        let mut found: Vec<(String, SpanId)> = in_trace
            .iter()
            .filter(|s| s.parent_span_id == parent)
            .map(|s| (format!("{} {}", s.name, peer(s)), s.span_context.span_id()))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found.into_iter().unzip()
    };
    // request → call server → serve (on the server, for client) → call client, and call
    // server (run in place) → serve (on the client, for server).
    let (names, ids) = children(request.span_context.span_id());
    assert_eq!(names, ["call server"], "{summary:#?}");
    let (names, ids) = children(ids[0]);
    assert_eq!(names, ["serve client"], "{summary:#?}");
    let (names, ids) = children(ids[0]);
    assert_eq!(names, ["call client", "call server"], "{summary:#?}");
    let (on_client, _) = children(ids[0]);
    assert_eq!(on_client, ["serve server"], "{summary:#?}");
    assert!(children(ids[1]).0.is_empty(), "{summary:#?}");
    assert_eq!(in_trace.len(), 6, "{summary:#?}");
}
