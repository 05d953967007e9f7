//! Validate: checks that need no type information, each reported at the offending token.
//!
//! What is *not* checked here, on purpose: whether an identifier in the body is a local the user
//! forgot to capture. A proc macro cannot tell a local from an item (a fn, a const, a unit struct),
//! so a syntactic guess would have false positives. `expand` instead gives the body macro_rules
//! hygiene inside a nested `fn` item, so rustc itself reports an uncaptured local as
//! "cannot find value `x` in this scope" at the use, while items still resolve; and it keeps the
//! capture identifiers' own tokens in the typing closure, so an unused capture gets rustc's
//! `unused variable` warning at the list entry. Shadowing is then understood by the compiler.

use std::collections::HashMap;

use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::Type;

use crate::parse::{Capture, Invocation};

/// A capture list with every entry typed and named once.
pub struct Captures<'a> {
    pub entries: Vec<(&'a syn::Ident, &'a Type)>,
}

/// Runs every check. Returns the entries that are usable (typed, listed once, sendable types)
/// and, if anything is wrong, all errors combined.
pub fn invocation(inv: &Invocation) -> (Captures<'_>, Option<syn::Error>) {
    let mut errors: Vec<syn::Error> = Vec::new();
    let mut seen: HashMap<String, &syn::Ident> = HashMap::new();
    let mut entries = Vec::new();

    for Capture { name, ty } in &inv.captures {
        let key = name.to_string();
        if let Some(first) = seen.get(&key) {
            let mut e = syn::Error::new(
                name.span(),
                format!("`{name}` is captured twice; list each capture once"),
            );
            e.combine(syn::Error::new(
                first.span(),
                format!("`{name}` first captured here"),
            ));
            errors.push(e);
            continue;
        }
        seen.insert(key, name);
        match ty {
            None => errors.push(syn::Error::new(
                name.span(),
                format!(
                    "capture `{name}` needs a type: write `{name}: Type`, e.g. `[{name}: u64]`; \
                     the peer that runs the body decodes it without the caller's type inference"
                ),
            )),
            Some(ty) => match unsendable_type(ty) {
                Some(e) => errors.push(e),
                None => entries.push((name, ty)),
            },
        }
    }

    let mut self_uses = SelfUses::default();
    self_uses.visit_block(&inv.body);
    errors.extend(self_uses.errors);

    let errors = errors.into_iter().reduce(|mut all, e| {
        all.combine(e);
        all
    });
    (Captures { entries }, errors)
}

/// Capture types must be owned and nameable: the serving peer decodes them on its own.
fn unsendable_type(ty: &Type) -> Option<syn::Error> {
    let mut finder = BadType::default();
    finder.visit_type(ty);
    finder.error
}

#[derive(Default)]
struct BadType {
    error: Option<syn::Error>,
}

impl<'ast> Visit<'ast> for BadType {
    fn visit_type(&mut self, ty: &'ast Type) {
        if self.error.is_some() {
            return;
        }
        let msg = match ty {
            Type::Reference(_) => Some(
                "captures are sent by value: use an owned type (e.g. `String` for `&str`, `Vec<T>` for `&[T]`)",
            ),
            Type::Infer(_) => Some("capture types must be written out; `_` cannot be inferred across peers"),
            Type::ImplTrait(_) => Some("capture types must be concrete; `impl Trait` cannot be decoded by the serving peer"),
            Type::TraitObject(_) => Some("capture types must be concrete; a trait object cannot be decoded by the serving peer"),
            Type::Ptr(_) => Some("raw pointers cannot be sent to another peer"),
            _ => None,
        };
        match msg {
            Some(msg) => self.error = Some(syn::Error::new(ty.span(), msg)),
            None => syn::visit::visit_type(self, ty),
        }
    }
}

/// `self` in a body can never work: the body runs as a free function on another peer.
#[derive(Default)]
struct SelfUses {
    errors: Vec<syn::Error>,
}

impl<'ast> Visit<'ast> for SelfUses {
    fn visit_expr_path(&mut self, p: &'ast syn::ExprPath) {
        if p.qself.is_none() && p.path.is_ident("self") {
            self.errors.push(syn::Error::new(
                p.span(),
                "`self` is not available in a remote body: it runs on another peer; \
                 capture the values it needs, e.g. `let count = self.count;` and `[count: u64]`",
            ));
        }
        syn::visit::visit_expr_path(self, p);
    }

    // Items declared inside the body have their own `self`.
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}
