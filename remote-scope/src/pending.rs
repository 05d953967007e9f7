//! The calls a connection made and is waiting on, by request id: each entry holds the caller's
//! waker until the reply comes, then the reply until the caller takes it.
//!
//! The table is the meeting point of the caller and the reader, so a call needs no channel of
//! its own: no allocation, and one lock each for registering, answering and taking the reply.

use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::hash::FastMap;
use crate::protocol::{Failure, Received};

/// What a waiting call receives.
pub(crate) enum Reply {
    /// The encoded value.
    Value(Received),
    Failure(Failure),
    /// The deadline passed first.
    TimedOut,
}

pub(crate) struct Pending {
    /// Set when the connection closed: no call is registered after it.
    closed: bool,
    calls: FastMap<u64, Entry>,
    /// The deadline the timer task will wake for, if any. A call whose deadline comes later
    /// needs no wake-up of its own (when the task wakes, it looks for the next one); only a call
    /// due sooner re-arms it. So calls keep no ordered structure of deadlines: the task scans
    /// the waiting calls when it wakes, which is once per deadline passed, not once per call.
    armed: Option<Duration>,
}

struct Entry {
    /// On the runtime's clock ([`crate::runtime::Runtime::now`]).
    deadline: Duration,
    state: State,
}

enum State {
    Waiting(Waker),
    Replied(Reply),
}

/// Why [`Pending::register`] refused a call.
#[derive(Debug)]
pub(crate) struct Closed;

/// A call's end, as [`Pending::poll`] sees it.
pub(crate) enum Ended {
    Reply(Reply),
    /// The connection closed before the reply came.
    Disconnected,
}

/// What the timer task learns from [`Pending::expire`].
pub(crate) struct Expired {
    /// The calls just timed out: their ids (the peer is told to stop them) and callers.
    pub(crate) calls: Vec<(u64, Waker)>,
    /// When to look again.
    pub(crate) next: Option<Duration>,
}

impl Pending {
    pub(crate) fn new() -> Pending {
        Pending {
            closed: false,
            calls: FastMap::default(),
            armed: None,
        }
    }

    /// Registers call `id`, due at `deadline`, whose caller `waker` wakes. `Ok(true)` when the
    /// timer task must be woken: the call is due sooner than anything it waits for.
    #[inline]
    pub(crate) fn register(
        &mut self,
        id: u64,
        deadline: Duration,
        waker: &Waker,
    ) -> Result<bool, Closed> {
        if self.closed {
            return Err(Closed);
        }
        let state = State::Waiting(waker.clone());
        self.calls.insert(id, Entry { deadline, state });
        let sooner = self.armed.is_none_or(|armed| deadline < armed);
        if sooner {
            self.armed = Some(deadline);
        }
        Ok(sooner)
    }

    /// Hands the reply `make` makes to call `id` and returns its caller to wake, if the call is
    /// still waiting; a reply for a call that timed out or was dropped is moot, and not made.
    #[inline]
    pub(crate) fn answer(&mut self, id: u64, make: impl FnOnce() -> Reply) -> Option<Waker> {
        let entry = self.calls.get_mut(&id)?;
        if let State::Replied(_) = entry.state {
            return None;
        }
        match std::mem::replace(&mut entry.state, State::Replied(make())) {
            State::Waiting(waker) => Some(waker),
            State::Replied(_) => None,
        }
    }

    /// The caller's side: the reply once it is there (the entry then goes), else `Pending`
    /// with the caller's waker kept for the reader.
    #[inline]
    pub(crate) fn poll(&mut self, id: u64, cx: &Context<'_>) -> Poll<Ended> {
        let Some(entry) = self.calls.get_mut(&id) else {
            return Poll::Ready(Ended::Disconnected);
        };
        if let State::Waiting(waker) = &mut entry.state {
            if !waker.will_wake(cx.waker()) {
                waker.clone_from(cx.waker());
            }
            return Poll::Pending;
        }
        match self.calls.remove(&id) {
            Some(Entry {
                state: State::Replied(reply),
                ..
            }) => Poll::Ready(Ended::Reply(reply)),
            _ => Poll::Ready(Ended::Disconnected),
        }
    }

    /// The caller gave up on call `id`: true if it was still waiting on an open connection,
    /// so the peer should be told to stop its body.
    pub(crate) fn forget(&mut self, id: u64) -> bool {
        let waiting = matches!(
            self.calls.remove(&id),
            Some(Entry {
                state: State::Waiting(_),
                ..
            })
        );
        waiting && !self.closed
    }

    /// Refuses new calls and fails the waiting ones: returns their callers to wake. Replies
    /// already in stay until their callers take them.
    pub(crate) fn close(&mut self) -> Vec<Waker> {
        self.closed = true;
        self.armed = None;
        let mut callers = Vec::new();
        self.calls.retain(|_, entry| match &entry.state {
            State::Waiting(waker) => {
                callers.push(waker.clone());
                false
            }
            State::Replied(_) => true,
        });
        callers
    }

