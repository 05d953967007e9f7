//! Validate: checks that need no type information, each reported at the offending token.
//!
//! A local the user forgot to capture, and a capture type that is a generic parameter, cannot be
//! told apart from items by these tokens alone; `caller_scope` reads the caller's source for
//! them. Where it cannot, `expand` still makes rustc report both: the body has macro_rules
//! hygiene, so an uncaptured local is "cannot find value `x` in this scope" at the use while
//! items still resolve, and the handler is an item of its own, which generic parameters do not
//! reach.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::Type;

use crate::parse::{Capture, Invocation};

/// A capture list with every entry typed and named once.
pub struct Captures<'a> {
    pub entries: Vec<(&'a syn::Ident, &'a Type)>,
    /// The entries written `mut name: Type`.
    pub mutable: Vec<&'a syn::Ident>,
}

/// Runs every check. Returns the entries that are usable (typed, listed once, sendable types)
/// and, if anything is wrong, all errors combined.
pub fn invocation<'a>(
    inv: &'a Invocation,
    tokens: &TokenStream,
) -> (Captures<'a>, Option<syn::Error>) {
    let (captures, list_errors) = captures(&inv.captures);
    let mut errors: Vec<syn::Error> = list_errors.into_iter().collect();

    let mut self_uses = SelfUses::default();
    self_uses.visit_block(&inv.body);
    errors.extend(self_uses.errors);

    let mut body = inv.body.clone();
    LeavingJumps(&mut |expr| errors.push(leaving(expr))).visit_block_mut(&mut body);
    value_exprs(&mut body, &mut |expr| errors.extend(borrowed_value(expr)));
    errors.extend(crate::caller_scope::errors(inv, tokens));

    (captures, combined(errors))
}

/// The capture list's checks: the entries that are usable, and the errors.
pub fn captures(list: &[Capture]) -> (Captures<'_>, Option<syn::Error>) {
    let mut errors: Vec<syn::Error> = Vec::new();
    let mut seen: HashMap<String, &syn::Ident> = HashMap::new();
    let mut entries = Vec::new();

    let mut mutable = Vec::new();
    for Capture {
        mutable: is_mut,
        name,
        ty,
    } in list
    {
        let key = name.to_string();
        if seen.contains_key(&key) {
            errors.push(syn::Error::new(
                name.span(),
                format!("`{name}` is already in the capture list; remove this entry"),
            ));
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
                None => {
                    entries.push((name, ty));
                    if *is_mut {
                        mutable.push(name);
                    }
                }
            },
        }
    }

    (Captures { entries, mutable }, combined(errors))
}

fn combined(errors: Vec<syn::Error>) -> Option<syn::Error> {
    errors.into_iter().reduce(|mut all, e| {
        all.combine(e);
        all
    })
}

/// Capture types must be owned and nameable: the serving peer decodes them on its own.
pub fn unsendable_type(ty: &Type) -> Option<syn::Error> {
    let mut finder = BadType {
        error: None,
        what: "capture types",
        reference: "captures are sent by value: use an owned type (e.g. `String` for `&str`, \
                    `Vec<T>` for `&[T]`)",
    };
    finder.visit_type(ty);
    finder.error
}

/// A `#[remote_fn]`'s result type must be owned and nameable: the caller decodes it.
pub fn unreturnable_type(ty: &Type) -> Option<syn::Error> {
    let mut finder = BadType {
        error: None,
        what: "the result of a `#[remote_fn]`",
        reference: "the result of a `#[remote_fn]` cannot be a reference: it is sent back to \
                    the caller, which cannot borrow from the peer that ran it; return an owned \
                    type (e.g. `String` for `&str`, `Vec<T>` for `&[T]`)",
    };
    finder.visit_type(ty);
    finder.error
}

struct BadType {
    error: Option<syn::Error>,
    /// What the type is of, for the messages.
    what: &'static str,
    /// What to say of a reference.
    reference: &'static str,
}

