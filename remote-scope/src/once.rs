//! At most once per key: a call sent with an idempotency key ([`Frame::InvokeOnce`]) runs its
//! body once on this node however often its caller sends it (after a lost connection, say). A
//! repeat that comes while the first run goes on waits for its result; one that comes after it
//! gets the result kept from it. Keys are the caller's, so they are kept per caller: one peer
//! cannot read another's results by guessing keys.
//!
//! What it keeps is bounded: the results of the last [`KEPT`] finished runs, at most
//! [`KEPT_BYTES`] of them in all (older ones are forgotten, and a repeat after that runs
//! again), and at most [`JOINED`] repeats waiting on one run.
//!
//! [`Frame::InvokeOnce`]: crate::protocol::Frame::InvokeOnce

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::peer_id::PeerId;
use crate::protocol::{Encoded, Failure};
use crate::sync::lock;

/// Finished runs whose results are kept.
pub(crate) const KEPT: usize = 4096;
/// The bytes of results kept, in all.
pub(crate) const KEPT_BYTES: usize = 16 << 20;
/// Repeats that may wait on one run.
pub(crate) const JOINED: usize = 64;

type Key = (PeerId, u64);

enum Entry<W> {
    /// The first run goes on; these repeats wait for its result.
    Running(Vec<W>),
    /// It finished with this result.
    Done(Result<Encoded, Failure>),
}

/// What a call with a key should do.
pub(crate) enum Begin {
    /// Run the body: it is the first.
    Run,
    /// Answer with this, the first run's result.
    Answer(Result<Encoded, Failure>),
    /// Wait: the first run's result answers it when it comes.
    Joined,
}

/// The node's table of keys; `W` is what a waiting repeat is to be answered by (a connection
/// and a request id), which the table hands back when the first run is over.
pub(crate) struct OnceTable<W>(Mutex<Inner<W>>);

impl<W> Default for OnceTable<W> {
    fn default() -> Self {
        OnceTable(Mutex::new(Inner {
            entries: HashMap::new(),
            finished: VecDeque::new(),
            bytes: 0,
        }))
    }
}

struct Inner<W> {
    entries: HashMap<Key, Entry<W>>,
    /// Finished keys, oldest first, and the bytes of their results.
    finished: VecDeque<(Key, usize)>,
    bytes: usize,
}

fn copy(result: &Result<Encoded, Failure>) -> Result<Encoded, Failure> {
    match result {
        Ok(value) => Ok(value.duplicate()),
        Err(failure) => Err(failure.clone()),
    }
}

/// What the first run's end means for the repeats that waited: answer them with this.
pub(crate) fn answer_for(result: Option<&Result<Encoded, Failure>>) -> Result<Encoded, Failure> {
    match result {
        Some(result) => copy(result),
        None => Err(Failure::Interrupted),
    }
}

impl<W> OnceTable<W> {
    /// A call from `caller` with `key` arrived, to be answered by `waiter` if it must wait.
    pub(crate) fn begin(&self, caller: &PeerId, key: u64, waiter: W) -> Begin {
        let mut inner = lock(&self.0);
        match inner.entries.get_mut(&(caller.clone(), key)) {
            None => {
                inner
                    .entries
                    .insert((caller.clone(), key), Entry::Running(Vec::new()));
                Begin::Run
            }
            Some(Entry::Done(result)) => Begin::Answer(copy(result)),
            Some(Entry::Running(joined)) if joined.len() < JOINED => {
                joined.push(waiter);
                Begin::Joined
            }
            Some(Entry::Running(_)) => Begin::Answer(Err(Failure::Busy {
                limit: JOINED as u32,
            })),
        }
    }

    /// The run for `caller`'s `key` is over: with `result`, or stopped (`None`). Keeps a
    /// result of a body that ran, forgets a run that did not start or did not finish (a
    /// repeat then runs it), and returns the repeats that waited, to be answered with
    /// [`answer_for`] the result.
    pub(crate) fn finish(
        &self,
        caller: &PeerId,
        key: u64,
        result: Option<&Result<Encoded, Failure>>,
    ) -> Vec<W> {
        let key = (caller.clone(), key);
        let mut inner = lock(&self.0);
        let Some(Entry::Running(joined)) = inner.entries.remove(&key) else {
            return Vec::new();
        };
        let ran = match result {
            Some(Ok(_)) => true,
            Some(Err(failure)) => matches!(
                failure,
                Failure::Panicked { .. } | Failure::EncodeResult { .. }
            ),
            None => false,
        };
        if let (true, Some(result)) = (ran, result) {
            let bytes = result.as_ref().map_or(64, |v| v.as_slice().len() + 64);
            inner.entries.insert(key.clone(), Entry::Done(copy(result)));
            inner.finished.push_back((key, bytes));
            inner.bytes += bytes;
            while inner.finished.len() > KEPT || inner.bytes > KEPT_BYTES {
                let Some((old, bytes)) = inner.finished.pop_front() else {
                    break;
                };
                inner.bytes -= bytes;
                inner.entries.remove(&old);
            }
        }
        joined
    }
}
