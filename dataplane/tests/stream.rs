//! `GET /api/v1/stream` as a client sees it, against a real Redis: current
//! values first, then every update; `Last-Event-ID` resumes; topic filters
//! and their errors; a client that does not read gets fewer, never older,
//! events; the stream cap answers 503; shutdown ends streams cleanly; price
//! history from a real writer, over REST and the stream.

mod common;

use bytes::Bytes;
use cachebridge_dataplane::app::{self, Running, Tiers};
use cachebridge_dataplane::config::Config;
use cachebridge_dataplane::reader::Reader;
use cachebridge_dataplane::writer::publisher::Publisher;
use common::sse::{End, Event, Sse};
use common::{Server, client, config, eventually, publisher, tick, until};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const OVERVIEW: &str = "market:overview";
const AAPL: &str = "market:ticker:AAPL";
const MSFT: &str = "market:ticker:MSFT";

/// Heartbeats are not sent (values are published by hand), and the
/// follower's silence detector stays out of the way for the test's length.
fn quiet_config(redis: &Server) -> Config {
    let mut config = config(Some(redis), &[]);
    config.coherence.heartbeat_interval = Duration::from_secs(30);
    config
}

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

async fn publish(writer: &mut Publisher, key: &str, value: Value) {
    let payload = Bytes::from(serde_json::to_vec(&value).unwrap());
    let report = writer.publish(vec![(key.into(), payload)], now_ms()).await;
    assert_eq!(report.published, 1, "{key} published");
}

/// The update sequence in Redis: the id of the last update.
async fn seq(config: &Config) -> u64 {
    let tiers = Tiers::connect(config, "probe", false).unwrap();
    tiers.l3.current_seq().await.unwrap()
}

/// A reader serving HTTP, synced with Redis.
async fn serving(config: &Config) -> (Running, Reader) {
    let running = app::start_reader(config).await.unwrap();
    let reader = running.reader.clone().unwrap();
    until("reader synced", &mut reader.coherence.synced(), |s| *s).await;
    (running, reader)
}

/// Publishes and waits until the reader applied it, so what a stream sees
/// next is known.
async fn update(writer: &mut Publisher, reader: &Reader, config: &Config, key: &str, value: Value) {
    publish(writer, key, value).await;
    let seq = seq(config).await;
    until("update applied", &mut reader.coherence.applied(), |s| {
        *s >= seq
    })
    .await;
}

async fn open(running: &Running, query: &str, last_event_id: Option<&str>) -> Sse {
    let sse = Sse::open(
        running.addr.unwrap(),
        &format!("/api/v1/stream{query}"),
        last_event_id,
        None,
    )
    .await;
    assert_eq!(sse.status, StatusCode::OK);
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    sse
}

fn n(event: &Event) -> i64 {
    event.json()["data"]["n"].as_i64().expect("a test value")
}

