//! TLS to Redis (`rediss://`), against a real redis-server serving TLS with
//! a certificate from a throw-away CA. Alone in its test binary because it
//! points `SSL_CERT_FILE` (which the TLS client's native root store honours)
//! at that CA for the whole process.

mod common;

use bytes::Bytes;
use cachebridge_dataplane::metrics::Tier;
use common::{Server, config, publisher, reader};
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .status()
        .expect("openssl is installed");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and a server certificate for `localhost`, signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
    );
}

#[tokio::test]
async fn publishes_and_reads_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let file = |name: &str| dir.path().join(name).display().to_string();
    let redis = Server::redis_with(|port| {
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &file("server.crt"),
        ]
        .into_iter()
        .map(String::from)
        .chain([
            "--tls-key-file".into(),
            file("server.key"),
            "--tls-ca-cert-file".into(),
            file("ca.crt"),
        ])
        .chain(["--tls-auth-clients".into(), "no".into()])
        .collect()
    });
    // SAFETY: set before any other thread of this test binary reads it.
    unsafe { std::env::set_var("SSL_CERT_FILE", file("ca.crt")) };

    let mut config = config(Some(&redis), &[]);
    config.redis.url = Some(format!("rediss://localhost:{}", redis.port));
    let report = publisher(&config)
        .publish(vec![("k".into(), Bytes::from_static(b"\"secret\""))], 1_000)
        .await;
    assert_eq!(report.published, 1, "the writer reached Redis over TLS");
    let found = reader(&config).cache.get("k").await.unwrap();
    assert_eq!(
        (found.tier, &found.env.payload[..]),
        (Tier::L3, &b"\"secret\""[..])
    );

    // A plain-text client is refused by the TLS port.
    let mut plain = config.clone();
    plain.redis.url = Some(format!("redis://localhost:{}", redis.port));
    assert!(reader(&plain).cache.get("k").await.is_err());
}
