//! The web API as a client sees it: `local` on the embedded store, and a
//! reader over real Redis and Memcached when tiers fail.

mod common;

use bytes::Bytes;
use cachebridge_dataplane::app::{self, Running};
use cachebridge_dataplane::config::Source;
use cachebridge_dataplane::reader::stats;
use common::{Server, client, config, eventually, publisher, tick, until};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

const ENDPOINTS: [&str; 7] = [
    "/api/v1/market/overview",
    "/api/v1/market/tickers",
    "/api/v1/market/tickers/AAPL",
    "/api/v1/market/movers",
    "/api/v1/signals",
    "/api/v1/signals/AAPL",
    "/api/v1/dashboard",
];

fn base(running: &Running) -> String {
    format!("http://{}", running.addr.unwrap())
}

/// `local` on the embedded store, fed only by `POST /ingest`; values are
/// not refreshed during the test, so versions stay put unless ticks arrive.
async fn local() -> Running {
    let mut config = config(None, &[]);
    config.cache.staleness_budget = Duration::from_secs(120);
    app::start_local(&config).await.unwrap()
}

async fn ingest(url: &str, body: String) -> (StatusCode, Value) {
    let response = client()
        .post(format!("{url}/ingest"))
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn get(url: &str) -> reqwest::Response {
    client().get(url).send().await.unwrap()
}

/// Waits until the writer has published data that includes `symbol`.
async fn published(url: &str, symbol: &str) {
    let ticker = format!("{url}/api/v1/market/tickers/{symbol}");
    eventually("data published", || async {
        (get(&ticker).await.status() == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test]
async fn local_serves_every_endpoint_then_from_l1_and_answers_304() {
    let running = local().await;
    let url = base(&running);
    let batch = [
        tick("AAPL", 189.5, 300),
        tick("MSFT", 410.0, 100),
        tick("AAPL", 190.0, 200),
    ]
    .join("\n");
    assert_eq!(ingest(&url, batch).await.0, StatusCode::ACCEPTED);
    published(&url, "AAPL").await;

    for path in ENDPOINTS {
        let response = get(&format!("{url}{path}")).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        for header in ["x-cache", "etag", "last-modified", "age", "x-data-stale"] {
            assert!(
                response.headers().contains_key(header),
                "{path} lacks {header}"
            );
        }
        let body: Value = response.json().await.unwrap();
        assert!(
            body["data"].is_object() || body["data"].is_array(),
            "{path}: {body}"
        );
        assert_eq!(body["meta"]["stale"], false, "{path}");
    }

    let overview = format!("{url}/api/v1/market/overview");
    let again = get(&overview).await;
    assert_eq!(again.headers()["x-cache"], "L1");
    let etag = again.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["data"]["symbols"], 2);
    assert_eq!(body["meta"]["tier"], "L1");

    let revalidated = client()
        .get(&overview)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    assert!(revalidated.bytes().await.unwrap().is_empty());
    let other = client()
        .get(&overview)
        .header("if-none-match", "\"v1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);

    let filtered: Value = get(&format!("{url}/api/v1/market/tickers?symbols=msft,AAPL"))
        .await
        .json()
        .await
        .unwrap();
    let symbols: Vec<&str> = filtered["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(symbols, ["MSFT", "AAPL"]);
    let aapl: Value = get(&format!("{url}/api/v1/market/tickers/AAPL"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(aapl["data"]["last"], 190.0);
    assert_eq!(aapl["data"]["volume"], 500);
}

/// A `?symbols=` answer is kept whole between updates (reader::memo); it
/// must never outlive a rise of a listed key's version.
#[tokio::test]
async fn a_symbols_list_is_kept_until_a_listed_version_rises() {
    let running = local().await;
    let url = base(&running);
    let batch = [tick("AAPL", 190.0, 100), tick("MSFT", 410.0, 100)].join("\n");
    assert_eq!(ingest(&url, batch).await.0, StatusCode::ACCEPTED);
    published(&url, "MSFT").await;
    published(&url, "AAPL").await;
    let list = format!("{url}/api/v1/market/tickers?symbols=AAPL,MSFT");
    let first = get(&list).await;
    let etag = first.headers()["etag"].clone();
    let kept = get(&list).await;
    assert_eq!(kept.headers()["x-cache"], "L1");
    assert_eq!(kept.headers()["etag"], etag);
    let body: Value = kept.json().await.unwrap();
    assert_eq!(body["data"][0]["last"], 190.0);
    assert_eq!(body["meta"]["tier"], "L1");

    let cache = &running.reader.as_ref().unwrap().cache;
    let key = cachebridge_dataplane::keys::logical::ticker("AAPL");
    let before = cache.floor(&key);
    let later = tick("AAPL", 200.0, 100).replace("15:04:05", "15:04:06");
    assert_ne!(later, tick("AAPL", 200.0, 100), "the tick moves in time");
    assert_eq!(ingest(&url, later).await.0, StatusCode::ACCEPTED);
    // The moment this reader knows the new version, the list carries it.
    eventually("the new AAPL version announced", || async {
        (cache.floor(&key) > before).then_some(())
    })
    .await;
    let fresh = get(&list).await;
    assert_ne!(fresh.headers()["etag"], etag);
    let body: Value = fresh.json().await.unwrap();
    assert_eq!(body["data"][0]["last"], 200.0);
    assert_eq!(body["data"][1]["last"], 410.0);
}

#[tokio::test]
async fn no_data_is_503_unknown_symbol_404_bad_requests_400() {
    let running = local().await;
    let url = base(&running);
    for path in ENDPOINTS {
        let response = get(&format!("{url}{path}")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["title"], "No data yet",
            "{path}: never fabricated data"
        );
    }
    assert_eq!(
        ingest(&url, tick("AAPL", 1.0, 1)).await.0,
        StatusCode::ACCEPTED
    );
    published(&url, "AAPL").await;

    let unknown = get(&format!("{url}/api/v1/market/tickers/NOPE")).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(unknown.text().await.unwrap().contains("NOPE"));
    assert_eq!(
        get(&format!("{url}/api/v1/signals/NOPE")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&format!("{url}/api/v1/market/tickers?symbols=AAPL,NOPE"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    for bad in [
        "/api/v1/market/tickers/bad%20symbol",
        "/api/v1/market/tickers?symbols=",
        "/api/v1/market/tickers?symbols=AAPL,,MSFT",
        "/api/v1/market/tickers?symbol=AAPL",
        "/api/v1/market/overview?limit=5",
    ] {
        let response = get(&format!("{url}{bad}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert!(
            !body["detail"].as_str().unwrap().is_empty(),
            "{bad}: a reason is given"
        );
    }
}

#[tokio::test]
async fn a_malformed_ingest_batch_is_400_naming_line_and_field_and_applies_nothing() {
    let running = local().await;
    let url = base(&running);
    let batch = [
        tick("AAPL", 189.5, 300),
        r#"{"symbol":"MSFT","price":-3,"volume":1,"ts":"2026-01-02T15:04:05Z"}"#.to_owned(),
        tick("GOOG", 150.0, 10),
    ]
    .join("\n");
    let (status, body) = ingest(&url, batch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["line"], 2);
    assert_eq!(body["field"], "price");
    let (status, body) = ingest(&url, "{not json\n".into()).await;
    assert_eq!(
        (status, &body["line"], &body["field"]),
        (
            StatusCode::BAD_REQUEST,
            &Value::from(1),
            &Value::from("line")
        )
    );
    let (status, _) = ingest(&url, String::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A later good batch is published; nothing of the bad ones ever was.
    assert_eq!(
        ingest(&url, tick("TSLA", 250.0, 5)).await.0,
        StatusCode::ACCEPTED
    );
    published(&url, "TSLA").await;
    assert_eq!(
        get(&format!("{url}/api/v1/market/tickers/AAPL"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let overview: Value = get(&format!("{url}/api/v1/market/overview"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(overview["data"]["symbols"], 1);
    assert!(
        running
            .metrics
            .encode()
            .contains("cachebridge_ingest_rejected_total 3")
    );
}

#[tokio::test]
async fn redis_down_still_serves_from_l1_and_l2_marked_stale() {
    let (mut redis, memcached) = (Server::redis(), Server::memcached());
    let config = config(Some(&redis), &[&memcached]);
    let now_ms = i64::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_millis()).unwrap();
    let values = vec![
        (
            "market:overview".to_owned(),
            Bytes::from_static(b"{\"symbols\":1}"),
        ),
        (
            "market:movers".to_owned(),
            Bytes::from_static(b"{\"gainers\":[]}"),
        ),
    ];
    publisher(&config).publish(values, now_ms).await;
    let running = app::start_reader(&config).await.unwrap();
    let url = base(&running);
    let reader = running.reader.as_ref().unwrap();
    until("synced", &mut reader.coherence.synced(), |s| *s).await;
    let fresh: Value = get(&format!("{url}/api/v1/market/overview"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fresh["meta"]["stale"], false);

    redis.kill();
    until("reader notices", &mut reader.coherence.synced(), |s| !*s).await;
    let from_l1 = get(&format!("{url}/api/v1/market/overview")).await;
    assert_eq!(from_l1.status(), StatusCode::OK);
    assert_eq!(from_l1.headers()["x-cache"], "L1");
    assert_eq!(from_l1.headers()["x-data-stale"], "true");
    let body: Value = from_l1.json().await.unwrap();
    assert_eq!(
        (&body["meta"]["stale"], &body["meta"]["stale_reason"]),
        (&Value::from(true), &Value::from("not_synced"))
    );
    let from_l2 = get(&format!("{url}/api/v1/market/movers")).await;
    assert_eq!(from_l2.headers()["x-cache"], "L2");
    assert_eq!(from_l2.headers()["x-data-stale"], "true");
    let ready = get(&format!("{url}/readyz")).await;
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "a reader with data stays ready"
    );
    // Nothing cached anywhere and no source: an honest 503.
    assert_eq!(
        get(&format!("{url}/api/v1/signals")).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn data_older_than_the_budget_is_served_marked_stale() {
    let redis = Server::redis();
    let mut config = config(Some(&redis), &[]);
    config.cache.staleness_budget = Duration::from_secs(5);
    let minute_ago =
        i64::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_millis()).unwrap() - 60_000;
    publisher(&config)
        .publish(
            vec![("market:overview".to_owned(), Bytes::from_static(b"{}"))],
            minute_ago,
        )
        .await;
    let running = app::start_reader(&config).await.unwrap();
    until(
        "synced",
        &mut running.reader.as_ref().unwrap().coherence.synced(),
        |s| *s,
    )
    .await;
    let response = get(&format!("{}/api/v1/market/overview", base(&running))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["age"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 60
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["meta"]["stale_reason"], "age");
}

#[tokio::test]
async fn health_metrics_and_dashboard_answer() {
    let mut config = config(None, &[]);
    config.writer.source = Source::Synthetic;
    let running = app::start_local(&config).await.unwrap();
    let url = base(&running);
    published(&url, "AAPL").await;
    assert_eq!(
        get(&format!("{url}/healthz")).await.status(),
        StatusCode::OK
    );
    assert_eq!(get(&format!("{url}/readyz")).await.status(), StatusCode::OK);
    get(&format!("{url}/api/v1/market/overview")).await;
    let metrics = get(&format!("{url}/metrics")).await.text().await.unwrap();
    for name in [
        "cachebridge_cache_lookups_total{tier=\"L1\"",
        "cachebridge_tier_fetch_seconds_bucket",
        "cachebridge_requests_total{endpoint=\"overview\"",
        "cachebridge_cache_hit_ratio{scope=\"overall\"}",
        "cachebridge_data_age_seconds{endpoint=\"overview\"}",
        "cachebridge_coherence_synced 1",
        "cachebridge_writer_ticks_total",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}");
    }
    let page = get(&format!("{url}/")).await.text().await.unwrap();
    assert!(page.contains("/api/v1/dashboard"));
    assert_eq!(
        get(&format!("{url}/nope")).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_reader_stores_its_figures_in_redis_for_the_operator() {
    let redis = Server::redis();
    let config = config(Some(&redis), &[]);
    let now_ms = i64::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_millis()).unwrap();
    publisher(&config)
        .publish(
            vec![("market:overview".to_owned(), Bytes::from_static(b"{}"))],
            now_ms - 1_500,
        )
        .await;
    let running = app::start_reader(&config).await.unwrap();
    let url = base(&running);
    for _ in 0..4 {
        get(&format!("{url}/api/v1/market/overview")).await;
    }
    let prefix = cachebridge_dataplane::keys::Keys::new(config.key_prefix());
    let hash = prefix.reader_stats();
    let mut conn = common::redis_conn(&redis);
    let doc: String = eventually("figures stored", || {
        let fields: std::collections::HashMap<String, String> =
            redis::Commands::hgetall(&mut conn, &hash).unwrap();
        let found = fields.get(&stats::instance_name()).cloned();
        async move { found }
    })
    .await;
    let ttl: i64 = redis::Commands::ttl(&mut conn, &hash).unwrap();
    let expires_after = stats::REPORT_EXPIRES_AFTER.as_secs() as i64;
    assert!(
        ttl > 0 && ttl <= expires_after,
        "the hash expires after the last report: {ttl}"
    );
    let stored: Value = serde_json::from_str(&doc).unwrap();
    assert!(
        stored["dataAgeSeconds"].as_f64().unwrap() >= 1.5,
        "{stored}"
    );
    assert!(stored["at"].is_string());
    let figures = stats::figures(running.reader.as_ref().unwrap()).await;
    let ratio = figures["l1HitRatio"].as_f64().unwrap();
    assert!(
        ratio > 0.5 && ratio < 1.0,
        "first look-up missed, the rest hit: {figures}"
    );
}

#[tokio::test]
async fn the_writer_is_ready_only_while_redis_takes_its_values() {
    let mut redis = Server::redis();
    let mut config = config(Some(&redis), &[]);
    config.writer.source = Source::Synthetic;
    let port = common::free_port();
    config.writer.status_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let _writer = app::start_writer(&config).await.unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let ready = format!("{url}/readyz");
    eventually("writer ready", || async {
        (get(&ready).await.status() == StatusCode::OK).then_some(())
    })
    .await;
    // Ready can come before the feed's first values: wait for them.
    eventually("values published", || async {
        let metrics = get(&format!("{url}/metrics")).await.text().await.ok()?;
        metrics
            .contains("cachebridge_writer_publishes_total{reason=\"published\"}")
            .then_some(())
    })
    .await;
    assert_eq!(
        get(&format!("{url}/healthz")).await.status(),
        StatusCode::OK
    );

    redis.kill();
    let body: Value = eventually("writer not ready", || async {
        let response = get(&ready).await;
        (response.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())?;
        response.json().await.ok()
    })
    .await;
    assert!(body["reason"].as_str().unwrap().contains("Redis"), "{body}");
    assert_eq!(
        get(&format!("{url}/healthz")).await.status(),
        StatusCode::OK,
        "alive, just not ready"
    );

    redis.restart();
    eventually("writer ready again", || async {
        (get(&ready).await.status() == StatusCode::OK).then_some(())
    })
    .await;
}
