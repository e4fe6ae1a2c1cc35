//! What a slow, silent or greedy client may hold of a dataplane HTTP server
//! (issue 11, point 1), tested over real sockets against in-process
//! servers: the reader API and ingest of `local`, and a writer's separate
//! ingest and status servers over a real Redis. All of them go through the
//! same serving module, with short timeouts set here.

mod common;

use cachebridge_dataplane::app::{self, Running};
use cachebridge_dataplane::config::{Config, HttpConfig};
use common::{PATIENCE, Server, client, config, free_port};
use futures::future::join_all;
use reqwest::StatusCode;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Held connections of each kind in the hostile-client test.
const HELD: usize = 2000;

fn short_limits() -> HttpConfig {
    HttpConfig {
        header_read_timeout: Duration::from_secs(2),
        body_read_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(3),
        write_timeout: Duration::from_secs(1),
        max_connections: 3 * HELD,
        max_body_bytes: 1024,
    }
}

async fn local(http: HttpConfig) -> Running {
    let mut config = config(None, &[]);
    config.http = http;
    app::start_local(&config).await.unwrap()
}

/// Each held connection needs a descriptor here and one in the server.
fn raise_descriptor_limit() {
    let wanted = (5 * HELD + 1000) as u64;
    let got = rlimit::increase_nofile_limit(wanted).unwrap();
    assert!(
        got >= wanted,
        "need {wanted} open files, the hard limit allows {got}"
    );
}

/// Opens a connection and sends `bytes`, in batches so the listener's
/// backlog is never the limit.
async fn hold(addr: SocketAddr, bytes: &'static [u8], count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count.div_ceil(200) {
        let batch = (0..200.min(count - held.len())).map(|_| async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(bytes).await.unwrap();
            tcp
        });
        held.extend(join_all(batch).await);
    }
    held
}

