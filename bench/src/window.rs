//! Keeps a window of calls in flight from one task, for the pipelined workloads of remote!,
//! the request/response protocol and tarpc alike.
//!
//! Why not `FuturesUnordered`: once it has polled every future it holds in one go, it wakes its
//! task and yields, even when none of them can go on. With a window of new calls that is every
//! batch: each new call is polled once, to send it, and waits. On tokio's multi-thread
//! scheduler a task that yields is queued behind the others and another worker is woken to take
//! it, so the harness itself would add one wake-up of a sleeping thread per batch. Measured on
//! remote! at 64 in flight that cost more than a third of the throughput (see BENCHMARKS.md), so
//! it would measure the harness's scheduling instead of the libraries. Here a call is polled
//! when its waker fires and at once after it is made; the task yields only when its calls keep
//! waking while it polls them (tokio's cooperative budget does that), after `YIELD_AFTER` polls.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// Polls of calls in one poll of the task, in units of the window, after which it yields if
/// calls were woken again meanwhile.
const YIELD_AFTER: usize = 4;

/// The slots woken since the task last took them, and the task to wake.
#[derive(Default)]
struct Woken {
    slots: Mutex<Vec<usize>>,
    task: AtomicWaker,
}

impl Woken {
    fn push(&self, slot: usize) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(slot);
        self.task.wake();
    }

    fn take(&self, into: &mut Vec<usize>) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *slots, into);
    }
}

/// The waker of one slot: says which slot to poll.
struct SlotWaker {
    slot: usize,
    woken: Arc<Woken>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.woken.push(self.slot);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.push(self.slot);
    }
}

/// Makes calls `0..total` with up to `window` in flight, and returns once all have answered;
/// `call(i)` makes call `i` and says whether its answer was right. Fails at the first error or
/// wrong answer.
pub async fn run<F, Fut, E>(total: usize, window: usize, call: F) -> Result<(), E>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<bool, E>>,
    E: From<crate::BenchError>,
{
    let window = window.max(1);
    let woken = Arc::new(Woken::default());
    let wakers: Vec<Waker> = (0..window)
        .map(|slot| {
            Waker::from(Arc::new(SlotWaker {
                slot,
                woken: Arc::clone(&woken),
            }))
        })
        .collect();
    // One box per slot, reused by every call made in it.
    let mut slots: Vec<Pin<Box<Option<Fut>>>> = (0..window).map(|_| Box::pin(None)).collect();
    let mut sent = 0_u64;
    let mut done = 0;
    // A slot that has no call yet gets one, and is polled, as soon as the task runs.
    let mut to_poll: Vec<usize> = (0..window).collect();
    futures::future::poll_fn(|cx| {
        woken.task.register(cx.waker());
        let mut polls = 0;
        loop {
            if to_poll.is_empty() {
                woken.take(&mut to_poll);
            }
            if to_poll.is_empty() {
                return Poll::Pending;
            }
            if polls >= YIELD_AFTER * window {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            for slot in to_poll.drain(..) {
                let mut cx = Context::from_waker(&wakers[slot]);
                loop {
                    if slots[slot].is_none() {
                        if sent as usize >= total {
                            break;
                        }
                        slots[slot].set(Some(call(sent)));
                        sent += 1;
                    }
                    let Some(future) = slots[slot].as_mut().as_pin_mut() else {
                        break;
                    };
                    polls += 1;
                    match future.poll(&mut cx) {
                        Poll::Pending => break,
                        Poll::Ready(answer) => {
                            slots[slot].set(None);
                            if !answer? {
                                return Poll::Ready(Err(crate::BenchError::msg(
                                    "the echo came back different",
                                )
                                .into()));
                            }
                            done += 1;
                        }
                    }
                }
            }
            if done == total {
                return Poll::Ready(Ok(()));
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Calls answered by a timer after a while, at most `window` of them at once.
    #[tokio::test]
    async fn keeps_the_window_full_and_answers_every_call() {
        let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let answered = Arc::new(AtomicUsize::new(0));
        run::<_, _, crate::BenchError>(100, 8, |i| {
            let (in_flight, most, answered) = (
                Arc::clone(&in_flight),
                Arc::clone(&most),
                Arc::clone(&answered),
            );
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_micros(100 + i % 7 * 50)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                answered.fetch_add(1, Ordering::SeqCst);
                Ok(true)
            }
        })
        .await
        .expect("all answered");
        assert_eq!(answered.load(Ordering::SeqCst), 100);
        assert_eq!(most.load(Ordering::SeqCst), 8, "the window was kept full");
    }

    #[tokio::test]
    async fn calls_that_answer_at_once_and_more_slots_than_calls() {
        let made = AtomicUsize::new(0);
        run::<_, _, crate::BenchError>(5, 64, |_| {
            made.fetch_add(1, Ordering::SeqCst);
            async { Ok(true) }
        })
        .await
        .expect("all answered");
        assert_eq!(made.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_wrong_answer_or_an_error_stops_the_run() {
        let wrong = run::<_, _, crate::BenchError>(10, 4, |i| async move { Ok(i != 6) }).await;
        assert!(wrong.is_err());
        let failed = run::<_, _, crate::BenchError>(10, 4, |i| async move {
            if i == 3 {
                Err(crate::BenchError::msg("refused"))
            } else {
                Ok(true)
            }
        })
        .await;
        assert_eq!(failed.err().map(|e| e.to_string()), Some("refused".into()));
    }

    /// A call that wakes itself at every poll (as tokio's budget does) makes the task yield
    /// now and then instead of polling it on and on.
    #[tokio::test]
    async fn a_call_that_keeps_waking_itself_makes_the_task_yield() {
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&polls);
        let run = run::<_, _, crate::BenchError>(1, 1, move |_| {
            let polls = Arc::clone(&counted);
            futures::future::poll_fn(move |cx| {
                if polls.fetch_add(1, Ordering::SeqCst) < 20 {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                } else {
                    Poll::Ready(Ok(true))
                }
            })
        });
        let mut run = std::pin::pin!(run);
        let mut task_polls = 0;
        futures::future::poll_fn(|cx| {
            task_polls += 1;
            run.as_mut().poll(cx)
        })
        .await
        .expect("answered");
        assert_eq!(polls.load(Ordering::SeqCst), 21);
        assert_eq!(task_polls, 21_usize.div_ceil(YIELD_AFTER));
    }
}
