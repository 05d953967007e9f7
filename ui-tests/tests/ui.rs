//! Compile-time behaviour of `remote!`: every misuse has a snapshot of its diagnostics in
//! `ui/fail/*.stderr`; `ui/pass` holds code that must compile with no false positives.
//! Regenerate snapshots with `TRYBUILD=overwrite cargo test -p remote-scope-ui-tests` and review
//! the diff.

#[test]
fn diagnostics() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
