//! A connection's whole inbound path, through a real [`Node`]: frame decoding, the reader,
//! `Connection::receive`/`start` (authorization, the repeated-request window, the capture size
//! limit, the bodies-per-connection limit), `Cancel`, keep-alive and call deadlines, the bodies'
//! server task, result encoding and the writer. A fake peer that has done a valid handshake over
//! an in-memory transport plays a script read from the input; everything runs on a
//! deterministic single-threaded executor with a virtual clock that moves only when the script
//! says so, so that both orders of a deadline and a frame are reached.
//!
//! The input is a flag byte (bit 0: the node dials instead of accepting; bit 1: the node has a
//! pass-through middleware, which takes the copying paths) and then commands, each an opcode
//! byte (taken modulo [`OPS`]) and its operands; operands past the end read as zeros:
//!
//! | op | operands | what the fake peer does |
//! |---|---|---|
//! | 0 raw | len: u16 le, bytes | sends the bytes as one message |
//! | 1 invoke | id, body: u8, timeout: u8, len: u16 le, captures | sends an `Invoke` of registered body `body` (one past the last: an unknown name) |
//! | 2 result | id, kind: u8, len: u8, bytes | sends a `Result`: a value, or one of the failures |
//! | 3 cancel | id | sends `Cancel` |
//! | 4 other | which: u8 | sends `Ping`, `Pong`, a `Message`, a second `Hello` or a `Reject` |
//! | 5 run | | lets everything run until nothing moves |
//! | 6 advance | | moves the clock to the next timer, then runs |
//! | 7 call | kind: u8, timeout: u8, arg: u8 | the node calls the fake peer (answered by `result`) |
//! | 8 drop call | | the oldest call the node makes is dropped (it sends `Cancel`) |
//! | 9 close | | closes the fake peer's sending side |
//! | 10 disconnect | | the node disconnects the fake peer |
//! | 11 repeat | | sends the previous message again |
//!
//! An `id` is one byte below 0x80, or 0x80 and above followed by 8 bytes (u64 le). A `timeout`
//! byte is `v = b >> 2` with mode `b & 3`: `v` ms, `v` s, 30 s, or `u64::MAX` ms.
//!
//! Checked, besides "no panic, no hang, bounded memory": every frame the node sends decodes;
//! it answers each request id at most once and only ids it was sent; a denied body never runs
//! and captures over the limit are never decoded; at every quiescent point the node runs at most
//! `max_bodies_per_connection` bodies and exactly as many as are alive; and once the fake peer
//! is gone, the node holds no connection, call, body, task or timer, and is itself freed.
//!
//! Seeds: `CONNECTION_SEEDS=corpus/connection cargo +nightly fuzz run connection` writes them
//! (valid `Invoke`, `Cancel`, `Result`, `Ping` frames made with `protocol::encode`) and exits.
#![no_main]

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::LocalBoxFuture;
use futures::task::ArcWake;
use futures::{Sink, Stream};
use libfuzzer_sys::fuzz_target;
use remote_scope::protocol::{self, Failure, Frame, Hello, Invoke, InvokeResult, Outcome, Reject};
use remote_scope::runtime::{BoxFuture, Runtime};
use remote_scope::transport::memory::{self, MemoryTransport};
use remote_scope::transport::Bytes;
use remote_scope::{Middleware, Node, PeerId, Registry};

const MAX_FRAME: usize = 2048;
const MAX_CAPTURES: usize = 256;
const MAX_BODIES: usize = 4;
/// Two large results fill it, so a peer that sends many calls at once is disconnected.
const MAX_QUEUED: usize = 64 << 10;
/// The node's own id and the fake peer's.
const NODE: &str = "node";
const PEER: &str = "peer";
/// Rounds of polling without quiescence after which some task must be waking itself forever.
const MAX_ROUNDS: usize = 10_000;
/// Timers due later than this on the virtual clock never fire: no real clock gets there.
const HORIZON: Duration = Duration::from_secs(1 << 30);
/// The payload of the panics the bodies raise on purpose; any other panic is a crash.
const DELIBERATE: &str = "deliberate panic in a fuzzed body";
const OPS: u8 = 12;

/// Bodies that may still be running: held by every body that can wait.
static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Live;

