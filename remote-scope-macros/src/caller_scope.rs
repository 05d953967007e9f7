//! The caller's scope, read from its source: the locals and generic parameters around an
//! invocation, for two mistakes rustc would report in its own words.
//!
//! A proc macro sees only its own tokens, so from them alone it cannot tell a forgotten local
//! from an item in scope (a fn passed by name, a lowercase const), nor a generic parameter from
//! a type. The body's hygiene makes rustc report a forgotten local anyway, and the handler's
//! item makes it report a generic capture type, but in rustc's words ("not accessible due to
//! macro hygiene", "can't use generic parameters from outer item"). So, when the body names
//! something it neither binds nor captures, or a capture type is a single name, this pass reads
//! the caller's source file, finds the invocation in it, and collects what is in scope there:
//! parameters, `let`s before it, closure and pattern bindings around it, the generic parameters
//! of the fn and impl it is in. A use of one of those locals, or a capture type that is one of
//! those parameters, is reported in the user's words.
//!
//! Everything here errs towards saying nothing: a mistake is reported only when the invocation
//! was found (its tokens as written, at every place they are written) and the name is bound
//! around it at each; names used only as a callee, or inside a macro other than the standard
//! expression macros, are never reported. Otherwise rustc's own error stands, as it does for
//! invocations written by another macro (whose tokens are not in the source). A local that
//! shadows a fn of the same name is taken as the local: that is what the body's text means.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Expr, Token};

use crate::parse::{self, Invocation, Parsed};

/// One error for each local of the caller the body uses without capturing it, and for each
/// capture type that is a generic parameter of the caller.
pub fn errors(inv: &Invocation, invocation_tokens: &TokenStream) -> Vec<syn::Error> {
    let candidates = candidates(inv);
    let type_names = type_names(inv);
    if candidates.is_empty() && type_names.is_empty() {
        return Vec::new();
    }
    let Some(scopes) = scopes_at(invocation_tokens) else {
        return Vec::new();
    };
    let generic = type_names
        .into_iter()
        .filter(|(name, _)| scopes.iter().all(|scope| scope.generics.contains(name)))
        .map(|(name, span)| {
            syn::Error::new(
                span,
                format!(
                    "a capture's type cannot be the caller's generic parameter `{name}`: the \
                     peer that runs the body decodes the capture without knowing what `{name}` \
                     is; capture a concrete type (convert the value to one before the call, \
                     e.g. a `String` or your own enum), or make the call where the type is known"
                ),
            )
        });
    let uncaptured = candidates.into_iter().filter_map(|(name, span)| {
        // The innermost binding of the name at every place the invocation is written.
        let mut types = scopes.iter().map(|scope| {
            scope
                .locals
                .iter()
                .rev()
                .find(|binding| binding.name == name)
                .map(|binding| binding.ty.clone())
        });
        let first = types.next()??;
        if !types.all(|ty| ty.is_some()) {
            return None;
        }
        let entry = match first {
            Some(ty) => format!("{name}: {ty}"),
            None => format!("{name}: <its type>"),
        };
        Some(syn::Error::new(
            span,
            format!(
                "`{name}` is not in the capture list: the body runs on another peer and sees \
                 only what the list sends; add `{entry}` to the list"
            ),
        ))
    });
    generic.chain(uncaptured).collect()
}

/// Types no generic parameter is named after in practice: a list of them alone needs no
/// reading of the source.
const PRIMITIVES: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32",
    "f64", "bool", "char", "str", "String",
];

/// The single names in the capture types (`T`, and `T` in `Vec<T>`): each may be a generic
/// parameter of the caller.
fn type_names(inv: &Invocation) -> Vec<(String, proc_macro2::Span)> {
    #[derive(Default)]
    struct Names(Vec<(String, proc_macro2::Span)>);
    impl<'ast> Visit<'ast> for Names {
        fn visit_type_path(&mut self, p: &'ast syn::TypePath) {
            if let (None, Some(name)) = (&p.qself, p.path.get_ident()) {
                if !PRIMITIVES.contains(&name.to_string().as_str()) {
                    self.0.push((name.to_string(), name.span()));
                }
            }
            syn::visit::visit_type_path(self, p);
        }
    }
    let mut names = Names::default();
    for ty in inv.captures.iter().filter_map(|c| c.ty.as_ref()) {
        names.visit_type(ty);
    }
    names.0
}

