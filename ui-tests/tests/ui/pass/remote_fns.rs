//! `#[remote_fn]` as users write them: docs, `pub`, unit results, errors, cfg, nesting.
use remote_scope::{remote, remote_fn, BodyError, Error, PeerId};

/// Documented, public, and called from another remote function.
#[remote_fn]
pub async fn square(n: u64) -> u64 {
    n * n
}

#[remote_fn]
pub(crate) async fn log(line: String) {
    println!("{line}");
}

#[remote_fn]
async fn parse(text: String) -> Result<u64, BodyError> {
    Ok(text.parse::<u64>()?)
}

#[cfg(not(any()))]
#[remote_fn]
async fn sum_of_squares(peer: PeerId, values: Vec<u64>) -> Result<u64, Error> {
    let mut total = 0;
    for v in values {
        total += square(v).on_peer(&peer).await?;
    }
    let extra = remote!(peer, [total: u64], { total + 1 }).await?;
    Ok(extra)
}

async fn caller(peer: PeerId) -> Result<u64, Error> {
    log("starting".to_owned()).on_peer(&peer).await?;
    let parsed = parse("7".to_owned()).on_peer("server").await?;
    let n = parsed.unwrap_or(0);
    sum_of_squares(peer.clone(), vec![n]).on_peer(peer).await?
}

fn main() {
    let _ = caller;
    let _: &str = square::NAME;
}
