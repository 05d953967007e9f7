//! Expand: the code a `remote!` becomes.
//!
//! ```text
//! {
//!     fn handler(input: HandlerInput) -> Handled {           // the body, copy 1: runs remotely
//!         serve(input, |(a, b): (A, B)| async move { body })  // or, if it never waits:
//!         serve_now(input, |(a, b): (A, B)| { body })
//!     }
//!     inventory::submit! { Registration::new(NAME, check, site, "a: A, b: B", handler) }
//!     let a: &A = &a;  let b: &B = &b;                       // captures checked against their types
//!     call(&peer, NAME, &(a, b), |(a, b): (A, B)| async move { body })  // copy 2: typing only
//! }
//! ```
//!
//! Copy 1 is a nested `fn` item whose body tokens get macro_rules hygiene
//! (`Span::mixed_site()` located at the user's tokens): a local of the caller that is not captured
//! is then invisible to it, and rustc reports "cannot find value `x` in this scope" at the use,
//! while items (fns, consts, types) still resolve at the call site.
//!
//! A body that cannot wait (no `.await` and no macro call, which could expand to one) is served
//! by a plain closure: it runs and is encoded at once, with no future to allocate.
//!
//! Copy 2 is a closure that is never called. Its output type is inferred, so the caller gets the
//! body's real result type without writing it, and a mismatch is a compile error. It keeps the
//! user's own capture identifiers, so rustc's `unused variable` warning points at the list entry.
//! Nested `remote!` calls inside copy 2 are rewritten to the typing-only form (no handler, no
//! registration), so the expansion grows linearly with nesting and each body registers once.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;

use crate::name::{Fingerprints, Site};
use crate::parse::Invocation;
use crate::validate::Captures;

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
    let hygienic_pattern = respan_mixed(pattern(caps));
    let hygienic_body = respan_mixed(inv.body.to_token_stream());

    let typing = typing_closure(inv, caps);
    let call_site = call_site_captures(caps);
    let capture_refs = capture_locals(caps);
    let peer = &inv.peer;
    let (serve, served) = if may_wait(&inv.body) {
        (quote!(serve), quote!(async move #hygienic_body))
    } else {
        (quote!(serve_now), hygienic_body)
    };

    quote! {
        {
            fn #handler(input: #private::HandlerInput<'_>) -> #private::Handled {
                #private::#serve(
                    input,
                    |#[allow(unused_variables)] #hygienic_pattern: #tuple_ty| #served,
                )
            }
            #private::inventory::submit! {
                #private::Registration::new(#name, #check, #file, #line, #column, #capture_list, #handler)
            }
            #call_site
            static __REMOTE_SCOPE_CHECKED: #private::ResultTypeChecked = #private::ResultTypeChecked::new();
            #private::call(&(#peer), #name, &__REMOTE_SCOPE_CHECKED, &(#(#capture_refs,)*), #typing)
        }
    }
}

/// The capture list as a person writes it, `a: u64, b: Vec<u64>`, for the registry to show.
fn capture_list(caps: &Captures<'_>) -> String {
    caps.entries
        .iter()
        .map(|(name, ty)| format!("{name}: {}", tidy(&ty.to_token_stream().to_string())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Token text without the spaces `to_string` puts between every two tokens.
fn tidy(tokens: &str) -> String {
    let mut text = tokens.to_owned();
    for (spaced, tight) in [
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ::", "::"),
        (":: ", "::"),
        (" ,", ","),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        text = text.replace(spaced, tight);
    }
    text
}

/// The typing-only form used for nested invocations inside a typing copy.
pub fn typing_only(inv: &Invocation, caps: &Captures<'_>) -> TokenStream {
    let private = private();
    let peer = &inv.peer;
    let names = caps.entries.iter().map(|(name, _)| name);
    let typing = typing_closure(inv, caps);
    quote! {
        {
            let _ = (&(#peer), #(&#names,)*);
            #private::typing_only(#typing)
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
    let typing = typing_closure(inv, caps);
    quote! {
        {
            #errors
            #private::typing_only(#typing)
        }
    }
}

fn private() -> TokenStream {
    quote!(::remote_scope::__private)
}

/// `|(a, b): (A, B)| async move { body }` with the user's spans and nested calls made typing-only.
fn typing_closure(inv: &Invocation, caps: &Captures<'_>) -> TokenStream {
    let pattern = pattern(caps);
    let tuple_ty = tuple_type(caps);
    let mut body = inv.body.clone();
    TypingOnly.visit_block_mut(&mut body);
    quote_spanned! {inv.body.span()=> |#pattern: #tuple_ty| async move #body }
}

/// `let __remote_scope_capture_0: &A = &a;` for each capture: a capture whose local has another
/// type fails here, pointing at the capture.
fn call_site_captures(caps: &Captures<'_>) -> TokenStream {
    caps.entries
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| {
            let local = capture_local(i);
            let private = private();
            quote_spanned! {ty.span()=>
                #private::assert_capture::<#ty>();
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
    let names = caps.entries.iter().map(|(name, _)| name);
    quote!((#(#names,)*))
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
    use super::{may_wait, tidy};
    use quote::ToTokens;

    #[test]
    fn capture_lists_read_as_written() {
        let tidied = |ty: &str| {
            let ty: syn::Type = syn::parse_str(ty).expect("a type");
            tidy(&ty.to_token_stream().to_string())
        };
        for ty in [
            "Vec<u64>",
            "std::collections::HashMap<String, Vec<(u8, i32)>>",
            "[u8; 4]",
            "Option<&'static str>",
        ] {
            assert_eq!(tidied(ty), ty);
        }
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
