//! The binary as users run it: `local` alone, and a writer with two readers
//! as separate processes over real Redis and Memcached.

mod common;

use common::{Proc, Server, client, eventually, free_port, tick};
use reqwest::StatusCode;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cachebridge-dataplane");

fn spawn(args: &[&str]) -> Proc {
    let child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start cachebridge-dataplane");
    Proc(child)
}

async fn status(url: &str) -> StatusCode {
    match client().get(url).send().await {
        Ok(response) => response.status(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[tokio::test]
async fn local_prints_its_url_and_serves_the_synthetic_feed() {
    let port = free_port().to_string();
    let mut local = spawn(&["local", "--listen", &format!("127.0.0.1:{port}")]);
    let stdout = local.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first_lines: Vec<String> = lines.by_ref().take(3).map(Result::unwrap).collect();
    // Keep reading so the process never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let url = format!("http://127.0.0.1:{port}/");
    assert!(
        first_lines.iter().any(|l| l.contains(&url)),
        "{first_lines:?}"
    );

    let overview = format!("http://127.0.0.1:{port}/api/v1/market/overview");
    eventually("overview", || async {
        (status(&overview).await == StatusCode::OK).then_some(())
    })
    .await;
    let body: Value = client()
        .get(&overview)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["symbols"], 175);
}

#[tokio::test]
async fn a_tick_ingested_by_the_writer_appears_on_both_readers() {
    let (redis, memcached) = (Server::redis(), Server::memcached());
    let (url, mc) = (redis.url(), memcached.addr());
    let ingest_port = free_port().to_string();
    let common_args = [
        "--redis",
        &url,
        "--memcached",
        &mc,
        "--key-prefix",
        "cb:test:processes:",
        "--publish-interval",
        "50ms",
    ];
    let mut writer_args = vec!["writer"];
    writer_args.extend(common_args);
    writer_args.extend(["--source", "none", "--ingest-listen"]);
    let ingest_addr = format!("127.0.0.1:{ingest_port}");
    writer_args.push(&ingest_addr);
    let _writer = spawn(&writer_args);

    let reader_ports = [free_port(), free_port()];
    let _readers: Vec<Proc> = reader_ports
        .iter()
        .map(|port| {
            let listen = format!("127.0.0.1:{port}");
            spawn(&[
                "reader",
                "--redis",
                &url,
                "--memcached",
                &mc,
                "--key-prefix",
                "cb:test:processes:",
                "--listen",
                &listen,
            ])
        })
        .collect();
    for port in reader_ports {
        let ready = format!("http://127.0.0.1:{port}/readyz");
        eventually("reader ready", || async {
            (status(&ready).await == StatusCode::OK).then_some(())
        })
        .await;
        let missing = status(&format!(
            "http://127.0.0.1:{port}/api/v1/market/tickers/NEWSYM"
        ))
        .await;
        assert_eq!(
            missing,
            StatusCode::SERVICE_UNAVAILABLE,
            "nothing published yet"
        );
    }

    let ingest = format!("http://{ingest_addr}/ingest");
    let pushed = eventually("writer accepts ingest", || async {
        let response = client()
            .post(&ingest)
            .body(tick("NEWSYM", 42.5, 7))
            .send()
            .await
            .ok()?;
        Some(response.status())
    })
    .await;
    assert_eq!(pushed, StatusCode::ACCEPTED);

    for port in reader_ports {
        let ticker = format!("http://127.0.0.1:{port}/api/v1/market/tickers/NEWSYM");
        let body: Value = eventually("tick visible on reader", || async {
            let response = client().get(&ticker).send().await.ok()?;
            (response.status() == StatusCode::OK).then_some(())?;
            response.json().await.ok()
        })
        .await;
        assert_eq!(body["data"]["last"], 42.5);
        assert_eq!(body["data"]["volume"], 7);
    }
}

/// A replay that reached the end of its file is done, not failed: the
/// writer keeps running with the last values published and ingest open.
#[tokio::test]
async fn a_finished_replay_leaves_the_writer_running_and_published() {
    let redis = Server::redis();
    let url = redis.url();
    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/ticks.ndjson");
    let source = format!("replay:{samples}");
    let ingest_addr = format!("127.0.0.1:{}", free_port());
    let mut writer = spawn(&[
        "writer",
        "--redis",
        &url,
        "--source",
        &source,
        "--replay-speed",
        "0",
        "--publish-interval",
        "50ms",
        "--ingest-listen",
        &ingest_addr,
    ]);
    let metrics = format!("http://{ingest_addr}/metrics");
    eventually("the whole file replayed", || async {
        let text = client()
            .get(&metrics)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("cachebridge_writer_ticks_total 240")
            .then_some(())
    })
    .await;

    let listen = format!("127.0.0.1:{}", free_port());
    let _reader = spawn(&["reader", "--redis", &url, "--listen", &listen]);
    let overview = format!("http://{listen}/api/v1/market/overview");
    let body: Value = eventually("the replayed day on the reader", || async {
        let response = client().get(&overview).send().await.ok()?;
        (response.status() == StatusCode::OK).then_some(())?;
        response.json().await.ok()
    })
    .await;
    assert_eq!(body["data"]["symbols"], 12);

    assert!(
        writer.0.try_wait().unwrap().is_none(),
        "the writer exited after its replay"
    );
    let pushed = client()
        .post(format!("http://{ingest_addr}/ingest"))
        .body(tick("NEWSYM", 42.5, 7))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::ACCEPTED, "ingest still open");
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let port = free_port();
    let mut local = spawn(&[
        "local",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--source",
        "none",
    ]);
    let health = format!("http://127.0.0.1:{port}/healthz");
    eventually("local up", || async {
        (status(&health).await == StatusCode::OK).then_some(())
    })
    .await;
    let pid = local.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exited = tokio::task::spawn_blocking(move || local.0.wait().unwrap())
        .await
        .unwrap();
    assert!(exited.success(), "exit status {exited}");
    assert_ne!(
        status(&health).await,
        StatusCode::OK,
        "the port is closed after shutdown"
    );
}

#[test]
fn show_config_prints_a_config_file_that_reads_back() {
    let out = Command::new(BIN)
        .args([
            "show-config",
            "--redis",
            "redis://r:6379",
            "--memcached",
            "m-0:11211,m-1:11211",
            "--seed",
            "7",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let yaml = String::from_utf8(out.stdout).unwrap();
    let config: cachebridge_dataplane::config::Config = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(config.redis.url.as_deref(), Some("redis://r:6379"));
    assert_eq!(config.memcached.servers.len(), 2);
    assert_eq!(config.writer.seed, 7);
}

#[test]
fn a_bad_flag_is_explained_and_exits_nonzero() {
    let out = Command::new(BIN).args(["writer"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("needs a Redis URL"), "{stderr}");
}
