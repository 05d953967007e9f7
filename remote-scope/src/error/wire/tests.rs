use serde::Serialize;

use super::*;
use crate::error::tests::samples;
use crate::protocol::decode_payload;

/// The samples as serde's derive encoded them, compact then named (`wire.golden`).
fn goldens() -> Vec<(Vec<u8>, Vec<u8>)> {
    let hex = |text: &str| -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    };
    include_str!("../wire.golden")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (compact, named) = line.split_once(' ').expect("two encodings");
            (hex(compact), hex(named))
        })
        .collect()
}

#[test]
fn every_variant_encodes_as_the_derive_did_and_decodes_back() {
    let samples = samples();
    let goldens = goldens();
    assert_eq!(samples.len(), goldens.len());
    for ((error, _), (compact, named)) in samples.iter().zip(&goldens) {
        assert_eq!(
            &rmp_serde::to_vec(error).expect("encoded"),
            compact,
            "{error:?}"
        );
        assert_eq!(
            &rmp_serde::to_vec_named(error).expect("encoded"),
            named,
            "{error:?}"
        );
        for bytes in [compact, named] {
            let by_rmp: Error = rmp_serde::from_slice(bytes).expect("decoded by rmp-serde");
            assert_eq!(&by_rmp, error);
            let by_ours: Error = decode_payload(bytes).expect("decoded by the project's decoder");
            assert_eq!(&by_ours, error);
        }
    }
}

/// A named encoding of a variant with the given fields (each encoded on its own), as another
/// build might write it.
fn named(variant: &str, fields: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0x81];
    out.extend(enc(variant));
    out.push(0x80 | u8::try_from(fields.len()).expect("a fixmap"));
    for (name, value) in fields {
        out.extend(enc(name));
        out.extend(value);
    }
    out
}

fn enc<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("encoded")
}

fn both<T: for<'de> serde::Deserialize<'de>>(bytes: &[u8]) -> [Result<T, String>; 2] {
    [
        rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
        decode_payload(bytes).map_err(|e| e.to_string()),
    ]
}

#[test]
fn a_map_may_order_its_fields_freely_add_unknown_ones_and_leave_options_out() {
    let bytes = named(
        "Handshake",
        &[
            ("later", enc(&7_u32)),
            ("reason", enc(&"no hello")),
            ("peer", enc(&Some("a"))),
        ],
    );
    for decoded in both::<Error>(&bytes) {
        assert_eq!(
            decoded,
            Ok(Error::Handshake {
                peer: Some(PeerId::new("a")),
                reason: "no hello".into(),
                source: None,
            })
        );
    }
    let bytes = named(
        "Timeout",
        &[
            ("after", enc(&Duration::from_millis(1500))),
            ("body", enc("b")),
            ("peer", enc("p")),
        ],
    );
    for decoded in both::<Error>(&bytes) {
        assert_eq!(
            decoded,
            Ok(Error::Timeout {
                peer: PeerId::new("p"),
                body: "b".into(),
                after: Duration::from_millis(1500),
            })
        );
    }
}

#[test]
fn a_malformed_error_is_refused_with_what_is_wrong() {
    let cases: [(Vec<u8>, &str); 4] = [
        (
            named("Disconnected", &[("body", enc("b"))]),
            "missing field `peer`",
        ),
        (
            named("NotConnected", &[("peer", enc("a")), ("peer", enc("b"))]),
            "duplicate field `peer`",
        ),
        (named("Vanished", &[]), "unknown variant `Vanished`"),
        // A compact variant one field short.
        (
            rmp_serde::to_vec(&serde_value_short()).expect("encoded"),
            "invalid length 1",
        ),
    ];
    for (bytes, expected) in cases {
        for decoded in both::<Error>(&bytes) {
            let message = decoded.expect_err("refused");
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    // A field of the wrong type: each decoder words it its own way.
    let bytes = named(
        "Busy",
        &[
            ("peer", enc("a")),
            ("body", enc("b")),
            ("limit", enc("many")),
        ],
    );
    let [by_rmp, by_ours] = both::<Error>(&bytes);
    assert!(by_rmp.is_err(), "{by_rmp:?}");
    let message = by_ours.expect_err("refused");
    assert!(
        message.contains("invalid type: string \"many\", expected u32"),
        "{message}"
    );
}

/// `{"Disconnected": ["p"]}`: the variant's array without its `body`.
fn serde_value_short() -> impl Serialize {
    std::collections::BTreeMap::from([("Disconnected", ("p",))])
}

#[test]
fn an_error_holding_errors_nests_through_the_table() {
    let inner = Error::AllFailed {
        errors: vec![Error::Timeout {
            peer: PeerId::new("a"),
            body: "b".into(),
            after: Duration::from_secs(2),
        }],
    };
    let outer = Error::NoQuorum {
        replicas: 3,
        needed: 2,
        agreed: 0,
        disagreed: vec![],
        errors: vec![inner.clone(), inner],
    };
    let result: Result<u64, Error> = Err(outer);
    for bytes in [
        rmp_serde::to_vec(&result).expect("encoded"),
        rmp_serde::to_vec_named(&result).expect("encoded"),
    ] {
        for decoded in both::<Result<u64, Error>>(&bytes) {
            assert_eq!(decoded, Ok(result.clone()));
        }
    }
}

/// `BodyError` as serde's derive had it, the reference for its hand-made `Deserialize`.
#[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
struct DerivedBodyError {
    type_name: String,
    message: String,
    sources: Vec<String>,
}

#[test]
fn a_body_error_reads_from_what_the_derive_wrote_and_refuses_what_it_refused() {
    let derived = DerivedBodyError {
        type_name: "core::num::error::ParseIntError".into(),
        message: "invalid digit found in string".into(),
        sources: vec!["first".into(), "".into()],
    };
    let expected = BodyError::from_parts(
        derived.type_name.clone(),
        derived.message.clone(),
        derived.sources.clone(),
    );
    for bytes in [
        rmp_serde::to_vec(&derived).expect("encodes"),
        rmp_serde::to_vec_named(&derived).expect("encodes"),
    ] {
        for decoded in both::<BodyError>(&bytes) {
            assert_eq!(decoded.as_ref(), Ok(&expected));
        }
        // And it writes what the derive wrote.
        assert_eq!(
            rmp_serde::to_vec_named(&expected).expect("encodes"),
            rmp_serde::to_vec_named(&derived).expect("encodes")
        );
    }
    // A field missing or of another type is refused, by both decoders, as by the derive.
    let missing = {
        let mut out = vec![0x82];
        out.extend(enc("type_name"));
        out.extend(enc("t"));
        out.extend(enc("message"));
        out.extend(enc("m"));
        out
    };
    assert!(rmp_serde::from_slice::<DerivedBodyError>(&missing).is_err());
    for decoded in both::<BodyError>(&missing) {
        let message = decoded.expect_err("refused");
        assert!(message.contains("missing field `sources`"), "{message}");
    }
    let wrong = rmp_serde::to_vec(&("t", 7_u8, Vec::<String>::new())).expect("encodes");
    assert!(rmp_serde::from_slice::<DerivedBodyError>(&wrong).is_err());
    for decoded in both::<BodyError>(&wrong) {
        assert!(decoded.is_err(), "{decoded:?}");
    }
}
