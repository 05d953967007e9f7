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
//! Identical bodies (same captures, same tokens) in one file get an occurrence suffix (`~1`,
//! `~2`, ...) in source order, because they may still mean different things (a local helper fn of
//! the same name in two different functions).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

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

/// The fingerprint part of a body's name, e.g. `"3f9a0c1d2e4b5a69"` or `"3f9a0c1d2e4b5a69~1"`.
pub fn body_suffix(captures: &Captures<'_>, body: &syn::Block, site: &Site) -> String {
    let fingerprint = fnv1a64(canonical(captures, body).as_bytes());
    match occurrence(site, fingerprint) {
        0 => format!("{fingerprint:016x}"),
        n => format!("{fingerprint:016x}~{n}"),
    }
}

fn canonical(captures: &Captures<'_>, body: &syn::Block) -> String {
    let mut out = String::from("remote-scope/1 captures");
    for (name, ty) in &captures.entries {
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

/// FNV-1a, 64 bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The index of `site` among the sites in its file whose bodies have `fingerprint`, in expansion
/// order. The same site asks again when an invocation is expanded twice (an alias the typing copy
/// could not recognise); it gets the same index.
/// Per (file, fingerprint): the (line, column) of each invocation seen, in expansion order.
type Seen = HashMap<(String, u64), Vec<(usize, usize)>>;

fn occurrence(site: &Site, fingerprint: u64) -> usize {
    static SEEN: Mutex<Option<Seen>> = Mutex::new(None);
    let mut guard = SEEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let sites = guard
        .get_or_insert_with(HashMap::new)
        .entry((site.file.clone(), fingerprint))
        .or_default();
    let here = (site.line, site.column);
    match sites.iter().position(|s| *s == here) {
        Some(i) => i,
        None => {
            sites.push(here);
            sites.len() - 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suffix_of(captures: &str, body: &str, line: usize) -> String {
        let parsed = syn::parse::Parser::parse_str(
            syn::punctuated::Punctuated::<crate::parse::Capture, syn::Token![,]>::parse_terminated,
            captures,
        )
        .expect("test captures parse");
        let captures = Captures {
            entries: parsed
                .iter()
                .map(|c| (&c.name, c.ty.as_ref().expect("test captures are typed")))
                .collect(),
        };
        let body: syn::Block = syn::parse_str(body).expect("test body parses");
        let site = Site {
            file: "src/lib.rs".into(),
            line,
            column: 4,
        };
        body_suffix(&captures, &body, &site)
    }

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn name_ignores_formatting_and_position_but_not_content() {
        let a = suffix_of("a: u64", "{ a + 1 }", 10);
        let reformatted = suffix_of("a : u64", "{\n    a\n    + 1\n}", 20);
        assert_eq!(a.split('~').next(), reformatted.split('~').next());
        assert_ne!(a, suffix_of("a: u64", "{ a + 2 }", 30));
        assert_ne!(a, suffix_of("a: u32", "{ a + 1 }", 40));
        assert_ne!(a, suffix_of("b: u64", "{ b + 1 }", 50));
    }

    #[test]
    fn identical_bodies_in_one_file_get_distinct_suffixes_and_repeats_are_stable() {
        let first = suffix_of("z: u8", "{ z * 7 }", 100);
        let second = suffix_of("z: u8", "{ z * 7 }", 200);
        assert_ne!(first, second);
        assert!(second.ends_with("~1"), "{second}");
        assert_eq!(first, suffix_of("z: u8", "{ z * 7 }", 100));
    }

    #[test]
    fn joint_punctuation_is_kept_apart_from_alone_punctuation() {
        assert_ne!(
            suffix_of("", "{ a - -b }", 300),
            suffix_of("", "{ a -- b }", 301)
        );
    }
}