/// The names the body uses as values (not as the callee of a call, which is nearly always a fn)
/// that it neither binds anywhere nor captures, with their first use.
fn candidates(inv: &Invocation) -> Vec<(String, proc_macro2::Span)> {
    let mut uses = Uses::default();
    uses.visit_block(&inv.body);
    let captured: HashSet<String> = inv.captures.iter().map(|c| c.name.to_string()).collect();
    let mut seen = HashSet::new();
    uses.used
        .into_iter()
        .filter(|(name, _)| {
            !captured.contains(name)
                && !uses.bound.contains(name)
                && !uses.opaque.contains(name)
                && seen.insert(name.clone())
        })
        .collect()
}

#[derive(Default)]
struct Uses {
    /// Single-identifier paths used as values, in order.
    used: Vec<(String, proc_macro2::Span)>,
    /// Every name a pattern in the body binds, wherever it is.
    bound: HashSet<String>,
    /// Identifiers inside macro calls whose tokens are not expressions (they may bind them).
    opaque: HashSet<String>,
}

impl<'ast> Visit<'ast> for Uses {
    fn visit_expr_path(&mut self, p: &'ast syn::ExprPath) {
        if let Some(name) = local_like(p) {
            self.used.push((name, p.span()));
        }
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        match &*call.func {
            Expr::Path(p) if local_like(p).is_some() => {}
            func => self.visit_expr(func),
        }
        for arg in &call.args {
            self.visit_expr(arg);
        }
    }

    fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
        self.bound.insert(p.ident.to_string());
        syn::visit::visit_pat_ident(self, p);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let known = mac
            .path
            .segments
            .last()
            .is_some_and(|last| EXPRESSION_MACROS.contains(&last.ident.to_string().as_str()));
        match macro_exprs(mac).filter(|_| known) {
            Some(exprs) => {
                for expr in exprs {
                    match expr {
                        // A named format argument, `name = value`: the name is not a use.
                        Expr::Assign(named) => self.visit_expr(&named.right),
                        other => self.visit_expr(&other),
                    }
                }
            }
            None => idents(mac.tokens.clone(), &mut self.opaque),
        }
    }

    // Items declared in the body are their own scope.
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// The name of a path that could be a local: one lowercase identifier, no generics.
fn local_like(p: &syn::ExprPath) -> Option<String> {
    if p.qself.is_some() || p.path.leading_colon.is_some() || p.path.segments.len() != 1 {
        return None;
    }
    let segment = &p.path.segments[0];
    let name = segment.ident.to_string();
    let lowercase = name.starts_with(|c: char| c.is_lowercase() || c == '_');
    (segment.arguments.is_none() && lowercase && name != "self").then_some(name)
}

/// The standard macros whose arguments are expressions (and `name = value` format arguments);
/// in any other macro a name may be anything (a field in `tracing::info!(peer = ..)`, a token
/// in `stringify!`), so its names are never reported.
const EXPRESSION_MACROS: &[&str] = &[
    "vec",
    "format",
    "print",
    "println",
    "eprint",
    "eprintln",
    "write",
    "writeln",
    "panic",
    "assert",
    "assert_eq",
    "assert_ne",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "dbg",
];

/// A macro call's tokens as comma-separated expressions (`vec![..]`, `println!(..)`,
/// `tokio::join!(..)`), if that is what they are.
fn macro_exprs(mac: &syn::Macro) -> Option<Punctuated<Expr, Token![,]>> {
    mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)
        .ok()
}

fn idents(tokens: TokenStream, into: &mut HashSet<String>) {
    for tt in tokens {
        match tt {
            TokenTree::Ident(ident) => {
                into.insert(ident.to_string());
            }
            TokenTree::Group(group) => idents(group.stream(), into),
            TokenTree::Punct(_) | TokenTree::Literal(_) => {}
        }
    }
}

/// A local in scope at the invocation, and its type if written (`let x: u64`, `x: u64` as a
/// parameter or capture).
#[derive(Clone)]
struct Binding {
    name: String,
    ty: Option<String>,
}

/// What is in scope at one place an invocation is written.
#[derive(Clone)]
struct Scope {
    /// Innermost last.
    locals: Vec<Binding>,
    /// The type parameters of the fn and the impl or trait around it.
    generics: Vec<String>,
}