    /// Times out the waiting calls due at or before `now`. `Err(when)` if nothing can be due
    /// yet, so nothing was scanned: `when` is the armed deadline, or `None` if no call waits.
    pub(crate) fn expire(&mut self, now: Duration) -> Result<Expired, Option<Duration>> {
        // `armed` is never later than the soonest deadline waiting (a call only lowers it, and
        // an answered call leaves it early, not late): before it, nothing is due.
        match self.armed {
            Some(armed) if now < armed => return Err(Some(armed)),
            None => return Err(None),
            Some(_) => {}
        }
        let mut next: Option<Duration> = None;
        let mut calls = Vec::new();
        for (&id, entry) in &mut self.calls {
            if let State::Replied(_) = entry.state {
                continue;
            }
            if entry.deadline > now {
                next = Some(next.map_or(entry.deadline, |n| n.min(entry.deadline)));
                continue;
            }
            if let State::Waiting(waker) =
                std::mem::replace(&mut entry.state, State::Replied(Reply::TimedOut))
            {
                calls.push((id, waker));
            }
        }
        self.armed = next;
        Ok(Expired { calls, next })
    }

    /// Calls not yet taken by their callers, answered or not.
    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::testing::counting_waker as waker;

    const SECOND: Duration = Duration::from_secs(1);

    fn value(reply: Poll<Ended>) -> Option<Vec<u8>> {
        match reply {
            Poll::Ready(Ended::Reply(Reply::Value(value))) => Some(value.to_vec()),
            _ => None,
        }
    }

    #[test]
    fn a_reply_wakes_its_caller_and_is_taken_once() {
        let mut pending = Pending::new();
        let (woken, w) = waker();
        let cx = Context::from_waker(&w);
        assert!(pending.register(7, SECOND, &w).expect("open"));
        assert!(pending.poll(7, &cx).is_pending());
        let caller = pending.answer(7, || {
            Reply::Value(Received::Bytes(Bytes::from_static(b"v")))
        });
        caller.expect("the caller waits").wake();
        assert_eq!(woken.wakes(), 1);
        // A repeated reply finds the call answered already.
        assert!(pending.answer(7, || Reply::TimedOut).is_none());
        assert_eq!(value(pending.poll(7, &cx)).as_deref(), Some(&b"v"[..]));
        assert_eq!(pending.len(), 0);
        assert!(!pending.forget(7), "taken: nothing to cancel");
    }

    #[test]
    fn the_latest_waker_is_the_one_woken() {
        let mut pending = Pending::new();
        let (first, w1) = waker();
        let (second, w2) = waker();
        pending.register(1, SECOND, &w1).expect("open");
        assert!(pending.poll(1, &Context::from_waker(&w2)).is_pending());
        pending
            .answer(1, || Reply::TimedOut)
            .expect("waiting")
            .wake();
        assert_eq!(first.wakes(), 0);
        assert_eq!(second.wakes(), 1);
    }

    #[test]
    fn closing_fails_waiting_calls_and_keeps_replies_already_in() {
        let mut pending = Pending::new();
        let (_, w) = waker();
        let cx = Context::from_waker(&w);
        pending.register(1, 5 * SECOND, &w).expect("open");
        pending.register(2, 5 * SECOND, &w).expect("open");
        pending.register(3, SECOND, &w).expect("open");
        pending.answer(2, || {
            Reply::Value(Received::Bytes(Bytes::from_static(b"in")))
        });
        assert_eq!(pending.expire(SECOND).expect("due").calls.len(), 1);
        assert_eq!(pending.close().len(), 1, "only the waiting call's caller");
        assert!(matches!(
            pending.poll(1, &cx),
            Poll::Ready(Ended::Disconnected)
        ));
        assert_eq!(value(pending.poll(2, &cx)).as_deref(), Some(&b"in"[..]));
        assert!(matches!(
            pending.poll(3, &cx),
            Poll::Ready(Ended::Reply(Reply::TimedOut))
        ));
        assert!(pending.register(4, SECOND, &w).is_err());
    }

    #[test]
    fn only_calls_still_waiting_on_an_open_connection_need_a_cancel() {
        let mut pending = Pending::new();
        let (_, w) = waker();
        pending.register(1, SECOND, &w).expect("open");
        pending.register(2, SECOND, &w).expect("open");
        pending.register(3, SECOND, &w).expect("open");
        pending.answer(2, || Reply::TimedOut);
        assert!(pending.forget(1));
        assert!(!pending.forget(2), "answered");
        pending.close();
        assert!(!pending.forget(3), "closed");
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn expiring_times_out_due_calls_and_says_when_the_next_is_due() {
        let mut pending = Pending::new();
        let (woken, w) = waker();
        let cx = Context::from_waker(&w);
        assert!(pending.register(1, 3 * SECOND, &w).expect("open"));
        assert!(pending.register(2, SECOND, &w).expect("open"), "sooner");
        assert!(!pending.register(3, 2 * SECOND, &w).expect("open"), "later");
        pending.answer(3, || Reply::Value(Received::Bytes(Bytes::new())));
        assert!(matches!(pending.expire(SECOND / 2), Err(Some(d)) if d == SECOND));
        let expired = pending.expire(2 * SECOND).expect("due");
        let ids: Vec<u64> = expired.calls.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [2], "the answered call does not time out");
        assert_eq!(expired.next, Some(3 * SECOND));
        for (_, caller) in expired.calls {
            caller.wake();
        }
        assert_eq!(woken.wakes(), 1);
        assert!(matches!(
            pending.poll(2, &cx),
            Poll::Ready(Ended::Reply(Reply::TimedOut))
        ));
        assert!(!pending.forget(2), "gone once taken");
        assert!(pending.answer(1, || Reply::TimedOut).is_some());
        assert!(matches!(
            pending.expire(4 * SECOND),
            Ok(Expired { next: None, .. })
        ));
        assert!(matches!(pending.expire(5 * SECOND), Err(None)));
    }
}
