//! The HTTP API as web clients expect it: compressed answers when asked
//! for (and only then), CORS for the configured origins (and only them),
//! and the OpenAPI documents the servers serve, which must be the committed
//! copies in `docs/`.
//!
//! `UPDATE_OPENAPI=1 cargo test -p cachebridge-dataplane --test web_clients`
//! rewrites `docs/openapi.json` and `docs/openapi-writer.json` after an
//! intended change to the API; review the diff.

mod common;

use cachebridge_dataplane::app::{self, Running};
use common::{Server, client, config, eventually, tick};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

fn base(running: &Running) -> String {
    format!("http://{}", running.addr.unwrap())
}

/// `local` fed by `POST /ingest` only, allowing `origins` (CORS).
async fn local(origins: &[&str]) -> Running {
    let mut config = config(None, &[]);
    config.cache.staleness_budget = Duration::from_secs(120);
    config.reader.cors_allowed_origins = origins.iter().map(|o| o.to_string()).collect();
    app::start_local(&config).await.unwrap()
}

/// Sends ticks for `symbols` and waits until the last one is served.
async fn published(url: &str, symbols: usize) {
    let batch: Vec<String> = (0..symbols)
        .map(|i| tick(&format!("S{i:03}"), 100.0 + i as f64, 10))
        .collect();
    let response = client()
        .post(format!("{url}/ingest"))
        .body(batch.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let last = format!("{url}/api/v1/market/tickers/S{:03}", symbols - 1);
    eventually("data published", || async {
        let status = client().get(&last).send().await.unwrap().status();
        (status == StatusCode::OK).then_some(())
    })
    .await;
}

async fn get(url: &str, headers: &[(&'static str, &str)]) -> reqwest::Response {
    let mut request = client().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn decode(encoding: Option<&HeaderValue>, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding.map(|e| e.to_str().unwrap()) {
        None => out.extend_from_slice(bytes),
        // GzDecoder reads one member only: the answer must be one.
        Some("gzip") => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .expect("one valid gzip member");
        }
        Some("br") => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .expect("a valid brotli stream");
        }
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    out
}

/// Status, headers, the bytes on the wire and the decoded JSON.
async fn fetch(url: &str, accept: &str) -> (StatusCode, HeaderMap, usize, Value) {
    let response = get(url, &[("accept-encoding", accept)]).await;
    let (status, headers) = (response.status(), response.headers().clone());
    let wire = response.bytes().await.unwrap();
    let body = decode(headers.get("content-encoding"), &wire);
    (
        status,
        headers,
        wire.len(),
        serde_json::from_slice(&body).unwrap(),
    )
}

/// [`fetch`] until the answer comes compressed: a version's first request
/// in a coding is answered plain while the reader compresses it in the
/// background (no event of that reaches a client). The plain answers on the
/// way must be whole and tell no coding.
async fn fetch_compressed(url: &str, accept: &str) -> (StatusCode, HeaderMap, usize, Value) {
    for _ in 0..1000 {
        let fetched = fetch(url, accept).await;
        if fetched.1.contains_key("content-encoding") {
            return fetched;
        }
        assert_eq!(fetched.0, StatusCode::OK);
        assert!(fetched.3["data"].is_object() || fetched.3["data"].is_array());
    }
    panic!("{url} never came compressed for {accept}");
}

#[tokio::test]
async fn answers_are_compressed_when_asked_for_and_large_enough() {
    let running = local(&[]).await;
    let url = base(&running);
    published(&url, 60).await;
    let tickers = format!("{url}/api/v1/market/tickers");

    let (_, plain_headers, plain_len, plain) = fetch(&tickers, "identity").await;
    assert!(plain_headers.get("content-encoding").is_none());
    assert_eq!(plain_headers["vary"], "accept-encoding");
    assert!(
        plain_len > 4096,
        "a body worth compressing: {plain_len} bytes"
    );
    for (accept, coding) in [
        ("gzip, deflate, br", "br"),
        ("gzip", "gzip"),
        ("br;q=0.5, gzip", "gzip"),
        ("br, gzip;q=0.9", "br"),
    ] {
        let (status, headers, wire, body) = fetch_compressed(&tickers, accept).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-encoding"], coding, "{accept}");
        assert_eq!(headers["vary"], "accept-encoding");
        assert_eq!(headers["etag"], plain_headers["etag"]);
        let length: usize = headers["content-length"].to_str().unwrap().parse().unwrap();
        assert_eq!(length, wire, "sent with its exact length");
        assert!(
            wire * 3 < plain_len,
            "{coding}: {wire} of {plain_len} bytes"
        );
        // The same answer: the same data and version; the per-request
        // fields are there, decoded like the rest.
        assert_eq!(body["data"], plain["data"]);
        assert_eq!(body["meta"]["etag"], plain["meta"]["etag"]);
        assert_eq!(body["meta"]["tier"], "L1");
        assert!(body["meta"]["age_ms"].is_u64());
        assert_eq!(body["meta"]["stale"], false);
    }

    // A symbol's ticker is a few hundred bytes: never compressed.
    let one = format!("{url}/api/v1/market/tickers/S001");
    let (_, headers, _, body) = fetch(&one, "gzip, br").await;
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(headers["vary"], "accept-encoding");
    assert_eq!(body["data"]["symbol"], "S001");

    // 304 stays bodiless whatever the client accepts.
    let etag = plain_headers["etag"].to_str().unwrap();
    let response = get(
        &tickers,
        &[("accept-encoding", "br"), ("if-none-match", etag)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert!(response.headers().get("content-encoding").is_none());
    assert!(response.bytes().await.unwrap().is_empty());

    // Composite answers too (kept rendered per set of versions).
    let (_, headers, _, body) = fetch_compressed(&format!("{url}/api/v1/dashboard"), "gzip").await;
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(body["data"]["overview"]["symbols"], 60);
    let list: Vec<String> = (0..40).map(|i| format!("S{i:03}")).collect();
    let listed = format!("{url}/api/v1/market/tickers?symbols={}", list.join(","));
    for _ in 0..2 {
        // The second answer comes whole from the memo of lists.
        let (_, headers, _, body) = fetch_compressed(&listed, "br").await;
        assert_eq!(headers["content-encoding"], "br");
        assert_eq!(body["data"].as_array().unwrap().len(), 40);
    }

    // The document and the pages are compressed too.
    for (path, kind) in [
        ("/api/v1/openapi.json", "application/json"),
        ("/api/docs/redoc.standalone.js", "text/javascript"),
    ] {
        let response = get(&format!("{url}{path}"), &[("accept-encoding", "br")]).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()["content-encoding"], "br", "{path}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        let encoding = response.headers().get("content-encoding").cloned();
        let body = decode(encoding.as_ref(), &response.bytes().await.unwrap());
        assert!(body.len() > 10_000, "{path}");
    }
    running.stop().await;
}

const APP: &str = "https://app.example.com";

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

async fn preflight(url: &str, origin: &str) -> reqwest::Response {
    client()
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "if-none-match")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_allows_the_configured_origins_only() {
    let running = local(&[APP, "http://localhost:3000"]).await;
    let url = base(&running);
    published(&url, 2).await;
    let overview = format!("{url}/api/v1/market/overview");

    // An allowed origin: its page may read the answer and its headers.
    let response = get(&overview, &[("origin", APP)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), Some(APP));
    let exposed = header(headers, "access-control-expose-headers").unwrap();
    for name in ["x-cache", "etag", "age", "x-data-stale"] {
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }
    let vary: Vec<&str> = headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(vary.iter().any(|v| v.contains("origin")), "{vary:?}");

    // Its preflight gets a proper answer, not 405.
    let response = preflight(&overview, APP).await;
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), Some(APP));
    let methods = header(headers, "access-control-allow-methods").unwrap();
    assert!(methods.contains("GET"), "{methods}");
    let allowed = header(headers, "access-control-allow-headers").unwrap();
    assert!(allowed.contains("if-none-match"), "{allowed}");
    assert_eq!(header(headers, "access-control-max-age"), Some("600"));

    // Any other origin: answered, but without permission to read.
    let other = "https://evil.example.com";
    let response = get(&overview, &[("origin", other)]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let response = preflight(&overview, other).await;
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    running.stop().await;

    // The default allows no other origin at all.
    let running = local(&[]).await;
    let url = base(&running);
    let overview = format!("{url}/api/v1/market/overview");
    let response = preflight(&overview, APP).await;
    assert_ne!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let response = get(&format!("{url}/healthz"), &[("origin", APP)]).await;
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    running.stop().await;
}

fn committed_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name)
}

/// The document `url` serves, compared with (or, with `UPDATE_OPENAPI`,
/// written to) `docs/<name>`.
async fn check_document(url: &str, name: &str) -> Value {
    let response = get(&format!("{url}/api/v1/openapi.json"), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served = response.text().await.unwrap();
    let path = committed_path(name);
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &served).unwrap();
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_OPENAPI=1 creates it)", path.display()));
    assert!(
        served == committed,
        "docs/{name} differs from what the server serves; run \
         `UPDATE_OPENAPI=1 cargo test -p cachebridge-dataplane --test web_clients` and review the diff"
    );
    let document: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    document
}

fn paths(document: &Value) -> Vec<&str> {
    document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn the_servers_serve_the_committed_documents() {
    let redis = Server::redis();
    let mut config = config(Some(&redis), &[]);
    config.writer.ingest_listen = Some("127.0.0.1:0".parse().unwrap());
    let writer = app::start_writer(&config).await.unwrap();
    let writer_doc = check_document(&base(&writer), "openapi-writer.json").await;
    let reader = app::start_reader(&config).await.unwrap();
    let reader_doc = check_document(&base(&reader), "openapi.json").await;

    let reader_paths = paths(&reader_doc);
    for path in [
        "/api/v1/market/overview",
        "/api/v1/market/tickers",
        "/api/v1/market/tickers/{symbol}",
        "/api/v1/market/movers",
        "/api/v1/signals",
        "/api/v1/signals/{symbol}",
        "/api/v1/dashboard",
        "/api/v1/openapi.json",
        "/api/docs",
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(reader_paths.contains(&path), "reader document lacks {path}");
    }
    let ticker = &reader_doc["paths"]["/api/v1/market/tickers/{symbol}"]["get"];
    let statuses: Vec<&str> = ticker["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for status in ["200", "304", "400", "404", "503"] {
        assert!(
            statuses.contains(&status),
            "ticker lacks {status}: {statuses:?}"
        );
    }
    for name in ["X-Cache", "ETag", "Last-Modified", "Age", "X-Data-Stale"] {
        assert_eq!(
            ticker["responses"]["200"]["headers"][name]["required"], true,
            "{name}"
        );
    }
    assert!(ticker["responses"]["503"]["headers"]["Retry-After"].is_object());
    assert!(paths(&writer_doc).contains(&"/ingest"));

    // `local` serves both on one port: its document is the reader's plus ingest.
    let local = local(&[]).await;
    let response = get(&format!("{}/api/v1/openapi.json", base(&local)), &[]).await;
    let local_doc: Value = response.json().await.unwrap();
    let mut expected = reader_paths.clone();
    expected.push("/ingest");
    let mut served = paths(&local_doc);
    expected.sort_unstable();
    served.sort_unstable();
    assert_eq!(served, expected);
    local.stop().await;
    reader.stop().await;
    writer.stop().await;
}
