//! One trace across every hop: the nested demo (client → server → client, and server → server)
//! recorded by a `tracing` layer that keeps each span's name and fields, then put together by
//! the W3C ids the spans record.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use common::{connected_peers, nested};
use remote_scope::TraceContext;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// A span as recorded: its name and fields.
#[derive(Clone, Debug, Default)]
struct Recorded {
    name: String,
    fields: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<HashMap<u64, Recorded>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut span = Recorded {
            name: attrs.metadata().name().to_owned(),
            ..Recorded::default()
        };
        attrs.record(&mut Fields(&mut span.fields));
        self.0.lock().unwrap().insert(id.into_u64(), span);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(span) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }
}

/// The process's recorder: spans are made on every worker thread, so it is the global
/// subscriber, installed once.
fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder = Recorder::default();
        let subscriber = tracing_subscriber::registry().with(recorder.clone());
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        recorder
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nested_demo_is_one_trace_with_each_hop_the_child_of_the_one_before() {
    let recorder = recorder();
    let p = connected_peers().await;
    // A trace of the test's own, so that other spans of the process are told apart.
    let root = TraceContext::new_root();
    let outcome = p
        .client
        .run(
            root.clone()
                .scope(nested(p.server_id.clone(), p.client_id.clone())),
        )
        .await
        .expect("the nested demo runs");
    assert_eq!(outcome, (vec![42; 43], 44));

    let trace = format!("{:032x}", root.trace_id);
    let spans: Vec<Recorded> = recorder
        .0
        .lock()
        .unwrap()
        .values()
        .filter(|s| s.fields.get("trace_id") == Some(&trace))
        .cloned()
        .collect();
    let field = |s: &Recorded, f: &str| s.fields.get(f).cloned().unwrap_or_default();
    let children = |parent: &str| -> Vec<Recorded> {
        let mut found: Vec<Recorded> = spans
            .iter()
            .filter(|s| field(s, "parent_id") == parent)
            .cloned()
            .collect();
        found.sort_by_key(|s| (s.name.clone(), field(s, "peer")));
        found
    };
    let describe = |s: &Recorded| format!("{} {}", s.name, field(s, "peer"));
    // client: call to server (the root's child) → server: serve (called by client) → server:
    // a call to client and a call to itself → client: serve (called by server).
    let first = children(&format!("{:016x}", root.span_id));
    assert_eq!(
        first.iter().map(describe).collect::<Vec<_>>(),
        ["call server"],
        "{spans:#?}"
    );
    let served = children(&field(&first[0], "span_id"));
    assert_eq!(
        served.iter().map(describe).collect::<Vec<_>>(),
        ["serve client"],
        "{spans:#?}"
    );
    let calls = children(&field(&served[0], "span_id"));
    assert_eq!(
        calls.iter().map(describe).collect::<Vec<_>>(),
        ["call client", "call server"],
        "{spans:#?}"
    );
    // The call to itself ran on the server, in its own span; the one to the client was served
    // there.
    assert_eq!(field(&calls[1], "local"), "true");
    let on_client = children(&field(&calls[0], "span_id"));
    assert_eq!(
        on_client.iter().map(describe).collect::<Vec<_>>(),
        ["serve server"],
        "{spans:#?}"
    );
    assert!(children(&field(&on_client[0], "span_id")).is_empty());
    assert_eq!(spans.len(), 5, "{spans:#?}");
}
