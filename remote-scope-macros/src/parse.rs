//! Parse: `remote!(peer, [name: Type, ...], { body })` into a typed model.
//!
//! Parsing is lenient where validation can give a better message: an untyped capture `[a]` parses
//! (with `ty: None`) so that `validate` can tell the user what to write.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{bracketed, token, Block, Expr, Ident, Token, Type};

/// What the input parsed to: the whole invocation, or all of it but a body that is not valid
/// Rust (yet: an editor asks for completions while the user types).
pub enum Parsed {
    Whole(Invocation),
    UnparsedBody {
        peer: Expr,
        captures: Vec<Capture>,
        /// The body's `{ .. }`, as written.
        body: TokenStream,
    },
}

/// One invocation of `remote!`.
pub struct Invocation {
    pub peer: Expr,
    pub captures: Vec<Capture>,
    pub body: Block,
}

/// One entry of the capture list.
pub struct Capture {
    /// `mut name: Type`: the body may change its copy.
    pub mutable: bool,
    pub name: Ident,
    /// `None` for an untyped entry, which `validate` rejects with a hint.
    pub ty: Option<Type>,
}

const USAGE: &str = "expected `remote!(peer, [name: Type, ...], { body })`";

impl Parse for Parsed {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(input.error(USAGE));
        }
        let peer: Expr = input.parse()?;
        comma_before(input, "the capture list `[name: Type, ...]`")?;

        if !input.peek(token::Bracket) {
            return Err(input.error(
                "expected the capture list in brackets, e.g. `[a: u64, b: Vec<u64>]` (write `[]` to capture nothing)",
            ));
        }
        let content;
        bracketed!(content in input);
        let entries: Punctuated<Capture, Token![,]> =
            content.parse_terminated(Capture::parse, Token![,])?;
        comma_before(input, "the body `{ ... }`")?;

        if !input.peek(token::Brace) {
            return Err(input.error("expected the body as a block: `{ ... }`"));
        }
        let body: proc_macro2::TokenTree = input.parse()?;
        let _trailing: Option<Token![,]> = input.parse()?;
        if !input.is_empty() {
            return Err(input.error(format!("unexpected tokens after the body; {USAGE}")));
        }
        let captures = entries.into_iter().collect();
        let body = TokenStream::from(body);
        Ok(match syn::parse2::<Block>(body.clone()) {
            Ok(body) => Parsed::Whole(Invocation {
                peer,
                captures,
                body,
            }),
            Err(_) => Parsed::UnparsedBody {
                peer,
                captures,
                body,
            },
        })
    }
}

fn comma_before(input: ParseStream, next: &str) -> syn::Result<()> {
    if input.peek(Token![,]) {
        input.parse::<Token![,]>().map(drop)
    } else {
        Err(input.error(format!("expected `,` and then {next}; {USAGE}")))
    }
}

impl Parse for Capture {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mutable = input.parse::<Option<Token![mut]>>()?.is_some();
        let name: Ident = if input.peek(Token![self]) {
            let kw: Token![self] = input.parse()?;
            return Err(syn::Error::new(
                kw.span,
                "`self` cannot be captured; capture the fields the body needs, e.g. `[count: u64]` after `let count = self.count;`",
            ));
        } else if input.peek(Token![_]) {
            let us: Token![_] = input.parse()?;
            return Err(syn::Error::new(us.span, "a capture needs a name"));
        } else {
            input
                .parse()
                .map_err(|e| syn::Error::new(e.span(), "expected a capture `name: Type`"))?
        };
        if input.peek(Token![.]) {
            return Err(field_capture(&name, input));
        }
        let ty = if input.peek(Token![:]) {
            input.parse::<Token![:]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(Capture { mutable, name, ty })
    }
}

/// `[job.size: u64]`: the list names locals, so say how to capture a field.
fn field_capture(base: &Ident, input: ParseStream) -> syn::Error {
    let dot: Token![.] = match input.parse() {
        Ok(dot) => dot,
        Err(e) => return e,
    };
    let field = input
        .parse::<syn::Member>()
        .map(|member| match member {
            syn::Member::Named(ident) => ident.to_string(),
            syn::Member::Unnamed(index) => format!("{}", index.index),
        })
        .unwrap_or_else(|_| "field".to_owned());
    let local = if field.starts_with(|c: char| c.is_ascii_digit()) {
        format!("{base}_{field}")
    } else {
        field.clone()
    };
    let ty = input
        .parse::<Token![:]>()
        .and_then(|_| input.parse::<Type>())
        .map(|ty| {
            quote::ToTokens::to_token_stream(&ty)
                .to_string()
                .replace(' ', "")
        })
        .unwrap_or_else(|_| "Type".to_owned());
    syn::Error::new(
        dot.span,
        format!(
            "the capture list takes local variables, and `{base}.{field}` is a field: bind it \
             first, `let {local} = {base}.{field};`, and capture `{local}: {ty}`"
        ),
    )
}

/// Parses the macro input; a helper so that `lib.rs` stays a list of pipeline steps.
pub fn invocation(tokens: TokenStream) -> syn::Result<Parsed> {
    syn::parse2(tokens)
}