/// Each `remote!` of a source file by the shape of its tokens, with what is in scope at each
/// place it is written.
type Invocations = HashMap<String, Vec<Scope>>;

thread_local! {
    /// The last file read, with its text: a file with many invocations is parsed once, and a
    /// file edited since (in an editor's long-lived macro server) is parsed afresh.
    static LAST_READ: RefCell<Option<(PathBuf, String, Rc<Invocations>)>> =
        const { RefCell::new(None) };
}

/// What is in scope at each place the invocation is written in the caller's source file
/// (`None` if the file cannot be read or parsed, or the invocation is not in it).
fn scopes_at(invocation_tokens: &TokenStream) -> Option<Vec<Scope>> {
    if !proc_macro::is_available() {
        return None;
    }
    let path = proc_macro::Span::call_site().local_file()?;
    let text = std::fs::read_to_string(&path).ok()?;
    let cached = LAST_READ.with_borrow(|last| match last {
        Some((read, old, invocations)) if *read == path && *old == text => {
            Some(Rc::clone(invocations))
        }
        _ => None,
    });
    let invocations = match cached {
        Some(invocations) => invocations,
        None => {
            let file = syn::parse_file(&text).ok()?;
            let mut finder = Finder {
                scopes: Vec::new(),
                generics: Vec::new(),
                found: HashMap::new(),
            };
            finder.visit_file(&file);
            let invocations = Rc::new(finder.found);
            LAST_READ.set(Some((path, text, Rc::clone(&invocations))));
            invocations
        }
    };
    invocations.get(&shape(invocation_tokens.clone())).cloned()
}

/// Tokens as text without the spacing, which may differ between the source and the tokens a
/// macro is given.
fn shape(tokens: TokenStream) -> String {
    let mut text = String::new();
    for tt in tokens {
        match tt {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    proc_macro2::Delimiter::Parenthesis => ("(", ")"),
                    proc_macro2::Delimiter::Brace => ("{", "}"),
                    proc_macro2::Delimiter::Bracket => ("[", "]"),
                    proc_macro2::Delimiter::None => ("", ""),
                };
                text.push_str(open);
                text.push_str(&shape(group.stream()));
                text.push_str(close);
            }
            other => {
                text.push_str(&other.to_string());
                text.push(' ');
            }
        }
    }
    text
}

/// Walks the caller's file, keeping the locals in scope, to the invocation.
struct Finder {
    /// Innermost last; an item starts afresh (it cannot see the locals around it).
    scopes: Vec<Vec<Binding>>,
    generics: Vec<String>,
    found: Invocations,
}

impl Finder {
    fn scoped(&mut self, bindings: Vec<Binding>, walk: impl FnOnce(&mut Self)) {
        self.scopes.push(bindings);
        walk(self);
        self.scopes.pop();
    }

    fn generic(&mut self, generics: &syn::Generics, walk: impl FnOnce(&mut Self)) {
        let outer = self.generics.len();
        let params = generics.type_params().map(|p| p.ident.to_string());
        self.generics.extend(params);
        walk(self);
        self.generics.truncate(outer);
    }

    fn function(&mut self, sig: &syn::Signature, block: &syn::Block) {
        self.generic(&sig.generics, |me| {
            me.scoped(Vec::new(), |me| {
                me.visit_signature(sig);
                me.visit_block(block);
            });
        });
    }

    fn bind(&mut self, pat: &syn::Pat) {
        let bindings = bindings(pat);
        if let Some(scope) = self.scopes.last_mut() {
            scope.extend(bindings);
        }
    }

    /// `let` conditions of `if` and `while` (chains too): their bindings are in scope in the
    /// block that follows.
    fn conditioned(&mut self, cond: &Expr, then: &syn::Block) {
        let mut lets = Vec::new();
        let mut conditions = vec![cond];
        while let Some(cond) = conditions.pop() {
            match cond {
                Expr::Let(l) => {
                    self.visit_expr(&l.expr);
                    lets.extend(bindings(&l.pat));
                }
                Expr::Binary(b) if matches!(b.op, syn::BinOp::And(_)) => {
                    conditions.push(&b.right);
                    conditions.push(&b.left);
                }
                other => self.visit_expr(other),
            }
        }
        self.scoped(lets, |me| me.visit_block(then));
    }

