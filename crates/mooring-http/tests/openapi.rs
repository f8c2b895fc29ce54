//! Mooring's callback answers, as its OpenAPI document describes them,
//! agree with the AP's official callback specs (`tests/ap-specs/`): every
//! field the AP's spec has is there with the same type (or listed, with
//! why, as one Mooring never sends), every field it requires is always
//! sent, enums hold only values the AP knows, and no field the AP does not
//! know is sent.

use std::collections::BTreeSet;

use serde_json::Value;

const AP_V3: &str =
    include_str!("ap-specs/stellar-docs_6fc5ae43ef_HEAD-2026_bundled-callbacks.yaml");
const AP_V2: &str = include_str!("ap-specs/stellar-docs_c11fe3abc7_ap-v2.8.4_callbacks.yaml");

fn official(text: &str) -> Value {
    let yaml: serde_yaml::Value = serde_yaml::from_str(text).expect("the AP's spec parses");
    serde_json::to_value(yaml).expect("as JSON")
}

fn ours() -> Value {
    serde_json::from_str(mooring_http::openapi_document()).expect("our document parses")
}

/// Follows `$ref`s, and takes the non-null branch of a `oneOf` (how an
/// optional object is written).
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    if let Some(branches) = schema["oneOf"].as_array() {
        let real: Vec<&Value> = branches.iter().filter(|b| b["type"] != "null").collect();
        if real.len() == 1 {
            return resolve(doc, real[0]);
        }
    }
    schema
}

/// The JSON types a schema allows, `null` aside.
fn types(schema: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    match &schema["type"] {
        Value::String(t) => {
            out.insert(t.clone());
        }
        Value::Array(ts) => out.extend(ts.iter().filter_map(|t| t.as_str()).map(str::to_owned)),
        _ => {}
    }
    if out.is_empty()
        && (schema["properties"].is_object() || schema["additionalProperties"].is_object())
    {
        out.insert("object".into());
    }
    out.remove("null");
    out
}

fn names(schema: &Value, key: &str) -> BTreeSet<String> {
    match &schema[key] {
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str())
            .map(str::to_owned)
            .collect(),
        Value::Object(o) => o.keys().cloned().collect(),
        _ => BTreeSet::new(),
    }
}

/// Differences between the AP's schema and ours at `at`, as messages.
fn compare(
    ap_doc: &Value,
    ap: &Value,
    our_doc: &Value,
    our: &Value,
    at: &str,
    extra_ok: bool,
) -> Vec<String> {
    let (ap, our) = (resolve(ap_doc, ap), resolve(our_doc, our));
    let mut problems = Vec::new();
    let (ap_types, our_types) = (types(ap), types(our));
    if !ap_types.is_empty() && ap_types != our_types {
        problems.push(format!(
            "{at}: the AP has type {ap_types:?}, Mooring {our_types:?}"
        ));
    }
    if ap["format"] == "date-time" && our["format"] != "date-time" {
        problems.push(format!(
            "{at}: the AP has a date-time, Mooring {}",
            our["format"]
        ));
    }
    let ap_enum = names(ap, "enum");
    let our_enum = names(our, "enum");
    if !ap_enum.is_empty() {
        if our_enum.is_empty() {
            problems.push(format!(
                "{at}: the AP allows only {ap_enum:?}; Mooring says any string"
            ));
        } else if !our_enum.is_subset(&ap_enum) {
            problems.push(format!(
                "{at}: Mooring may send {:?}, unknown to the AP",
                our_enum.difference(&ap_enum).collect::<Vec<_>>()
            ));
        }
    }
    let (ap_props, our_props) = (names(ap, "properties"), names(our, "properties"));
    for name in &ap_props {
        if our_props.contains(name) {
            problems.extend(compare(
                ap_doc,
                &ap["properties"][name],
                our_doc,
                &our["properties"][name],
                &format!("{at}.{name}"),
                false,
            ));
        } else {
            problems.push(format!("{at}.{name}: {ABSENT}"));
        }
    }
    for name in names(ap, "required") {
        if !names(our, "required").contains(&name) {
            problems.push(format!(
                "{at}.{name}: required by the AP, not always sent by Mooring"
            ));
        }
    }
    if !extra_ok {
        for name in our_props.difference(&ap_props) {
            if !ap_props.is_empty() {
                problems.push(format!("{at}.{name}: sent by Mooring, unknown to the AP"));
            }
        }
    }
    if ap["additionalProperties"].is_object() {
        problems.extend(compare(
            ap_doc,
            &ap["additionalProperties"],
            our_doc,
            &our["additionalProperties"],
            &format!("{at}.*"),
            false,
        ));
    }
    if ap["items"].is_object() {
        problems.extend(compare(
            ap_doc,
            &ap["items"],
            our_doc,
            &our["items"],
            &format!("{at}[]"),
            false,
        ));
    }
    problems
}

