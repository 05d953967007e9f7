//! The demo page's entry point: connect to the server peer, run the nested demo, show each step
//! and the peer it ran on, and tell the server the result.

use remote_scope::{Error, Node};
use wasm_bindgen::prelude::*;

use crate::demo::{nested, Outcome};

#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// Runs the demo against the server peer at `ws_url` as the peer `peer_id` (the id the
/// server's session gave this page), writing into `#steps` and `#result`.
#[wasm_bindgen]
pub async fn run_demo(ws_url: String, peer_id: String) -> Result<(), JsValue> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| JsValue::from_str("no document"))?;
    let show = |id: &str, html: &str| {
        if let Some(el) = document.get_element_by_id(id) {
            el.set_inner_html(html);
        }
    };
    show("status", &format!("connecting to {}", escape(&ws_url)));
    match demo(&ws_url, peer_id).await {
        Ok((browser, outcome)) => {
            let steps: String = outcome
                .steps
                .iter()
                .map(|s| format!("<li><b>{}</b>: {}</li>", escape(&s.peer), escape(&s.what)))
                .collect();
            show("steps", &steps);
            let (b, a2) = &outcome.result;
            show(
                "result",
                &format!(
                    "result: ([42; {}], {a2}) &mdash; {} values of {}",
                    b.len(),
                    b.len(),
                    b[0]
                ),
            );
            show(
                "status",
                &format!("done; this page is peer <b>{}</b>", escape(&browser)),
            );
            Ok(())
        }
        Err(e) => {
            show("status", &format!("failed: {}", escape(&e.to_string())));
            Err(JsValue::from_str(&e.to_string()))
        }
    }
}

async fn demo(ws_url: &str, peer_id: String) -> Result<(String, Outcome), Error> {
    let node = Node::builder().id(peer_id).build()?;
    let server = node.connect(ws_url).await?;
    let browser = node.id().clone();
    let outcome = node.run(nested(server.clone(), browser.clone())).await?;
    let summary = format!("{:?} from {}", outcome.result.1, browser);
    node.run(crate::demo::report(server, summary)).await?;
    Ok((browser.to_string(), outcome))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
