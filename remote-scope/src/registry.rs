//! The registry: every body compiled into this binary, by stable name.
//!
//! Each `remote!` expansion submits a [`Registration`] with `inventory`; the registry collects
//! them once, on first use, and checks that no two different bodies share a name.

use std::sync::OnceLock;

use crate::error::Error;
use crate::hash::{fnv64, FastMap, FNV64_START};
use crate::protocol::Failure;
use crate::runtime::BoxFuture;

/// What a registered body returns: the encoded value, or why there is none.
pub type HandlerFuture = BoxFuture<'static, Result<crate::protocol::Encoded, Failure>>;

/// What a handler is asked to do.
#[doc(hidden)]
pub enum HandlerInput<'a> {
    /// Decode these captures and run.
    Run(&'a [u8]),
    /// Name the type of the body's value, as compiled in the handler.
    OutputType,
}

/// A handler's answer to a [`HandlerInput`].
#[doc(hidden)]
pub enum Handled {
    /// The body waits: its future, to be polled.
    Running(HandlerFuture),
    /// The body could not wait, or its captures did not decode: it is over already.
    Finished(Result<crate::protocol::Encoded, Failure>),
    OutputType(&'static str),
}

/// A registered body: decodes its captures, runs, encodes its value.
pub type Handler = fn(HandlerInput<'_>) -> Handled;

/// One body, as the `remote!` expansion registers it: what [`Registry::bodies`] lists.
///
/// ```
/// use remote_scope::{remote, PeerId, Registry};
///
/// pub async fn double(peer: PeerId, a: u64) -> Result<u64, remote_scope::Error> {
///     remote!(peer, [a: u64], { a * 2 }).await
/// }
///
/// let registry = Registry::global().expect("no two bodies share a name");
/// let body = registry.bodies().into_iter().find(|b| b.captures() == "a: u64").expect("registered");
/// assert_eq!(body.module(), "rust_out");
/// assert!(body.name().starts_with("rust_out::"));
/// assert_eq!(body.result_type(), Some("u64"));
/// println!("{} at {}", body.name(), body.site());
/// ```
#[derive(Debug)]
pub struct Registration {
    name: &'static str,
    check: u64,
    file: &'static str,
    line: u32,
    column: u32,
    captures: &'static str,
    handler: Handler,
}

impl Registration {
    #[doc(hidden)]
    pub const fn new(
        name: &'static str,
        check: u64,
        file: &'static str,
        line: u32,
        column: u32,
        captures: &'static str,
        handler: Handler,
    ) -> Registration {
        Registration {
            name,
            check,
            file,
            line,
            column,
            captures,
            handler,
        }
    }

    /// The body's stable name: its module's path and a fingerprint of its captures and code.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The path of the module whose `remote!` defines the body.
    pub fn module(&self) -> &'static str {
        crate::error::module_of(self.name)
    }

    /// Where the `remote!` is in the source, `file:line:column`.
    pub fn site(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column + 1)
    }

    /// The source file of the `remote!`, as the compiler named it.
    pub fn file(&self) -> &'static str {
        self.file
    }

    /// The line of the `remote!` in its file, from 1.
    pub fn line(&self) -> u32 {
        self.line
    }

    /// The capture list as written, e.g. `a: u64, b: Vec<u64>`.
    pub fn captures(&self) -> &'static str {
        self.captures
    }

    /// The type of the body's value as the body was compiled, e.g. `u64`.
    pub fn result_type(&self) -> Option<&'static str> {
        match (self.handler)(HandlerInput::OutputType) {
            Handled::OutputType(name) => Some(name),
            Handled::Running(_) | Handled::Finished(_) => None,
        }
    }
}

inventory::collect!(Registration);