fn response<'a>(doc: &'a Value, path: &str, method: &str, status: &str) -> &'a Value {
    let schema =
        &doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "no {status} JSON schema for {method} {path}"
    );
    schema
}

/// How a field of the AP's spec that Mooring never sends is reported.
const ABSENT: &str = "in the AP's spec, never sent by Mooring";

/// Checks Mooring's answers against one AP spec. `known_absent` lists the
/// fields of that spec Mooring does not send, each with why: any other
/// absent field fails, and so does a listed one that Mooring now sends
/// (remove it from the list).
fn check(ap_doc: &Value, cases: &[(&str, &str, &str, bool)], known_absent: &[(&str, &str)]) {
    let our_doc = ours();
    let mut problems = Vec::new();
    for (path, method, status, extra_ok) in cases {
        problems.extend(compare(
            ap_doc,
            response(ap_doc, path, method, status),
            &our_doc,
            response(&our_doc, path, method, status),
            &format!("{} {path} {status}", method.to_uppercase()),
            *extra_ok,
        ));
    }
    let absent = |p: &String| p.ends_with(ABSENT);
    let known = |p: &String| {
        known_absent
            .iter()
            .any(|(field, _)| p.strip_suffix(&format!(": {ABSENT}")) == Some(field))
    };
    let unexpected: Vec<&String> = problems
        .iter()
        .filter(|p| !absent(p) || !known(p))
        .collect();
    assert!(
        unexpected.is_empty(),
        "Mooring disagrees with the AP's spec:\n{}",
        unexpected
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (field, reason) in known_absent {
        assert!(
            problems
                .iter()
                .any(|p| p.strip_suffix(&format!(": {ABSENT}")) == Some(*field)),
            "{field} is listed as never sent ({reason}), but Mooring sends it now"
        );
    }
}

#[test]
fn the_callbacks_answer_as_ap_3_and_4_specify() {
    check(
        &official(AP_V3),
        &[
            ("/customer", "get", "200", false),
            ("/customer", "put", "200", false),
            ("/rate", "get", "200", false),
            ("/customer", "get", "400", false),
            ("/customer", "get", "404", false),
            ("/rate", "get", "422", false),
        ],
        // The AP's `Error` schema has an optional `id` (the AP's own error
        // id); a business server's error is `{"error": "…"}` alone, which
        // the AP reads (only `error` is required).
        &[
            (
                "GET /customer 400.id",
                "an optional id of the AP's own errors",
            ),
            (
                "GET /customer 404.id",
                "an optional id of the AP's own errors",
            ),
            ("GET /rate 422.id", "an optional id of the AP's own errors"),
        ],
    );
}

#[test]
fn the_callbacks_answer_as_ap_2_specifies() {
    check(
        &official(AP_V2),
        &[
            ("/customer", "get", "200", false),
            // AP 2.x reads only the id; Mooring answers the whole customer, as 3.x specifies.
            ("/customer", "put", "200", true),
            ("/rate", "get", "200", false),
            ("/fee", "get", "200", false),
            ("/unique_address", "get", "200", false),
        ],
        &[],
    );
}

/// The comparison itself finds what it is there to find.
#[test]
fn a_wrong_type_a_missing_field_and_an_unknown_enum_value_are_caught() {
    let ap = serde_json::json!({"type": "object", "required": ["status", "id"], "properties": {
        "status": {"type": "string", "enum": ["A", "B"]}, "id": {"type": "string"}, "n": {"type": "string"}, "gone": {"type": "string"}}});
    let ours = serde_json::json!({"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string", "enum": ["A", "C"]}, "id": {"type": ["string", "null"]},
        "n": {"type": "integer"}, "x": {"type": "string"}}});
    let problems = compare(&Value::Null, &ap, &Value::Null, &ours, "r", false);
    for expected in [
        "r.status: Mooring may send [\"C\"]",
        "r.n: the AP has type",
        "r.id: required by the AP",
        "r.x: sent by Mooring",
        "r.gone: in the AP's spec, never sent",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "{expected} not in {problems:?}"
        );
    }
    assert_eq!(problems.len(), 5, "{problems:?}");
}
