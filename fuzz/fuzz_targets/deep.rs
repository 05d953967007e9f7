//! Deeply nested values, as captures of served bodies that take recursive types and as results
//! a caller decodes. A recursive `Deserialize` on a hostile value nested deeper than a stack
//! holds would abort the process; decoding must fail cleanly instead, at any depth.
//!
//! Inputs may be large (run with `-max_len=1048576` or more), and a small input can stand for
//! a deep one: when its first byte is odd, the input is `[_, n_lo, n_hi, k, unit.., tail..]`
//! and the payload is the `k` bytes of `unit` repeated `n * 16` times (up to 8 MiB), then `tail`: the
//! fuzzer reaches a million levels from a handful of bytes.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use remote_scope::{remote, PeerId};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
enum Expr {
    Num(i64),
    Neg(Box<Expr>),
    Add(Box<Expr>, Box<Expr>),
    Call { name: String, args: Vec<Expr> },
}

#[derive(Serialize, Deserialize)]
struct Nest(Vec<Nest>);

#[derive(Serialize, Deserialize)]
struct Chain {
    next: Option<Box<Chain>>,
}

/// Recursion through an option with no byte of its own between levels.
#[derive(Serialize, Deserialize)]
struct Bare(Option<Box<Bare>>);

#[derive(Serialize, Deserialize)]
struct Tree(BTreeMap<String, Tree>);

/// Bodies taking the recursive shapes; registered by being compiled in.
#[allow(dead_code)]
fn bodies(peer: PeerId) {
    let (e, n, c, b, t) = (
        Expr::Num(0),
        Nest(Vec::new()),
        Chain { next: None },
        Bare(None),
        Tree(BTreeMap::new()),
    );
    let _ = remote!(peer, [e: Expr], { matches!(e, Expr::Num(_)) });
    let _ = remote!(peer, [n: Nest], { n.0.len() });
    let _ = remote!(peer, [c: Chain], { c.next.is_some() });
    let _ = remote!(peer, [b: Bare], { b.0.is_some() });
    let _ = remote!(peer, [t: Tree], { t.0.len() });
}

/// The payload an input stands for (see the module docs).
fn payload(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match data {
        [first, lo, hi, k, rest @ ..] if first & 1 == 1 && usize::from(*k) <= rest.len() => {
            let (unit, tail) = rest.split_at(usize::from(*k));
            // At most 8 MiB, well past the deepest a frame within the default limits needs.
            let times = (usize::from(u16::from_le_bytes([*lo, *hi])) * 16)
                .min((8 << 20) / unit.len().max(1));
            let mut bytes = unit.repeat(times);
            bytes.extend_from_slice(tail);
            bytes.into()
        }
        _ => data.into(),
    }
}

fuzz_target!(|data: &[u8]| {
    let bytes = payload(data);
    // As the captures of every body (a one-element tuple around the value)...
    let mut captures = vec![0x91];
    captures.extend_from_slice(&bytes);
    remote_scope::__fuzz::serve_each_body(remote_scope::__fuzz::inert_node(), &captures, 2);
    // ...and as results a caller decodes.
    let _ = remote_scope::__fuzz::decode_value::<Expr>(&bytes);
    let _ = remote_scope::__fuzz::decode_value::<Nest>(&bytes);
    let _ = remote_scope::__fuzz::decode_value::<Chain>(&bytes);
    let _ = remote_scope::__fuzz::decode_value::<Bare>(&bytes);
    let _ = remote_scope::__fuzz::decode_value::<Tree>(&bytes);
});
