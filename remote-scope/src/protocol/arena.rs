//! Where small frames and values are written: one buffer per thread that frames are cut from.
//!
//! A frame of its own `Vec` costs an allocation to encode it and another for the `Bytes` that
//! carries it, each freed again on whichever thread the transport drops it. Cutting frames from
//! a shared buffer makes both a reference count: a new buffer is allocated only once the frames
//! still alive have used one up, and the old one goes when its last frame does.
//!
//! The thread keeps a buffer only while it is one [`CHUNK`]: a frame that outgrew it leaves the
//! thread without a buffer, so the larger allocation is the frame's alone and freed with it,
//! and no later small frame pins it. A small frame that has to wait behind a backlog is copied
//! out by the connection's outbox, so a peer that reads slowly cannot make its frames keep many
//! buffers alive.

use std::cell::RefCell;
use std::convert::Infallible;

use bytes::{Bytes, BytesMut};

use crate::buffers::ENCODE_CHUNK as CHUNK;

thread_local! {
    static FREE: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Runs `write` on a buffer with at least `room` bytes free, and returns what it wrote, cut
/// from the thread's buffer. `write` may write more than `room`: the buffer grows.
pub(crate) fn cut<E>(
    room: usize,
    write: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<BytesMut, E> {
    // Taken out while `write` runs: a `Serialize` impl that encodes something itself finds no
    // buffer and starts one, instead of meeting a borrowed cell. While the thread ends, there
    // is no buffer to take (or keep): each frame then starts one of its own.
    let mut buf = FREE
        .try_with(|free| std::mem::take(&mut *free.borrow_mut()))
        .unwrap_or_default();
    if buf.capacity() < room {
        // Reclaims the buffer if every frame cut from it is gone, or starts a new one.
        buf.reserve(room.max(CHUNK));
    }
    let written = write(&mut buf);
    let frame = buf.split();
    // Still within one chunk: nothing grew it.
    if frame.len() + buf.capacity() <= CHUNK {
        let _ = FREE.try_with(|free| *free.borrow_mut() = buf);
    }
    written.map(|()| frame)
}

/// Writes a frame into its buffer, growing it to the next power of two when it runs out of
/// room, as a `Vec` grows: a large frame's buffer is up to twice the frame, not the frame's
/// exact size. Exact sizes kept glibc's dynamic mmap threshold at the payload's size, and glibc
/// then gave the heap back to the kernel after every large round trip and faulted it in again:
/// 200 round trips of 1 MiB took 139 000–148 000 page faults and ran at 247–374 MB/s, against
/// 2 000–14 000 faults and 513–1274 MB/s with this growth (BENCHMARKS.md).
pub(crate) struct Growing<'a>(pub(crate) &'a mut BytesMut);

impl Growing<'_> {
    #[inline]
    pub(super) fn put(&mut self, data: &[u8]) {
        self.reserve(data.len());
        self.0.extend_from_slice(data);
    }

    /// Makes room for `more` bytes.
    #[inline]
    pub(super) fn reserve(&mut self, more: usize) {
        let len = self.0.len();
        if self.0.capacity() - len < more {
            let needed = len.saturating_add(more);
            let size = needed.checked_next_power_of_two().unwrap_or(needed);
            self.0.reserve(size - len);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Puts `data` in at `at`, what follows moving up behind it.
    pub(super) fn insert(&mut self, at: usize, data: &[u8]) {
        let len = self.0.len();
        self.put(data);
        self.0.copy_within(at..len, at + data.len());
        self.0[at..at + data.len()].copy_from_slice(data);
    }
}

/// `bytes` copied into a buffer of their own, or rather into a part of the thread's: what they
/// were part of need not be kept for them.
pub(crate) fn copy(bytes: &[u8]) -> Bytes {
    match cut(bytes.len(), |buf| {
        buf.extend_from_slice(bytes);
        Ok::<(), Infallible>(())
    }) {
        Ok(copied) => copied.freeze(),
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;

    use super::*;

    #[test]
    fn frames_are_cut_from_one_buffer_and_stay_apart() {
        let a = copy(b"first");
        let b = copy(b"second");
        assert_eq!(&a[..], b"first");
        assert_eq!(&b[..], b"second");
        // Cut from the same allocation: the second starts where the first ends.
        assert_eq!(a.as_ptr().wrapping_add(a.len()), b.as_ptr());
    }

    #[test]
    fn a_failed_write_gives_its_error_and_leaves_nothing_behind() {
        let failed = cut(8, |b| {
            b.put_slice(b"half");
            Err("broken")
        });
        assert_eq!(failed.map(|_| ()), Err("broken"));
        assert_eq!(&copy(b"whole")[..], b"whole");
    }

    #[test]
    fn a_buffer_grows_to_powers_of_two() {
        let mut buf = BytesMut::new();
        Growing(&mut buf).put(&[1; 100]);
        assert_eq!(buf.capacity(), 128);
        Growing(&mut buf).put(&vec![2; 1 << 20]);
        assert_eq!(buf.capacity(), 2 << 20);
        assert_eq!(buf.len(), (1 << 20) + 100);
        assert_eq!((buf[99], buf[100]), (1, 2));
    }

    #[test]
    fn a_buffer_that_grew_is_not_kept_by_the_thread() {
        let _small = copy(b"small");
        // A frame of two chunks, written as a serializer writes.
        let large = cut(8, |b| {
            for _ in 0..2 * CHUNK / 100 {
                Growing(&mut *b).put(&[7; 100]);
            }
            Ok::<(), Infallible>(())
        })
        .expect("writes");
        assert!(large.len() > CHUNK);
        // The thread holds no room in the grown allocation: it goes when the frame does, and
        // the next small frame starts a chunk of its own.
        assert_eq!(FREE.with(|free| free.borrow().capacity()), 0);
        let next = copy(b"next");
        assert_ne!(large.as_ptr().wrapping_add(large.len()), next.as_ptr());
    }
}
