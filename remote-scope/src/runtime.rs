//! The async runtime seam: spawning tasks and sleeping.
//!
//! The core (registry, protocol, routing, calls) never names an executor; a [`Node`](crate::Node)
//! is given a [`Runtime`]. Natively that is tokio (picked up from the surrounding tokio runtime);
//! in a browser it is the page's event loop (wasm-bindgen-futures and timers).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed future that is `Send` where threads exist (native) and need not be on wasm32.
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// A boxed future that is `Send` where threads exist (native) and need not be on wasm32.
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// `Send` on native targets, nothing on wasm32: bodies served natively run on a thread pool.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}
/// `Send` on native targets, nothing on wasm32: bodies served natively run on a thread pool.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// Lets the executor run its other tasks before this one goes on: the task wakes itself and
/// returns `Pending` once, which puts it behind the tasks already waiting, on any executor. A
/// connection's tasks call it after a bounded amount of work, so that no peer, however busy it
/// keeps them, holds a worker thread.
pub(crate) async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// What a node needs from an executor.
///
/// ```
/// use std::time::Duration;
/// use remote_scope::runtime::{BoxFuture, Runtime};
///
/// /// Runs everything on tokio, as the built-in native runtime does.
/// struct MyTokio(tokio::runtime::Handle);
///
/// impl Runtime for MyTokio {
///     fn spawn(&self, task: BoxFuture<'static, ()>) {
///         self.0.spawn(task);
///     }
///     fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
///         Box::pin(tokio::time::sleep(duration))
///     }
/// }
/// ```
pub trait Runtime: Send + Sync + 'static {
    /// Runs `task` to completion in the background.
    fn spawn(&self, task: BoxFuture<'static, ()>);
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// The time since some fixed instant, on the clock `sleep` waits by: calls keep their
    /// deadlines on it, and a call times out once `now` has passed its deadline *and* a `sleep`
    /// towards it has ended. The default reads the system's monotonic clock
    /// (`std::time::Instant`; `performance.now()` in a browser). A runtime whose `sleep` keeps
    /// time of its own (a simulated clock, a paused one) must override it, or its calls time
    /// out by the system clock; the built-in tokio runtime follows tokio's clock, paused or not.
    fn now(&self) -> Duration {
        clock_now()
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn clock_now() -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

#[cfg(target_arch = "wasm32")]
fn clock_now() -> Duration {
    thread_local! {
        // Looked up once, not on every call: `now` runs for every call made and every timer.
        static PERFORMANCE: Option<(js_sys::wasm_bindgen::JsValue, js_sys::Function)> =
            performance_now();
    }
    // `performance.now()` is monotonic; `Date.now()` is the fallback where it is missing.
    let millis = PERFORMANCE
        .with(|found| {
            let (performance, now) = found.as_ref()?;
            now.call0(performance).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now);
    // `as` saturates (and takes NaN to 0) where `from_secs_f64` would panic, and brings no
    // panic message into the page.
    Duration::from_nanos((millis * 1_000_000.0) as u64)
}

/// The global `performance` object and its `now` method, where the global has them.
#[cfg(target_arch = "wasm32")]
fn performance_now() -> Option<(js_sys::wasm_bindgen::JsValue, js_sys::Function)> {
    let performance = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).ok()?;
    let now = js_sys::Reflect::get(&performance, &"now".into()).ok()?;
    now.is_function()
        .then(|| (performance, js_sys::Function::from(now)))
}

/// The native runtime: the tokio runtime the node was built in, and its clock (which a test
/// may pause): `now` counts from when this was made, on tokio's clock.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) struct Tokio {
    handle: tokio::runtime::Handle,
    start: tokio::time::Instant,
}

#[cfg(not(target_arch = "wasm32"))]
impl Runtime for Tokio {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        self.handle.spawn(task);
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn now(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.start)
    }
}

/// The runtime a node built here gets when none is given ([`NodeBuilder::runtime`]): natively
/// the tokio runtime this is called in, in a browser the page's event loop. Fails with
/// [`Error::Setup`] natively outside a tokio runtime.
///
/// Handy for what takes a runtime of its own, such as [`faulty::pair`].
///
/// [`NodeBuilder::runtime`]: crate::NodeBuilder::runtime
/// [`Error::Setup`]: crate::Error::Setup
/// [`faulty::pair`]: crate::transport::faulty::pair
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use std::time::{Duration, Instant};
///
/// let runtime = remote_scope::runtime::current()?;
/// let started = Instant::now();
/// runtime.sleep(Duration::from_millis(5)).await;
/// assert!(started.elapsed() >= Duration::from_millis(5));
/// # Ok(()) }
/// ```
#[cfg(not(target_arch = "wasm32"))]
pub fn current() -> Result<std::sync::Arc<dyn Runtime>, crate::error::Error> {
    tokio::runtime::Handle::try_current()
        .map(|handle| {
            std::sync::Arc::new(Tokio {
                handle,
                start: tokio::time::Instant::now(),
            }) as std::sync::Arc<dyn Runtime>
        })
        .map_err(|_| crate::error::Error::Setup {
            reason: "no tokio runtime here: build the node inside one, or give it a runtime with \
                     NodeBuilder::runtime"
                .into(),
        })
}

/// The browser runtime: the page's event loop.
#[cfg(target_arch = "wasm32")]
pub(crate) struct Browser;

#[cfg(target_arch = "wasm32")]
impl Runtime for Browser {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        wasm_bindgen_futures::spawn_local(task);
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        // The browser's timers take at most 2^31 - 1 ms (about 25 days), and gloo's throws on a
        // longer one: a longer sleep ends early, and a deadline waited for by `now` sleeps again.
        const LONGEST: Duration = Duration::from_millis(i32::MAX as u64);
        Box::pin(gloo_timers::future::sleep(duration.min(LONGEST)))
    }
}

/// The runtime a node built here gets when none is given: the page's event loop. Never fails
/// in a browser.
#[cfg(target_arch = "wasm32")]
pub fn current() -> Result<std::sync::Arc<dyn Runtime>, crate::error::Error> {
    Ok(std::sync::Arc::new(Browser))
}
