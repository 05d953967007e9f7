//! Bodies the browser tests call: each checks one thing across the native/wasm boundary.

use std::time::Duration;

use remote_scope::{remote, remote_fn, Call, Error, Node, PeerId, Pool, Registry};

/// The server's body names and registry digest, to compare with the browser's own.
pub async fn server_registry(server: PeerId) -> Result<(Vec<String>, u64), Error> {
    remote!(server, [], {
        Registry::global().map(|r| {
            let names: Vec<String> = r.names().into_iter().map(str::to_owned).collect();
            (names, r.digest())
        })
    })
    .await?
}

/// The server runs bodies on the browser that live in another module and another crate.
///
/// The calls into them are compiled for the server only, as in an app whose browser code never
/// calls its server-side modules: nothing in the browser binary refers to those modules, so
/// only `remote_scope::link!` keeps their bodies there.
pub async fn server_asks_back(server: PeerId, browser: PeerId) -> Result<Vec<String>, Error> {
    remote!(server, [browser: PeerId], {
        #[cfg(not(target_arch = "wasm32"))]
        let answers = vec![
            elsewhere::ask(browser.clone()).await?,
            remote_scope_browser_extra::ask(browser).await?,
        ];
        #[cfg(target_arch = "wasm32")]
        let answers = {
            let _ = browser;
            Vec::new()
        };
        Ok::<Vec<String>, Error>(answers)
    })
    .await?
}

/// Reverses `word` where it runs, and says where: a `#[remote_fn]` the browser calls on the
/// server and the server calls on the browser.
#[remote_fn]
pub async fn reverse(word: String) -> String {
    let here = remote_scope::current_peer().map_or_else(String::new, |p| p.to_string());
    format!("{} on {here}", word.chars().rev().collect::<String>())
}

/// The server calls [`reverse()`] on the browser, from a body the browser called.
pub async fn server_reverses_on(
    server: PeerId,
    browser: PeerId,
    word: String,
) -> Result<String, Error> {
    remote!(server, [browser: PeerId, word: String], {
        reverse(word).on_peer(&browser).await
    })
    .await?
}

/// The pool of workers behind the server, on a NATS cluster (`browser-server --nats`).
pub const WORD_POOL: &str = "browser-words";

/// The server counts the words of `lines` on its pool of workers, which it reaches through
/// NATS (a browser cannot): each line goes to one member. Returns the total and the members
/// that ran some, sorted.
pub async fn count_on_workers(
    server: PeerId,
    lines: Vec<String>,
) -> Result<(usize, Vec<String>), Error> {
    remote!(server, [lines: Vec<String>], {
        let pool = Pool::new(WORD_POOL);
        let calls = lines.into_iter().map(|line| {
            remote!(pool, [line: String], {
                let here = remote_scope::current_peer().map_or_else(String::new, |p| p.to_string());
                (line.split_whitespace().count(), here)
            })
        });
        let mut total = 0;
        let mut members = Vec::new();
        for counted in futures::future::join_all(calls).await {
            let (words, member) = counted?;
            total += words;
            if !members.contains(&member) {
                members.push(member);
            }
        }
        members.sort();
        Ok::<_, Error>((total, members))
    })
    .await?
}

/// A call that sleeps on the server for `seconds` (await it, or set a timeout first).
pub fn sleep_on_server(server: PeerId, seconds: u64) -> Call<()> {
    remote!(server, [seconds: u64], {
        if let Some(node) = Node::current() {
            node.sleep(Duration::from_secs(seconds)).await;
        }
    })
}

/// The server drops its connection to the calling browser, as a server going away would.
pub async fn server_hangs_up(server: PeerId, browser: PeerId) -> Result<bool, Error> {
    remote!(server, [browser: PeerId], {
        Node::current().is_some_and(|node| node.disconnect(&browser))
    })
    .await
}

/// A body that panics on the server.
pub async fn panic_on_server(server: PeerId) -> Result<u8, Error> {
    remote!(server, [], {
        if Node::current().is_some() {
            panic!("deliberate panic on the server");
        }
        0_u8
    })
    .await
}

/// Sums on the server what the browser sends.
pub async fn sum_on_server(server: PeerId, values: Vec<u64>) -> Result<u64, Error> {
    remote!(server, [values: Vec<u64>], { values.iter().sum::<u64>() }).await
}

/// A module whose body only the server calls, on the browser.
pub mod elsewhere {
    use remote_scope::{remote, Error, PeerId};

    /// Runs a body on `browser` that answers with where it ran.
    pub async fn ask(browser: PeerId) -> Result<String, Error> {
        remote!(browser, [], {
            format!(
                "module body ran on {}",
                remote_scope::current_peer().map_or_else(|| "?".into(), |p| p.to_string())
            )
        })
        .await
    }
}

/// `payload`, sent to the server and back: the browser benchmark's call, the same bytes each
/// way as its raw WebSocket echo.
pub fn echo_on_server(server: PeerId, payload: Vec<u8>) -> Call<Vec<u8>> {
    remote!(server, [payload: Vec<u8>], { payload })
}

/// The numbers `0..n`, streamed from the server.
pub fn numbers_from_server(server: PeerId, n: u64) -> remote_scope::streams::RemoteStream<u64> {
    remote_scope::remote_stream!(server, [n: u64], { futures::stream::iter(0..n) })
}

/// The server sums the numbers `1..=n`, which it streams from the browser.
pub async fn server_sums_a_stream_from(
    server: PeerId,
    browser: PeerId,
    n: u64,
) -> Result<u64, Error> {
    remote!(server, [browser: PeerId, n: u64], {
        use futures::StreamExt;
        let mut items =
            remote_scope::remote_stream!(browser, [n: u64], { futures::stream::iter(1..=n) });
        let mut total = 0;
        while let Some(item) = items.next().await {
            total += item?;
        }
        Ok::<u64, Error>(total)
    })
    .await?
}

/// The trace the server's body runs in, and the one a body it calls back on `browser` runs in.
pub async fn traces_seen(
    server: PeerId,
    browser: PeerId,
) -> Result<(Option<u128>, Option<u128>), Error> {
    remote!(server, [browser: PeerId], {
        let here = remote_scope::TraceContext::current().map(|c| c.trace_id);
        let there = remote!(browser, [], {
            remote_scope::TraceContext::current().map(|c| c.trace_id)
        })
        .await?;
        Ok::<_, Error>((here, there))
    })
    .await?
}
