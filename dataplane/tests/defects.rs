//! Defects found trying the product as a new user (issue 11, point 6), each
//! held down by a test of the behaviour a user saw.

mod common;

use cachebridge_dataplane::app;
use common::{Server, client, config, eventually, free_port, tick};
use reqwest::StatusCode;
use serde_json::Value;

/// A tick line with every field given as raw JSON text.
fn raw_tick(price: &str, volume: &str, ts: &str) -> String {
    format!(r#"{{"symbol":"OOO","price":{price},"volume":{volume},"ts":{ts}}}"#)
}

#[tokio::test]
async fn impossible_ticks_are_400_naming_line_and_field() {
    let running = app::start_local(&config(None, &[])).await.unwrap();
    let url = format!("http://{}/ingest", running.addr.unwrap());
    let now = r#""2026-01-02T15:04:05Z""#;
    let cases = [
        (raw_tick("1", "1", r#""2099-01-01T00:00:00Z""#), "ts"),
        (raw_tick("1", "18446744073709551615", now), "volume"),
        (raw_tick("1e300", "1", now), "price"),
    ];
    for (line, field) in cases {
        let batch = format!("{}\n{line}\n", tick("AAPL", 1.0, 1));
        let response = client().post(&url).body(batch).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{line}");
        let body: Value = response.json().await.unwrap();
        assert_eq!((&body["line"], &body["field"]), (&2.into(), &field.into()));
    }
}

async fn readyz_source(url: &str) -> Option<String> {
    let body: Value = client().get(url).send().await.ok()?.json().await.ok()?;
    body["source"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn readyz_says_unreachable_when_redis_refuses_connections() {
    // Nothing listens on this port: every connection is refused.
    let mut refused = config(None, &[]);
    refused.redis.url = Some(format!("redis://127.0.0.1:{}", free_port()));
    let running = app::start_reader(&refused).await.unwrap();
    let url = format!("http://{}/readyz", running.addr.unwrap());
    assert_eq!(readyz_source(&url).await.as_deref(), Some("unreachable"));

    // The same reader over a Redis that answers says so, until it dies.
    let mut redis = Server::redis();
    let running = app::start_reader(&config(Some(&redis), &[])).await.unwrap();
    let url = format!("http://{}/readyz", running.addr.unwrap());
    eventually("source reachable", || async {
        (readyz_source(&url).await? == "reachable").then_some(())
    })
    .await;
    redis.kill();
    eventually("source unreachable", || async {
        (readyz_source(&url).await? == "unreachable").then_some(())
    })
    .await;
}