impl Live {
    fn new() -> Live {
        LIVE.fetch_add(1, Ordering::SeqCst);
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The bodies the node serves, in the shapes that reach each branch of serving.
mod bodies {
    use std::time::Duration;

    use remote_scope::{remote, Call, Error, Node, PeerId};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Live, DELIBERATE};

    /// Answers at once.
    pub fn quick(peer: &PeerId, a: u64, b: Vec<u8>) -> Call<u64> {
        remote!(peer, [a: u64, b: Vec<u8>], { a.wrapping_add(b.len() as u64) })
    }

    /// A value above the size that is framed in place, and that fills the outbound queue.
    pub fn big(peer: &PeerId, n: u32) -> Call<Vec<u8>> {
        remote!(peer, [n: u32], { vec![0x5a_u8; (n as usize).min(40_000)] })
    }

    /// Waits on the node's clock.
    pub fn wait(peer: &PeerId, ms: u32) -> Call<u32> {
        remote!(peer, [ms: u32], {
            let _live = Live::new();
            if let Some(node) = Node::current() {
                node.sleep(Duration::from_millis(ms.into())).await;
            }
            ms
        })
    }

    /// Runs until it is stopped.
    pub fn forever(peer: &PeerId) -> Call<()> {
        remote!(peer, [], {
            let _live = Live::new();
            std::future::pending::<()>().await
        })
    }

    /// Calls `back` (the fake peer, this node, or nobody) from inside a body.
    pub fn nested(peer: &PeerId, back: PeerId, x: u64, ms: u32) -> Call<Result<u64, Error>> {
        remote!(peer, [back: PeerId, x: u64, ms: u32], {
            let _live = Live::new();
            remote!(back, [x: u64], { x.wrapping_add(1) })
                .timeout(Duration::from_millis(ms.into()))
                .await
        })
    }

    /// Panics before it first waits (bit 0) or after (bit 1).
    pub fn panics(peer: &PeerId, how: u8, ms: u32) -> Call<u8> {
        remote!(peer, [how: u8, ms: u32], {
            let _live = Live::new();
            if how & 1 == 1 {
                std::panic::panic_any(DELIBERATE);
            }
            if let Some(node) = Node::current() {
                node.sleep(Duration::from_millis(ms.into())).await;
            }
            if how & 2 == 2 {
                std::panic::panic_any(DELIBERATE);
            }
            how
        })
    }

    /// A value that fails to encode when asked to.
    pub struct Refuses(pub bool);

    impl Serialize for Refuses {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if self.0 {
                return Err(serde::ser::Error::custom("refuses to be encoded"));
            }
            s.serialize_bool(false)
        }
    }

