//! An external Redis is `RedisReady` only once it answered a PING as the
//! bridge's user, through the whole reconcile (kube-fake-client) against a
//! real `redis-server`: a good password makes it ready; a wrong password, a
//! closed port, TLS against a plain-text server, a missing Secret each give
//! their own reason and a message naming what to check. Results are kept
//! (no probe on every reconcile) until they age or the password changes.

mod common;

use cachebridge_api::v1alpha1::condition::{READY, REDIS_READY};
use cachebridge_operator::desired::redis::acl_rules;
use cachebridge_operator::probe;
use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

const PASSWORD: &str = "Us3rPassw0rdForTheBridgeAclUser0";
const WRONG: &str = "NotThePassw0rdOfTheBridgeAclUser";

fn acl_redis() -> RedisServer {
    let user_line = format!(
        "orders-bridge on >{PASSWORD} {}",
        acl_rules("cb:prod:orders:")
    );
    let mut args = vec![
        "--requirepass",
        "Adm1nPassw0rdForTheDefaultUser00",
        "--user",
    ];
    args.extend(user_line.split(' '));
    RedisServer::redis_args(&args)
}

fn secret(password: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("creds".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some([("password".to_string(), ByteString(password.into()))].into()),
        ..Default::default()
    }
}

fn orders(url: &str) -> Value {
    bridge(
        "orders",
        json!({"redis": {"external": {"url": url, "username": "orders-bridge", "passwordSecret": {"name": "creds"}}}}),
    )
}

/// A bridge on the external Redis at `url`, every pod of it ready, and
/// `objects` besides; reconciled once.
async fn reconciled(url: &str, objects: Vec<Value>) -> Harness {
    reconciled_bridge(orders(url), objects).await
}

/// Like [`reconciled`], for any bridge named `orders`.
async fn reconciled_bridge(orders: Value, objects: Vec<Value>) -> Harness {
    let mut all = vec![orders];
    all.extend(objects);
    let mut h = harness_with_stats(all).await;
    Arc::get_mut(&mut h.ctx).expect("not shared yet").clock = clock;
    h.reconcile("orders").await.unwrap();
    h.set_stateful_set_ready("orders-memcached", 2).await;
    h.set_deployment_ready("orders-writer", 1).await;
    h.set_deployment_ready("orders-reader", 2).await;
    h.reconcile("orders").await.unwrap();
    h
}

/// `RedisReady` as (status, reason, message), and whether the bridge is Ready.
async fn redis_ready(h: &Harness) -> (String, String, String, bool) {
    let cb = h.get("orders").await;
    let c = cb.status.as_ref().unwrap().condition(REDIS_READY).unwrap();
    let ready = condition(&cb, READY).0 == "True";
    (c.status.clone(), c.reason.clone(), c.message.clone(), ready)
}

fn with_secret(password: &str) -> Vec<Value> {
    vec![serde_json::to_value(secret(password)).unwrap()]
}

#[tokio::test]
async fn a_redis_that_takes_the_password_is_ready() {
    let server = acl_redis();
    let h = reconciled(&server.url(), with_secret(PASSWORD)).await;
    let (status, reason, message, ready) = redis_ready(&h).await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "External"));
    assert!(
        message.contains("answered a PING as user orders-bridge"),
        "{message}"
    );
    assert!(ready);
    assert_eq!(ready_series(&h), Some(1));
}

/// `cachebridge_operator_bridge_ready` of the bridge, as /metrics shows it.
fn ready_series(h: &Harness) -> Option<i64> {
    let series = format!(
        "cachebridge_operator_bridge_ready{{bridge_namespace=\"{NS}\",bridge=\"orders\"}} "
    );
    h.ctx
        .metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()).and_then(|v| v.parse().ok()))
}

#[tokio::test]
async fn a_wrong_password_is_named_with_the_secret_to_fix() {
    let server = acl_redis();
    let h = reconciled(&server.url(), with_secret(WRONG)).await;
    let (status, reason, message, ready) = redis_ready(&h).await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "AuthenticationFailed")
    );
    assert!(
        message.contains("Secret creds") && message.contains("orders-bridge"),
        "{message}"
    );
    assert!(!message.contains(WRONG), "no password in the status");
    assert!(!ready, "not ready while Redis refuses the bridge");
    assert_eq!(ready_series(&h), Some(0));

    // The user fixes the Secret: the refused password made the operator
    // forget it, so the next reconcile reads it again and probes at once.
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), NS);
    let mut fixed = secrets.get("creds").await.unwrap();
    fixed.data = secret(PASSWORD).data;
    secrets
        .replace("creds", &PostParams::default(), &fixed)
        .await
        .unwrap();
    let action = h.reconcile("orders").await.unwrap();
    assert_eq!(redis_ready(&h).await.0, "True");
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(cachebridge_operator::controller::READY_REQUEUE)
    );
}