    fn remote(&mut self, mac: &syn::Macro) -> bool {
        let last = mac.path.segments.last().map(|s| s.ident.to_string());
        if last.as_deref() != Some("remote") {
            return false;
        }
        let scope = Scope {
            locals: self.scopes.iter().flatten().cloned().collect(),
            generics: self.generics.clone(),
        };
        self.found
            .entry(shape(mac.tokens.clone()))
            .or_default()
            .push(scope);
        // A nested invocation sees the enclosing body's captures and locals.
        if let Ok(Parsed::Whole(inv)) = parse::invocation(mac.tokens.clone()) {
            let captures = inv
                .captures
                .iter()
                .map(|c| Binding {
                    name: c.name.to_string(),
                    ty: c.ty.as_ref().map(type_text),
                })
                .collect();
            // A body sees its captures and its own locals, none of the caller's.
            let outer = std::mem::take(&mut self.scopes);
            self.scoped(captures, |me| me.visit_block(&inv.body));
            self.scopes = outer;
        }
        true
    }
}

impl<'ast> Visit<'ast> for Finder {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let scopes = std::mem::take(&mut self.scopes);
        let generics = std::mem::take(&mut self.generics);
        syn::visit::visit_item(self, item);
        self.scopes = scopes;
        self.generics = generics;
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        self.generic(&item.generics, |me| syn::visit::visit_item_impl(me, item));
    }

    fn visit_item_trait(&mut self, item: &'ast syn::ItemTrait) {
        self.generic(&item.generics, |me| syn::visit::visit_item_trait(me, item));
    }

    fn visit_signature(&mut self, sig: &'ast syn::Signature) {
        for input in &sig.inputs {
            if let syn::FnArg::Typed(typed) = input {
                self.bind(&syn::Pat::Type(typed.clone()));
            }
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.function(&f.sig, &f.block);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.function(&f.sig, &f.block);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.function(&f.sig, block);
        }
    }

    fn visit_block(&mut self, block: &'ast syn::Block) {
        self.scoped(Vec::new(), |me| {
            for stmt in &block.stmts {
                match stmt {
                    syn::Stmt::Local(local) => {
                        if let Some(init) = &local.init {
                            me.visit_expr(&init.expr);
                            if let Some((_, diverge)) = &init.diverge {
                                me.visit_expr(diverge);
                            }
                        }
                        me.bind(&local.pat);
                    }
                    other => me.visit_stmt(other),
                }
            }
        });
    }

    fn visit_expr_closure(&mut self, closure: &'ast syn::ExprClosure) {
        let params = closure.inputs.iter().flat_map(bindings).collect();
        self.scoped(params, |me| me.visit_expr(&closure.body));
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        self.scoped(bindings(&arm.pat), |me| {
            if let Some((_, guard)) = &arm.guard {
                me.visit_expr(guard);
            }
            me.visit_expr(&arm.body);
        });
    }

    fn visit_expr_for_loop(&mut self, f: &'ast syn::ExprForLoop) {
        self.visit_expr(&f.expr);
        self.scoped(bindings(&f.pat), |me| me.visit_block(&f.body));
    }

    fn visit_expr_if(&mut self, e: &'ast syn::ExprIf) {
        self.conditioned(&e.cond, &e.then_branch);
        if let Some((_, otherwise)) = &e.else_branch {
            self.visit_expr(otherwise);
        }
    }

    fn visit_expr_while(&mut self, e: &'ast syn::ExprWhile) {
        self.conditioned(&e.cond, &e.body);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        if !self.remote(mac) {
            if let Some(exprs) = macro_exprs(mac) {
                exprs.iter().for_each(|e| self.visit_expr(e));
            }
        }
    }
}

/// The names a pattern binds, with the type written for each (`x: u64`, not `(a, b): (A, B)`).
fn bindings(pat: &syn::Pat) -> Vec<Binding> {
    struct Collect(Vec<Binding>, Option<String>);
    impl<'ast> Visit<'ast> for Collect {
        fn visit_pat_type(&mut self, p: &'ast syn::PatType) {
            let typed = match &*p.pat {
                syn::Pat::Ident(_) => capturable(&p.ty),
                _ => None,
            };
            let outer = std::mem::replace(&mut self.1, typed);
            self.visit_pat(&p.pat);
            self.1 = outer;
        }
        fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
            self.0.push(Binding {
                name: p.ident.to_string(),
                ty: self.1.take(),
            });
            if let Some((_, sub)) = &p.subpat {
                self.visit_pat(sub);
            }
        }
        // A path in a pattern (`Some(x)`, `Point { x, .. }`) names no local.
        fn visit_path(&mut self, _: &'ast syn::Path) {}
    }
    let mut collect = Collect(Vec::new(), None);
    collect.visit_pat(pat);
    collect.0
}