    impl<'de> Deserialize<'de> for Refuses {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            bool::deserialize(d).map(Refuses)
        }
    }

    pub fn unencodable(peer: &PeerId, fail: bool) -> Call<Refuses> {
        remote!(peer, [fail: bool], { Refuses(fail) })
    }

    /// Acts on the node from inside a body: messages, disconnects, shuts down.
    pub fn meddle(peer: &PeerId, back: PeerId, what: u8) -> Call<u8> {
        remote!(peer, [back: PeerId, what: u8], {
            let _live = Live::new();
            if let Some(node) = Node::current() {
                match what % 4 {
                    0 => {
                        let _ = node.send_message(&back, vec![what]);
                    }
                    1 => {
                        node.disconnect(&back);
                    }
                    2 => node.shutdown(),
                    _ => {
                        let _ = node.stats();
                    }
                }
            }
            what
        })
    }

    /// Bodies the node's policy refuses to every peer.
    pub mod denied {
        use remote_scope::{remote, Call, PeerId};

        pub fn secret(peer: &PeerId, a: u64) -> Call<u64> {
            remote!(peer, [a: u64], { a ^ 0x5ec2e7 })
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The node's runtime: spawned tasks wait for the executor below; timers fire when the script
/// moves the virtual clock.
#[derive(Default)]
struct Sim {
    spawned: Mutex<Vec<BoxFuture<'static, ()>>>,
    clock: Mutex<Clock>,
}

#[derive(Default)]
struct Clock {
    now: Duration,
    timers: Vec<Weak<Timer>>,
}

struct Timer {
    at: Duration,
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Timer {
    fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        if let Some(waker) = lock(&self.waker).take() {
            waker.wake();
        }
    }
}

struct Sleep(Arc<Timer>);

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.fired.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        *lock(&self.0.waker) = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Runtime for Sim {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        lock(&self.spawned).push(task);
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let mut clock = lock(&self.clock);
        let at = clock.now.checked_add(duration).unwrap_or(Duration::MAX);
        let timer = Arc::new(Timer {
            at,
            // Due already: a zero sleep is ready at once.
            fired: AtomicBool::new(at <= clock.now),
            waker: Mutex::new(None),
        });
        if at > clock.now {
            clock.timers.push(Arc::downgrade(&timer));
        }
        Box::pin(Sleep(timer))
    }

    fn now(&self) -> Duration {
        lock(&self.clock).now
    }
}

impl Sim {
    /// Moves the clock to the soonest live timer (within the horizon) and fires every timer due
    /// by then.
    fn advance(&self) {
        let due = {
            let mut clock = lock(&self.clock);
            clock.timers.retain(|t| t.strong_count() > 0);
            let next = clock
                .timers
                .iter()
                .filter_map(Weak::upgrade)
                .map(|t| t.at)
                .filter(|&at| at <= HORIZON)
                .min();
            let Some(next) = next else { return };
            clock.now = clock.now.max(next);
            let now = clock.now;
            let mut due = Vec::new();
            clock.timers.retain(|t| match t.upgrade() {
                Some(timer) if timer.at <= now => {
                    due.push(timer);
                    false
                }
                Some(_) => true,
                None => false,
            });
            due
        };
        for timer in due {
            timer.fire();
        }
    }

    fn live_timers(&self) -> usize {
        lock(&self.clock)
            .timers
            .iter()
            .filter(|t| t.strong_count() > 0)
            .count()
    }
}

struct Woken(AtomicBool);

impl ArcWake for Woken {
    fn wake_by_ref(this: &Arc<Self>) {
        this.0.store(true, Ordering::SeqCst);
    }
}

struct Task {
    future: LocalBoxFuture<'static, ()>,
    woken: Arc<Woken>,
    /// A call this script made (not a task of the node's).
    call: bool,
}

/// A deterministic executor: polls woken tasks in rounds until none is woken.
struct Exec {
    sim: Arc<Sim>,
    tasks: Vec<Task>,
}

impl Exec {
    fn spawn(&mut self, future: LocalBoxFuture<'static, ()>, call: bool) {
        self.tasks.push(Task {
            future,
            woken: Arc::new(Woken(AtomicBool::new(true))),
            call,
        });
    }

    fn settle(&mut self) {
        for _ in 0..MAX_ROUNDS {
            let spawned = std::mem::take(&mut *lock(&self.sim.spawned));
            for task in spawned {
                self.spawn(task, false);
            }
            let mut polled = false;
            let mut i = 0;
            while i < self.tasks.len() {
                if self.tasks[i].woken.0.swap(false, Ordering::SeqCst) {
                    polled = true;
                    let waker = futures::task::waker(Arc::clone(&self.tasks[i].woken));
                    let mut cx = Context::from_waker(&waker);
                    if self.tasks[i].future.as_mut().poll(&mut cx).is_ready() {
                        self.tasks.swap_remove(i);
                        continue;
                    }
                }
                i += 1;
            }
            if !polled && lock(&self.sim.spawned).is_empty() {
                return;
            }
        }
        panic!("no quiescence after {MAX_ROUNDS} rounds: a task keeps waking itself");
    }

    fn drop_oldest_call(&mut self) {
        if let Some(i) = self.tasks.iter().position(|t| t.call) {
            drop(self.tasks.remove(i));
        }
    }
}

/// Passes every frame on but swallows user messages that start with 0xff, so the middleware
/// path both forwards and consumes.
struct PassThrough;

impl Middleware for PassThrough {
    fn inbound(&self, _: &remote_scope::Link, frame: Frame) -> Option<Frame> {
        match frame {
            Frame::Message(bytes) if bytes.first() == Some(&0xff) => None,
            other => Some(other),
        }
    }
}

/// The script's end of the connection, and what it has seen go by.
struct Fake {
    end: MemoryTransport,
    last: Option<Bytes>,
    /// The first `Invoke` the node could decode for each request id: body name and capture
    /// size (the node answers the first one and ignores repeats).
    invoked: HashMap<u64, (String, usize)>,
    answered: HashSet<u64>,
    node_calls: HashSet<u64>,
}

impl Fake {
    fn new(end: MemoryTransport) -> Fake {
        Fake {
            end,
            last: None,
            invoked: HashMap::new(),
            answered: HashSet::new(),
            node_calls: HashSet::new(),
        }
    }

    fn send(&mut self, bytes: Bytes) {
        if bytes.len() <= MAX_FRAME {
            if let Some(Frame::Invoke(invoke)) = remote_scope::__fuzz::decode_received(&bytes, None)
            {
                self.invoked
                    .entry(invoke.id)
                    .or_insert((invoke.body.into_owned(), invoke.captures.len()));
            }
        }
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut end = Pin::new(&mut self.end);
        if let Poll::Ready(Ok(())) = end.as_mut().poll_ready(&mut cx) {
            // Fails once the node has gone; the script goes on regardless.
            let _ = end.start_send(bytes.clone());
        }
        self.last = Some(bytes);
    }

    fn send_frame(&mut self, frame: &Frame) {
        self.send(protocol::encode(frame).expect("a frame encodes"));
    }

    fn close(&mut self) {
        let waker = futures::task::noop_waker();
        let _ = Pin::new(&mut self.end).poll_close(&mut Context::from_waker(&waker));
    }

    /// Everything the node has sent since the last look.
    fn received(&mut self) -> Vec<Bytes> {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut got = Vec::new();
        while let Poll::Ready(Some(message)) = Pin::new(&mut self.end).poll_next(&mut cx) {
            got.push(message.expect("the in-memory transport does not fail"));
        }
        got
    }

    /// Reads what the node sent and checks it.
    fn check_received(&mut self) {
        for bytes in self.received() {
            let frame = protocol::decode(bytes, usize::MAX)
                .unwrap_or_else(|e| panic!("the node sent a frame that does not decode: {e}"));
            match frame {
                Frame::Result(InvokeResult { id, outcome }) => self.check_answer(id, &outcome),
                Frame::Invoke(Invoke { id, .. }) => {
                    assert!(
                        self.node_calls.insert(id),
                        "the node reused request id {id}"
                    );
                }
                Frame::Cancel(id) => assert!(
                    self.node_calls.contains(&id),
                    "the node cancelled request {id}, which it never made"
                ),
                Frame::Hello(_) | Frame::Reject(_) => {
                    panic!("the node sent a handshake frame after the handshake: {frame:?}")
                }
                _ => {}
            }
        }
    }

    fn check_answer(&mut self, id: u64, outcome: &Outcome) {
        assert!(self.answered.insert(id), "request {id} answered twice");
        let Some((body, captures)) = self.invoked.get(&id) else {
            panic!("the node answered request {id}, which it was never sent: {outcome:?}");
        };
        // The body ran, or at least its captures were decoded.
        let ran = matches!(
            outcome,
            Outcome::Value(_)
                | Outcome::Failure(
                    Failure::Panicked { .. }
                        | Failure::DecodeCaptures { .. }
                        | Failure::EncodeResult { .. }
                )
        );
        assert!(
            !(ran && body.contains("::denied::")),
            "denied body {body} ran for request {id}: {outcome:?}"
        );
        assert!(
            !(ran && *captures > MAX_CAPTURES),
            "captures of {captures} bytes (limit {MAX_CAPTURES}) decoded for request {id}: {outcome:?}"
        );
    }
}

/// Reads the script, with zeros past its end.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }

    fn u16(&mut self) -> usize {
        usize::from(u16::from_le_bytes([self.byte(), self.byte()]))
    }

    fn id(&mut self) -> u64 {
        let first = self.byte();
        if first < 0x80 {
            return first.into();
        }
        let mut le = [0; 8];
        for b in &mut le {
            *b = self.byte();
        }
        u64::from_le_bytes(le)
    }

    fn millis(&mut self) -> u64 {
        let b = self.byte();
        let v = u64::from(b >> 2);
        match b & 3 {
            0 => v,
            1 => v * 1000,
            2 => 30_000,
            _ => u64::MAX,
        }
    }
}