fn id(event: &Event) -> u64 {
    event
        .id
        .as_deref()
        .expect("an id")
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn current_values_first_then_updates_and_last_event_id_resumes() {
    let redis = Server::redis();
    let config = quiet_config(&redis);
    let mut writer = publisher(&config);
    publish(&mut writer, OVERVIEW, json!({"n": 1})).await;
    publish(&mut writer, AAPL, json!({"n": 10})).await;
    let (running, reader) = serving(&config).await;

    let mut sse = open(&running, "?topics=overview,tickers:AAPL", None).await;
    let overview = sse.next_value().await;
    let aapl = sse.next_value().await;
    assert_eq!((overview.name.as_str(), n(&overview)), (OVERVIEW, 1));
    assert_eq!((aapl.name.as_str(), n(&aapl)), (AAPL, 10));
    // Only the last current value carries the position: a client cut off
    // before it resumes from where it was and gets them all again.
    assert_eq!(overview.id, None);
    assert_eq!(id(&aapl), seq(&config).await);
    // The data is the REST answer, meta included (only the age may differ).
    let url = format!("http://{}/api/v1/market/overview", running.addr.unwrap());
    let rest: Value = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event = overview.json();
    assert_eq!(event["data"], rest["data"]);
    for field in ["etag", "produced_at", "tier", "stale", "stale_reason"] {
        assert_eq!(event["meta"][field], rest["meta"][field], "meta.{field}");
    }
    assert!(event["meta"]["age_ms"].is_u64());

    update(&mut writer, &reader, &config, OVERVIEW, json!({"n": 2})).await;
    let live = sse.next_value().await;
    assert_eq!((live.name.as_str(), n(&live)), (OVERVIEW, 2));
    assert_eq!(id(&live), seq(&config).await);
    drop(sse);

    // Missed while away: AAPL, then the overview, in update order; MSFT is
    // not followed, and nothing unchanged is sent again.
    update(&mut writer, &reader, &config, AAPL, json!({"n": 11})).await;
    update(&mut writer, &reader, &config, MSFT, json!({"n": 20})).await;
    update(&mut writer, &reader, &config, OVERVIEW, json!({"n": 3})).await;
    let last = live.id.clone().unwrap();
    let mut resumed = open(&running, "?topics=overview,tickers:AAPL", Some(&last)).await;
    let a = resumed.next_value().await;
    let b = resumed.next_value().await;
    assert_eq!((a.name.as_str(), n(&a), id(&a)), (AAPL, 11, id(&live) + 1));
    assert_eq!(
        (b.name.as_str(), n(&b), id(&b)),
        (OVERVIEW, 3, id(&live) + 3)
    );
    update(&mut writer, &reader, &config, OVERVIEW, json!({"n": 4})).await;
    let c = resumed.next_value().await;
    assert_eq!((c.name.as_str(), n(&c)), (OVERVIEW, 4), "then live again");

    // An id the reader cannot continue from (older than it knows, or not
    // one of its ids): the current values instead.
    for unknown in ["1", "not-a-position"] {
        let mut fresh = open(&running, "?topics=overview,tickers:AAPL", Some(unknown)).await;
        let x = fresh.next_value().await;
        let y = fresh.next_value().await;
        assert_eq!((x.name.as_str(), n(&x)), (OVERVIEW, 4), "{unknown}");
        assert_eq!((y.name.as_str(), n(&y)), (AAPL, 11), "{unknown}");
        assert_eq!(id(&y), seq(&config).await);
    }
    let sent = reader.metrics.stream_events_sent.get();
    assert!(sent >= 10, "events counted: {sent}");
}

#[tokio::test]
async fn topics_filter_the_stream_and_unknown_topics_are_refused() {
    let redis = Server::redis();
    let config = quiet_config(&redis);
    let mut writer = publisher(&config);
    publish(&mut writer, OVERVIEW, json!({"n": 1})).await;
    let (running, reader) = serving(&config).await;

    // Nothing of MSFT exists yet: no current value to send.
    let mut msft = open(&running, "?topics=tickers:MSFT", None).await;
    let mut everything = open(&running, "", None).await;
    assert_eq!(everything.next_value().await.name, OVERVIEW);
    update(&mut writer, &reader, &config, AAPL, json!({"n": 10})).await;
    update(&mut writer, &reader, &config, MSFT, json!({"n": 20})).await;
    let only = msft.next_value().await;
    assert_eq!(
        (only.name.as_str(), n(&only)),
        (MSFT, 20),
        "AAPL filtered out"
    );
    assert_eq!(everything.next_value().await.name, AAPL);
    assert_eq!(everything.next_value().await.name, MSFT);

    let base = format!("http://{}/api/v1/stream", running.addr.unwrap());
    for (query, named) in [
        ("?topics=overview,weather", "weather"),
        ("?topics=tickers:AAPL,B@D", "B@D"),
        ("?topic=overview", "topic"),
    ] {
        let response = client().get(format!("{base}{query}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(named), "{query}: {detail}");
    }
}

#[tokio::test]
async fn a_client_that_does_not_read_gets_fewer_never_older_updates() {
    let redis = Server::redis();
    let config = quiet_config(&redis);
    let mut writer = publisher(&config);
    // Big values fill the socket buffers and hyper's write queue quickly.
    let padding = "x".repeat(32 * 1024);
    let value = |n: i64| json!({"n": n, "padding": padding});
    publish(&mut writer, OVERVIEW, value(0)).await;
    let (running, reader) = serving(&config).await;
    let mut sse = Sse::open(
        running.addr.unwrap(),
        "/api/v1/stream?topics=overview",
        None,
        Some(4096),
    )
    .await;
    assert_eq!(sse.status, StatusCode::OK);

    // 300 updates of 32 KiB (about 10 MB) while the client reads nothing.
    const UPDATES: i64 = 300;
    for i in 1..=UPDATES {
        publish(&mut writer, OVERVIEW, value(i)).await;
    }
    let last = seq(&config).await;
    until("updates applied", &mut reader.coherence.applied(), |s| {
        *s >= last
    })
    .await;

    let mut seen = Vec::new();
    loop {
        let event = sse.next_value().await;
        seen.push(n(&event));
        if n(&event) == UPDATES {
            assert_eq!(id(&event), last, "the newest update's id");
            break;
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "versions only go up: {seen:?}"
    );
    assert!(
        seen.len() < UPDATES as usize / 2,
        "{} events for {UPDATES} updates: the backlog was not coalesced",
        seen.len()
    );
    let coalesced = reader.metrics.stream_events_coalesced.get();
    assert!(coalesced > 0, "coalesced updates are counted");
}

#[tokio::test]
async fn streams_over_the_cap_get_503_with_retry_after() {
    let redis = Server::redis();
    let mut config = quiet_config(&redis);
    config.reader.max_streams = 2;
    let mut writer = publisher(&config);
    publish(&mut writer, OVERVIEW, json!({"n": 1})).await;
    let (running, reader) = serving(&config).await;

    let mut first = open(&running, "?topics=overview", None).await;
    let second = open(&running, "?topics=overview", None).await;
    first.next_value().await;
    let refused = Sse::open(running.addr.unwrap(), "/api/v1/stream", None, None).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(refused.headers["content-type"], "application/problem+json");
    assert!(refused.text().await.contains("at most 2 streams"));
    assert_eq!(reader.metrics.streams_refused.get(), 1);
    assert_eq!(reader.metrics.streams_open.get(), 2);
    // REST requests are not streams: still served.
    let url = format!("http://{}/api/v1/market/overview", running.addr.unwrap());
    assert_eq!(client().get(&url).send().await.unwrap().status(), 200);

    // A closed stream frees its place.
    drop(second);
    let addr = running.addr.unwrap();
    eventually("a place under the cap again", || async {
        let sse = Sse::open(addr, "/api/v1/stream?topics=overview", None, None).await;
        (sse.status == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_cleanly() {
    let redis = Server::redis();
    let config = quiet_config(&redis);
    let mut writer = publisher(&config);
    publish(&mut writer, OVERVIEW, json!({"n": 1})).await;
    let (running, reader) = serving(&config).await;
    let mut sse = open(&running, "?topics=overview", None).await;
    sse.next_value().await;
    let stopping = tokio::spawn(running.stop());
    // The response is finished (the chunked terminator arrives), not cut
    // off: that happens only when the drain gives up on a request.
    loop {
        match sse.next().await {
            Ok(event) => assert_eq!(event.name, "status", "no value was published"),
            Err(end) => {
                assert_eq!(end, End::Clean);
                break;
            }
        }
    }
    stopping.await.unwrap();
    assert_eq!(reader.metrics.streams_open.get(), 0);
}

#[tokio::test]
async fn price_history_from_a_real_writer_over_rest_and_the_stream() {
    let redis = Server::redis();
    let mut config = config(Some(&redis), &[]);
    config.writer.ingest_listen = Some("127.0.0.1:0".parse().unwrap());
    let writer = app::start_writer(&config).await.unwrap();
    let (running, _reader) = serving(&config).await;
    let mut sse = open(&running, "?topics=history:NEWCO", None).await;

    let ingest = format!("http://{}/ingest", writer.addr.unwrap());
    let batch = [tick("NEWCO", 10.0, 5), tick("NEWCO", 12.5, 7)].join("\n");
    let response = client().post(&ingest).body(batch).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let event = sse.next_value().await;
    assert_eq!(event.name, "market:history:NEWCO");
    let streamed = event.json();
    let bars = &streamed["data"]["bars"];
    // Both ticks have the same `ts`: one bar.
    assert_eq!(bars.as_array().unwrap().len(), 1, "{streamed}");
    assert_eq!(
        (
            &bars[0]["o"],
            &bars[0]["h"],
            &bars[0]["l"],
            &bars[0]["c"],
            &bars[0]["v"]
        ),
        (
            &json!(10.0),
            &json!(12.5),
            &json!(10.0),
            &json!(12.5),
            &json!(12)
        )
    );
    let url = format!(
        "http://{}/api/v1/market/history/NEWCO",
        running.addr.unwrap()
    );
    let rest: Value = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["data"], streamed["data"]);
    let unknown = client()
        .get(url.replace("NEWCO", "NOPE"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
