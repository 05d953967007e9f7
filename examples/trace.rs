//! The nested demo as one trace: a `tracing` layer records the spans of both peers (`call` where
//! a call is made, `serve` where a body runs for another peer), and the W3C ids they record put
//! them together into one tree. Run it with `cargo run --example trace`.
//!
//! Any subscriber that records span fields sees the same ids (`trace_id`, `span_id`,
//! `parent_id`); here the two peers share a process, so one layer sees both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use remote_scope::{remote, Error, Node, PeerId};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// A span as recorded: its id in the subscriber, its name, its fields.
type Recorded = (u64, String, HashMap<String, String>);

/// The spans recorded.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Recorded>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let name = attrs.metadata().name().to_owned();
        if let Ok(mut spans) = self.0.lock() {
            spans.push((id.into_u64(), name, fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Ok(mut spans) = self.0.lock() {
            if let Some((_, _, fields)) = spans.iter_mut().find(|(i, _, _)| *i == id.into_u64()) {
                values.record(&mut Fields(fields));
            }
        }
    }
}

/// server: a = 42; client: a vector of a + 1 copies of 42; server: (that vector, a + 2).
async fn nested(server: PeerId, client: PeerId) -> Result<(Vec<u64>, u64), Error> {
    remote!(server, [server: PeerId, client: PeerId], {
        let a: u64 = 42;
        let b: Vec<u64> = remote!(client, [a: u64], { vec![42_u64; a as usize + 1] }).await?;
        remote!(server, [a: u64, b: Vec<u64>], { (b, a + 2) }).await
    })
    .await?
}

/// Prints the spans under `parent` (a W3C span id), `depth` deep; `on` is the peer they ran on.
fn print_tree(
    spans: &[HashMap<String, String>],
    names: &[String],
    parent: &str,
    on: &str,
    depth: usize,
) {
    let field = |s: &HashMap<String, String>, f: &str| s.get(f).cloned().unwrap_or_default();
    for (span, name) in spans
        .iter()
        .zip(names)
        .filter(|(s, _)| field(s, "parent_id") == parent)
    {
        let peer = field(span, "peer");
        let indent = "  ".repeat(depth);
        let (line, runs_on) = match (name.as_str(), field(span, "local").as_str()) {
            ("call", "true") => (
                format!("{on} calls itself (runs the body in place)"),
                on.to_owned(),
            ),
            ("call", _) => (format!("{on} calls {peer}"), peer.clone()),
            _ => (format!("{on} runs the body for {peer}"), on.to_owned()),
        };
        println!("{indent}{line}");
        print_tree(spans, names, &field(span, "span_id"), &runs_on, depth + 1);
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let spans = Spans::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(spans.clone()))
        .map_err(|e| Error::Setup {
            reason: e.to_string(),
        })?;

    let server = Node::builder().id("server").build()?;
    let listener = server.listen("127.0.0.1:0").await?;
    let client = Node::builder().id("client").build()?;
    let server_id = client.connect(&listener.url()).await?;
    let (b, a2) = client.run(nested(server_id, client.id().clone())).await?;
    println!("nested demo: {} values, {a2}", b.len());

    let recorded: Vec<Recorded> = spans.0.lock().map(|s| s.clone()).unwrap_or_default();
    let traced: Vec<&Recorded> = recorded
        .iter()
        .filter(|(_, _, f)| f.contains_key("trace_id"))
        .collect();
    let traces: std::collections::BTreeSet<&String> = traced
        .iter()
        .filter_map(|(_, _, f)| f.get("trace_id"))
        .collect();
    println!("spans: {}, in {} trace", traced.len(), traces.len());
    let fields: Vec<HashMap<String, String>> = traced.iter().map(|(_, _, f)| f.clone()).collect();
    let names: Vec<String> = traced.iter().map(|(_, n, _)| n.clone()).collect();
    // The root: the client's call, which has no parent.
    print_tree(&fields, &names, "", "client", 0);
    Ok(())
}