fn hello(id: &str) -> Frame {
    let registry = Registry::global().expect("the registry builds");
    Frame::Hello(Hello {
        version: protocol::PROTOCOL_VERSION,
        peer: PeerId::new(id),
        digest: registry.digest(),
        bodies: u32::try_from(registry.len()).unwrap_or(u32::MAX),
        token: None,
        limits: protocol::Limits::default(),
        pools: Vec::new(),
    })
}

fn build(sim: &Arc<Sim>, middleware: bool) -> Node {
    let builder = Node::builder()
        .id(NODE)
        .runtime(Arc::clone(sim) as Arc<dyn Runtime>)
        .max_frame_size(MAX_FRAME)
        .max_capture_size(MAX_CAPTURES)
        .max_bodies_per_connection(MAX_BODIES)
        .max_queued_bytes(MAX_QUEUED)
        .keepalive(Some(Duration::from_secs(1)))
        .default_timeout(Duration::from_secs(5))
        .authorize(|_: &PeerId, body: &str| !body.contains("::denied::"))
        .on_message(|_, bytes| drop(bytes));
    let builder = if middleware {
        builder.middleware(PassThrough)
    } else {
        builder
    };
    builder.build().expect("the node builds")
}

/// Connects `node` to the fake peer with a valid handshake, either way round.
fn handshake(node: &Node, exec: &mut Exec, dial: bool) -> Fake {
    let (ours, theirs) = memory::pair();
    let mut fake = Fake::new(ours);
    let done: Rc<RefCell<Option<Result<PeerId, remote_scope::Error>>>> = Rc::default();
    let (node2, done2) = (node.clone(), Rc::clone(&done));
    // The dialling node speaks first; an accepting one answers the fake peer's hello.
    if !dial {
        fake.send_frame(&hello(PEER));
    }
    exec.spawn(
        Box::pin(async move {
            let peer = if dial {
                node2.connect_transport(theirs).await
            } else {
                node2.accept_transport(theirs).await
            };
            *done2.borrow_mut() = Some(peer);
        }),
        false,
    );
    exec.settle();
    let first = fake.received();
    assert!(
        matches!(&first[..], [m] if matches!(protocol::decode(m.clone(), usize::MAX), Ok(Frame::Hello(_)))),
        "the node sends one hello"
    );
    if dial {
        fake.send_frame(&hello(PEER));
    }
    exec.settle();
    let outcome = done.borrow_mut().take();
    assert_eq!(
        outcome,
        Some(Ok(PeerId::new(PEER))),
        "the handshake succeeds"
    );
    fake
}

