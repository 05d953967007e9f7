//! `#[remote_fn]`: a named body whose captures are its parameters and whose value is its
//! result, through the same steps as `remote!`: `validate` the signature (each misuse reported
//! at its token), `name` it by its path and signature, `expand` it into a function that builds
//! the call, a module holding its name, and the registered handler that runs the body.
//!
//! ```text
//! pub fn resize(img: Image, width: u32) -> Unsent<Image> {
//!     async fn body(img: Image, width: u32) -> Image { the function's own block }
//!     const HANDLER: Handler = |input| serve(input, .., |(img, width)| body(img, width)) ..;
//!     inventory::submit! { Registration::new("<module>::resize#<fingerprint>", .., HANDLER) }
//!     .. check the types, encode (img, width) ..
//! }
//! pub mod resize { pub const NAME: &str = "<module>::resize#<fingerprint>"; }
//! ```
//!
//! The name fingerprints the signature (parameter types and result type), not the block: a
//! peer redeployed with a new implementation keeps serving callers built against the old one,
//! as an RPC method does; a changed signature is a new name, which the old peer does not serve.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat, ReturnType, Type};

use crate::name::{self, Site};
use crate::validate;

/// The whole attribute: the errors with the function left as written (so the rest of the
/// crate still sees it), or the expansion.
pub fn remote_fn(attr: TokenStream, item: TokenStream, site: &Site) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                "`#[remote_fn]` goes on an `async fn` at module level, e.g. \
                 `#[remote_fn] async fn resize(img: Image, width: u32) -> Image { .. }`",
            );
            let error = error.to_compile_error();
            return quote!(#error #item);
        }
    };
    match validate_signature(&attr, &function) {
        Ok(params) => expand(&function, &params, site),
        Err(errors) => {
            let errors = errors.to_compile_error();
            quote!(#errors #item)
        }
    }
}

/// One parameter: the name the generated function gives it, and its type.
struct Param<'a> {
    name: syn::Ident,
    ty: &'a Type,
    /// `pattern: Type` as written, for the registry to show.
    written: String,
}

fn validate_signature<'a>(attr: &TokenStream, function: &'a ItemFn) -> syn::Result<Vec<Param<'a>>> {
    let sig = &function.sig;
    let mut errors: Vec<syn::Error> = Vec::new();
    if !attr.is_empty() {
        errors.push(syn::Error::new_spanned(
            attr,
            "`#[remote_fn]` takes no arguments",
        ));
    }
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!(
                "a `#[remote_fn]` must be `async`: calling it waits for the peer that runs it; \
                 write `async fn {}(..)`",
                sig.ident
            ),
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new(
            constness.span,
            "a `#[remote_fn]` cannot be `const`: it runs on another peer, at run time",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new(
            unsafety.span,
            "a `#[remote_fn]` cannot be `unsafe`: a peer calls it over the network, where no \
             caller can uphold a safety contract; make it safe, with `unsafe` blocks inside",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "a `#[remote_fn]` cannot have an ABI: peers call it by name, over the network",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "a `#[remote_fn]` cannot be variadic",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "a `#[remote_fn]` cannot be generic: the peer that runs it decodes its arguments \
             and must know their concrete types; write one function per type, or take an enum",
        ));
    }
    let mut params = Vec::new();
    for (i, input) in sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                "a `#[remote_fn]` cannot take `self`: it runs on another peer, which has no \
                 `self` to give it; take the values it needs as parameters",
            )),
            FnArg::Typed(typed) => {
                if let Some(e) = validate::unsendable_type(&typed.ty) {
                    errors.push(e);
                }
                let name = match &*typed.pat {
                    Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
                        ident.ident.clone()
                    }
                    _ => format_ident!("__remote_scope_arg{}", i, span = Span::mixed_site()),
                };
                let written = format!(
                    "{}: {}",
                    crate::text::tidy(&typed.pat.to_token_stream().to_string()),
                    crate::text::tidy(&typed.ty.to_token_stream().to_string())
                );
                params.push(Param {
                    name,
                    ty: &typed.ty,
                    written,
                });
            }
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if let Some(e) = validate::unreturnable_type(ty) {
            errors.push(e);
        }
    }
    match errors.into_iter().reduce(|mut all, e| {
        all.combine(e);
        all
    }) {
        Some(errors) => Err(errors),
        None => Ok(params),
    }
}

