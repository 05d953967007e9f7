//! Bodies that use `?` and take their type from a `return`, a `loop` or a macro that never
//! returns; names in macro arguments that are not uses.
use remote_scope::{remote, BodyError, Error, PeerId};

async fn returns_from_a_loop(peer: PeerId) -> Result<Result<u64, BodyError>, Error> {
    let words: Vec<String> = vec!["4".into(), "7".into()];
    remote!(peer, [words: Vec<String>], {
        let mut total = 0_u64;
        let mut i = 0;
        loop {
            total += words[i % words.len()].parse::<u64>()?;
            i += 1;
            if total > 9 {
                return Ok::<u64, BodyError>(total);
            }
        }
    })
    .await
}

async fn returns_in_a_tail(peer: PeerId) -> Result<Option<u64>, Error> {
    let n: Option<u64> = Some(3);
    remote!(peer, [n: Option<u64>], {
        let n = n?;
        return Some(n * 2);
    })
    .await
}

async fn ends_in_a_panic(peer: PeerId) -> Result<Result<u64, BodyError>, Error> {
    let text = String::from("5");
    remote!(peer, [text: String], {
        if !text.is_empty() {
            let n: u64 = text.parse()?;
            return Ok::<u64, BodyError>(n);
        }
        unreachable!("never empty")
    })
    .await
}

async fn names_in_macros(peer: PeerId) -> Result<String, Error> {
    // Locals of the caller whose names the body's macros use as something else.
    let n = 1;
    let peer_name = "x";
    let total: u64 = 2;
    let _ = (n, peer_name);
    remote!(peer, [total: u64], { format!("{n} {}", stringify!(peer_name), n = total) }).await
}

fn main() {
    let _ = returns_from_a_loop;
    let _ = returns_in_a_tail;
    let _ = ends_in_a_panic;
    let _ = names_in_macros;
}