fn failure(kind: u8, text: &[u8]) -> Failure {
    let text = String::from_utf8_lossy(text).into_owned();
    let n = u32::from(kind);
    match kind % 8 {
        0 => Failure::UnknownBody,
        1 => Failure::Panicked { message: text },
        2 => Failure::DecodeCaptures { reason: text },
        3 => Failure::EncodeResult { reason: text },
        4 => Failure::Busy { limit: n },
        5 => Failure::NotAuthorized,
        6 => Failure::CapturesTooLarge { limit: n.into() },
        _ => Failure::ShuttingDown,
    }
}

/// Starts a call from the node to the fake peer, as a task of the script's.
fn call(node: &Node, exec: &mut Exec, kind: u8, timeout: u64, arg: u8) {
    let peer = PeerId::new(PEER);
    let timeout = Duration::from_millis(timeout);
    let future: LocalBoxFuture<'static, ()> = match kind % 4 {
        0 => {
            let call = bodies::quick(&peer, arg.into(), vec![arg; usize::from(arg % 8)]);
            let call = call.on(node).timeout(timeout);
            Box::pin(async move {
                let _ = call.await;
            })
        }
        1 => {
            let call = bodies::big(&peer, u32::from(arg) * 200)
                .on(node)
                .timeout(timeout);
            Box::pin(async move {
                let _ = call.await;
            })
        }
        2 => {
            let call = bodies::forever(&peer).on(node).timeout(timeout);
            Box::pin(async move {
                let _ = call.await;
            })
        }
        _ => {
            let call = bodies::unencodable(&peer, arg & 1 == 1)
                .on(node)
                .timeout(timeout);
            Box::pin(async move {
                let _ = call.await;
            })
        }
    };
    exec.spawn(future, true);
}

/// At a quiescent point: the node runs no more bodies than its limit, and every body it counts
/// as running is alive.
fn check_quiet(node: &Node) {
    let stats = node.stats();
    assert!(
        stats.bodies_running <= MAX_BODIES,
        "{} bodies running for one peer, limit {MAX_BODIES}",
        stats.bodies_running
    );
    assert_eq!(
        LIVE.load(Ordering::SeqCst),
        stats.bodies_running,
        "bodies alive vs. bodies the node counts as running: {stats:?}"
    );
}