#[tokio::test]
async fn a_closed_port_is_unreachable_and_retried_soon() {
    let port = cachebridge_testkit::free_port();
    let h = reconciled(&format!("redis://127.0.0.1:{port}"), with_secret(PASSWORD)).await;
    let (status, reason, message, ready) = redis_ready(&h).await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Unreachable"));
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!ready);
    let action = h.reconcile("orders").await.unwrap();
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(cachebridge_operator::controller::READY_REQUEUE),
        "no watch will tell when the server is back: requeue soon"
    );
}

/// A bridge on an external Redis Cluster with these seed nodes.
fn orders_on_cluster(nodes: &[String]) -> Value {
    bridge(
        "orders",
        json!({"redis": {"external": {"cluster": {"nodes": nodes}, "username": "orders-bridge", "passwordSecret": {"name": "creds"}}}}),
    )
}

#[tokio::test]
async fn a_cluster_is_probed_on_its_seed_nodes_until_one_answers() {
    let closed = format!("127.0.0.1:{}", cachebridge_testkit::free_port());
    let server = acl_redis();
    let answering = format!("127.0.0.1:{}", server.port);
    let h = reconciled_bridge(
        orders_on_cluster(&[closed.clone(), answering.clone()]),
        with_secret(PASSWORD),
    )
    .await;
    let (status, reason, message, ready) = redis_ready(&h).await;
    assert_eq!((status.as_str(), reason.as_str()), ("True", "External"));
    assert!(
        message.contains(&format!(
            "redis://{answering} answered a PING as user orders-bridge"
        )),
        "{message}"
    );
    assert!(ready);
    let endpoints = h.get("orders").await.status.unwrap().endpoints;
    assert_eq!(endpoints.redis_cluster, Some(vec![closed, answering]));
}

#[tokio::test]
async fn a_cluster_none_of_whose_seeds_answers_names_the_first() {
    let first = format!("127.0.0.1:{}", cachebridge_testkit::free_port());
    let second = format!("127.0.0.1:{}", cachebridge_testkit::free_port());
    let h = reconciled_bridge(
        orders_on_cluster(&[first.clone(), second]),
        with_secret(PASSWORD),
    )
    .await;
    let (status, reason, message, ready) = redis_ready(&h).await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Unreachable"));
    assert!(message.contains(&first), "{message}");
    assert!(!ready);
}

/// A Redis serving only TLS, with a self-signed certificate the operator
/// has no reason to trust.
fn untrusted_tls_redis(dir: &std::path::Path) -> RedisServer {
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-keyout", "server.key", "-out", "server.crt"])
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success());
    let file = |name: &str| dir.join(name).display().to_string();
    RedisServer::redis_with(|port| {
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            file("server.crt"),
            "--tls-key-file".into(),
            file("server.key"),
            "--tls-ca-cert-file".into(),
            file("server.crt"),
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    })
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_failure() {
    let dir = tempfile::tempdir().unwrap();
    let server = untrusted_tls_redis(dir.path());
    let url = format!("rediss://127.0.0.1:{}", server.port);
    let h = reconciled(&url, with_secret(PASSWORD)).await;
    let (status, reason, message, _) = redis_ready(&h).await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "TLSFailed"),
        "{message}"
    );
    assert!(message.contains("certificate"), "{message}");
}

#[tokio::test]
async fn a_missing_secret_is_named() {
    let server = acl_redis();
    let h = reconciled(&server.url(), vec![]).await;
    let (status, reason, message, _) = redis_ready(&h).await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "PasswordMissing")
    );
    assert!(message.contains("Secret creds"), "{message}");
}

#[tokio::test]
async fn a_result_is_kept_until_it_ages() {
    let mut server = acl_redis();
    let h = reconciled(&server.url(), with_secret(PASSWORD)).await;
    assert_eq!(redis_ready(&h).await.0, "True");

    // The server goes away; within RECHECK_OK the kept result stands: the
    // reconciles of a steady fleet do not PING on every requeue.
    server.kill();
    advance_clock(probe::RECHECK_OK / 2);
    h.reconcile("orders").await.unwrap();
    assert_eq!(redis_ready(&h).await.0, "True", "kept");

    advance_clock(probe::RECHECK_OK / 2);
    h.reconcile("orders").await.unwrap();
    let (status, reason, _, ready) = redis_ready(&h).await;
    assert_eq!(
        (status.as_str(), reason.as_str(), ready),
        ("False", "Unreachable", false)
    );
}

/// The time as the reconciles see it: now plus what [`advance_clock`] added.
static CLOCK_OFFSET: AtomicI64 = AtomicI64::new(0);

fn clock() -> Timestamp {
    let offset = CLOCK_OFFSET.load(Ordering::SeqCst);
    Timestamp::now()
        .checked_add(SignedDuration::from_secs(offset))
        .unwrap()
}

/// Moves the clock of every test in this binary forward (they only ever
/// need it later, never earlier).
fn advance_clock(by: std::time::Duration) {
    CLOCK_OFFSET.fetch_add(by.as_secs() as i64 + 1, Ordering::SeqCst);
}
