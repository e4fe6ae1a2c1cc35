//! Turns cache look-ups into HTTP responses, honestly.
//!
//! The cached payload bytes are spliced into the body without re-encoding;
//! around them go the facts a client needs to judge the data: which tier
//! answered (`X-Cache`), which version (`ETag`, so `If-None-Match` gets a
//! 304), when it was produced (`Last-Modified`, `Age`) and whether it is
//! stale (`X-Data-Stale` and the `meta.stale` field). Errors are RFC 9457
//! problem documents with a reason a person can act on.

use crate::cache::Lookup;
use crate::cache::envelope;
use crate::metrics::Tier;
use axum::http::header::{
    AGE, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LAST_MODIFIED, RETRY_AFTER,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use std::time::{Duration, SystemTime};

pub const X_CACHE: &str = "x-cache";
pub const X_DATA_STALE: &str = "x-data-stale";
pub const X_DATA_AGE_MS: &str = "x-data-age-ms";

/// Why data is marked stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleReason {
    /// Older than the staleness budget.
    Age,
    /// This reader cannot currently confirm it has the latest version.
    NotSynced,
}

impl StaleReason {
    fn as_str(self) -> &'static str {
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
    pub parts: Vec<(Option<&'static str>, Lookup)>,
    pub as_array: bool,
}

impl Served {
    pub fn single(lookup: Lookup) -> Self {
        Served {
            parts: vec![(None, lookup)],
            as_array: false,
        }
    }

    /// The slowest tier involved: what the request really cost.
    fn tier(&self) -> Tier {
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

    fn etag(&self) -> String {
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

    fn data(&self) -> Bytes {
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

/// Builds the 200 (or 304) response for served data.
pub fn ok(
    served: &Served,
    request: &HeaderMap,
    stale: Option<StaleReason>,
    now: SystemTime,
) -> Response {
    let etag = served.etag();
    let produced = served.produced_at();
    let age = served.age(now);
    let mut headers = HeaderMap::new();
    headers.insert(X_CACHE, HeaderValue::from_static(served.tier().as_str()));
    headers.insert(ETAG, header(&etag));
    headers.insert(LAST_MODIFIED, header(&httpdate::fmt_http_date(produced)));
    headers.insert(AGE, HeaderValue::from(age.as_secs()));
    headers.insert(
        X_DATA_AGE_MS,
        HeaderValue::from(u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
    );
    headers.insert(
        X_DATA_STALE,
        HeaderValue::from_static(if stale.is_some() { "true" } else { "false" }),
    );
    // Clients may keep the body but must revalidate: the ETag makes that cheap.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if matches_etag(request, &etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = envelope_body(served, &etag, age, stale);
    (StatusCode::OK, headers, body).into_response()
}

fn envelope_body(served: &Served, etag: &str, age: Duration, stale: Option<StaleReason>) -> Bytes {
    let produced_at = time::OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(served.produced_at_ms()) * 1_000_000,
    )
    .ok()
    .and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_default();
    let meta = serde_json::json!({
        "tier": served.tier().as_str(),
        "etag": etag.trim_matches('"'),
        "produced_at": produced_at,
        "age_ms": u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
        "stale": stale.is_some(),
        "stale_reason": stale.map(StaleReason::as_str),
    });
    let data = served.data();
    let meta = serde_json::to_vec(&meta).unwrap_or_default();
    let mut out = BytesMut::with_capacity(data.len() + meta.len() + 20);
    out.put_slice(b"{\"data\":");
    out.put_slice(&data);
    out.put_slice(b",\"meta\":");
    out.put_slice(&meta);
    out.put_u8(b'}');
    out.freeze()
}

/// `If-None-Match`: a list of tags or `*`; weak tags compare equal.
fn matches_etag(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
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
    use std::time::UNIX_EPOCH;

    fn lookup(version: u64, tier: Tier, payload: &'static str) -> Lookup {
        Lookup {
            env: Arc::new(Envelope::new(
                version,
                1_000,
                Bytes::from_static(payload.as_bytes()),
            )),
            tier,
        }
    }

    #[test]
    fn payloads_are_spliced_not_reencoded() {
        let served = Served {
            parts: vec![
                (Some("a"), lookup(1, Tier::L1, "{\"x\": 1.50}")),
                (Some("b"), lookup(2, Tier::L3, "[]")),
            ],
            as_array: false,
        };
        assert_eq!(&served.data()[..], b"{\"a\":{\"x\": 1.50},\"b\":[]}");
        assert_eq!(served.tier(), Tier::L3);
        let list = Served {
            as_array: true,
            ..served
        };
        assert_eq!(&list.data()[..], b"[{\"x\": 1.50},[]]");
    }

    #[test]
    fn if_none_match_understands_lists_and_weak_tags() {
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("\"v1\", W/\"v7\""));
        assert!(matches_etag(&headers, "\"v7\""));
        assert!(!matches_etag(&headers, "\"v8\""));
        let served = Served::single(lookup(7, Tier::L1, "{}"));
        let response = ok(&served, &headers, None, UNIX_EPOCH + Duration::from_secs(5));
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers()[AGE], "4", "produced at 1 s, now 5 s");
    }
}