fn run(data: &[u8]) {
    let mut input = Input(data);
    let flags = input.byte();
    let sim = Arc::new(Sim::default());
    let node = build(&sim, flags & 2 != 0);
    let mut exec = Exec {
        sim: Arc::clone(&sim),
        tasks: Vec::new(),
    };
    let mut fake = handshake(&node, &mut exec, flags & 1 != 0);
    let names = node.registry().names();
    let peer = PeerId::new(PEER);

    while !input.0.is_empty() {
        match input.byte() % OPS {
            0 => {
                let len = input.u16();
                fake.send(Bytes::copy_from_slice(input.bytes(len)));
            }
            1 => {
                let id = input.id();
                let body = usize::from(input.byte());
                let body = names.get(body % (names.len() + 1)).unwrap_or(&"nowhere::0");
                let timeout_ms = input.millis();
                let len = input.u16();
                let captures = input.bytes(len).to_vec();
                fake.send_frame(&Frame::Invoke(Invoke {
                    id,
                    body: (*body).to_owned().into(),
                    timeout_ms,
                    captures: captures.into(),
                }));
            }
            2 => {
                let id = input.id();
                let kind = input.byte();
                let len = usize::from(input.byte());
                let bytes = input.bytes(len);
                let outcome = if kind & 0x80 == 0 {
                    Outcome::Value(bytes.to_vec().into())
                } else {
                    Outcome::Failure(failure(kind, bytes))
                };
                fake.send_frame(&Frame::Result(InvokeResult { id, outcome }));
            }
            3 => {
                let id = input.id();
                fake.send_frame(&Frame::Cancel(id));
            }
            4 => {
                let frame = match input.byte() % 5 {
                    0 => Frame::Ping,
                    1 => Frame::Pong,
                    2 => {
                        let len = usize::from(input.byte());
                        Frame::Message(input.bytes(len).to_vec().into())
                    }
                    3 => hello(PEER),
                    _ => Frame::Reject(Reject::DuplicatePeer),
                };
                fake.send_frame(&frame);
            }
            5 => {
                exec.settle();
                fake.check_received();
                check_quiet(&node);
            }
            6 => {
                sim.advance();
                exec.settle();
                fake.check_received();
                check_quiet(&node);
            }
            7 => {
                let kind = input.byte();
                let timeout = input.millis();
                let arg = input.byte();
                call(&node, &mut exec, kind, timeout, arg);
            }
            8 => exec.drop_oldest_call(),
            9 => fake.close(),
            10 => {
                node.disconnect(&peer);
            }
            _ => {
                if let Some(last) = fake.last.clone() {
                    fake.send(last);
                }
            }
        }
    }

    exec.settle();
    fake.check_received();
    check_quiet(&node);

    // The peer goes away: nothing may be left behind.
    drop(fake);
    exec.settle();
    let stats = node.stats();
    assert_eq!(
        (stats.connections, stats.calls_waiting, stats.bodies_running),
        (0, 0, 0),
        "left behind once the peer is gone: {stats:?}"
    );
    assert_eq!(LIVE.load(Ordering::SeqCst), 0, "bodies still alive");
    assert!(
        exec.tasks.is_empty(),
        "{} tasks still pending once the peer is gone ({} of them calls)",
        exec.tasks.len(),
        exec.tasks.iter().filter(|t| t.call).count()
    );
    assert_eq!(sim.live_timers(), 0, "timers still held");
    drop(exec);
    drop(node);
    assert_eq!(
        Arc::strong_count(&sim),
        1,
        "the node (which holds its runtime) was not freed"
    );
}

/// Lets the bodies' deliberate panics unwind to the node, which catches them; every other
/// panic still aborts, as libFuzzer's hook makes it.
fn allow_deliberate_panics() {
    let abort = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() == Some(&DELIBERATE) {
            return;
        }
        abort(info)
    }));
}

/// A script under construction, for the seeds.
struct Script(Vec<u8>);

impl Script {
    fn op(mut self, op: u8, operands: &[u8]) -> Script {
        self.0.push(op);
        self.0.extend_from_slice(operands);
        self
    }

    fn raw(self, frame: &Frame) -> Script {
        let bytes = protocol::encode(frame).expect("encodes");
        let len = u16::try_from(bytes.len()).expect("a small frame");
        let mut operands = len.to_le_bytes().to_vec();
        operands.extend_from_slice(&bytes);
        self.op(0, &operands)
    }