/// The body a reader looked up last (see [`Registry::handler_after`]).
#[derive(Default)]
pub(crate) struct LastBody(Option<(&'static str, Handler)>);

/// The bodies this binary can serve.
///
/// ```
/// let registry = remote_scope::Registry::global().expect("no two bodies share a name");
/// println!("{} bodies, digest {:016x}", registry.len(), registry.digest());
/// ```
#[derive(Debug)]
pub struct Registry {
    bodies: FastMap<&'static str, &'static Registration>,
    digest: u64,
}

impl Registry {
    /// The registry of this binary, built on first use.
    ///
    /// Fails with [`Error::DuplicateBody`], naming both sites, if two different bodies share a
    /// name (a fingerprint collision, told apart by a second fingerprint). Identical bodies in
    /// one module, and an invocation the compiler expanded twice, are one body.
    pub fn global() -> Result<&'static Registry, Error> {
        static GLOBAL: OnceLock<Result<Registry, Error>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Registry::build(inventory::iter::<Registration>))
            .as_ref()
            .map_err(Clone::clone)
    }

    pub(crate) fn build(
        registrations: impl IntoIterator<Item = &'static Registration>,
    ) -> Result<Registry, Error> {
        let mut bodies: FastMap<&'static str, &'static Registration> = FastMap::default();
        for r in registrations {
            if let Some(first) = bodies.get(r.name) {
                if first.check == r.check {
                    continue;
                }
                let (a, b) = ordered(first.site(), r.site());
                return Err(Error::DuplicateBody {
                    name: r.name.to_owned(),
                    first: a,
                    second: b,
                });
            }
            bodies.insert(r.name, r);
        }
        let digest = digest(bodies.keys().copied());
        Ok(Registry { bodies, digest })
    }

    /// A fingerprint of the set of body names: equal on two peers built from the same source.
    /// FNV-1a 64 over the sorted names, each followed by `\n`.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// The number of bodies.
    pub fn len(&self) -> usize {
        self.bodies.len()
    }

    /// Whether there are no bodies.
    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }

    /// Whether a body of this name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.bodies.contains_key(name)
    }

    /// The names of all bodies, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.bodies.keys().copied().collect();
        crate::sort::sort(&mut names);
        names
    }

    /// Every body, sorted by name: its module, site, captures and result type.
    pub fn bodies(&self) -> Vec<&'static Registration> {
        let mut bodies: Vec<_> = self.registrations().collect();
        bodies.sort_unstable_by_key(|r| r.name);
        bodies
    }

    /// The body of this name, if there is one.
    pub fn body(&self, name: &str) -> Option<&'static Registration> {
        self.registration(name)
    }

    pub(crate) fn registrations(&self) -> impl Iterator<Item = &'static Registration> + '_ {
        self.bodies.values().copied()
    }

    pub(crate) fn registration(&self, name: &str) -> Option<&'static Registration> {
        self.bodies.get(name).copied()
    }

    pub(crate) fn handler(&self, name: &str) -> Option<Handler> {
        self.bodies.get(name).map(|r| r.handler)
    }

    /// The registry's own copy of the body name `name` (bytes, as a frame holds them), through
    /// `last` as [`Registry::handler_after`] does; `None` if no body here has that name.
    #[inline]
    pub(crate) fn name_after(&self, name: &[u8], last: &mut LastBody) -> Option<&'static str> {
        match last.0 {
            Some((known, _)) if known.as_bytes() == name => Some(known),
            _ => self.look_up_name(name, last),
        }
    }

    #[inline(never)]
    fn look_up_name(&self, name: &[u8], last: &mut LastBody) -> Option<&'static str> {
        let (&known, r) = self.bodies.get_key_value(std::str::from_utf8(name).ok()?)?;
        last.0 = Some((known, r.handler));
        Some(known)
    }

    /// [`Registry::handler`], through `last`: the body found last time, which a connection's
    /// calls name again and again. Comparing the name is cheaper than hashing it.
    pub(crate) fn handler_after(&self, name: &str, last: &mut LastBody) -> Option<Handler> {
        if let Some((known, handler)) = last.0 {
            // The frame decoder hands back the registry's name itself (`name_after`).
            if std::ptr::eq(known, name) || known == name {
                return Some(handler);
            }
        }
        let (&known, r) = self.bodies.get_key_value(name)?;
        last.0 = Some((known, r.handler));
        Some(r.handler)
    }

    /// The type of the body's value as its handler was compiled, e.g. `"u64"`.
    pub(crate) fn output_type(&self, name: &str) -> Option<&'static str> {
        self.registration(name)?.result_type()
    }
}