/// Everything the server sends until it closes the connection; a reset
/// counts as closed.
async fn until_closed(mut tcp: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Awaits the server closing every connection, failing after `within`.
async fn all_closed(held: Vec<TcpStream>, within: Duration) -> Vec<Vec<u8>> {
    tokio::time::timeout(within, join_all(held.into_iter().map(until_closed)))
        .await
        .expect("the server kept slow connections open past their timeout")
}

async fn status_of(url: &str) -> StatusCode {
    client().get(url).send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_bodies_are_closed_while_others_are_served() {
    raise_descriptor_limit();
    let running = local(short_limits()).await;
    let addr = running.addr.unwrap();
    let partial_header = hold(
        addr,
        b"GET /api/v1/market/overview HTTP/1.1\r\nHost: x\r\n",
        HELD,
    )
    .await;
    let partial_body = hold(
        addr,
        b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"symbol\":",
        HELD,
    )
    .await;

    // All 4000 are open; ordinary requests are still answered meanwhile.
    for _ in 0..20 {
        assert_eq!(
            status_of(&format!("http://{addr}/healthz")).await,
            StatusCode::OK
        );
    }

    let patience = short_limits().header_read_timeout + PATIENCE;
    let (headers, bodies) = tokio::join!(
        all_closed(partial_header, patience),
        all_closed(partial_body, patience),
    );
    // A half-sent header gets no answer: there is no request to answer.
    assert!(headers.iter().all(Vec::is_empty));
    // A body that never arrives is refused, then the connection is closed.
    for answer in &bodies {
        let text = String::from_utf8_lossy(answer);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("did not arrive within"), "{text}");
    }
    assert_eq!(
        status_of(&format!("http://{addr}/healthz")).await,
        StatusCode::OK
    );
    running.stop().await;
}

#[tokio::test]
async fn idle_connections_new_or_kept_alive_are_closed_after_the_idle_timeout() {
    let running = local(short_limits()).await;
    let addr = running.addr.unwrap();
    // Silent from the start.
    let silent = TcpStream::connect(addr).await.unwrap();
    // Kept alive after one answered request.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let patience = short_limits().idle_timeout + PATIENCE;
    let closed = all_closed(vec![silent, kept], patience).await;
    assert!(closed.iter().all(Vec::is_empty));
    running.stop().await;
}

#[tokio::test]
async fn a_body_announced_too_large_is_refused_with_413_before_it_is_sent() {
    let running = local(short_limits()).await;
    let mut tcp = TcpStream::connect(running.addr.unwrap()).await.unwrap();
    // Only the header: the server must answer without waiting for a body.
    tcp.write_all(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n")
        .await
        .unwrap();
    let answer = tokio::time::timeout(PATIENCE, until_closed(tcp))
        .await
        .expect("413 without the body");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    // Within the limit the same request goes through to ingest.
    let ok = client()
        .post(format!("http://{}/ingest", running.addr.unwrap()))
        .body(common::tick("AAPL", 1.0, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
    running.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_the_write_timeout() {
    let running = local(HttpConfig {
        max_body_bytes: 1 << 20,
        ..short_limits()
    })
    .await;
    let addr = running.addr.unwrap();
    let url = format!("http://{addr}/api/v1/market/tickers");
    // A ticker list of some 20 KB.
    let ticks: Vec<String> = (0..100)
        .map(|i| common::tick(&format!("T{i:03}"), 1.0, 1))
        .collect();
    let posted = client()
        .post(format!("http://{addr}/ingest"))
        .body(ticks.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::ACCEPTED);
    common::eventually("the ticker list", || async {
        (status_of(&url).await == StatusCode::OK).then_some(())
    })
    .await;
    // Far more answers than the socket buffers on both sides can hold.
    const ASKED: usize = 1000;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    let request = b"GET /api/v1/market/tickers HTTP/1.1\r\nHost: x\r\n\r\n";
    tcp.write_all(&request.repeat(ASKED)).await.unwrap();
    // Nothing to await here: the server's stall is invisible to a client
    // that must not read. Wait out the write timeout, then read.
    tokio::time::sleep(short_limits().write_timeout + Duration::from_secs(1)).await;
    let got = tokio::time::timeout(PATIENCE, until_closed(tcp))
        .await
        .expect("the connection is closed, not waiting for the idle timeout");
    let answers = got.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
    assert!(answers > 0, "the first answers were sent");
    assert!(
        answers < ASKED,
        "the server gave up on a client that stopped reading ({answers} of {ASKED} sent)"
    );
    // The server is fine.
    assert_eq!(status_of(&url).await, StatusCode::OK);
    running.stop().await;
}

/// A writer with ingest and status on their own ports over a real Redis.
async fn writer(redis: &Server, http: HttpConfig) -> (Running, SocketAddr, SocketAddr) {
    let mut config: Config = config(Some(redis), &[]);
    config.http = http;
    let (ingest, status) = (free_port(), free_port());
    config.writer.ingest_listen = Some(SocketAddr::from(([127, 0, 0, 1], ingest)));
    config.writer.status_listen = Some(SocketAddr::from(([127, 0, 0, 1], status)));
    let running = app::start_writer(&config).await.unwrap();
    let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
    (running, at(ingest), at(status))
}

#[tokio::test]
async fn connections_over_the_cap_get_a_503_at_once_and_a_freed_slot_is_reused() {
    let redis = Server::redis();
    let limits = HttpConfig {
        idle_timeout: Duration::from_secs(600),
        header_read_timeout: Duration::from_secs(600),
        max_connections: 4,
        ..short_limits()
    };
    let (running, ingest, status) = writer(&redis, limits).await;
    for addr in [ingest, status] {
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(TcpStream::connect(addr).await.unwrap());
        }
        // The fifth is answered without sending anything.
        let refused = TcpStream::connect(addr).await.unwrap();
        let answer = tokio::time::timeout(PATIENCE, until_closed(refused))
            .await
            .expect("a refused connection is answered and closed");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(text.contains("too many connections"), "{text}");
        // Once one closes, its slot serves the next client.
        held.pop();
        let url = format!("http://{addr}/healthz");
        common::eventually("a freed slot", || async {
            let sent = reqwest::get(&url).await.ok()?;
            (sent.status() == StatusCode::OK).then_some(())
        })
        .await;
    }
    running.stop().await;
}
