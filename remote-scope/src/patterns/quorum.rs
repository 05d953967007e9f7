//! Quorum: the same body on every replica; a majority that agrees decides.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{FuturesUnordered, StreamExt};

use crate::error::Error;
use crate::patterns::first::Labelled;
use crate::peer_id::PeerId;

/// Runs one body on every one of `replicas` (`make` gives the call for a replica) and succeeds
/// when more than half of them return equal values: the [`Agreed`] value, with who agreed, who
/// answered something else and who failed. With no such majority the error is
/// [`Error::NoQuorum`], which says the same; with no replicas, [`Error::NoPeers`].
///
/// By default it waits for every replica (each call within its own timeout), so that the
/// report is complete and a write reaches every replica that can take it.
/// [`first_majority`](Quorum::first_majority) ends as soon as the outcome is decided instead,
/// cancelling the calls still out.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use remote_scope::{patterns, remote, Node};
///
/// let node = Node::builder().build()?;
/// let replicas = vec![node.id().clone(); 3];
/// let agreed = node
///     .run(patterns::quorum(replicas, |peer| remote!(peer, [], { "v2".to_string() })))
///     .await?;
/// assert_eq!(agreed.value, "v2");
/// assert_eq!(agreed.agreed.len(), 3);
/// assert!(agreed.disagreed.is_empty() && agreed.failed.is_empty());
/// # Ok(()) }
/// ```
pub fn quorum<P, F, Fut, T>(replicas: P, mut make: F) -> Quorum<Fut, T>
where
    P: IntoIterator<Item = PeerId>,
    F: FnMut(&PeerId) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
    T: PartialEq,
{
    let replicas: Vec<PeerId> = replicas.into_iter().collect();
    let needed = replicas.len() / 2 + 1;
    let running = replicas
        .iter()
        .map(|peer| Labelled {
            peer: peer.clone(),
            call: make(peer),
        })
        .collect();
    Quorum {
        replicas: replicas.len(),
        needed,
        running,
        heard: Vec::new(),
        sizes: Vec::new(),
        failed: Vec::new(),
        early: false,
    }
}

/// The value a majority of replicas agreed on, and what the others did.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Agreed<T> {
    /// The value.
    pub value: T,
    /// The replicas that returned it, in the order their answers came.
    pub agreed: Vec<PeerId>,
    /// The replicas that returned something else, with what they returned, in the order
    /// their answers came.
    pub disagreed: Vec<(PeerId, T)>,
    /// The replicas whose calls failed.
    pub failed: Vec<Error>,
    /// The replicas not heard from, because [`Quorum::first_majority`] ended first (their
    /// calls were cancelled).
    pub unheard: Vec<PeerId>,
}

/// The calls of [`quorum`] in flight; await it for the agreed value.
#[must_use = "the calls are sent when it is awaited"]
pub struct Quorum<Fut, T> {
    replicas: usize,
    needed: usize,
    running: FuturesUnordered<Labelled<Fut>>,
    /// The values heard so far, each with its replica and the group of equal values it is in
    /// (the index of the first value of that group).
    heard: Vec<(PeerId, T, usize)>,
    /// How many values each group has, by the index of its first value.
    sizes: Vec<(usize, usize)>,
    failed: Vec<Error>,
    early: bool,
}

impl<Fut, T> Quorum<Fut, T>
where
    Fut: Future<Output = Result<T, Error>>,
    T: PartialEq,
{
    /// Ends as soon as a majority agrees (or can no longer agree), cancelling the calls still
    /// out; they are listed in [`Agreed::unheard`].
    pub fn first_majority(mut self) -> Self {
        self.early = true;
        self
    }

    /// Needs `replicas` to agree instead of a majority (at least 1). Below a majority, two
    /// values may each reach it: the larger group decides (of groups as large, the value heard
    /// first; with [`first_majority`](Quorum::first_majority), the first group to reach it).
    pub fn needing(mut self, replicas: usize) -> Self {
        self.needed = replicas.max(1);
        self
    }

    fn hear(&mut self, peer: PeerId, value: T) {
        let group = self.heard.iter().find(|(_, v, _)| *v == value).map(|h| h.2);
        let group = match group {
            Some(group) => group,
            None => {
                let group = self.heard.len();
                self.sizes.push((group, 0));
                group
            }
        };
        if let Some(size) = self.sizes.iter_mut().find(|(g, _)| *g == group) {
            size.1 += 1;
        }
        self.heard.push((peer, value, group));
    }

    /// The largest group: its first value's index and its size; of groups as large, the one
    /// heard first.
    fn largest(&self) -> Option<(usize, usize)> {
        self.sizes
            .iter()
            .copied()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
    }

    fn decided(&self) -> bool {
        let largest = self.largest().map_or(0, |(_, size)| size);
        // Agreed, or too few left to reach it.
        largest >= self.needed || largest + self.running.len() < self.needed
    }

    fn outcome(&mut self) -> Result<Agreed<T>, Error> {
        let unheard: Vec<PeerId> = Pin::new(&self.running)
            .iter_pin_ref()
            .map(|call| call.project_ref().peer.clone())
            .collect();
        // Dropping the calls not heard from cancels them.
        self.running = FuturesUnordered::new();
        let failed = std::mem::take(&mut self.failed);
        let (winner, size) = self.largest().unwrap_or((usize::MAX, 0));
        let mut value = None;
        let mut agreed = Vec::new();
        let mut disagreed = Vec::new();
        for (peer, v, group) in std::mem::take(&mut self.heard) {
            if group == winner {
                agreed.push(peer);
                value.get_or_insert(v);
            } else {
                disagreed.push((peer, v));
            }
        }
        match value {
            Some(value) if size >= self.needed => Ok(Agreed {
                value,
                agreed,
                disagreed,
                failed,
                unheard,
            }),
            _ => Err(Error::NoQuorum {
                replicas: self.replicas,
                needed: self.needed,
                agreed: size,
                disagreed: disagreed.into_iter().map(|(peer, _)| peer).collect(),
                errors: failed,
            }),
        }
    }
}

/// Nothing of it is pinned in place: its calls are pinned where `FuturesUnordered` keeps them.
impl<Fut, T> Unpin for Quorum<Fut, T> {}

impl<Fut, T> Future for Quorum<Fut, T>
where
    Fut: Future<Output = Result<T, Error>>,
    T: PartialEq,
{
    type Output = Result<Agreed<T>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.replicas == 0 {
            return Poll::Ready(Err(Error::NoPeers {
                pattern: "quorum".to_owned(),
            }));
        }
        loop {
            match this.running.poll_next_unpin(cx) {
                Poll::Ready(Some((peer, Ok(value)))) => this.hear(peer, value),
                Poll::Ready(Some((_, Err(e)))) => this.failed.push(e),
                Poll::Ready(None) => return Poll::Ready(this.outcome()),
                Poll::Pending => return Poll::Pending,
            }
            if this.early && this.decided() {
                return Poll::Ready(this.outcome());
            }
        }
    }
}

impl<Fut, T> std::fmt::Debug for Quorum<Fut, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("replicas", &self.replicas)
            .field("needed", &self.needed)
            .field("heard", &self.heard.len())
            .field("failed", &self.failed.len())
            .finish_non_exhaustive()
    }
}