impl<'ast> Visit<'ast> for BadType {
    fn visit_type(&mut self, ty: &'ast Type) {
        if self.error.is_some() {
            return;
        }
        let what = self.what;
        let msg = match ty {
            Type::Reference(_) => Some(self.reference.to_owned()),
            Type::Infer(_) => Some(format!(
                "{what} must be written out; `_` cannot be inferred across peers"
            )),
            Type::ImplTrait(_) => Some(format!(
                "{what} must be concrete; `impl Trait` cannot be decoded by the other peer"
            )),
            Type::TraitObject(_) => Some(format!(
                "{what} must be concrete; a trait object cannot be decoded by the other peer"
            )),
            Type::Ptr(_) => Some("raw pointers cannot be sent to another peer".to_owned()),
            _ => None,
        };
        match msg {
            Some(msg) => self.error = Some(syn::Error::new(ty.span(), msg)),
            None => syn::visit::visit_type(self, ty),
        }
    }

    fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
        if self.error.is_none() && lifetime.ident != "static" {
            self.error = Some(syn::Error::new(
                lifetime.span(),
                format!(
                    "{} cannot borrow (`{lifetime}`): the value goes to another peer, which \
                     decodes it on its own; use an owned type (e.g. `String` for \
                     `Cow<{lifetime}, str>`)",
                    self.what
                ),
            ));
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

/// Finds each `break` and `continue` that would leave the body (it runs on another peer,
/// outside any loop of the caller's) and calls the function on it.
pub struct LeavingJumps<'f>(pub &'f mut dyn FnMut(&mut syn::Expr));

#[derive(Default)]
struct Around {
    /// Loops (and labeled blocks) around the current expression, inside the body.
    depth: usize,
    labels: Vec<String>,
}

impl LeavingJumps<'_> {
    fn walk(&mut self, around: &mut Around, expr: &mut syn::Expr) {
        use syn::Expr;
        let (label, leaves) = match expr {
            Expr::Loop(e) => (e.label.as_ref(), None),
            Expr::While(e) => (e.label.as_ref(), None),
            Expr::ForLoop(e) => (e.label.as_ref(), None),
            Expr::Block(e) if e.label.is_some() => (e.label.as_ref(), None),
            Expr::Break(e) => (None, Some(e.label.as_ref())),
            Expr::Continue(e) => (None, Some(e.label.as_ref())),
            // Closures, async blocks and macro calls are not the body's own control flow.
            Expr::Closure(_) | Expr::Async(_) | Expr::Macro(_) => return,
            _ => {
                Walk(self, around).visit_expr_children(expr);
                return;
            }
        };
        if let Some(target) = leaves {
            let leaving = match target {
                Some(label) => !around.labels.contains(&label.ident.to_string()),
                None => around.depth == 0,
            };
            if leaving {
                (self.0)(expr);
                return;
            }
            Walk(self, around).visit_expr_children(expr);
            return;
        }
        let label = label.map(|l| l.name.ident.to_string());
        around.depth += 1;
        around.labels.extend(label.clone());
        Walk(self, around).visit_expr_children(expr);
        if label.is_some() {
            around.labels.pop();
        }
        around.depth -= 1;
    }

    pub fn visit_block_mut(&mut self, block: &mut syn::Block) {
        Walk(self, &mut Around::default()).visit_block_mut(block);
    }
}

