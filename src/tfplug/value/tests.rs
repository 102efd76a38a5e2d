//! Wire-format tests for the value codecs: literal byte strings for each rule
//! of Terraform's object wire format, hostile-input cases, and property tests
//! for round trips and for decoding arbitrary bytes without panicking.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn obj(pairs: &[(&str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

fn num(s: &str) -> Number {
    match s.parse() {
        Ok(n) => n,
        Err(e) => panic!("{s}: {e}"),
    }
}

fn enc(v: &Value, ty: &Type) -> Vec<u8> {
    match encode_msgpack(v, ty) {
        Ok(b) => b,
        Err(e) => panic!("encode {v:?} as {ty:?}: {e}"),
    }
}

fn dec(b: &[u8], ty: &Type) -> Value {
    match decode_msgpack(b, ty) {
        Ok(v) => v,
        Err(e) => panic!("decode {b:02x?} as {ty:?}: {e}"),
    }
}

fn enc_json(v: &Value, ty: &Type) -> String {
    match encode_json(v, ty) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => panic!("encode {v:?} as {ty:?}: {e}"),
    }
}

fn dec_json(s: &str, ty: &Type) -> Value {
    match decode_json(s.as_bytes(), ty) {
        Ok(v) => v,
        Err(e) => panic!("decode {s} as {ty:?}: {e}"),
    }
}

fn err_msgpack(b: &[u8], ty: &Type) -> ValueError {
    match decode_msgpack(b, ty) {
        Ok(v) => panic!("decoding {b:02x?} should fail, got {v:?}"),
        Err(e) => e,
    }
}

// ---- msgpack: null and unknown ----

#[test]
fn null_is_nil() {
    assert_eq!(enc(&Value::Null, &Type::String), [0xc0]);
    assert_eq!(dec(&[0xc0], &Type::list(Type::String)), Value::Null);
    assert_eq!(enc(&Value::Null, &Type::Dynamic), [0xc0]);
    assert_eq!(dec(&[0xc0], &Type::Dynamic), Value::Null);
}

#[test]
fn unrefined_unknown_is_fixext1_type_0() {
    for ty in [Type::String, Type::Dynamic, Type::list(Type::Bool)] {
        assert_eq!(enc(&Value::unknown(), &ty), [0xd4, 0, 0]);
        assert_eq!(dec(&[0xd4, 0, 0], &ty), Value::unknown());
    }
    // Refinements that do not apply to the type are not sent.
    let prefix_on_number = Value::Unknown(Refinements {
        string_prefix: Some("ab".into()),
        length_lower: Some(1),
        ..Refinements::default()
    });
    assert_eq!(enc(&prefix_on_number, &Type::Number), [0xd4, 0, 0]);
    assert_eq!(
        enc(&Value::unknown_not_null(), &Type::Dynamic),
        [0xd4, 0, 0]
    );
}

#[test]
fn any_extension_decodes_as_unknown() {
    for bytes in [
        &[0xd4, 0x05, 0x00][..],               // fixext1, other type
        &[0xc7, 0x00, 0x00],                   // ext8, empty
        &[0xc7, 0x00, 0x0c],                   // ext8 type 12 without payload
        &[0xd4, 0x0c, 0x00],                   // fixext1 type 12
        &[0xd5, 0x07, 0x01, 0x02],             // fixext2, other type, ignored body
        &[0xc7, 0x03, 0x01, 0x81, 0x01, 0xc2], // refinement-like body, wrong type
    ] {
        assert_eq!(dec(bytes, &Type::String), Value::unknown(), "{bytes:02x?}");
    }
}

#[test]
fn refined_unknown_string() {
    let v = Value::Unknown(Refinements {
        not_null: true,
        string_prefix: Some("ab".into()),
        ..Refinements::default()
    });
    // ext 12, payload {1: false (definitely not null), 2: "ab"}
    let wire = [0xc7, 0x07, 0x0c, 0x82, 0x01, 0xc2, 0x02, 0xa2, b'a', b'b'];
    assert_eq!(enc(&v, &Type::String), wire);
    assert_eq!(dec(&wire, &Type::String), v);
    // Empty prefix is no refinement.
    let empty = Value::Unknown(Refinements {
        string_prefix: Some(String::new()),
        ..Refinements::default()
    });
    assert_eq!(enc(&empty, &Type::String), [0xd4, 0, 0]);
}

