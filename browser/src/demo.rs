//! The nested demo, server -> browser -> server, recording where each step ran.

use remote_scope::{current_peer, remote, Error, PeerId};
use serde::{Deserialize, Serialize};

/// One step of the demo and the peer that ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub peer: String,
    pub what: String,
}

/// A step on the peer running the current body.
pub fn step(what: String) -> Step {
    let peer = current_peer().map_or_else(|| "?".to_owned(), |p| p.to_string());
    Step { peer, what }
}

/// The demo's value and its steps, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub result: (Vec<u64>, u64),
    pub steps: Vec<Step>,
}

/// On the server a = 42; on the browser a vector of a + 1 copies of 42; back on the server,
/// (that vector, a + 2): `([42; 43], 44)`.
pub async fn nested(server: PeerId, browser: PeerId) -> Result<Outcome, Error> {
    remote!(server, [server: PeerId, browser: PeerId], {
        let a: u64 = 42;
        let mut steps = vec![step(format!("a = {a}"))];
        let (b, on_browser): (Vec<u64>, Step) = remote!(browser, [a: u64], {
            (vec![42_u64; a as usize + 1], step(format!("vec![42; {a} + 1]")))
        })
        .await?;
        steps.push(on_browser);
        let (result, last) = remote!(server, [a: u64, b: Vec<u64>], {
            let last = step(format!("({} copies of 42, {a} + 2)", b.len()));
            ((b, a + 2), last)
        })
        .await?;
        steps.push(last);
        Ok::<Outcome, Error>(Outcome { result, steps })
    })
    .await?
}

/// Tells the server what a page saw; the server prints it with the peer it heard it from (the
/// demo check reads its log).
pub async fn report(server: PeerId, summary: String) -> Result<(), Error> {
    remote!(server, [summary: String], { note(&summary, remote_scope::caller()) }).await
}

/// Prints a line on the peer that runs it.
fn note(line: &str, from: Option<PeerId>) {
    #[cfg(not(target_arch = "wasm32"))]
    match from {
        Some(peer) => println!("browser reported: {line} (heard from {peer})"),
        None => println!("browser reported: {line}"),
    }
    #[cfg(target_arch = "wasm32")]
    let _ = (line, from);
}