    fn invoke(self, id: u8, body: u8, timeout: u8, captures: &[u8]) -> Script {
        let len = u16::try_from(captures.len()).expect("small captures");
        let mut operands = vec![id, body, timeout];
        operands.extend_from_slice(&len.to_le_bytes());
        operands.extend_from_slice(captures);
        self.op(1, &operands)
    }

    fn result(self, id: u8, kind: u8, bytes: &[u8]) -> Script {
        let mut operands = vec![id, kind, u8::try_from(bytes.len()).expect("short")];
        operands.extend_from_slice(bytes);
        self.op(2, &operands)
    }
}

fn write_seeds(dir: &str) {
    let peer = PeerId::new(PEER);
    let names = Registry::global().expect("registry").names();
    let index = |name: &str| {
        u8::try_from(names.iter().position(|n| *n == name).expect("registered")).expect("few")
    };
    let quick = index(bodies::quick(&peer, 0, Vec::new()).body_name());
    let big = index(bodies::big(&peer, 0).body_name());
    let wait = index(bodies::wait(&peer, 0).body_name());
    let forever = index(bodies::forever(&peer).body_name());
    let nested = index(bodies::nested(&peer, peer.clone(), 0, 0).body_name());
    let panics = index(bodies::panics(&peer, 0, 0).body_name());
    let unencodable = index(bodies::unencodable(&peer, false).body_name());
    let meddle = index(bodies::meddle(&peer, peer.clone(), 0).body_name());
    let secret = index(bodies::denied::secret(&peer, 0).body_name());
    let unknown = u8::try_from(names.len()).expect("few");
    let (run, advance) = (5, 6);
    // Timeouts: 2 s; 30 s; none to speak of.
    let (two_s, thirty_s, never) = (2 << 2 | 1, 2, 3);
    let raw_invoke = |id: u64, body: &str, captures: Vec<u8>| {
        Frame::Invoke(Invoke {
            id,
            body: body.to_owned().into(),
            timeout_ms: 30_000,
            captures: captures.into(),
        })
    };

    let seeds: Vec<(&str, Script)> = vec![
        (
            "quick-call-answered",
            Script(vec![0])
                .invoke(1, quick, thirty_s, &captures(&(5_u64, vec![1_u8, 2])))
                .op(run, &[]),
        ),
        (
            "raw-frames",
            Script(vec![0])
                .raw(&raw_invoke(
                    1,
                    names[usize::from(quick)],
                    captures(&(7_u64, vec![3_u8])),
                ))
                .raw(&Frame::Ping)
                .raw(&Frame::Pong)
                .raw(&Frame::Message(b"hi"[..].into()))
                .raw(&Frame::Cancel(1))
                .raw(&Frame::Result(InvokeResult {
                    id: 1,
                    outcome: Outcome::Value(vec![0x2a].into()),
                }))
                .raw(&raw_invoke(2, "nowhere::0", Vec::new()))
                .op(run, &[]),
        ),
        (
            "repeated-request",
            Script(vec![2])
                .invoke(3, quick, thirty_s, &captures(&(1_u64, Vec::<u8>::new())))
                .op(11, &[])
                .op(run, &[])
                .invoke(3, quick, thirty_s, &captures(&(2_u64, Vec::<u8>::new())))
                .op(run, &[]),
        ),
        (
            "wait-then-cancel",
            Script(vec![0])
                .invoke(1, wait, thirty_s, &captures(&(500_u32,)))
                .op(run, &[])
                .raw(&Frame::Cancel(1))
                .op(run, &[]),
        ),
        (
            "wait-until-done",
            Script(vec![1])
                .invoke(1, wait, thirty_s, &captures(&(500_u32,)))
                .op(run, &[])
                .op(advance, &[])
                .op(advance, &[]),
        ),
        (
            "forever-past-deadline",
            Script(vec![0])
                .invoke(1, forever, two_s, &captures(&()))
                .op(advance, &[])
                .op(advance, &[])
                .op(advance, &[]),
        ),
        (
            "cancel-before-first-poll",
            Script(vec![0])
                .invoke(1, forever, never, &captures(&()))
                .raw(&Frame::Cancel(1))
                .op(run, &[]),
        ),
        (
            "busy",
            (1..=6)
                .fold(Script(vec![0]), |s, id| {
                    s.invoke(id, forever, thirty_s, &captures(&()))
                })
                .op(run, &[]),
        ),
        (
            "denied-and-too-large",
            Script(vec![0])
                .invoke(1, secret, thirty_s, &captures(&(9_u64,)))
                .invoke(2, quick, thirty_s, &captures(&(1_u64, vec![0_u8; 400])))
                .invoke(3, unknown, thirty_s, &[0x90])
                .op(run, &[]),
        ),
        (
            "bad-captures",
            Script(vec![0])
                .invoke(1, quick, thirty_s, &[0xc1])
                .invoke(2, quick, thirty_s, &[0x92, 0x01])
                .op(run, &[]),
        ),
        (
            "panics-before-and-after-waiting",
            Script(vec![0])
                .invoke(1, panics, thirty_s, &captures(&(1_u8, 0_u32)))
                .invoke(2, panics, thirty_s, &captures(&(2_u8, 10_u32)))
                .op(run, &[])
                .op(advance, &[]),
        ),
        (
            "big-results-fill-the-queue",
            Script(vec![0])
                .invoke(1, big, thirty_s, &captures(&(40_000_u32,)))
                .invoke(2, big, thirty_s, &captures(&(40_000_u32,)))
                .invoke(3, big, thirty_s, &captures(&(40_000_u32,)))
                .op(run, &[]),
        ),
        (
            "unencodable-result",
            Script(vec![2])
                .invoke(1, unencodable, thirty_s, &captures(&(true,)))
                .invoke(2, unencodable, thirty_s, &captures(&(false,)))
                .op(run, &[]),
        ),
        (
            "nested-call-answered",
            Script(vec![0])
                .invoke(1, nested, thirty_s, &captures(&(PEER, 4_u64, 1000_u32)))
                .op(run, &[])
                .result(1, 0, &[0x05])
                .op(run, &[]),
        ),
        (
            "nested-call-to-itself",
            Script(vec![0])
                .invoke(1, nested, thirty_s, &captures(&(NODE, 4_u64, 1000_u32)))
                .op(run, &[]),
        ),
        (
            "meddling-bodies",
            Script(vec![0])
                .invoke(1, meddle, thirty_s, &captures(&(PEER, 0_u8)))
                .invoke(2, meddle, thirty_s, &captures(&(PEER, 3_u8)))
                .invoke(3, meddle, thirty_s, &captures(&(PEER, 1_u8)))
                .op(run, &[]),
        ),
        (
            "node-calls-answered-failed-dropped",
            Script(vec![0])
                .op(7, &[0, thirty_s, 3])
                .op(7, &[1, thirty_s, 3])
                .op(7, &[2, two_s, 0])
                .op(7, &[3, thirty_s, 1])
                .op(run, &[])
                .result(1, 0, &[0x06])
                .result(2, 0x81, b"boom")
                .op(8, &[])
                .op(run, &[])
                .op(advance, &[])
                .op(advance, &[]),
        ),
        (
            "keepalive-gives-up",
            Script(vec![0])
                .op(advance, &[])
                .op(advance, &[])
                .op(advance, &[]),
        ),
        (
            "hello-after-handshake",
            Script(vec![0]).op(4, &[3]).op(run, &[]),
        ),
        (
            "peer-closes-mid-call",
            Script(vec![0])
                .invoke(1, wait, thirty_s, &captures(&(500_u32,)))
                .op(7, &[0, thirty_s, 1])
                .op(run, &[])
                .op(9, &[])
                .op(run, &[]),
        ),
        (
            "node-disconnects-mid-call",
            Script(vec![3])
                .invoke(1, forever, thirty_s, &captures(&()))
                .op(run, &[])
                .op(10, &[])
                .op(run, &[]),
        ),
    ];
    std::fs::create_dir_all(dir).expect("the seed folder");
    for (name, script) in seeds {
        let path = std::path::Path::new(dir).join(format!("seed-{name}"));
        std::fs::write(&path, &script.0).expect("write a seed");
    }
}

/// A capture tuple, encoded as `remote!` encodes it.
fn captures<T: serde::Serialize>(tuple: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(tuple).expect("captures encode")
}

fuzz_target!(
    init: {
        allow_deliberate_panics();
        if let Ok(dir) = std::env::var("CONNECTION_SEEDS") {
            write_seeds(&dir);
            std::process::exit(0);
        }
    },
    |data: &[u8]| run(data)
);