/// The walk under [`LeavingJumps`]: every expression goes through `LeavingJumps::walk`.
struct Walk<'a, 'f>(&'a mut LeavingJumps<'f>, &'a mut Around);

impl Walk<'_, '_> {
    fn visit_expr_children(&mut self, expr: &mut syn::Expr) {
        syn::visit_mut::visit_expr_mut(self, expr);
    }
}

impl VisitMut for Walk<'_, '_> {
    fn visit_expr_mut(&mut self, expr: &mut syn::Expr) {
        self.0.walk(self.1, expr);
    }
    // Items are bodies of their own.
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// The error for a `break` or `continue` that would leave the body.
fn leaving(expr: &syn::Expr) -> syn::Error {
    let keyword = match expr {
        syn::Expr::Continue(_) => "continue",
        _ => "break",
    };
    syn::Error::new(
        expr.span(),
        format!(
            "`{keyword}` cannot leave a remote body: the body runs on another peer, outside the \
             caller's loop; make the body's value say what to do (e.g. `true` to stop) and \
             `{keyword}` in the caller"
        ),
    )
}

/// Calls `f` on each expression the body's value can come from: its last expression, and
/// through blocks, `if`/`match` arms, parentheses, tuples, arrays and `Ok`/`Some`/`Err`.
pub fn value_exprs(body: &mut syn::Block, f: &mut dyn FnMut(&mut syn::Expr)) {
    if let Some(syn::Stmt::Expr(tail, None)) = body.stmts.last_mut() {
        value_expr(tail, f);
    }
}

fn value_expr(expr: &mut syn::Expr, f: &mut dyn FnMut(&mut syn::Expr)) {
    use syn::Expr;
    match expr {
        Expr::Block(b) if b.label.is_none() => value_exprs(&mut b.block, f),
        Expr::Unsafe(b) => value_exprs(&mut b.block, f),
        Expr::If(i) => {
            value_exprs(&mut i.then_branch, f);
            if let Some((_, other)) = &mut i.else_branch {
                value_expr(other, f);
            }
        }
        Expr::Match(m) => m
            .arms
            .iter_mut()
            .for_each(|arm| value_expr(&mut arm.body, f)),
        Expr::Paren(p) => value_expr(&mut p.expr, f),
        Expr::Group(g) => value_expr(&mut g.expr, f),
        Expr::Tuple(t) => t.elems.iter_mut().for_each(|e| value_expr(e, f)),
        Expr::Array(a) => a.elems.iter_mut().for_each(|e| value_expr(e, f)),
        Expr::Call(call) if wraps_a_value(&call.func) => {
            call.args.iter_mut().for_each(|e| value_expr(e, f))
        }
        other => f(other),
    }
}

/// `Ok`, `Some`, `Err`: what the caller receives is inside.
fn wraps_a_value(func: &syn::Expr) -> bool {
    matches!(func, syn::Expr::Path(p) if p.qself.is_none()
        && p.path.segments.len() == 1
        && ["Ok", "Some", "Err"].iter().any(|w| p.path.is_ident(w)))
}

/// Methods whose value borrows from their receiver.
const BORROWING: &[&str] = &[
    "as_str",
    "as_slice",
    "as_bytes",
    "as_path",
    "trim",
    "trim_start",
    "trim_end",
];

/// The error for a value that is, visibly, a reference: the caller cannot receive one.
pub fn borrowed_value(expr: &syn::Expr) -> Option<syn::Error> {
    const WHY: &str = "the value of a remote body is sent back to its caller, which cannot \
                       borrow from the peer that ran the body";
    let message = match expr {
        syn::Expr::Reference(_) => format!(
            "this is a reference, and {WHY}: return an owned value (the value itself, or \
             `.to_owned()` of it)"
        ),
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => format!(
            "a string literal is a `&'static str`, and {WHY}: return a `String`, \
             `{:?}.to_string()`",
            s.value()
        ),
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::ByteStr(_),
            ..
        }) => format!(
            "a byte string literal is a `&'static [u8]`, and {WHY}: return a `Vec<u8>`, \
             `b\"..\".to_vec()`"
        ),
        syn::Expr::MethodCall(call) if BORROWING.iter().any(|m| call.method == m) => format!(
            "`.{}()` borrows, and {WHY}: return an owned value (`.to_owned()` of it)",
            call.method
        ),
        _ => return None,
    };
    Some(syn::Error::new(expr.span(), message))
}
