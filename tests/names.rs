//! Body names are stable: pinned here, so a build that named a body differently (another
//! profile, target or toolchain) fails this test. `.ci/run` runs it in debug and release.

use remote_scope::{remote, PeerId, Registry};

fn peer() -> PeerId {
    PeerId::new("p")
}

fn doubling() -> &'static str {
    let a: u64 = 1;
    remote!(peer(), [a: u64], { a * 2 }).body_name()
}

fn doubling_again() -> &'static str {
    let a: u64 = 1;
    remote!(peer(), [a: u64], { a * 2 }).body_name()
}

fn doubling_a_u32() -> &'static str {
    let a: u32 = 1;
    remote!(peer(), [a: u32], { a * 2 }).body_name()
}

mod in_a_macro {
    /// A helper reached through `$crate` from inside a macro_rules wrapper.
    pub fn forty() -> u64 {
        40
    }
}

/// `remote!` inside a `macro_rules!` body that names an item through `$crate`.
macro_rules! plus_forty {
    ($peer:expr, $n:ident) => {
        remote_scope::remote!($peer, [$n: u64], { $n + $crate::in_a_macro::forty() })
    };
}

/// The fingerprint was computed apart from the macro, by FNV-1a 64 over the canonical text
/// `remote-scope/1 captures  a : u64 , body { a * 2 }` (see the macro crate's `name` module).
#[test]
fn names_are_the_module_path_and_a_pinned_fingerprint() {
    assert_eq!(doubling(), "names::2ee355ec6c4b8744");
}

#[test]
fn identical_bodies_in_one_module_are_one_body_with_one_name() {
    assert_eq!(doubling_again(), doubling());
}

#[test]
fn a_changed_capture_type_changes_the_name() {
    assert_ne!(doubling_a_u32(), doubling());
}

#[test]
fn every_body_of_this_binary_is_registered_once() {
    let registry = Registry::global().expect("no conflicts");
    let n: u64 = 0;
    let wrapped = plus_forty!(peer(), n).body_name();
    for name in [doubling(), doubling_again(), doubling_a_u32(), wrapped] {
        assert!(registry.contains(name), "{name} is not registered");
    }
    // `doubling` and `doubling_again` are one body; the library serves two of its own (the
    // health probe and the delivery of a stream's items).
    let names = registry.names();
    let ours = names.iter().filter(|n| n.starts_with("names::")).count();
    let library = names
        .iter()
        .filter(|n| n.starts_with("remote_scope::"))
        .count();
    assert_eq!((ours, library), (3, 2), "{names:?}");
    assert!(registry.contains(remote_scope::patterns::health_body()));
    assert_eq!(registry.len(), 5);
}

#[test]
fn crate_paths_from_macro_rules_wrappers_resolve_in_bodies() {
    let n: u64 = 2;
    let call = plus_forty!(peer(), n);
    assert!(call.body_name().starts_with("names::"));
}
