//! Expand: the code a `remote!` becomes.
//!
//! ```text
//! {
//!     {
//!         const HANDLER: Handler = |input| {                // the body, copy 1: runs remotely
//!             let body = |(a, b): (A, B)| async move { body };  // or, if it never waits,
//!             let value = awaited(&body);                   //   a plain closure and `returned`
//!             Returnable::__check(&value);
//!             match serve(input, captures' decoder, value's encoder, body) {
//!                 Running(future) => Handled::Running(Box::pin(future)),  // `Send` checked here
//!                 Done(handled) => handled,
//!             }
//!         };
//!         inventory::submit! { Registration::new(NAME, check, site, "a: A, b: B", HANDLER) }
//!     }
//!     let peer = AsPeer::target(&peer);                     // at the user's peer expression
//!     let () = <A as Capture>::CAPTURABLE;                  // at each capture's type
//!     let capture_0: &A = &a;  let capture_1: &B = &b;      // each local against its type
//!     let typing = |(a, b): (A, B)| async move { body };    // copy 2: typing only
//!     let value = awaited(&typing);
//!     Returnable::__check(&value);                          // at the body's value
//!     call(peer, NAME, &(capture_0, capture_1), captures' encoder, value's decoder)
//! }
//! ```
//!
//! Both copies are the same tokens with macro_rules hygiene (`Span::mixed_site()` located at the
//! user's tokens): a local of the caller that is not captured is invisible to them (`validate`
//! reports it in its own words where it can read the caller's source, rustc as "cannot find
//! value `x` in this scope" where it cannot), while items (fns, consts, types) still resolve at
//! the call site. Being the same tokens, they make the same diagnostic for a
//! mistake in the body, which rustc prints once. Copy 2 is never called: its output type is
//! the call's result type, so a mismatch is a compile error. Nested `remote!` calls in it are
//! rewritten to the typing-only form (no handler, no registration), so the expansion grows
//! linearly with nesting and each body registers once.
//!
//! What a capture, a value and a peer must be is asked once each, of a trait of the runtime
//! with its own message (`Capture`, `Returnable`, `AsPeer`); the encoders and decoders are
//! reached through probes (`__private::Probe`) that ask for nothing, so a type that fails is
//! reported once. A capture the body never names gets an unused closure parameter of its name,
//! so rustc's `unused variable` warning points at the list entry.
//!
//! A body that cannot wait (no `.await` and no macro call, which could expand to one) is served
//! by a plain closure: it runs and is encoded at once, with no future to allocate.
//!
//! A body that uses `?` has its value passed through `Fallible::__value` (a `Result` or an
//! `Option`, unchanged), and its typing copy gives the call its type through `Fallible` too: a
//! value that cannot take `?`'s early return is one error at the value, in the runtime's words.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;

use crate::name::{Fingerprints, Site};
use crate::parse::Invocation;
use crate::text;
use crate::validate::{self, Captures};