// Sites in a fixed order, so the error reads the same whichever registration inventory saw first.
fn ordered(a: String, b: String) -> (String, String) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

fn digest<'a>(names: impl Iterator<Item = &'a str>) -> u64 {
    let mut names: Vec<&str> = names.collect();
    crate::sort::sort(&mut names);
    names.iter().fold(FNV64_START, |hash, name| {
        fnv64(fnv64(hash, name.as_bytes()), b"\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: HandlerInput<'_>) -> Handled {
        Handled::Running(Box::pin(async { Err(Failure::UnknownBody) }))
    }

    static A: Registration = Registration::new("m::a", 1, "src/a.rs", 1, 4, "", never);
    static A_AGAIN: Registration = Registration::new("m::a", 1, "src/a.rs", 1, 4, "", never);
    static A_IDENTICAL: Registration = Registration::new("m::a", 1, "src/a.rs", 7, 4, "", never);
    static A_ELSEWHERE: Registration = Registration::new("m::a", 2, "src/b.rs", 9, 0, "", never);
    static B: Registration = Registration::new("m::b", 3, "src/a.rs", 2, 4, "", never);

    #[test]
    fn a_names_module_is_what_precedes_its_last_double_colon() {
        for name in [
            "app::jobs::2ee355ec",
            "m::a",
            "a:::b",
            "nomodule",
            "",
            "::x",
            "a::",
            "é::ü::1",
        ] {
            let expected = name.rsplit_once("::").map_or("", |(module, _)| module);
            assert_eq!(crate::error::module_of(name), expected, "{name}");
        }
    }

    #[test]
    fn the_last_body_found_is_the_right_one_whatever_came_before() {
        fn x(_: HandlerInput<'_>) -> Handled {
            Handled::OutputType("x")
        }
        fn y(_: HandlerInput<'_>) -> Handled {
            Handled::OutputType("y")
        }
        static X: Registration = Registration::new("m::x", 4, "src/x.rs", 1, 0, "", x);
        static Y: Registration = Registration::new("m::y", 5, "src/x.rs", 2, 0, "", y);
        let registry = Registry::build([&X, &Y]).expect("no conflict");
        let mut last = LastBody::default();
        let mut found = |name: &str| {
            registry.handler_after(name, &mut last).map(|handler| {
                match handler(HandlerInput::OutputType) {
                    Handled::OutputType(output) => output,
                    Handled::Running(_) | Handled::Finished(_) => "ran",
                }
            })
        };
        // A name built at run time, so the cache is compared by content, not by address.
        let x = String::from("m::") + "x";
        let order = ["m::x", &x, "m::y", "m::z", "m::y", "m::x", "m::x"];
        let outputs: Vec<_> = order.iter().map(|name| found(name)).collect();
        let expected = [
            Some("x"),
            Some("x"),
            Some("y"),
            None,
            Some("y"),
            Some("x"),
            Some("x"),
        ];
        assert_eq!(outputs, expected);
    }

    #[test]
    fn repeated_and_identical_registrations_are_one_body() {
        let registry = Registry::build([&A, &B, &A_AGAIN, &A_IDENTICAL]).expect("no conflict");
        assert_eq!(registry.names(), ["m::a", "m::b"]);
    }

    #[test]
    fn different_bodies_with_one_name_are_an_error_naming_both() {
        let err = Registry::build([&A_ELSEWHERE, &B, &A]).expect_err("conflict");
        assert_eq!(
            err,
            Error::DuplicateBody {
                name: "m::a".into(),
                first: "src/a.rs:1:5".into(),
                second: "src/b.rs:9:1".into(),
            }
        );
    }

    #[test]
    fn digest_depends_on_the_set_of_names_not_their_order() {
        let ab = Registry::build([&A, &B]).expect("ok");
        let ba = Registry::build([&B, &A]).expect("ok");
        let a = Registry::build([&A]).expect("ok");
        assert_eq!(ab.digest(), ba.digest());
        assert_ne!(ab.digest(), a.digest());
        // Peers built apart compare it: FNV-1a 64 of "m::a\nm::b\n", fixed.
        assert_eq!(ab.digest(), 0x8cd3_feaf_3e14_46a6);
    }
}
