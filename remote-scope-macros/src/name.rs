//! Name: give every body a stable name.
//!
//! A body's name is `<module path>::<fingerprint>` (the module path is filled in by
//! `module_path!()` at the call site, so it is the compiler's, not a guess). The fingerprint is
//! FNV-1a 64 over a canonical text of the capture list and the body, printed as 16 hex digits.
//! FNV-1a is fixed by its definition (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`),
//! unlike `std`'s `DefaultHasher`, so native and wasm32 builds, debug and release, agree.
//!
//! The canonical text is built from the tokens themselves (one space between tokens, delimiters
//! written out), not from the compiler's pretty printer, so it does not depend on formatting or
//! on the toolchain's printing. Spans do not enter it: moving a body, or editing the code around
//! it, keeps its name; changing the body or a capture changes it.
//!
//! Identical bodies (same captures, same tokens) in one module are one body with one name: the
//! name depends on nothing but the module and the text, never on how many other bodies there
//! are or which of them a `cfg` leaves out. A second fingerprint of the same text (64-bit FNV-1,
//! the variant that multiplies before it mixes) travels with the registration, so two different
//! bodies whose names collide are caught when the registry is built.

use std::fmt::Write as _;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;

use crate::validate::Captures;

/// Where an invocation sits in the source: file, line, column (1-based line, 0-based column, as
/// `proc_macro::Span` reports them).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Site {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Site {
    /// The site of the macro invocation being expanded. Only valid inside a proc macro.
    pub fn call_site() -> Site {
        let span = proc_macro::Span::call_site();
        Site {
            file: span.file(),
            line: span.line(),
            column: span.column(),
        }
    }
}

/// A body's fingerprints: the one in its name, and an independent one for collision checks.
pub struct Fingerprints {
    pub name: String,
    pub check: u64,
}

pub fn fingerprints(captures: &Captures<'_>, body: &syn::Block) -> Fingerprints {
    let text = canonical(captures, body);
    Fingerprints {
        name: format!("{:016x}", fnv1a64(text.as_bytes())),
        check: fnv1_64(text.as_bytes()),
    }
}

/// A `#[remote_fn]`'s fingerprints: of its name and signature, not of its block.
pub fn function_fingerprints(
    ident: &syn::Ident,
    params: &[&syn::Type],
    output: &syn::Type,
) -> Fingerprints {
    let mut text = format!("remote-scope/1 fn {ident} (");
    for ty in params {
        write_tokens(&mut text, ty.to_token_stream());
        text.push_str(" ,");
    }
    text.push_str(" ) ->");
    write_tokens(&mut text, output.to_token_stream());
    Fingerprints {
        name: format!("{:016x}", fnv1a64(text.as_bytes())),
        check: fnv1_64(text.as_bytes()),
    }
}

fn canonical(captures: &Captures<'_>, body: &syn::Block) -> String {
    let mut out = String::from("remote-scope/1 captures");
    for (name, ty) in &captures.entries {
        if captures.mutable.contains(name) {
            out.push_str(" mut");
        }
        out.push(' ');
        write_tokens(&mut out, name.to_token_stream());
        out.push_str(" :");
        write_tokens(&mut out, ty.to_token_stream());
        out.push_str(" ,");
    }
    out.push_str(" body");
    write_tokens(&mut out, body.to_token_stream());
    out
}

fn write_tokens(out: &mut String, tokens: TokenStream) {
    for tt in tokens {
        match tt {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                out.push(' ');
                out.push_str(open);
                write_tokens(out, g.stream());
                out.push(' ');
                out.push_str(close);
            }
            TokenTree::Ident(i) => {
                let _ = write!(out, " {i}");
            }
            // A joint punct glues to the next one (`->`, `::`), an alone one does not.
            TokenTree::Punct(p) => {
                out.push(' ');
                out.push(p.as_char());
                if p.spacing() == Spacing::Joint {
                    out.push('~');
                }
            }
            TokenTree::Literal(l) => {
                let _ = write!(out, " {l}");
            }
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// FNV-1, 64 bit.
pub fn fnv1_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, &b| {
        hash.wrapping_mul(FNV_PRIME) ^ u64::from(b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(captures: &str, body: &str) -> String {
        let parsed = syn::parse::Parser::parse_str(
            syn::punctuated::Punctuated::<crate::parse::Capture, syn::Token![,]>::parse_terminated,
            captures,
        )
        .expect("test captures parse");
        let captures = Captures {
            mutable: Vec::new(),
            entries: parsed
                .iter()
                .map(|c| (&c.name, c.ty.as_ref().expect("test captures are typed")))
                .collect(),
        };
        let body: syn::Block = syn::parse_str(body).expect("test body parses");
        fingerprints(&captures, &body).name
    }

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1_64(b"a"), 0xaf63_bd4c_8601_b7be);
        assert_eq!(fnv1_64(b"foobar"), 0x340d_8765_a4dd_a9c2);
    }

    #[test]
    fn name_ignores_formatting_but_not_content() {
        let a = name_of("a: u64", "{ a + 1 }");
        assert_eq!(a, name_of("a : u64", "{\n    a\n    + 1\n}"));
        assert_ne!(a, name_of("a: u64", "{ a + 2 }"));
        assert_ne!(a, name_of("a: u32", "{ a + 1 }"));
        assert_ne!(a, name_of("b: u64", "{ b + 1 }"));
    }

    #[test]
    fn spacing_inside_operators_is_formatting_but_the_operator_is_not() {
        // Both spell `a - (-b)`: one syntax tree, one body.
        assert_eq!(name_of("", "{ a - -b }"), name_of("", "{ a -- b }"));
        assert_ne!(name_of("", "{ a - -b }"), name_of("", "{ a - b }"));
        assert_ne!(name_of("", "{ a << b }"), name_of("", "{ a < b }"));
    }
}
