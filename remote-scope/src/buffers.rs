//! How long buffers live: the one policy every buffer of a connection follows, and the sizes
//! it is tuned by. The code that applies each rule takes its sizes from here. (The socket's
//! rules are the native WebSocket transport's; a browser's WebSocket keeps its own buffers.)
//!
//! A frame's bytes are shared, not copied, while that is cheap, and copied as soon as sharing
//! would let a few bytes keep a large buffer alive, or let one peer's backlog keep buffers of
//! other connections alive. Nothing is kept for a connection that is idle.
//!
//! - **Encoding.** Small frames and values are cut from one buffer per thread
//!   ([`ENCODE_CHUNK`], `protocol::arena`): an allocation per buffer, not per frame. The
//!   thread keeps its buffer only while it is one chunk, so a large frame's allocation is its
//!   own and goes with it.
//! - **Queueing.** A connection's batch holds at most [`SHARED_PER_BATCH`] frames that share
//!   the encoder's buffers with other connections' frames; later ones are copied into buffers
//!   of the connection's own ([`OWN_CHUNK`], `outbox`), so a slow reader's backlog keeps alive
//!   only its own frames. The writer's batch keeps at most [`BATCH_KEEP`] slots between
//!   bursts.
//! - **Writing.** The socket gathers headers and small frames in a staging buffer sealed when
//!   full (at least [`STAGING_ROOM`]), and writes a payload of [`WRITTEN_IN_PLACE`] or more
//!   from where it lies; past [`HIGH_WATER`] queued, it writes before taking more.
//! - **Reading.** The socket reads into one buffer that hands out each message as a part of
//!   it: room for the rest of the message plus [`READ_CHUNK`], reserved at most [`MAX_RESERVE`]
//!   at a time whatever a header announces. A large message's buffer is taken back from its
//!   start for the next one once the message is gone (until then the next one's first bytes
//!   are read onto the stack, at most [`FIRST_READ`]), and let go once a small message follows.
//! - **Decoding.** A decoded frame's byte fields are parts of the message as read, not copies
//!   (`protocol::decode`), for as long as the frame is handled.
//! - **Received parts.** A value for a waiting call or a body's captures, kept after the frame:
//!   up to [`INLINE_RECEIVED`] bytes are copied inline (no buffer, no reference count); from
//!   [`SHARE_ABOVE`] on, or when no one else holds them (middleware made them), they are kept
//!   as they are; in between they are copied out, so a small part does not keep the whole read
//!   buffer alive (`protocol::received`, `tasks::reader`).

/// The size of each per-thread buffer frames are cut from.
pub(crate) const ENCODE_CHUNK: usize = 16 << 10;

/// The fewest and the most frames sharing a buffer with other connections' frames that a batch
/// holds as they are; later ones are copied. Between the two, as many as half the queue's limit
/// has room for the encoder's buffers: the batch being written holds as many again. So however
/// long a backlog grows, the shared buffers it keeps alive take about as much memory as the
/// limit allows the frames themselves, and a batch of up to that many frames (most batches) is
/// not copied.
pub(crate) const SHARED_PER_BATCH: (usize, usize) = (16, 1024);

/// The size of a connection's own buffers for copied frames. One is dropped once what was taken
/// has been written and nothing waits, so an idle connection keeps none.
pub(crate) const OWN_CHUNK: usize = 4 << 10;

/// The queue capacity a connection's writer keeps between bursts.
pub(crate) const BATCH_KEEP: usize = 1024;

/// The least room the socket's staging buffer is given when it runs out.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const STAGING_ROOM: usize = 4 << 10;

/// A payload at least this large is written from its own buffer instead of being copied behind
/// its header (a client's only when it can mask it there, as no one else holds it).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const WRITTEN_IN_PLACE: usize = 4 << 10;

/// Queued bytes over which the socket writes what is queued before it takes more.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const HIGH_WATER: usize = 256 << 10;

/// How much room a read asks for at least. A larger message still arrives whole: the buffer is
/// grown to hold it once its header has been read.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const READ_CHUNK: usize = 16 << 10;

/// The most of a message a read reserves room for at once (it adds a [`READ_CHUNK`]). A
/// message's header may announce up to the node's `max_frame_size`; room for a large one grows
/// as its bytes come, not on its header's word.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const MAX_RESERVE: usize = 1 << 20;

/// How much is read onto the stack while a large message still holds the read buffer.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) const FIRST_READ: usize = 4 << 10;

/// The most bytes a received part holds inline.
pub(crate) const INLINE_RECEIVED: usize = 30;

/// A received part from this size on stays a part of the message as read.
pub(crate) const SHARE_ABOVE: usize = 16 << 10;