fn expand(function: &ItemFn, params: &[Param<'_>], site: &Site) -> TokenStream {
    let private = quote!(::remote_scope::__private);
    let sig = &function.sig;
    let ident = &sig.ident;
    let vis = &function.vis;
    let output: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let (docs, rest): (Vec<_>, Vec<_>) = function
        .attrs
        .iter()
        .partition(|a| a.path().is_ident("doc"));
    let cfgs: Vec<_> = rest
        .iter()
        .filter(|a| a.path().is_ident("cfg") || a.path().is_ident("cfg_attr"))
        .collect();
    let others: Vec<_> = rest
        .iter()
        .filter(|a| !(a.path().is_ident("cfg") || a.path().is_ident("cfg_attr")))
        .collect();

    let types: Vec<&Type> = params.iter().map(|p| p.ty).collect();
    let names: Vec<&syn::Ident> = params.iter().map(|p| &p.name).collect();
    let fingerprints = name::function_fingerprints(ident, &types, &output);
    let fingerprint = &fingerprints.name;
    // `<module>::<function>#<fingerprint>`, from outside the function's module and from inside.
    let name_suffix = format!("{ident}#{fingerprint}");
    let fingerprint_suffix = format!("#{fingerprint}");
    let check = fingerprints.check;
    let (file, line, column) = (&site.file, site.line as u32, site.column as u32);
    let capture_list = params
        .iter()
        .map(|p| p.written.as_str())
        .collect::<Vec<_>>()
        .join(", ");

    let capturable = types.iter().map(|ty| {
        quote_spanned! {ty.span()=> let () = <#ty as ::remote_scope::Capture>::CAPTURABLE; }
    });
    let returnable = quote_spanned! {output.span()=>
        let () = <#output as ::remote_scope::Returnable>::RETURNABLE;
    };
    let probes = crate::expand::probe_traits();
    let [captures, body_fn, handler, body_closure, value] =
        ["captures", "body", "handler", "body_closure", "value"]
            .map(|n| format_ident!("__remote_scope_{}", n, span = Span::mixed_site()));
    let inputs = &sig.inputs;
    let served = crate::expand::served_async(
        quote!(#private::Probe::<(#(#types,)*)>::new()),
        &value,
        &body_closure,
    );
    let block = &function.block;
    let name_doc = format!(
        "The name [`{ident}`](fn@{ident})'s body is registered under: its module's path, the \
         function's name and a fingerprint of its signature. Peers list the bodies they serve \
         by name; require it of a peer with `NodeBuilder::require_body`."
    );
    let module_doc = format!("The registration of the `#[remote_fn]` [`{ident}`](fn@{ident}).");

    // Everything but the name's module lives in the function's body, where it is valid
    // whatever surrounds the function (a `#[remote_fn]` in an `impl` is then one error, at the
    // module, instead of three).
    let name = quote!(::core::concat!(::core::module_path!(), "::", #name_suffix));
    quote! {
        #(#docs)*
        #(#cfgs)*
        #vis fn #ident(#(#names: #types),*) -> ::remote_scope::Unsent<#output> {
            #(#others)*
            async fn #body_fn(#inputs) -> #output #block

            const #handler: #private::Handler = |input: #private::HandlerInput<'_>| {
                #probes
                let #body_closure = |(#(#names,)*): (#(#types,)*)| #body_fn(#(#names),*);
                let #value = #private::Probe::<#output>::new();
                #served
            };

            #private::inventory::submit! {
                #private::Registration::new(#name, #check, #file, #line, #column, #capture_list, #handler)
            }

            #(#capturable)*
            #returnable
            let #captures = (#(&#names,)*);
            #probes
            #private::unsent(
                #name,
                &#captures,
                (&&#private::probe(&#captures)).encoder(),
                (&&#private::Probe::<#output>::new()).decoder(),
            )
        }

        #(#cfgs)*
        #[doc = #module_doc]
        #vis mod #ident {
            #[doc = #name_doc]
            pub const NAME: &str = ::core::concat!(::core::module_path!(), #fingerprint_suffix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(attr: &str, item: &str) -> Vec<String> {
        let function: ItemFn = syn::parse_str(item).expect("a function");
        let attr: TokenStream = attr.parse().expect("tokens");
        match validate_signature(&attr, &function) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_plain_async_fn_with_owned_parameters_is_accepted() {
        assert!(errors(
            "",
            "async fn f(a: u64, b: Vec<String>) -> String { todo!() }"
        )
        .is_empty());
        assert!(errors("", "pub async fn f() {}").is_empty());
        assert!(errors(
            "",
            "async fn f((a, b): (u8, u8), mut c: u8) -> u8 { a + b + c }"
        )
        .is_empty());
    }

    #[test]
    fn each_misuse_is_one_error_that_says_what_to_write() {
        let one = |attr: &str, item: &str, says: &str| {
            let errors = errors(attr, item);
            assert_eq!(errors.len(), 1, "{item}: {errors:?}");
            assert!(errors[0].contains(says), "{item}: {errors:?}");
        };
        one("", "fn f(a: u64) -> u64 { a }", "must be `async`");
        one("", "async fn f<T>(a: T) {}", "cannot be generic");
        one(
            "",
            "async fn f(a: u64) where u64: Copy {}",
            "cannot be generic",
        );
        one("", "async fn f(&self) {}", "cannot take `self`");
        one("", "async fn f(a: &str) {}", "owned type");
        one("", "async fn f(a: impl Clone) {}", "concrete");
        one(
            "",
            "async fn f() -> &'static str { \"\" }",
            "cannot be a reference",
        );
        one("", "async fn f() -> impl std::fmt::Debug { 1 }", "concrete");
        one("", "async unsafe fn f() {}", "cannot be `unsafe`");
        one("pool", "async fn f() {}", "takes no arguments");
    }
}