/// The full expansion: registered handler plus the call.
pub fn remote(
    inv: &Invocation,
    caps: &Captures<'_>,
    fingerprints: &Fingerprints,
    site: &Site,
) -> TokenStream {
    let private = private();
    let handler = syn::Ident::new("__remote_scope_handler", Span::mixed_site());
    let suffix = &fingerprints.name;
    let check = fingerprints.check;
    let name = quote!(::core::concat!(::core::module_path!(), "::", #suffix));
    let (file, line, column) = (&site.file, site.line as u32, site.column as u32);
    let capture_list = capture_list(caps);

    let tuple_ty = tuple_type(caps);
    let handler_body = body_closure(inv, caps, inv.body.clone());
    let typing = typing_closure(inv, caps);
    let call_site = call_site_captures(caps);
    let unused = unused_captures(inv, caps);
    let capture_refs = capture_locals(caps);
    let peer = peer(&inv.peer);
    let value = value_ident(&inv.body);
    let [body_fn, typing_fn, captures, peer_id] = ["body", "typing", "captures", "peer"]
        .map(|n| format_ident!("__remote_scope_{}", n, span = Span::mixed_site()));
    let served = served(
        &inv.body,
        quote!(#private::Probe::<#tuple_ty>::new()),
        &value,
        &body_fn,
    );
    let produced = produced(&inv.body);
    let returnable = returnable_check(&value);
    let typed_value = typed_value(inv, &typing_fn.to_token_stream());
    let probes = probe_traits();

    // The handler's copy and the typing copy are the same tokens with the same spans (but for
    // nested `remote!`s): a mistake in the body makes the same diagnostic in both, and rustc
    // prints a diagnostic once.
    quote! {
        {
            // In a block of their own: the registration's items are out of the body's sight.
            {
                const #handler: #private::Handler = |input: #private::HandlerInput<'_>| {
                    #probes
                    let #body_fn = #handler_body;
                    let #value = #private::#produced(&#body_fn);
                    #returnable
                    #served
                };
                #private::inventory::submit! {
                    #private::Registration::new(#name, #check, #file, #line, #column, #capture_list, #handler)
                }
            }
            let #peer_id = #peer;
            #call_site
            #unused
            let #typing_fn = #typing;
            let #value = #typed_value;
            #returnable
            let #captures = (#(#capture_refs,)*);
            static __REMOTE_SCOPE_CHECKED: #private::ResultTypeChecked = #private::ResultTypeChecked::new();
            // The probes' `use`s in a block of their own, out of the user's sight.
            {
                #probes
                #private::call(
                    #peer_id,
                    #name,
                    &__REMOTE_SCOPE_CHECKED,
                    &#captures,
                    (&&#private::probe(&#captures)).encoder(),
                    (&&#value).decoder(),
                )
            }
        }
    }
}

/// The body as a closure over the captures, `|(a, b): (A, B)| async move { body }` (or without
/// `async move` when it cannot wait), every token with macro_rules hygiene at its own place:
/// the body sees its captures and the items in scope, and no other local of the caller.
fn body_closure(inv: &Invocation, caps: &Captures<'_>, mut body: syn::Block) -> TokenStream {
    fallible_value(&mut body);
    let pattern = respan_mixed(pattern(caps));
    let tuple_ty = tuple_type(caps);
    let body = respan_mixed(body.to_token_stream());
    let body = if may_wait(&inv.body) {
        let hygienic_async = respan_mixed(quote_spanned!(inv.body.span()=> async move));
        quote!(#hygienic_async #body)
    } else {
        body
    };
    quote! { |#[allow(unused_variables)] #pattern: #tuple_ty| #body }
}

/// The handler's answer: `serve_now(..)` for a body that cannot wait; for one that can, its
/// future boxed here, where a future that is not `Send` is reported as that cast (rustc then
/// explains which value held across which `.await` makes it so).
fn served(
    body: &syn::Block,
    captures: TokenStream,
    value: &syn::Ident,
    body_fn: &syn::Ident,
) -> TokenStream {
    if may_wait(body) {
        served_async(captures, value, body_fn)
    } else {
        let private = private();
        quote!(#private::serve_now(input, (&&#captures).decoder(), (&&#value).encoder(), #body_fn))
    }
}

/// [`served`] for a body that waits.
pub fn served_async(
    captures: TokenStream,
    value: &syn::Ident,
    body_fn: &syn::Ident,
) -> TokenStream {
    let private = private();
    quote! {
        match #private::serve(input, (&&#captures).decoder(), (&&#value).encoder(), #body_fn) {
            #private::Serving::Running(running) => {
                #private::Handled::Running(::std::boxed::Box::pin(running))
            }
            #private::Serving::Done(handled) => handled,
        }
    }
}

/// The probe of what the body closure produces: its future's output, or its value.
fn produced(body: &syn::Block) -> TokenStream {
    if may_wait(body) {
        quote!(awaited)
    } else {
        quote!(returned)
    }
}

/// The identifier the value's probe is bound to: it has the span of the body's value (its last
/// expression, else the block), with the caller's hygiene, so that the check that the value
/// can travel back is reported there (an identifier of the expansion's hygiene would make the
/// error point at the whole `remote!`).
fn value_ident(body: &syn::Block) -> syn::Ident {
    let span = match body.stmts.last() {
        Some(syn::Stmt::Expr(tail, None)) => tail.span(),
        _ => body.span(),
    };
    format_ident!("__remote_scope_value", span = span)
}

/// For each capture the body never names, a closure parameter of its name that is never used:
/// rustc's `unused variable` warning then points at the list entry. (Not a `let`: rustc would
/// offer to match on the registration's `const _` instead.) (The closures' own bindings of the
/// captures cannot carry the warning: their tokens have the expansion's hygiene, and rustc
/// does not report lints inside another crate's macro.)
fn unused_captures(inv: &Invocation, caps: &Captures<'_>) -> TokenStream {
    let body = inv.body.to_token_stream();
    caps.entries
        .iter()
        .filter(|(name, _)| !mentions(body.clone(), name))
        .map(|(name, _)| quote! { let _ = |#name: ()| (); })
        .collect()
}

/// Whether `tokens` hold the identifier `name` anywhere, inside macro calls too, and in a
/// format string's inline arguments (`"{name}"`, `"{name:>4}"`).
fn mentions(tokens: TokenStream, name: &syn::Ident) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(ident) => ident == *name,
        TokenTree::Group(group) => mentions(group.stream(), name),
        TokenTree::Literal(literal) => {
            let text = literal.to_string();
            let argument = format!("{{{name}");
            (text.starts_with('"') || text.starts_with('r'))
                && text.match_indices(&argument).any(|(at, _)| {
                    matches!(text[at + argument.len()..].chars().next(), Some('}' | ':'))
                })
        }
        TokenTree::Punct(_) => false,
    })
}

/// The peer expression, turned into a `Target` (a peer, or a pool) by
/// [`AsPeer`](remote_scope::AsPeer): a value that names no peer is reported at the user's
/// expression.
fn peer(peer: &syn::Expr) -> TokenStream {
    quote_spanned! {peer.span()=> ::remote_scope::AsPeer::target(&(#peer)) }
}

/// Brings the probes' methods into scope (see `remote_scope::__private::Probe`).
pub fn probe_traits() -> TokenStream {
    let private = private();
    quote! {
        #[allow(unused_imports)]
        use #private::{Decodes as _, DecodesNot as _, Encodes as _, EncodesNot as _};
    }
}

/// `Returnable::__check(&value)`, at the body's value: a body whose value cannot travel back is
/// reported there, once.
fn returnable_check(value: &syn::Ident) -> TokenStream {
    quote_spanned! {value.span()=> ::remote_scope::Returnable::__check(&#value); }
}

/// The capture list as a person writes it, `a: u64, b: Vec<u64>`, for the registry to show.
fn capture_list(caps: &Captures<'_>) -> String {
    caps.entries
        .iter()
        .map(|(name, ty)| {
            let mutable = if caps.mutable.contains(name) {
                "mut "
            } else {
                ""
            };
            format!(
                "{mutable}{name}: {}",
                text::tidy(&ty.to_token_stream().to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The typing-only form used for nested invocations inside a typing copy. Its body has the
/// hygiene of the tokens it was given: it only gives the call its type, and the full expansion
/// of the same invocation, in the handler's copy, reports what the body cannot see.
pub fn typing_only(inv: &Invocation, caps: &Captures<'_>) -> TokenStream {
    let private = private();
    let peer = &inv.peer;
    let names = caps.entries.iter().map(|(name, _)| name);
    let typing = unhygienic_closure(inv, caps, inv.body.clone());
    let value = typed_value(inv, &typing);
    quote! {
        {
            let _ = (&(#peer), #(&#names,)*);
            #private::typing_only(#value)
        }
    }
}

/// What the expansion emits when the input is wrong: the errors, and a call of the right shape
/// so the user's surrounding code still type-checks instead of cascading into more errors.
pub fn fallback(errors: syn::Error) -> TokenStream {
    let private = private();
    let errors = errors.to_compile_error();
    quote! {
        {
            #errors
            #private::unreachable_call()
        }
    }
}

/// The fallback when the invocation parsed but its capture list is wrong: the errors, and the
/// body kept in a typing closure over the usable captures, so the call still has the body's type
/// and the body is still checked (and seen by IDEs) instead of vanishing.
pub fn fallback_with_body(
    errors: syn::Error,
    inv: &Invocation,
    caps: &Captures<'_>,
) -> TokenStream {
    let private = private();
    let errors = errors.to_compile_error();
    let mut body = inv.body.clone();
    // A value that is a reference was reported; the caller is typed as if it were owned, as it
    // will be once fixed, instead of failing again.
    validate::value_exprs(&mut body, &mut |expr| {
        if validate::borrowed_value(expr).is_some() {
            *expr =
                syn::parse_quote_spanned! {expr.span()=> ::std::borrow::ToOwned::to_owned(#expr) };
        }
    });
    // So is a `break` or `continue` that would leave the body.
    validate::LeavingJumps(&mut |expr| {
        *expr = syn::parse_quote_spanned! {expr.span()=> ::core::unreachable!() };
    })
    .visit_block_mut(&mut body);
    let typing = unhygienic_closure(inv, caps, body);
    let value = typed_value(inv, &typing);
    quote! {
        {
            #errors
            #private::typing_only(#value)
        }
    }
}

/// The expansion of an invocation whose body is not valid Rust: the capture list's errors, and
/// the body as written in a closure over the captures, for rustc to report the body's syntax
/// error itself (once, where it is) and for an editor to complete inside it.
pub fn unparsed_body(
    errors: Option<syn::Error>,
    peer: &syn::Expr,
    caps: &Captures<'_>,
    body: TokenStream,
) -> TokenStream {
    let private = private();
    let errors = errors.map(|e| e.to_compile_error());
    let pattern = pattern(caps);
    let tuple_ty = tuple_type(caps);
    quote! {
        {
            #errors
            let _ = &(#peer);
            #private::typing_only(#private::awaited(&(|#pattern: #tuple_ty| async move #body)))
        }
    }
}

fn private() -> TokenStream {
    quote!(::remote_scope::__private)
}

/// The body closure of the typing copy: its nested calls made typing-only.
fn typing_closure(inv: &Invocation, caps: &Captures<'_>) -> TokenStream {
    let mut body = inv.body.clone();
    TypingOnly.visit_block_mut(&mut body);
    body_closure(inv, caps, body)
}

/// The body closure with the tokens' own hygiene, its nested calls made typing-only: where
/// the body is only typed, by the typing-only form and by the fallback of an invocation with
/// errors (whose captures may be missing from the list, so the body must see the caller's
/// locals to be typed at all).
fn unhygienic_closure(inv: &Invocation, caps: &Captures<'_>, mut body: syn::Block) -> TokenStream {
    let pattern = pattern(caps);
    let tuple_ty = tuple_type(caps);
    TypingOnly.visit_block_mut(&mut body);
    fallible_value(&mut body);
    let body = if may_wait(&inv.body) {
        quote_spanned!(inv.body.span()=> async move #body)
    } else {
        body.to_token_stream()
    };
    quote_spanned! {inv.body.span()=> |#pattern: #tuple_ty| #body }
}

/// `let __remote_scope_capture_0: &A = &a;` for each capture: a capture whose local has another
/// type fails here, pointing at the capture.
fn call_site_captures(caps: &Captures<'_>) -> TokenStream {
    caps.entries
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| {
            let local = capture_local(i);
            quote_spanned! {ty.span()=>
                let () = <#ty as ::remote_scope::Capture>::CAPTURABLE;
                let #local: &#ty = &#name;
            }
        })
        .collect()
}

fn capture_locals(caps: &Captures<'_>) -> Vec<syn::Ident> {
    (0..caps.entries.len()).map(capture_local).collect()
}

fn capture_local(i: usize) -> syn::Ident {
    let mut ident = format_ident!("__remote_scope_capture_{}", i);
    ident.set_span(Span::mixed_site());
    ident
}

fn pattern(caps: &Captures<'_>) -> TokenStream {
    let bindings = caps.entries.iter().map(|(name, _)| {
        if caps.mutable.contains(name) {
            quote!(mut #name)
        } else {
            quote!(#name)
        }
    });
    quote!((#(#bindings,)*))
}

fn tuple_type(caps: &Captures<'_>) -> TokenStream {
    let types = caps.entries.iter().map(|(_, ty)| ty);
    quote!((#(#types,)*))
}

/// Gives every token (but `$crate`) macro_rules hygiene while keeping its location for
/// diagnostics.
fn respan_mixed(tokens: TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| {
            let span = Span::mixed_site().located_at(tt.span());
            match tt {
                TokenTree::Group(g) => {
                    let mut group = Group::new(g.delimiter(), respan_mixed(g.stream()));
                    group.set_span(span);
                    TokenTree::Group(group)
                }
                // `$crate` must keep the hygiene of the macro_rules expansion it came from, or it
                // would resolve to no crate at all.
                TokenTree::Ident(i) if i == "$crate" => TokenTree::Ident(i),
                TokenTree::Ident(mut i) => {
                    i.set_span(span);
                    TokenTree::Ident(i)
                }
                TokenTree::Punct(mut p) => {
                    p.set_span(span);
                    TokenTree::Punct(p)
                }
                TokenTree::Literal(mut l) => {
                    l.set_span(span);
                    TokenTree::Literal(l)
                }
            }
        })
        .collect()
}

/// Whether the body uses `?` itself (not in a closure or async block of its own) and ends in a
/// value: [`fallible_value`] then wraps the value.
fn fallible(body: &syn::Block) -> bool {
    struct Tries(bool);
    impl Visit<'_> for Tries {
        fn visit_expr_try(&mut self, _: &syn::ExprTry) {
            self.0 = true;
        }
        fn visit_expr_closure(&mut self, _: &syn::ExprClosure) {}
        fn visit_expr_async(&mut self, _: &syn::ExprAsync) {}
        fn visit_item(&mut self, _: &syn::Item) {}
    }
    let mut tries = Tries(false);
    tries.visit_block(body);
    match body.stmts.last() {
        Some(syn::Stmt::Expr(value, None)) => tries.0 && !may_diverge(value),
        _ => false,
    }
}

/// Whether a value may have no type of its own (`loop`, `return`, `panic!()`, or branches that
/// all end so): the body's type then comes from its `return`s, and a wrapper would see `()`.
fn may_diverge(value: &syn::Expr) -> bool {
    let block = |block: &syn::Block| match block.stmts.last() {
        Some(syn::Stmt::Expr(value, _)) => may_diverge(value),
        Some(syn::Stmt::Macro(_)) => true,
        _ => false,
    };
    match value {
        syn::Expr::Loop(_)
        | syn::Expr::Return(_)
        | syn::Expr::Break(_)
        | syn::Expr::Continue(_)
        | syn::Expr::Macro(_) => true,
        syn::Expr::Block(b) => block(&b.block),
        syn::Expr::Unsafe(b) => block(&b.block),
        syn::Expr::Paren(p) => may_diverge(&p.expr),
        syn::Expr::If(e) => {
            block(&e.then_branch) || e.else_branch.as_ref().is_none_or(|(_, e)| may_diverge(e))
        }
        syn::Expr::Match(m) => m.arms.iter().any(|arm| may_diverge(&arm.body)),
        _ => false,
    }
}

/// Wraps the value of a [`fallible`] body in `Fallible::__value`: a value that is not a
/// `Result` or an `Option` is reported there in the runtime's words, instead of rustc's about
/// "a closure that returns" it.
fn fallible_value(body: &mut syn::Block) {
    if !fallible(body) {
        return;
    }
    if let Some(syn::Stmt::Expr(value, None)) = body.stmts.last_mut() {
        let span = value.span();
        *value = syn::parse_quote_spanned! {span=>
            ::remote_scope::__private::Fallible::__value(#value)
        };
    }
}

/// The probe of a typing copy's value, which gives the call its type. For a [`fallible`] body
/// the call's type is the value's through `Fallible`, so that a value reported as not
/// fallible is not also given the call's type, which would make rustc report the `?` too.
fn typed_value(inv: &Invocation, closure: &TokenStream) -> TokenStream {
    let private = private();
    let produced = produced(&inv.body);
    if fallible(&inv.body) {
        quote!(#private::fallible(#private::#produced(&#closure)))
    } else {
        quote!(#private::#produced(&#closure))
    }
}

/// Whether the body may wait: it has an `.await` anywhere (in a closure or an item inside it
/// too, to keep this simple and on the safe side), or a macro call, whose expansion cannot be
/// seen here and may await (`tokio::join!`, a nested `remote!`).
fn may_wait(body: &syn::Block) -> bool {
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_expr_await(&mut self, _: &syn::ExprAwait) {
            self.0 = true;
        }
        fn visit_macro(&mut self, _: &syn::Macro) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    finder.visit_block(body);
    finder.0
}

/// Rewrites `remote!(..)` (also `remote_scope::remote!` and `::remote_scope::remote!`) to the
/// hidden typing-only macro. Invocations it cannot see (inside another macro's tokens, or under
/// an alias) still expand fully; the registry accepts that repeat because it has the same site.
struct TypingOnly;

impl VisitMut for TypingOnly {
    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        if is_remote_macro(&mac.path) {
            let span = mac.path.span();
            mac.path = syn::parse_quote_spanned! {span=> ::remote_scope::__private::remote_typing };
        }
    }

    // Items declared inside the body are left alone: their calls are their own.
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

fn is_remote_macro(path: &syn::Path) -> bool {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.as_slice() {
        [last] => last == "remote",
        [krate, last] => krate == "remote_scope" && last == "remote",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{may_wait, mentions};

    #[test]
    fn a_capture_is_mentioned_by_its_name_anywhere_in_the_body_and_in_format_strings() {
        let mentioned = |body: &str| {
            let tokens: proc_macro2::TokenStream = body.parse().expect("tokens");
            mentions(tokens, &quote::format_ident!("to"))
        };
        assert!(mentioned("{ to + 1 }"));
        assert!(mentioned("{ if x { vec![to] } else { vec![] } }"));
        assert!(mentioned(r#"{ format!("sent to {to}") }"#));
        assert!(mentioned(r#"{ format!("{to:>8}") }"#));
        assert!(mentioned(r##"{ format!(r#"{to}"#) }"##));
        assert!(!mentioned(r#"{ format!("sent to {total}") }"#));
        assert!(!mentioned("{ total + 1 }"));
        assert!(!mentioned(r#"{ "to" }"#));
    }

    fn waits(body: &str) -> bool {
        may_wait(&syn::parse_str(body).expect("a block"))
    }

    #[test]
    fn a_body_may_wait_if_it_awaits_or_calls_a_macro_anywhere() {
        assert!(!waits("{ x }"));
        assert!(!waits(
            "{ let v = vec_of(x); v.iter().map(|n| n + 1).sum::<u64>() }"
        ));
        // An async block is only a value unless something in it awaits.
        assert!(!waits("{ let _f = async { 1 }; 2 }"));
        assert!(waits("{ f().await }"));
        assert!(waits("{ if x { g(h().await) } else { 0 } }"));
        assert!(waits("{ let c = || async { f().await }; 1 }"));
        // A macro's expansion is not seen: it may await (`tokio::join!`, a nested `remote!`).
        assert!(waits("{ println!(\"{x}\"); x }"));
        assert!(waits("{ remote!(peer, [x: u64], { x }) }"));
        assert!(waits("{ let v: Vec<u8> = vec![]; v }"));
    }
}
