//! Items are never captures, and bindings made inside the body shadow correctly.
use remote_scope::{remote, Error, PeerId};

const LIMIT: u64 = 10;
static OFFSET: u64 = 1;

fn helper(x: u64) -> u64 {
    x * 2
}

#[derive(Clone, Copy)]
struct Unit;

enum Choice {
    Left(u64),
    Right,
}

async fn body_with_items(peer: PeerId) -> Result<u64, Error> {
    let a: u64 = 3;
    remote!(peer, [a: u64], {
        let _unit = Unit;
        let doubled = helper(a) + LIMIT + OFFSET;
        let shadowed = doubled;
        let shadowed = shadowed + 1;
        let from_closure = (|a: u64| a + 1)(shadowed);
        let choice = if from_closure > 5 { Choice::Left(from_closure) } else { Choice::Right };
        let matched = match choice {
            Choice::Left(v) => v,
            Choice::Right => 0,
        };
        let maybe = Some(matched);
        let total = if let Some(inner) = maybe { inner } else { 0 };
        let mut sum = 0;
        for i in 0..a {
            sum += i;
        }
        let v: Vec<u64> = std::iter::repeat(total).take(2).collect();
        let text = format!("{a}{sum}");
        v.iter().sum::<u64>() + sum + text.len() as u64 + std::cmp::max(a, 1)
    })
    .await
}

async fn nested_and_returning_unit(peer: PeerId, other: PeerId) -> Result<(), Error> {
    let n: u64 = 4;
    remote!(peer, [n: u64, other: PeerId], {
        let inner: Option<u64> = remote!(other, [n: u64], { if n > 3 { Some(n) } else { None } }).await?;
        assert_eq!(inner, Some(4));
        Ok::<(), Error>(())
    })
    .await?
}

fn main() {
    let _ = body_with_items;
    let _ = nested_and_returning_unit;
}
