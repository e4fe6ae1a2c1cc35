//! Turns cache look-ups into HTTP responses, honestly.
//!
//! The cached payload bytes are spliced into the body without re-encoding;
//! around them go the facts a client needs to judge the data: which tier
//! answered (`X-Cache`), which version (`ETag`, so `If-None-Match` gets a
//! 304), when it was produced (`Last-Modified`, `Age`) and whether it is
//! stale (`X-Data-Stale` and the `meta.stale` field). [`super::render`]
//! renders the per-version part once. Errors are RFC 9457 problem documents
//! with a reason a person can act on.

use super::compress::Encoding;
use crate::cache::Lookup;
use crate::cache::envelope;
use crate::metrics::Tier;
use axum::extract::FromRequestParts;
use axum::http::header::{ACCEPT_ENCODING, CONTENT_TYPE, IF_NONE_MATCH, RETRY_AFTER};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use std::time::{Duration, SystemTime};

// Constants, not `&str`: a header name given as a string is parsed, checked
// and (for a custom one) allocated on every insert.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
pub const X_DATA_STALE: HeaderName = HeaderName::from_static("x-data-stale");
pub const X_DATA_AGE_MS: HeaderName = HeaderName::from_static("x-data-age-ms");

/// Why data is marked stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleReason {
    /// Older than the staleness budget.
    Age,
    /// This reader cannot currently confirm it has the latest version.
    NotSynced,
}

impl StaleReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StaleReason::Age => "age",
            StaleReason::NotSynced => "not_synced",
        }
    }
}

/// One or more values to answer a request with.
pub struct Served {
    /// (field name, value): one unnamed part is served as `data` itself;
    /// named parts become an object; `as_array` makes a list of them.
    parts: Vec<(Option<&'static str>, Lookup)>,
    as_array: bool,
    /// A hash of the parts' keys, names and versions: equal for two
    /// composite answers exactly when they would render the same bytes.
    identity: u128,
}

impl Served {
    pub fn single(lookup: Lookup) -> Self {
        Served::composite([(None, "", lookup)], false)
    }

    /// Several values, each `(field name, logical key, value)`.
    pub fn composite<'k>(
        parts: impl IntoIterator<Item = (Option<&'static str>, &'k str, Lookup)>,
        as_array: bool,
    ) -> Self {
        let mut id = xxhash_rust::xxh3::Xxh3::new();
        id.update(&[u8::from(as_array)]);
        let parts = parts
            .into_iter()
            .map(|(name, key, lookup)| {
                for field in [name.unwrap_or(""), key] {
                    id.update(&(field.len() as u64).to_le_bytes());
                    id.update(field.as_bytes());
                }
                id.update(&lookup.env.version.to_le_bytes());
                (name, lookup)
            })
            .collect();
        Served {
            parts,
            as_array,
            identity: id.digest128(),
        }
    }

    /// The value, when the answer is exactly one value served as it is.
    pub fn only(&self) -> Option<&Lookup> {
        match (self.parts.as_slice(), self.as_array) {
            ([(None, only)], false) => Some(only),
            _ => None,
        }
    }

    pub fn identity(&self) -> u128 {
        self.identity
    }

    /// How many values the answer is made of.
    pub fn part_count(&self) -> usize {
        self.parts.len()
    }

    /// Whether any part is a superseded copy (a newer version is known).
    pub fn superseded(&self) -> bool {
        self.parts.iter().any(|(_, l)| l.superseded)
    }

    /// The slowest tier involved: what the request really cost.
    pub fn tier(&self) -> Tier {
        self.parts
            .iter()
            .map(|(_, l)| l.tier)
            .max()
            .unwrap_or(Tier::L1)
    }

    /// When the oldest value involved was produced.
    pub fn produced_at(&self) -> SystemTime {
        envelope::produced_at(self.produced_at_ms())
    }

    /// The age of the oldest value involved.
    pub fn age(&self, now: SystemTime) -> Duration {
        envelope::age(self.produced_at(), now)
    }

    /// The oldest production time involved.
    pub fn produced_at_ms(&self) -> i64 {
        self.parts
            .iter()
            .map(|(_, l)| l.env.produced_at_ms)
            .min()
            .unwrap_or(0)
    }

    pub fn etag(&self) -> String {
        match self.parts.as_slice() {
            [(_, only)] => format!("\"v{}\"", only.env.version),
            parts => {
                let mut ids = Vec::with_capacity(parts.len() * 8);
                for (_, l) in parts {
                    ids.extend_from_slice(&l.env.version.to_be_bytes());
                }
                format!("\"m{:x}\"", xxhash_rust::xxh3::xxh3_64(&ids))
            }
        }
    }

