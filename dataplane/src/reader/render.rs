//! Answers rendered once per version, served many times.
//!
//! Everything in an answer that depends only on the data — the body with the
//! payloads spliced in, the ETag, `Last-Modified` — is rendered the first
//! time a version is served and then kept: for one value in the envelope's
//! memo (so it lives and dies with that version in L1), for composite
//! answers in a small bounded cache keyed by their parts and versions. A
//! request adds only what truly changes per request: which tier answered,
//! the data's age and whether it is stale, written as the last few dozen
//! bytes of the body. The body leaves as two shared buffers, never copied,
//! which is what makes an L1 hit cost about what a static response costs.
//! Compressed answers work the same way: the per-version part is compressed
//! once, on first demand, and the tail is appended per request as an
//! uncompressed block of the same stream (see [`super::compress`]).

use super::compress::{self, Encoding, Prefix};
use super::respond::{Served, StaleReason, X_CACHE, X_DATA_AGE_MS, X_DATA_STALE};
use crate::cache::envelope;
use crate::metrics::Tier;
use axum::body::Body;
use axum::http::header::{
    AGE, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, LAST_MODIFIED, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

/// Where the per-request values sit in [`Rendered::headers`]: set by
/// position, so a request hashes no header name.
const SLOT_X_CACHE: usize = 0;
const SLOT_AGE: usize = 3;
const SLOT_AGE_MS: usize = 4;
const SLOT_STALE: usize = 5;

/// The per-version part of an answer.
pub struct Rendered {
    etag: HeaderValue,
    /// Every header of a plain 200 answer, per-request ones as placeholders
    /// at the `SLOT_` positions: cloning it and setting four values costs a
    /// fraction of inserting nine headers one by one.
    headers: HeaderMap,
    /// Of the oldest part: what age and staleness are measured from.
    produced_at_ms: i64,
    /// `{"data":…,"meta":{"etag":"…","produced_at":"…",` — the per-request
    /// fields follow.
    head: Bytes,
    /// `head` compressed, each made (in the background) the first time a
    /// client asks for it.
    gzip: compress::Lazy,
    brotli: compress::Lazy,
}

impl Rendered {
    /// Renders what `served` holds.
    pub fn of(served: &Served) -> Self {
        let etag = served.etag();
        let produced_at_ms = served.produced_at_ms();
        let produced_at = rfc3339(produced_at_ms);
        let data = served.data();
        let tag = etag.trim_matches('"');
        let mut head = BytesMut::with_capacity(data.len() + tag.len() + produced_at.len() + 48);
        head.put_slice(b"{\"data\":");
        head.put_slice(&data);
        head.put_slice(b",\"meta\":{\"etag\":\"");
        head.put_slice(tag.as_bytes());
        head.put_slice(b"\",\"produced_at\":\"");
        head.put_slice(produced_at.as_bytes());
        head.put_slice(b"\",");
        let etag = header(&etag);
        let last_modified = header(&httpdate::fmt_http_date(envelope::produced_at(
            produced_at_ms,
        )));
        Rendered {
            headers: header_template(&etag, last_modified),
            etag,
            produced_at_ms,
            head: head.freeze(),
            gzip: compress::Lazy::default(),
            brotli: compress::Lazy::default(),
        }
    }

    /// When the oldest part was produced.
    pub fn produced_at(&self) -> SystemTime {
        envelope::produced_at(self.produced_at_ms)
    }

    pub fn etag(&self) -> &HeaderValue {
        &self.etag
    }

    /// Bytes held, for the composite cache's size bound: the body, and room
    /// for its compressed variants (made later, each well under a quarter
    /// of it for JSON).
    fn weight(&self) -> u32 {
        u32::try_from(self.head.len() + self.head.len() / 2).unwrap_or(u32::MAX)
    }

    /// The body of the 200 answer for one request, as two shared buffers:
    /// what the live stream writes as an event's data.
    pub fn body(&self, tier: Tier, stale: Option<StaleReason>, now: SystemTime) -> [Bytes; 2] {
        let age = envelope::age(self.produced_at(), now);
        let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
        let mut millis = itoa::Buffer::new();
        let mut tail = BytesMut::with_capacity(96);
        write_tail(&mut tail, tier, millis.format(age_ms).as_bytes(), stale);
        [self.head.clone(), tail.freeze()]
    }

    /// The compressed per-version part for `encoding`; none when the body
    /// is sent as it is (identity asked for, too small to be worth it, or
    /// its compression still under way).
    fn prefix(&self, encoding: Encoding) -> Option<&Prefix> {
        if self.head.len() < compress::MIN_BYTES {
            return None;
        }
        self.compressed(encoding)?
            .get_or_start(encoding, &self.head)
    }

    fn compressed(&self, encoding: Encoding) -> Option<&compress::Lazy> {
        match encoding {
            Encoding::Identity => None,
            Encoding::Gzip => Some(&self.gzip),
            Encoding::Brotli => Some(&self.brotli),
        }
    }

    /// The 200 (or, when `not_modified`, 304) answer for one request, in
    /// `encoding` when the body is large enough to be worth compressing.
    pub fn respond(
        &self,
        tier: Tier,
        not_modified: bool,
        stale: Option<StaleReason>,
        now: SystemTime,
        encoding: Encoding,
    ) -> Response {
        let age = envelope::age(self.produced_at(), now);
        let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
        let per_request = PerRequest::write(tier, age, age_ms, stale);
        let mut coding = None;
        let mut response = if not_modified {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            let (head, tail) = match self.prefix(encoding) {
                None => (self.head.clone(), per_request.tail),
                Some(prefix) => {
                    coding = encoding.header();
                    (prefix.bytes(), prefix.finish(&per_request.tail))
                }
            };
            Response::new(Body::new(Spliced {
                head: Some(head),
                tail: Some(tail),
            }))
        };
        let mut headers = self.headers.clone();
        let stale_value = HeaderValue::from_static(if stale.is_some() { "true" } else { "false" });
        let mut per_request = [
            (SLOT_X_CACHE, HeaderValue::from_static(tier.as_str())),
            (SLOT_AGE, per_request.age),
            (SLOT_AGE_MS, per_request.age_ms),
            (SLOT_STALE, stale_value),
        ]
        .into_iter()
        .peekable();
        for (slot, value) in headers.values_mut().enumerate() {
            if let Some((_, new)) = per_request.next_if(|(at, _)| *at == slot) {
                *value = new;
            }
        }
        if let Some(coding) = coding {
            headers.insert(CONTENT_ENCODING, coding);
        }
        if not_modified {
            headers.remove(CONTENT_TYPE);
        }
        *response.headers_mut() = headers;
        response
    }
}

/// What changes per request, written into one buffer (one allocation) and
/// handed out as shared slices of it.
struct PerRequest {
    age: HeaderValue,
    age_ms: HeaderValue,
    tail: Bytes,
}

impl PerRequest {
    fn write(tier: Tier, age: Duration, age_ms: u64, stale: Option<StaleReason>) -> Self {
        let (mut secs, mut millis) = (itoa::Buffer::new(), itoa::Buffer::new());
        let millis = millis.format(age_ms).as_bytes();
        let mut buf = BytesMut::with_capacity(128);
        buf.put_slice(secs.format(age.as_secs()).as_bytes());
        let age_end = buf.len();
        buf.put_slice(millis);
        let age_ms_end = buf.len();
        write_tail(&mut buf, tier, millis, stale);
        let mut all = buf.freeze();
        let tail = all.split_off(age_ms_end);
        let age_ms = all.split_off(age_end);
        PerRequest {
            age: number(all),
            age_ms: number(age_ms),
            tail,
        }
    }
}

/// Digits only, so always a valid header value.
fn number(digits: Bytes) -> HeaderValue {
    HeaderValue::from_maybe_shared(digits).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// The per-request end of the body:
/// `"tier":"L1","age_ms":12,"stale":false,"stale_reason":null}}`.
fn write_tail(out: &mut BytesMut, tier: Tier, age_ms: &[u8], stale: Option<StaleReason>) {
    out.put_slice(b"\"tier\":\"");
    out.put_slice(tier.as_str().as_bytes());
    out.put_slice(b"\",\"age_ms\":");
    out.put_slice(age_ms);
    match stale {
        None => out.put_slice(b",\"stale\":false,\"stale_reason\":null}}"),
        Some(reason) => {
            out.put_slice(b",\"stale\":true,\"stale_reason\":\"");
            out.put_slice(reason.as_str().as_bytes());
            out.put_slice(b"\"}}");
        }
    }
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The headers of a plain 200 answer for one version, per-request values
/// as placeholders in their `SLOT_` positions.
fn header_template(etag: &HeaderValue, last_modified: HeaderValue) -> HeaderMap {
    let placeholder = HeaderValue::from_static("0");
    let mut headers = HeaderMap::with_capacity(9);
    headers.insert(X_CACHE, placeholder.clone()); // SLOT_X_CACHE
    headers.insert(ETAG, etag.clone());
    headers.insert(LAST_MODIFIED, last_modified);
    headers.insert(AGE, placeholder.clone()); // SLOT_AGE
    headers.insert(X_DATA_AGE_MS, placeholder.clone()); // SLOT_AGE_MS
    headers.insert(X_DATA_STALE, placeholder); // SLOT_STALE
    // Clients may keep the body but must revalidate: the ETag makes that cheap.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// A body of two shared buffers with an exact length (so it is sent with
/// `Content-Length`, like any static answer).
struct Spliced {
    head: Option<Bytes>,
    tail: Option<Bytes>,
}

impl http_body::Body for Spliced {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let next = self.head.take().or_else(|| self.tail.take());
        Poll::Ready(next.map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.tail.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let len = [&self.head, &self.tail]
            .into_iter()
            .flatten()
            .map(|b| b.len() as u64)
            .sum();
        http_body::SizeHint::with_exact(len)
    }
}

/// Rendered composite answers (the dashboard, ticker lists), keyed by what
/// they are made of: which keys, under which names, at which versions. A
/// new version of any part is a new key, so an entry never goes stale; old
/// ones age out of the size bound.
#[derive(Clone)]
pub struct Composites(moka::sync::Cache<u128, Arc<Rendered>>);

impl Composites {
    pub fn new(max_bytes: u64) -> Self {
        Composites(
            moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, r: &Arc<Rendered>| r.weight())
                .build(),
        )
    }

    /// The rendered answer for `served`, rendered now if not kept yet.
    pub fn get(&self, served: &Served) -> Arc<Rendered> {
        self.0
            .get_with(served.identity(), || Arc::new(Rendered::of(served)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Lookup;
    use crate::cache::envelope::Envelope;
    use http_body_util::BodyExt;
    use std::time::UNIX_EPOCH;

    fn served(version: u64) -> Served {
        Served::single(Lookup {
            env: Arc::new(Envelope::new(
                version,
                1_000,
                Bytes::from_static(b"{\"x\":1.50}"),
            )),
            tier: Tier::L1,
            superseded: false,
        })
    }

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).expect("the spliced body is one JSON document")
    }

    #[tokio::test]
    async fn per_request_fields_complete_the_rendered_body() {
        let rendered = Rendered::of(&served(7));
        let now = UNIX_EPOCH + Duration::from_millis(3_500);
        let fresh = rendered.respond(Tier::L2, false, None, now, Encoding::Identity);
        assert_eq!(fresh.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(fresh.headers()[X_CACHE], "L2");
        assert_eq!(fresh.headers()[AGE], "2");
        assert_eq!(fresh.headers()[X_DATA_AGE_MS], "2500");
        // An exact size makes hyper send Content-Length, as for a static body.
        let exact = http_body::Body::size_hint(fresh.body()).exact();
        let bytes = fresh.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(exact, Some(bytes.len() as u64));
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).expect("the spliced body is one JSON document");
        assert_eq!(body["data"]["x"], 1.5);
        assert_eq!(body["meta"]["etag"], "v7");
        assert_eq!(body["meta"]["tier"], "L2");
        assert_eq!(body["meta"]["age_ms"], 2500);
        assert_eq!(body["meta"]["stale"], false);
        assert!(body["meta"]["stale_reason"].is_null());
        assert_eq!(body["meta"]["produced_at"], "1970-01-01T00:00:01Z");

        let stale = rendered.respond(
            Tier::L1,
            false,
            Some(StaleReason::NotSynced),
            now,
            Encoding::Identity,
        );
        assert_eq!(stale.headers()[X_DATA_STALE], "true");
        let body = body_of(stale).await;
        assert_eq!(body["meta"]["stale"], true);
        assert_eq!(body["meta"]["stale_reason"], "not_synced");
    }

    #[test]
    fn the_per_request_slots_name_the_per_request_headers() {
        let template = header_template(&HeaderValue::from_static("\"v1\""), header("x"));
        let names: Vec<_> = template.keys().collect();
        assert_eq!(names[SLOT_X_CACHE], X_CACHE);
        assert_eq!(names[SLOT_AGE], AGE);
        assert_eq!(names[SLOT_AGE_MS], X_DATA_AGE_MS);
        assert_eq!(names[SLOT_STALE], X_DATA_STALE);
        assert_eq!(template.len(), template.keys_len(), "one value per name");
    }

    #[tokio::test]
    async fn not_modified_has_the_headers_and_no_body() {
        let rendered = Rendered::of(&served(9));
        let response = rendered.respond(Tier::L1, true, None, UNIX_EPOCH, Encoding::Gzip);
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers()[ETAG], "\"v9\"");
        assert!(response.headers().get(CONTENT_TYPE).is_none());
        assert!(response.headers().get(CONTENT_ENCODING).is_none());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert!(bytes.is_empty());
    }

    fn large(version: u64) -> Served {
        let rows: Vec<String> = (0..200)
            .map(|i| format!("{{\"symbol\":\"S{i}\",\"last\":{i}.5}}"))
            .collect();
        let payload = Bytes::from(format!("[{}]", rows.join(",")));
        Served::single(Lookup {
            env: Arc::new(Envelope::new(version, 1_000, payload)),
            tier: Tier::L1,
            superseded: false,
        })
    }

    async fn bytes_of(response: Response) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn compressed_answers_decode_to_the_plain_body_and_tiny_ones_stay_plain() {
        use std::io::Read;
        let rendered = Rendered::of(&large(3));
        let now = UNIX_EPOCH + Duration::from_millis(2_000);
        let stale = Some(StaleReason::Age);
        for encoding in [Encoding::Gzip, Encoding::Brotli] {
            let first = rendered.respond(Tier::L1, false, stale, now, encoding);
            assert!(
                first.headers().get(CONTENT_ENCODING).is_none(),
                "not compressed on the request path: sent as it is meanwhile"
            );
            let lazy = rendered.compressed(encoding).unwrap();
            lazy.wait(encoding, &rendered.head).await;
        }
        let plain = rendered.respond(Tier::L1, false, stale, now, Encoding::Identity);
        assert_eq!(plain.headers()[VARY], "accept-encoding");
        assert!(plain.headers().get(CONTENT_ENCODING).is_none());
        let plain = bytes_of(plain).await;
        for (encoding, name) in [(Encoding::Gzip, "gzip"), (Encoding::Brotli, "br")] {
            let response = rendered.respond(Tier::L1, false, stale, now, encoding);
            assert_eq!(response.headers()[CONTENT_ENCODING], name);
            assert_eq!(response.headers()[VARY], "accept-encoding");
            let exact = http_body::Body::size_hint(response.body()).exact();
            let sent = bytes_of(response).await;
            assert_eq!(
                exact,
                Some(sent.len() as u64),
                "still sent with Content-Length"
            );
            assert!(
                sent.len() < plain.len() / 2,
                "{name}: {} of {}",
                sent.len(),
                plain.len()
            );
            let mut decoded = Vec::new();
            match encoding {
                Encoding::Gzip => flate2::read::GzDecoder::new(&sent[..])
                    .read_to_end(&mut decoded)
                    .unwrap(),
                _ => brotli::Decompressor::new(&sent[..], 4096)
                    .read_to_end(&mut decoded)
                    .unwrap(),
            };
            assert_eq!(decoded, plain, "{name}");
        }
        let kept = rendered
            .prefix(Encoding::Gzip)
            .expect("kept")
            .bytes()
            .as_ptr();
        drop(rendered.respond(Tier::L2, false, None, now, Encoding::Gzip));
        let again = rendered
            .prefix(Encoding::Gzip)
            .expect("kept")
            .bytes()
            .as_ptr();
        assert_eq!(kept, again, "compressed once per version, not per request");

        let tiny = Rendered::of(&served(4)).respond(Tier::L1, false, None, now, Encoding::Brotli);
        assert!(tiny.headers().get(CONTENT_ENCODING).is_none());
        assert_eq!(body_of(tiny).await["data"]["x"], 1.5);
    }

    #[test]
    fn composites_are_reused_per_version_set_and_renewed_on_a_new_version() {
        let composites = Composites::new(1 << 20);
        let a = composites.get(&served(1));
        let again = composites.get(&served(1));
        assert!(
            Arc::ptr_eq(&a, &again),
            "same parts and versions: same rendering"
        );
        let newer = composites.get(&served(2));
        assert!(!Arc::ptr_eq(&a, &newer));
        assert_eq!(newer.etag(), "\"v2\"");
    }
}
