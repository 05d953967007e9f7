//! The `remote!` macro and the `#[remote_fn]` attribute of
//! [remote-scope](https://docs.rs/remote-scope). Use them through the `remote_scope` crate,
//! which re-exports them and provides the runtime the expansions call.
//!
//! The pipeline, one module each: `parse` the invocation, `validate` the capture list and the
//! body (with `caller_scope`, which reads what is in scope around the invocation from its
//! source), `name` the body, `expand` it (or emit the errors with a fallback expansion).
//! `function` takes a `#[remote_fn]` through the same steps, with its own checks of the
//! signature.

use proc_macro::TokenStream;

mod caller_scope;
mod expand;
mod function;
mod name;
mod parse;
mod text;
mod validate;

/// Runs a block on another peer. See `remote_scope::remote!` for the documentation.
#[proc_macro]
pub fn remote(input: TokenStream) -> TokenStream {
    let site = name::Site::call_site();
    pipeline(input.into(), |inv, caps| {
        let fingerprints = name::fingerprints(caps, &inv.body);
        expand::remote(inv, caps, &fingerprints, &site)
    })
}

/// Makes an `async fn` a remote function. See `remote_scope::remote_fn` for the documentation.
#[proc_macro_attribute]
pub fn remote_fn(attr: TokenStream, item: TokenStream) -> TokenStream {
    function::remote_fn(attr.into(), item.into(), &name::Site::call_site()).into()
}

/// The typing-only form of `remote!` that the expansion of an enclosing `remote!` uses for
/// nested calls in its typing copy. Not public API.
#[doc(hidden)]
#[proc_macro]
pub fn remote_typing(input: TokenStream) -> TokenStream {
    pipeline(input.into(), expand::typing_only)
}

fn pipeline(
    input: proc_macro2::TokenStream,
    expand: impl FnOnce(&parse::Invocation, &validate::Captures<'_>) -> proc_macro2::TokenStream,
) -> TokenStream {
    let tokens = match parse::invocation(input.clone()) {
        Ok(parse::Parsed::Whole(inv)) => match validate::invocation(&inv, &input) {
            (caps, None) => expand(&inv, &caps),
            (caps, Some(errors)) => expand::fallback_with_body(errors, &inv, &caps),
        },
        // The body is not Rust: rustc reports where, from the body kept as it is.
        Ok(parse::Parsed::UnparsedBody {
            peer,
            captures,
            body,
        }) => {
            let (caps, errors) = validate::captures(&captures);
            expand::unparsed_body(errors, &peer, &caps, body)
        }
        Err(error) => expand::fallback(error),
    };
    tokens.into()
}