    pub fn data(&self) -> Bytes {
        match (self.parts.as_slice(), self.as_array) {
            ([(None, only)], false) => only.env.payload.clone(),
            (parts, true) => join(
                b'[',
                b']',
                parts.iter().map(|(_, l)| (None, &l.env.payload)),
            ),
            (parts, false) => join(b'{', b'}', parts.iter().map(|(n, l)| (*n, &l.env.payload))),
        }
    }
}

fn join<'a>(
    open: u8,
    close: u8,
    items: impl Iterator<Item = (Option<&'static str>, &'a Bytes)>,
) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(open);
    for (i, (name, payload)) in items.enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        if let Some(name) = name {
            out.put_slice(format!("\"{name}\":").as_bytes());
        }
        out.put_slice(payload);
    }
    out.put_u8(close);
    out.freeze()
}

/// The request's `If-None-Match` values, and the content coding its
/// `Accept-Encoding` allows: the request headers the data endpoints read
/// (extracting the whole `HeaderMap` would copy every header of every
/// request).
pub struct IfNoneMatch(Vec<HeaderValue>, Encoding);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch(
            parts
                .headers
                .get_all(IF_NONE_MATCH)
                .iter()
                .cloned()
                .collect(),
            Encoding::negotiate(parts.headers.get_all(ACCEPT_ENCODING)),
        ))
    }
}

impl IfNoneMatch {
    /// The coding to answer in (when the body is worth compressing).
    pub fn encoding(&self) -> Encoding {
        self.1
    }

    /// Whether the client already holds `etag`: a list of tags or `*`;
    /// weak tags compare equal.
    pub fn matches(&self, etag: &HeaderValue) -> bool {
        let etag = etag.as_bytes();
        self.0
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(|t| t.trim_ascii())
            .map(|t| t.strip_prefix(b"W/").unwrap_or(t))
            .any(|t| t == b"*" || t == etag)
    }
}

/// An RFC 9457 problem response.
pub fn problem(status: StatusCode, title: &str, detail: impl Into<String>) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail.into(),
    });
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::envelope::Envelope;
    use std::sync::Arc;

    fn lookup(version: u64, tier: Tier, payload: &'static str) -> Lookup {
        Lookup {
            env: Arc::new(Envelope::new(
                version,
                1_000,
                Bytes::from_static(payload.as_bytes()),
            )),
            tier,
            superseded: false,
        }
    }

    #[test]
    fn payloads_are_spliced_not_reencoded() {
        let parts = || {
            [
                (Some("a"), "k:a", lookup(1, Tier::L1, "{\"x\": 1.50}")),
                (Some("b"), "k:b", lookup(2, Tier::L3, "[]")),
            ]
        };
        let served = Served::composite(parts(), false);
        assert_eq!(&served.data()[..], b"{\"a\":{\"x\": 1.50},\"b\":[]}");
        assert_eq!(served.tier(), Tier::L3);
        let list = Served::composite(parts(), true);
        assert_eq!(&list.data()[..], b"[{\"x\": 1.50},[]]");
        assert_ne!(served.identity(), list.identity());
    }

    #[test]
    fn identity_follows_keys_names_and_versions() {
        let id = |name, key, version| {
            Served::composite([(name, key, lookup(version, Tier::L1, "{}"))], true).identity()
        };
        assert_eq!(id(None, "k:a", 1), id(None, "k:a", 1));
        assert_ne!(id(None, "k:a", 1), id(None, "k:a", 2));
        assert_ne!(id(None, "k:a", 1), id(None, "k:b", 1));
        assert_ne!(id(None, "k:a", 1), id(Some("k"), ":a", 1));
    }

    #[test]
    fn if_none_match_understands_lists_and_weak_tags() {
        let request = IfNoneMatch(
            vec![HeaderValue::from_static("\"v1\", W/\"v7\"")],
            Encoding::Identity,
        );
        assert!(request.matches(&HeaderValue::from_static("\"v7\"")));
        assert!(!request.matches(&HeaderValue::from_static("\"v8\"")));
        let any = IfNoneMatch(vec![HeaderValue::from_static("*")], Encoding::Identity);
        assert!(any.matches(&HeaderValue::from_static("\"v8\"")));
        assert!(
            !IfNoneMatch(Vec::new(), Encoding::Identity)
                .matches(&HeaderValue::from_static("\"v8\""))
        );
    }
}
