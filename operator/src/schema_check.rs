//! Checks a CacheBridge against the CRD's own schema, without an apiserver.
//!
//! The apiserver enforces the schema (types, bounds, enums, patterns, CEL
//! rules) when a user applies a CacheBridge. The operator checks the same
//! schema again because not every resource it sees went through that gate:
//! `render -f FILE` reads a local file, and a cluster may still run an older
//! CRD. The schema comes from [`cachebridge_api::v1alpha1::crd`], the one that
//! is installed, so these checks cannot drift from the cluster's.
//!
//! Structural checks are a small walker over the OpenAPI subset the CRD uses;
//! CEL rules run through kube's client-side CEL engine.

use kube::core::cel::{CompiledSchema, Validator, compile_schema};
use regex::Regex;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

/// One way the object breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where, like `spec.reader.replicas`.
    pub path: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The `openAPIV3Schema` of the installed CRD version, as JSON.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let crd = cachebridge_api::v1alpha1::crd();
        let schema = crd
            .spec
            .versions
            .first()
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref());
        // The derive always emits a schema; an empty one would only make every check pass.
        serde_json::to_value(schema).unwrap_or(Value::Null)
    })
}

/// Fills in schema defaults the way the apiserver does on admission.
pub fn apply_defaults(object: &Value) -> Value {
    kube::core::cel::apply_defaults(schema(), object)
}

/// Every violation of the schema and its CEL rules; empty when the object is valid.
///
/// The object is defaulted first, as the apiserver does before it validates.
pub fn check(object: &Value) -> Vec<Violation> {
    let object = apply_defaults(object);
    let mut violations = Vec::new();
    check_node(schema(), &object, "", true, &mut violations);
    // CEL rules assume the structure is sound (types, required fields);
    // evaluating them on a broken structure would only add noise.
    if violations.is_empty() {
        violations.extend(check_cel(&object));
    }
    violations
}

fn check_cel(object: &Value) -> Vec<Violation> {
    thread_local! {
        // The CEL engine and the compiled rules are built once per thread:
        // compiling every rule on every reconcile would dominate its cost.
        static CEL: (Validator, CompiledSchema) = (Validator::new(), compile_schema(schema()));
    }
    CEL.with(
        |(validator, compiled)| match validator.validate_compiled(compiled, object, None) {
            Ok(()) => Vec::new(),
            Err(errors) => errors
                .into_vec()
                .into_iter()
                .map(|e| Violation {
                    path: e.field_path.trim_start_matches('.').to_string(),
                    message: e.message,
                })
                .collect(),
        },
    )
}

fn check_node(schema: &Value, value: &Value, path: &str, root: bool, out: &mut Vec<Violation>) {
    let mut bad = |message: String| {
        out.push(Violation {
            path: path.to_string(),
            message,
        })
    };
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) {
            bad("must not be null".into());
        }
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str)
        && !has_type(value, expected)
    {
        bad(format!("must be of type {expected}"));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        bad(format!("must be one of {}", join(allowed)));
    }
    match value {
        Value::String(s) => check_string(schema, s, &mut bad),
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(f64::NAN), &mut bad),
        Value::Array(items) => check_array(schema, items, path, out),
        Value::Object(map) => check_object(schema, map, path, root, out),
        Value::Bool(_) | Value::Null => {}
    }
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => true,
    }
}

fn check_string(schema: &Value, s: &str, bad: &mut impl FnMut(String)) {
    let len = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        bad(format!("must be at least {min} characters"));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        bad(format!("must be at most {max} characters"));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && !pattern_matches(pattern, s)
    {
        bad(format!("{s:?} must match {pattern}"));
    }
}

fn check_number(schema: &Value, n: f64, bad: &mut impl FnMut(String)) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        bad(format!("must be at least {min}"));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        bad(format!("must be at most {max}"));
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, out: &mut Vec<Violation>) {
    let len = items.len() as u64;
    let mut bad = |message: String| {
        out.push(Violation {
            path: path.to_string(),
            message,
        })
    };
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        bad(format!("must have at least {min} items"));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        bad(format!("must have at most {max} items"));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check_node(item_schema, item, &format!("{path}[{i}]"), false, out);
        }
    }
}

fn check_object(
    schema: &Value,
    map: &serde_json::Map<String, Value>,
    path: &str,
    root: bool,
    out: &mut Vec<Violation>,
) {
    let child = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(required) {
            out.push(Violation {
                path: child(required),
                message: "is required".into(),
            });
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let open = schema.get("additionalProperties").is_some()
        || schema
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            == Some(true);
    for (key, value) in map {
        match properties.and_then(|p| p.get(key)) {
            Some(prop) => check_node(prop, value, &child(key), false, out),
            // The root's apiVersion, kind and metadata are the apiserver's business.
            None if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") => {}
            None if open => {
                if let Some(additional) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    check_node(additional, value, &child(key), false, out);
                }
            }
            // kubectl's strict field validation rejects unknown fields: a typo must not pass silently.
            None => out.push(Violation {
                path: child(key),
                message: "unknown field".into(),
            }),
        }
    }
}

/// Whether `s` matches `pattern`; patterns are compiled once, on first use.
fn pattern_matches(pattern: &str, s: &str) -> bool {
    static PATTERNS: OnceLock<HashMap<String, Regex>> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        let mut found = Vec::new();
        collect_patterns(schema(), &mut found);
        found
            .into_iter()
            .filter_map(|p| Regex::new(&p).ok().map(|r| (p, r)))
            .collect()
    });
    match patterns.get(pattern) {
        Some(regex) => regex.is_match(s),
        // Every pattern comes from the schema; one that does not compile is a bug in the API crate.
        None => Regex::new(pattern).is_ok_and(|r| r.is_match(s)),
    }
}

fn collect_patterns(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(p)) = map.get("pattern") {
                out.push(p.clone());
            }
            map.values().for_each(|v| collect_patterns(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_patterns(v, out)),
        _ => {}
    }
}

fn join(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_name_alone_is_valid() {
        let object = json!({"apiVersion": "cachebridge.dev/v1alpha1", "kind": "CacheBridge", "metadata": {"name": "a"}});
        assert_eq!(check(&object), vec![]);
    }

    #[test]
    fn structural_violations_name_the_field() {
        let object = json!({"metadata": {"name": "a"}, "spec": {"reader": {"replicas": 0, "serviceType": "Ingress"}, "bogus": 1}});
        let found: Vec<String> = check(&object).iter().map(ToString::to_string).collect();
        assert!(
            found
                .iter()
                .any(|v| v.starts_with("spec.reader.replicas: must be at least 1")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|v| v.starts_with("spec.reader.serviceType: must be one of")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|v| v == "spec.bogus: unknown field"),
            "{found:?}"
        );
    }
}
