//! The `render -f FILE` subcommand: every object the controller would apply
//! for a CacheBridge in a file, as multi-document YAML.
//!
//! It runs the same pure stages as a reconcile (defaults as the apiserver
//! applies them, validate, build), so it is a dry run users can read and
//! diff, and what tests and schema checks use. Values only the apiserver
//! knows are placeholders: the uid (`render-placeholder-uid`) and the
//! generated passwords (the Secret is shown without data).

use crate::desired::{self, Settings};
use crate::schema_check;
use crate::validate::{self, InvalidSpec};
use cachebridge_api::CacheBridge;
use serde::Deserialize;

/// The uid given to a resource read from a file.
pub const PLACEHOLDER_UID: &str = "render-placeholder-uid";

/// Why a file cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("document {index} is a {found}, not a cachebridge.dev/v1alpha1 CacheBridge")]
    NotACacheBridge { index: usize, found: String },
    #[error("document {index} ({name}) is not valid: {source}")]
    Invalid {
        index: usize,
        name: String,
        source: InvalidSpec,
    },
    #[error("no cachebridge.dev/v1alpha1 CacheBridge in the file")]
    Empty,
    #[error(transparent)]
    Build(#[from] crate::Error),
    #[error("document {index} cannot be read as a CacheBridge: {source}")]
    Shape {
        index: usize,
        source: serde_json::Error,
    },
}

/// Renders every CacheBridge in `text` (one or more YAML documents).
pub fn render(text: &str, settings: &Settings) -> Result<String, RenderError> {
    let mut out = String::new();
    let mut count = 0;
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(document)?;
        // Other objects (a Secret the bridge refers to, say) may share the
        // file: they are the user's to apply, not the operator's to render.
        if value.is_null() || !is_ours(&value) {
            continue;
        }
        let cb = read_bridge(index + 1, value)?;
        out.push_str(&render_bridge(index + 1, &cb, settings)?);
        count += 1;
    }
    if count == 0 {
        return Err(RenderError::Empty);
    }
    Ok(out)
}

/// A CacheBridge from a document, as the apiserver would store it:
/// namespace `default` unless given, a placeholder uid, schema defaults.
pub fn read_bridge(index: usize, mut value: serde_json::Value) -> Result<CacheBridge, RenderError> {
    let api_version = value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let kind = value.get("kind").and_then(|v| v.as_str()).unwrap_or("");
    if api_version != "cachebridge.dev/v1alpha1" || kind != "CacheBridge" {
        return Err(RenderError::NotACacheBridge {
            index,
            found: format!("{api_version:?} {kind:?}"),
        });
    }
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.entry("namespace").or_insert_with(|| "default".into());
        meta.entry("uid").or_insert_with(|| PLACEHOLDER_UID.into());
        meta.entry("generation").or_insert_with(|| 1.into());
    }
    // Structure first: a typo should be named, not fail deserialization obscurely.
    let violations = schema_check::check(&value);
    if !violations.is_empty() {
        return Err(RenderError::Invalid {
            index,
            name: name_of(&value),
            source: InvalidSpec {
                problems: violations.iter().map(ToString::to_string).collect(),
            },
        });
    }
    let defaulted = schema_check::apply_defaults(&value);
    serde_json::from_value(defaulted).map_err(|source| RenderError::Shape { index, source })
}

fn is_ours(value: &serde_json::Value) -> bool {
    value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .is_some_and(|v| v.starts_with("cachebridge.dev/"))
}

fn name_of(value: &serde_json::Value) -> String {
    value
        .pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .unwrap_or("unnamed")
        .to_string()
}

fn render_bridge(
    index: usize,
    cb: &CacheBridge,
    settings: &Settings,
) -> Result<String, RenderError> {
    let bridge = validate::validate(cb).map_err(|source| RenderError::Invalid {
        index,
        name: cb.metadata.name.clone().unwrap_or_default(),
        source,
    })?;
    let desired = desired::build(&bridge, settings)?;
    let mut out = String::new();
    for child in desired.children() {
        let json = child.to_json().map_err(crate::Error::from)?;
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&json)?);
    }
    Ok(out)
}