#[test]
fn refined_unknown_number_bounds() {
    let v = Value::Unknown(Refinements {
        number_lower: Some((Number::from(0), true)),
        number_upper: Some((Number::from(1.5), false)),
        ..Refinements::default()
    });
    let mut wire = vec![
        0xc7, 0x11, 0x0c, 0x82, 0x03, 0x92, 0x00, 0xc3, 0x04, 0x92, 0xcb,
    ];
    wire.extend(1.5f64.to_be_bytes());
    wire.push(0xc2);
    assert_eq!(enc(&v, &Type::Number), wire);
    assert_eq!(dec(&wire, &Type::Number), v);
    // Bounds may use any number encoding, e.g. a decimal string.
    let as_string = [
        0xc7, 0x08, 0x0c, 0x81, 0x03, 0x92, 0xa3, b'0', b'.', b'1', 0xc3,
    ];
    let expected = Value::Unknown(Refinements {
        number_lower: Some((num("0.1"), true)),
        ..Refinements::default()
    });
    assert_eq!(dec(&as_string, &Type::Number), expected);
}

#[test]
fn refined_unknown_collection_length() {
    let v = Value::Unknown(Refinements {
        not_null: true,
        length_lower: Some(1),
        length_upper: Some(3),
        ..Refinements::default()
    });
    let wire = [0xc7, 0x07, 0x0c, 0x83, 0x01, 0xc2, 0x05, 0x01, 0x06, 0x03];
    for ty in [
        Type::list(Type::String),
        Type::set(Type::Number),
        Type::map(Type::Bool),
    ] {
        assert_eq!(enc(&v, &ty), wire);
        assert_eq!(dec(&wire, &ty), v);
    }
    // Tuples and objects are not collections: only nullness survives.
    let tuple = Type::Tuple(vec![Type::String]);
    assert_eq!(dec(&wire, &tuple), Value::unknown_not_null());
}

#[test]
fn refinement_decoding_ignores_what_it_does_not_know() {
    // {9: [1, 2, {}], 1: false}: unknown key 9 is skipped, whatever its value.
    let wire = [
        0xc7, 0x08, 0x0c, 0x82, 0x09, 0x93, 0x01, 0x02, 0x80, 0x01, 0xc2,
    ];
    assert_eq!(dec(&wire, &Type::String), Value::unknown_not_null());
    // A string prefix on a number is ignored rather than rejected.
    let wire = [0xc7, 0x05, 0x0c, 0x81, 0x02, 0xa2, b'a', b'b'];
    assert_eq!(dec(&wire, &Type::Number), Value::unknown());
    // Dynamic unknowns never carry refinements.
    let wire = [0xc7, 0x03, 0x0c, 0x81, 0x01, 0xc2];
    assert_eq!(dec(&wire, &Type::Dynamic), Value::unknown());
    // Trailing bytes inside the payload are ignored (room for future use).
    let wire = [0xc7, 0x04, 0x0c, 0x81, 0x01, 0xc2, 0xff];
    assert_eq!(dec(&wire, &Type::String), Value::unknown_not_null());
}

#[test]
fn refinement_saying_null_is_null() {
    let wire = [0xc7, 0x03, 0x0c, 0x81, 0x01, 0xc3];
    assert_eq!(dec(&wire, &Type::String), Value::Null);
}

#[test]
fn malformed_refinements_are_errors() {
    for (wire, ty) in [
        (&[0xc7, 0x02, 0x0c, 0x91, 0x01][..], Type::String), // not a map
        (&[0xc7, 0x03, 0x0c, 0x81, 0x01, 0x01], Type::String), // nullness not bool
        (&[0xc7, 0x03, 0x0c, 0x81, 0xa1, b'x'], Type::String), // non-integer key
        (&[0xc7, 0x03, 0x0c, 0x81, 0x02, 0x01], Type::String), // prefix not a string
        (&[0xc7, 0x04, 0x0c, 0x81, 0x03, 0x91, 0x01], Type::Number), // bound not a pair
        (
            &[0xc7, 0x05, 0x0c, 0x81, 0x03, 0x92, 0xc0, 0xc3],
            Type::Number,
        ), // null bound
        (
            &[0xc7, 0x03, 0x0c, 0x81, 0x05, 0xff],
            Type::list(Type::String),
        ), // negative length
        (&[0xc7, 0x05, 0x0c, 0x82, 0x01, 0xc2, 0x02], Type::String), // truncated map
    ] {
        assert!(
            matches!(
                err_msgpack(wire, &ty),
                ValueError::Refinement { .. } | ValueError::Msgpack { .. }
            ),
            "{wire:02x?}"
        );
    }
    let mut oversized = vec![0xc9];
    oversized.extend(1025u32.to_be_bytes());
    oversized.extend([0x0c, 0x81, 0x01, 0xc2]);
    oversized.resize(6 + 1025, 0);
    assert!(matches!(
        err_msgpack(&oversized, &Type::String),
        ValueError::Refinement { .. }
    ));
}

