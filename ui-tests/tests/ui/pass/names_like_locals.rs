//! Names the body uses that are locals elsewhere, but items where the call is written.
use remote_scope::{remote, Error, PeerId};

fn double(x: u64) -> u64 {
    x * 2
}

#[allow(non_upper_case_globals)]
static limit: u64 = 3;

fn elsewhere() -> u64 {
    let double = 1;
    double + 1
}

async fn fn_as_value(peer: PeerId) -> Result<Vec<u64>, Error> {
    {
        // Out of scope at the call: the body's `double` is the fn.
        let double = 5;
        let _ = double;
    }
    let v: Vec<u64> = vec![1, 2];
    remote!(peer, [v: Vec<u64>], { v.into_iter().map(double).map(|x| x + limit).collect::<Vec<u64>>() }).await
}

// A type named like another fn's generic parameter, in a generic fn of other parameters.
#[derive(serde::Serialize, serde::Deserialize)]
struct T(u64);

fn generic_elsewhere<T: Clone>(x: T) -> T {
    x
}

async fn generic_caller<U: Send>(peer: PeerId, _unrelated: U) -> Result<u64, Error> {
    let t = T(1);
    remote!(peer, [t: T], { t.0 }).await
}

fn main() {
    let _ = generic_caller::<u8>;
    let _ = generic_elsewhere::<u8>;
    let _ = fn_as_value;
    let _ = elsewhere;
}
