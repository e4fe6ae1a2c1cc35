//! The committed `crds/cachebridge.yaml` must be exactly what the binary's
//! `crd` subcommand prints, so the installed schema matches the Rust types.

use std::path::PathBuf;
use std::process::Command;

fn committed() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds/cachebridge.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn committed_crd_is_what_the_crd_subcommand_prints() {
    let output = Command::new(env!("CARGO_BIN_EXE_cachebridge-operator"))
        .arg("crd")
        .output()
        .expect("run cachebridge-operator crd");
    assert!(
        output.status.success(),
        "crd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        printed == committed(),
        "crds/cachebridge.yaml is stale: run `cargo run -p cachebridge-operator -- crd > crds/cachebridge.yaml` and commit it"
    );
}

#[test]
fn the_crd_names_and_columns_are_the_public_ones() {
    let crd = cachebridge_api::v1alpha1::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("cachebridges.cachebridge.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "CacheBridge");
    assert_eq!(crd.spec.names.plural, "cachebridges");
    assert_eq!(crd.spec.names.short_names, Some(vec!["cb".to_string()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Ready",
            "Redis",
            "Primary",
            "Memcached",
            "Readers",
            "Hit ratio",
            "Data age",
            "Age"
        ]
    );
    // A CacheBridge that is only a name must be accepted: spec is optional and defaults to {}.
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .unwrap();
    assert!(!schema.required.iter().flatten().any(|r| r == "spec"));
}

#[test]
fn every_spec_field_is_documented_for_kubectl_explain() {
    let crd = cachebridge_api::v1alpha1::crd();
    let schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    let mut undocumented = Vec::new();
    walk(&schema["properties"]["spec"], "spec", &mut undocumented);
    assert!(
        undocumented.is_empty(),
        "fields without a description: {undocumented:?}"
    );
}

fn walk(node: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    if node
        .get("description")
        .and_then(|d| d.as_str())
        .is_none_or(str::is_empty)
    {
        out.push(path.to_string());
    }
    if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
        for (key, child) in props {
            walk(child, &format!("{path}.{key}"), out);
        }
    }
}
