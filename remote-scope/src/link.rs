//! Keeping bodies of other crates in a wasm32 binary.

/// Keeps the bodies of the named functions' modules in this binary.
///
/// Bodies register themselves with a static constructor in the object file of the module whose
/// `remote!` defines them. Linkers, native and wasm32 alike, leave out the object files of a
/// library that the binary never calls into. A peer that only *serves* bodies from a library (a
/// server whose bodies the clients call, a browser whose bodies the server calls) would then
/// lack them: a call to one fails with [`Error::UnknownBody`](crate::Error::UnknownBody), whose
/// message names the module and points here ([`Missing::Module`](crate::Missing::Module)).
///
/// Name, in the final binary (the executable, the `cdylib` or the test), one function of each
/// library module that defines bodies the binary does not call itself. It costs nothing at run
/// time.
///
/// ```
/// pub mod jobs {
///     use remote_scope::{remote, Error, PeerId};
///     pub async fn ask(peer: PeerId) -> Result<u8, Error> {
///         remote!(peer, [], { 7_u8 }).await
///     }
/// }
///
/// remote_scope::link!(jobs::ask);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! link {
    ($($function:path),+ $(,)?) => {
        const _: () = {
            #[used]
            static KEEP: $crate::__private::Keep =
                $crate::__private::Keep(&[$($function as *const (),)+]);
        };
    };
}