/// The type to capture a local of type `ty` as: itself, or the owned type of a reference
/// (`String` for `&str`, `Vec<T>` for `&[T]`); none for `impl Trait`.
fn capturable(ty: &syn::Type) -> Option<String> {
    match ty {
        syn::Type::Reference(reference) => match &*reference.elem {
            syn::Type::Path(p) if p.path.is_ident("str") => Some("String".to_owned()),
            syn::Type::Slice(slice) => Some(format!("Vec<{}>", type_text(&slice.elem))),
            elem => capturable(elem),
        },
        syn::Type::ImplTrait(_) | syn::Type::Infer(_) => None,
        other => Some(type_text(other)),
    }
}

fn type_text(ty: &syn::Type) -> String {
    crate::text::tidy(&ty.to_token_stream().to_string())
}

#[cfg(test)]
mod tests {
    use super::{shape, Finder, Scope};
    use std::collections::HashMap;
    use syn::visit::Visit;

    /// What is in scope at the invocation `remote!(peer, [], { probe })` in `source`.
    fn scope(source: &str) -> Vec<Scope> {
        let file = syn::parse_file(source).expect("a file");
        let mut finder = Finder {
            scopes: Vec::new(),
            generics: Vec::new(),
            found: HashMap::new(),
        };
        finder.visit_file(&file);
        let target: proc_macro2::TokenStream = "peer, [], { probe }".parse().expect("tokens");
        finder.found.remove(&shape(target)).unwrap_or_default()
    }

    fn locals(source: &str) -> Vec<String> {
        let scopes = scope(source);
        assert_eq!(scopes.len(), 1, "found once");
        let locals = scopes[0].locals.iter();
        locals
            .map(|b| match &b.ty {
                Some(ty) => format!("{}: {ty}", b.name),
                None => b.name.clone(),
            })
            .collect()
    }

    #[test]
    fn locals_in_scope_are_the_parameters_lets_before_and_bindings_around() {
        let found = locals(
            "fn f(peer: PeerId, (a, b): (u8, u8)) {
                 let early: u64 = 1;
                 { let sibling = 2; }
                 if let Some(inner) = x {
                     for (i, item) in list {
                         let c = |limit: usize| remote!(peer, [], { probe });
                     }
                 }
                 let late = 3;
             }",
        );
        assert_eq!(
            found,
            [
                "peer: PeerId",
                "a",
                "b",
                "early: u64",
                "inner",
                "i",
                "item",
                "limit: usize"
            ]
        );
    }

    #[test]
    fn a_borrowed_local_is_to_be_captured_as_its_owned_type() {
        let found = locals(
            "fn f(name: &str, ids: &[u64], config: &Config, each: impl Fn()) {
                 remote!(peer, [], { probe });
             }",
        );
        assert_eq!(
            found,
            ["name: String", "ids: Vec<u64>", "config: Config", "each"]
        );
    }

    #[test]
    fn an_item_inside_a_fn_sees_none_of_its_locals() {
        let found = locals(
            "fn outer(hidden: u8) {
                 let also_hidden = 1;
                 fn inner(seen: u8) { remote!(peer, [], { probe }); }
             }",
        );
        assert_eq!(found, ["seen: u8"]);
    }

    #[test]
    fn a_nested_invocation_sees_the_captures_of_the_body_around_it() {
        let found = locals(
            "fn f(server: PeerId) {
                 let outside = 1;
                 remote!(server, [a: u64, client: PeerId], {
                     let inside = a;
                     remote!(peer, [], { probe })
                 });
             }",
        );
        assert_eq!(found, ["a: u64", "client: PeerId", "inside"]);
    }

    #[test]
    fn generic_parameters_are_the_fns_and_its_impls() {
        let scopes = scope(
            "impl<A> Thing<A> {
                 fn method<B, const N: usize>(&self) { remote!(peer, [], { probe }); }
             }
             fn other<C>() {}",
        );
        assert_eq!(scopes[0].generics, ["A", "B"]);
    }
}