// ---- msgpack: primitives ----

#[test]
fn numbers() {
    let cases: [(&str, &[u8]); 8] = [
        ("1", &[0x01]),
        ("-1", &[0xff]),
        ("200", &[0xcc, 0xc8]),
        ("-9223372036854775808", &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        ("1.5", &[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]),
        // 2^70 is exactly a float64.
        (
            "1180591620717411303424",
            &[0xcb, 0x44, 0x50, 0, 0, 0, 0, 0, 0],
        ),
        // 0.1 is not exactly a float64, so cty sends its decimal string.
        ("0.1", &[0xa3, b'0', b'.', b'1']),
        ("-0", &[0x00]),
    ];
    for (text, wire) in cases {
        let v = Value::Number(num(text));
        assert_eq!(enc(&v, &Type::Number), wire, "{text}");
        assert_eq!(dec(wire, &Type::Number), v, "{text}");
    }
    // 2^70 + 1 needs more precision than a float64 has.
    let big = "1180591620717411303425";
    let mut wire = vec![0xa0 | big.len() as u8];
    wire.extend(big.as_bytes());
    assert_eq!(enc(&Value::Number(num(big)), &Type::Number), wire);
    assert_eq!(dec(&wire, &Type::Number), Value::Number(num(big)));
    // Other integer and float widths decode too.
    let decoded = [
        (
            &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            num("18446744073709551615"),
        ),
        (&[0xd0, 0x80], num("-128")),
        (&[0xcd, 0x01, 0x00], num("256")),
        (&[0xca, 0x3f, 0xc0, 0x00, 0x00], num("1.5")),
        (&[0xa4, b'1', b'e', b'+', b'3'], num("1000")),
        (
            &[0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0],
            Number::infinity(false),
        ),
    ];
    for (wire, n) in decoded {
        assert_eq!(dec(wire, &Type::Number), Value::Number(n), "{wire:02x?}");
    }
    // A float64 keeps its exact binary value, so it re-encodes identically.
    let mut tenth = vec![0xcb];
    tenth.extend(0.1f64.to_be_bytes());
    assert_eq!(enc(&dec(&tenth, &Type::Number), &Type::Number), tenth);
    for bad in [
        &[0xa3, b'a', b'b', b'c'][..],
        &[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1],
        &[0xc3],
    ] {
        assert!(decode_msgpack(bad, &Type::Number).is_err(), "{bad:02x?}");
    }
    assert!(encode_msgpack(&Value::Number(Number::from(f64::NAN)), &Type::Number).is_err());
}

#[test]
fn strings_and_bools() {
    assert_eq!(enc(&"hi".into(), &Type::String), [0xa2, b'h', b'i']);
    assert_eq!(
        dec(&[0xc4, 0x02, b'h', b'i'], &Type::String),
        Value::from("hi")
    );
    assert_eq!(enc(&true.into(), &Type::Bool), [0xc3]);
    assert_eq!(dec(&[0xc2], &Type::Bool), Value::from(false));
    assert!(matches!(
        err_msgpack(&[0xa2, 0xff, 0xfe], &Type::String),
        ValueError::InvalidUtf8 { .. }
    ));
    assert!(matches!(
        err_msgpack(&[0x01], &Type::Bool),
        ValueError::TypeMismatch { .. }
    ));
}

// ---- msgpack: structural types ----

#[test]
fn object_with_null_attribute() {
    let ty = Type::object([("a", Type::String), ("b", Type::String)]);
    let v = obj(&[("a", Value::Null), ("b", "x".into())]);
    let wire = [0x82, 0xa1, b'a', 0xc0, 0xa1, b'b', 0xa1, b'x'];
    assert_eq!(enc(&v, &ty), wire);
    assert_eq!(dec(&wire, &ty), v);
    // Attribute order on the wire does not matter.
    assert_eq!(
        dec(&[0x82, 0xa1, b'b', 0xa1, b'x', 0xa1, b'a', 0xc0], &ty),
        v
    );
}

#[test]
fn object_attributes_must_match_exactly() {
    let ty = Type::object([("a", Type::String), ("b", Type::String)]);
    let e = err_msgpack(&[0x81, 0xa1, b'a', 0xc0], &ty);
    assert!(
        matches!(&e, ValueError::MissingAttribute { path } if *path == AttrPath::root().attr("b")),
        "{e}"
    );
    let e = err_msgpack(
        &[0x83, 0xa1, b'a', 0xc0, 0xa1, b'b', 0xc0, 0xa1, b'c', 0xc0],
        &ty,
    );
    assert!(
        matches!(&e, ValueError::UnexpectedAttribute { path } if *path == AttrPath::root().attr("c")),
        "{e}"
    );
    let e = err_msgpack(&[0x82, 0xa1, b'a', 0xc0, 0xa1, b'a', 0xc0], &ty);
    assert!(matches!(e, ValueError::DuplicateKey { .. }), "{e}");
    let e = encode_msgpack(&obj(&[("a", Value::Null)]), &ty);
    assert!(matches!(e, Err(ValueError::MissingAttribute { .. })));
    let e = encode_msgpack(
        &obj(&[("a", Value::Null), ("b", Value::Null), ("z", Value::Null)]),
        &ty,
    );
    assert!(matches!(e, Err(ValueError::UnexpectedAttribute { .. })));
}

#[test]
fn collections() {
    let list = Value::List(vec!["a".into(), Value::Null]);
    assert_eq!(
        enc(&list, &Type::list(Type::String)),
        [0x92, 0xa1, b'a', 0xc0]
    );
    let set = Value::Set(vec![Value::from(1), Value::from(2)]);
    assert_eq!(dec(&[0x92, 0x02, 0x01], &Type::set(Type::Number)), set);
    let map = Value::Map([("k".to_string(), Value::from(true))].into());
    assert_eq!(enc(&map, &Type::map(Type::Bool)), [0x81, 0xa1, b'k', 0xc3]);
    let tuple_ty = Type::Tuple(vec![Type::String, Type::Number]);
    let tuple = Value::Tuple(vec!["a".into(), Value::from(1)]);
    assert_eq!(enc(&tuple, &tuple_ty), [0x92, 0xa1, b'a', 0x01]);
    assert!(matches!(
        err_msgpack(&[0x91, 0xa1, b'a'], &tuple_ty),
        ValueError::TupleLength { .. }
    ));
    assert!(matches!(
        err_msgpack(&[0x81, 0x01, 0xc3], &Type::map(Type::Bool)),
        ValueError::Msgpack { .. }
    ));
}

#[test]
fn dynamic_wraps_type_json_and_value() {
    let v = Value::dynamic(
        Type::list(Type::String),
        Value::List(vec!["a".into(), "b".into()]),
    );
    let type_json = br#"["list","string"]"#;
    let mut wire = vec![0x92, 0xc4, type_json.len() as u8];
    wire.extend(type_json);
    wire.extend([0x92, 0xa1, b'a', 0xa1, b'b']);
    assert_eq!(enc(&v, &Type::Dynamic), wire);
    assert_eq!(dec(&wire, &Type::Dynamic), v);
    // The type may also arrive as a msgpack string.
    let mut as_str = vec![0x92, 0xa0 | type_json.len() as u8];
    as_str.extend(type_json);
    as_str.extend([0x92, 0xa1, b'a', 0xa1, b'b']);
    assert_eq!(dec(&as_str, &Type::Dynamic), v);
    // A typed unknown stays wrapped and keeps its refinements.
    let typed_unknown = Value::dynamic(Type::String, Value::unknown_not_null());
    let wire = enc(&typed_unknown, &Type::Dynamic);
    assert_eq!(
        wire,
        [
            0x92, 0xc4, 0x08, b'"', b's', b't', b'r', b'i', b'n', b'g', b'"', 0xc7, 0x03, 0x0c,
            0x81, 0x01, 0xc2
        ]
    );
    assert_eq!(dec(&wire, &Type::Dynamic), typed_unknown);
    // Known values in a dynamic position must say their type.
    assert!(matches!(
        encode_msgpack(&"x".into(), &Type::Dynamic),
        Err(ValueError::NonConforming { .. })
    ));
    assert!(matches!(
        err_msgpack(&[0x91, 0xc0], &Type::Dynamic),
        ValueError::InvalidDynamic { .. }
    ));
    assert!(matches!(
        err_msgpack(&[0x92, 0xa3, b'f', b'o', b'o', 0xc0], &Type::Dynamic),
        ValueError::Json { .. }
    ));
}

#[test]
fn dynamic_nesting_is_bounded() {
    fn nested(levels: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        for _ in 0..levels {
            wire.extend([0x92, 0xc4, 0x09]);
            wire.extend(br#""dynamic""#);
        }
        wire.extend([0x92, 0xc4, 0x08]);
        wire.extend(br#""string""#);
        wire.extend([0xa1, b'x']);
        wire
    }
    let v = dec(&nested(64), &Type::Dynamic);
    let mut expected = Value::dynamic(Type::String, "x".into());
    for _ in 0..64 {
        expected = Value::dynamic(Type::Dynamic, expected);
    }
    assert_eq!(v, expected);
    assert_eq!(enc(&v, &Type::Dynamic), nested(64));
    assert!(matches!(
        err_msgpack(&nested(150), &Type::Dynamic),
        ValueError::TooDeep { .. }
    ));
    // Deep type JSON inside a dynamic value.
    let deep_type = format!("{}\"string\"{}", "[\"list\",".repeat(200), "]".repeat(200));
    let mut wire = vec![0x92, 0xc5];
    wire.extend((deep_type.len() as u16).to_be_bytes());
    wire.extend(deep_type.as_bytes());
    wire.push(0xc0);
    assert!(matches!(
        err_msgpack(&wire, &Type::Dynamic),
        ValueError::TooDeep { .. }
    ));
}

// ---- msgpack: hostile input ----

#[test]
fn claimed_lengths_are_not_trusted() {
    let ty = Type::list(Type::String);
    for wire in [
        &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
        &[0xdd, 0xff, 0xff, 0xff, 0xff, 0xa1, b'a'],
        &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
        &[0xc6, 0xff, 0xff, 0xff, 0xff],
    ] {
        assert!(decode_msgpack(wire, &ty).is_err());
    }
    assert!(decode_msgpack(&[0xdf, 0xff, 0xff, 0xff, 0xff], &Type::map(Type::String)).is_err());
    assert!(decode_msgpack(&[0xdb, 0xff, 0xff, 0xff, 0xff], &Type::String).is_err());
    assert!(decode_msgpack(&[0xc9, 0xff, 0xff, 0xff, 0xff, 0x00], &Type::String).is_err());
}

#[test]
fn trailing_and_missing_bytes() {
    assert!(matches!(
        err_msgpack(&[0xc3, 0x00], &Type::Bool),
        ValueError::TrailingBytes { count: 1 }
    ));
    assert!(decode_msgpack(&[], &Type::Bool).is_err());
    assert!(decode_msgpack(&[0xcb, 0x00], &Type::Number).is_err());
    assert!(decode_msgpack(&[0xc1], &Type::Dynamic).is_err());
}

#[test]
fn deep_schema_nesting_is_bounded() {
    let mut ty = Type::String;
    for _ in 0..150 {
        ty = Type::list(ty);
    }
    let mut wire = vec![0x91; 150];
    wire.push(0xc0);
    assert!(matches!(
        err_msgpack(&wire, &ty),
        ValueError::TooDeep { .. }
    ));
}

#[test]
fn errors_name_paths_but_not_values() {
    let ty = Type::object([("tags", Type::map(Type::Number))]);
    // {"tags": {"k": "supersecret"}}
    let mut wire = vec![0x81, 0xa4];
    wire.extend(b"tags");
    wire.extend([0x81, 0xa1, b'k', 0xab]);
    wire.extend(b"supersecret");
    // msgpack numbers may be decimal strings, so this one is an invalid number.
    let msg = err_msgpack(&wire, &ty).to_string();
    assert_eq!(msg, r#"at tags["k"]: invalid number"#);
    let e = decode_json(br#"{"tags":{"k":"supersecret"}}"#, &ty)
        .err()
        .map(|e| e.to_string());
    assert_eq!(e.as_deref(), Some(r#"at tags["k"]: invalid number"#));
    let v = obj(&[(
        "tags",
        Value::Map([("k".to_string(), "supersecret".into())].into()),
    )]);
    let e = encode_msgpack(&v, &ty).err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some(r#"at tags["k"]: value does not conform: expected number, found string"#)
    );
}

// ---- JSON ----

#[test]
fn json_objects_and_missing_attributes() {
    let ty = Type::object([
        ("a", Type::String),
        ("b", Type::Number),
        ("c", Type::list(Type::Bool)),
    ]);
    let v = obj(&[
        ("a", "x".into()),
        ("b", Value::Null),
        ("c", Value::List(vec![true.into()])),
    ]);
    assert_eq!(enc_json(&v, &ty), r#"{"a":"x","b":null,"c":[true]}"#);
    // Older state may lack attributes: they decode as null.
    assert_eq!(dec_json(r#"{"a":"x","c":[true]}"#, &ty), v);
    let e = decode_json(br#"{"a":"x","gone":1}"#, &ty);
    assert!(
        matches!(&e, Err(ValueError::UnexpectedAttribute { path }) if *path == AttrPath::root().attr("gone"))
    );
}

#[test]
fn json_lenient_drops_unknown_attributes_at_any_depth() {
    let inner = Type::object([("id", Type::Number)]);
    let ty = Type::object([("a", Type::String), ("items", Type::list(inner))]);
    let text = br#"{"a":"x","old":{"deep":[1]},"items":[{"id":1,"legacy":true}]}"#;
    assert!(decode_json(text, &ty).is_err());
    let v = decode_json_lenient(text, &ty);
    let expected = obj(&[
        ("a", "x".into()),
        ("items", Value::List(vec![obj(&[("id", Value::from(1))])])),
    ]);
    assert_eq!(v.ok(), Some(expected));
}

#[test]
fn json_numbers_keep_precision() {
    let text = "12345678901234567890123.000000000000000000001";
    let v = dec_json(text, &Type::Number);
    assert_eq!(v, Value::Number(num(text)));
    assert_eq!(
        enc_json(&v, &Type::Number),
        "12345678901234567890123.000000000000000000001"
    );
    assert_eq!(
        enc_json(&Value::Number(num("1e400")), &Type::Number),
        "1e400"
    );
    assert_eq!(
        dec_json("1e400", &Type::Number),
        Value::Number(num("1e400"))
    );
    assert_eq!(dec_json("\"42\"", &Type::Number), Value::from(42));
    assert!(matches!(
        encode_json(&Value::Number(Number::infinity(false)), &Type::Number),
        Err(ValueError::InfinityInJson { .. })
    ));
}

#[test]
fn json_dynamic() {
    let v = Value::dynamic(Type::list(Type::String), Value::List(vec!["a".into()]));
    let text = r#"{"value":["a"],"type":["list","string"]}"#;
    assert_eq!(enc_json(&v, &Type::Dynamic), text);
    assert_eq!(dec_json(text, &Type::Dynamic), v);
    assert_eq!(
        dec_json(r#"{"type":"string","value":null}"#, &Type::Dynamic),
        Value::dynamic(Type::String, Value::Null)
    );
    assert_eq!(dec_json("null", &Type::Dynamic), Value::Null);
    for bad in [
        r#"{"value":1}"#,
        r#"{"type":"number"}"#,
        r#"{"type":"number","value":1,"x":2}"#,
        "1",
    ] {
        assert!(
            decode_json(bad.as_bytes(), &Type::Dynamic).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn json_rejects_unknowns_with_path() {
    let ty = Type::object([("a", Type::list(Type::String))]);
    let v = obj(&[("a", Value::List(vec!["x".into(), Value::unknown()]))]);
    let e = encode_json(&v, &ty);
    assert!(
        matches!(&e, Err(ValueError::UnknownInJson { path }) if path.to_string() == "a[1]"),
        "{e:?}"
    );
}

#[test]
fn json_primitive_conversions_like_cty() {
    assert_eq!(dec_json("12", &Type::String), Value::from("12"));
    assert_eq!(dec_json("true", &Type::String), Value::from("true"));
    assert_eq!(dec_json("\"false\"", &Type::Bool), Value::from(false));
    assert!(decode_json(b"\"yes\"", &Type::Bool).is_err());
    assert!(decode_json(b"1", &Type::Bool).is_err());
}

#[test]
fn json_hostile_input() {
    let deep = "[".repeat(100_000);
    assert!(matches!(
        decode_json(deep.as_bytes(), &Type::list(Type::String)),
        Err(ValueError::TooDeep { .. })
    ));
    assert!(decode_json(b"\"a\" \"b\"", &Type::String).is_err());
    assert!(decode_json(b"{\"a\":1,\"a\":2}", &Type::map(Type::Number)).is_err());
}

#[test]
fn from_impls() {
    assert_eq!(Value::from(5), Value::Number(Number::from(5i64)));
    assert_eq!(Value::from("s"), Value::String("s".into()));
    assert_eq!(Value::from(String::from("s")), Value::String("s".into()));
    assert_eq!(Value::from(true), Value::Bool(true));
    assert_eq!(Number::from(5), Number::from(5u64));
}

// ---- property tests ----

fn arb_type(depth: u32) -> BoxedStrategy<Type> {
    let leaf = prop_oneof![
        Just(Type::Bool),
        Just(Type::Number),
        Just(Type::String),
        Just(Type::Dynamic)
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(Type::list),
            inner.clone().prop_map(Type::set),
            inner.clone().prop_map(Type::map),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Type::Tuple),
            prop::collection::btree_map("[a-z_]{1,6}", (inner, any::<bool>()), 0..4).prop_map(
                |attrs| {
                    let optional: BTreeSet<String> = attrs
                        .iter()
                        .filter(|(_, (_, o))| *o)
                        .map(|(k, _)| k.clone())
                        .collect();
                    Type::Object(ObjectType {
                        attributes: attrs.into_iter().map(|(k, (t, _))| (k, t)).collect(),
                        optional,
                    })
                }
            ),
        ]
    })
    .boxed()
}

fn arb_number(with_infinity: bool) -> BoxedStrategy<Number> {
    let finite = prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Number::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Number::from_f64_exact),
        ("-?[1-9][0-9]{0,40}", -80i64..80)
            .prop_map(|(digits, exp)| num(&format!("{digits}e{exp}"))),
    ];
    if with_infinity {
        prop_oneof![9 => finite, 1 => any::<bool>().prop_map(Number::infinity)].boxed()
    } else {
        finite.boxed()
    }
}

fn arb_refinements(ty: &Type) -> BoxedStrategy<Refinements> {
    let bound = || prop::option::of((arb_number(true), any::<bool>()));
    match ty {
        Type::Dynamic => Just(Refinements::default()).boxed(),
        Type::String => (any::<bool>(), prop::option::of("\\PC{1,6}"))
            .prop_map(|(not_null, string_prefix)| Refinements {
                not_null,
                string_prefix,
                ..Refinements::default()
            })
            .boxed(),
        Type::Number => (any::<bool>(), bound(), bound())
            .prop_map(|(not_null, number_lower, number_upper)| Refinements {
                not_null,
                number_lower,
                number_upper,
                ..Refinements::default()
            })
            .boxed(),
        t if t.is_collection() => (
            any::<bool>(),
            prop::option::of(any::<u64>()),
            prop::option::of(any::<u64>()),
        )
            .prop_map(|(not_null, length_lower, length_upper)| Refinements {
                not_null,
                length_lower,
                length_upper,
                ..Refinements::default()
            })
            .boxed(),
        _ => any::<bool>()
            .prop_map(|not_null| Refinements {
                not_null,
                ..Refinements::default()
            })
            .boxed(),
    }
}

/// Values conforming to `ty`. `unknowns` also allows unknowns and infinities
/// (msgpack only); `dynamic_budget` bounds how many dynamic wrappers nest.
fn arb_value(ty: &Type, unknowns: bool, dynamic_budget: u32) -> BoxedStrategy<Value> {
    let known: BoxedStrategy<Value> = match ty {
        Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Type::Number => arb_number(unknowns).prop_map(Value::Number).boxed(),
        Type::String => any::<String>().prop_map(Value::String).boxed(),
        Type::List(et) => prop::collection::vec(arb_value(et, unknowns, dynamic_budget), 0..4)
            .prop_map(Value::List)
            .boxed(),
        Type::Set(et) => prop::collection::vec(arb_value(et, unknowns, dynamic_budget), 0..4)
            .prop_map(Value::Set)
            .boxed(),
        Type::Map(et) => prop::collection::btree_map(
            any::<String>(),
            arb_value(et, unknowns, dynamic_budget),
            0..4,
        )
        .prop_map(Value::Map)
        .boxed(),
        Type::Tuple(ets) => ets
            .iter()
            .map(|et| arb_value(et, unknowns, dynamic_budget))
            .collect::<Vec<_>>()
            .prop_map(Value::Tuple)
            .boxed(),
        Type::Object(ot) => ot
            .attributes
            .iter()
            .map(|(name, at)| {
                let name = name.clone();
                arb_value(at, unknowns, dynamic_budget).prop_map(move |v| (name.clone(), v))
            })
            .collect::<Vec<_>>()
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<BTreeMap<_, _>>()))
            .boxed(),
        Type::Dynamic if dynamic_budget == 0 => Just(Value::Null).boxed(),
        Type::Dynamic => arb_type(2)
            .prop_flat_map(move |t| {
                arb_value(&t, unknowns, dynamic_budget - 1)
                    .prop_map(move |v| Value::dynamic(t.clone(), v))
            })
            .boxed(),
    };
    if unknowns {
        prop_oneof![
            1 => Just(Value::Null),
            1 => arb_refinements(ty).prop_map(Value::Unknown),
            6 => known,
        ]
        .boxed()
    } else {
        prop_oneof![1 => Just(Value::Null), 6 => known].boxed()
    }
}

fn arb_typed_value(unknowns: bool) -> BoxedStrategy<(Type, Value)> {
    arb_type(3)
        .prop_flat_map(move |t| {
            let v = arb_value(&t, unknowns, 2);
            (Just(t), v)
        })
        .boxed()
}

proptest! {
    #[test]
    fn msgpack_round_trips((ty, v) in arb_typed_value(true)) {
        prop_assert!(v.conforms_to(&ty));
        let bytes = encode_msgpack(&v, &ty);
        prop_assert!(bytes.is_ok(), "{:?}", bytes.err());
        let bytes = bytes.unwrap_or_default();
        let back = decode_msgpack(&bytes, &ty);
        prop_assert!(back.is_ok(), "{:?}", back.as_ref().err());
        prop_assert_eq!(back.ok(), Some(v));
    }

    #[test]
    fn json_round_trips((ty, v) in arb_typed_value(false)) {
        let bytes = encode_json(&v, &ty);
        prop_assert!(bytes.is_ok(), "{:?}", bytes.err());
        let bytes = bytes.unwrap_or_default();
        prop_assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok());
        let back = decode_json(&bytes, &ty);
        prop_assert!(back.is_ok(), "{:?}", back.as_ref().err());
        prop_assert_eq!(back.ok(), Some(v.clone()));
        prop_assert_eq!(decode_json_lenient(&bytes, &ty).ok(), Some(v));
    }

    #[test]
    fn type_json_round_trips(ty in arb_type(4)) {
        let bytes = ty.to_json_bytes();
        prop_assert_eq!(Type::from_json_bytes(&bytes).ok(), Some(ty.clone()));
        prop_assert_eq!(serde_json::from_slice::<serde_json::Value>(&bytes).ok(), Some(ty.to_json()));
    }

    #[test]
    fn number_text_round_trips(n in arb_number(true)) {
        prop_assert_eq!(n.to_string().parse::<Number>().ok(), Some(n));
    }

    #[test]
    fn msgpack_decode_survives_random_bytes(ty in arb_type(3), bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = decode_msgpack(&bytes, &ty);
        let _ = decode_msgpack(&bytes, &Type::Dynamic);
    }

    #[test]
    fn msgpack_decode_survives_mutations(
        (ty, v) in arb_typed_value(true),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut bytes = encode_msgpack(&v, &ty).unwrap_or_default();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len() + 1);
            match kind {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => bytes.truncate(i),
            }
        }
        let _ = decode_msgpack(&bytes, &ty);
    }

    #[test]
    fn json_decode_survives_random_input(
        ty in arb_type(3),
        text in "[\\[\\]{}\",:0-9a-z .eE+\\-\\\\]{0,64}",
        bytes in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let _ = decode_json(text.as_bytes(), &ty);
        let _ = decode_json_lenient(text.as_bytes(), &Type::Dynamic);
        let _ = decode_json(&bytes, &ty);
        let _ = Type::from_json_bytes(text.as_bytes());
    }

    #[test]
    fn json_decode_survives_mutations(
        (ty, v) in arb_typed_value(false),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut bytes = encode_json(&v, &ty).unwrap_or_default();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len() + 1);
            match kind {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => bytes.truncate(i),
            }
        }
        let _ = decode_json(&bytes, &ty);
        let _ = decode_json_lenient(&bytes, &ty);
    }
}
