//! `--bridge` mode: settings from a CacheBridge's status and Secret, read
//! through an in-memory Kubernetes API (kube-fake-client, which keeps
//! resourceVersion and the status subresource), against real Redis servers.

mod common;

use bytes::Bytes;
use cachebridge_api::v1alpha1::{Endpoints, SecretKeySelector, SentinelEndpoints};
use cachebridge_api::{CacheBridge, CacheBridgeStatus};
use cachebridge_dataplane::app::{Credentials, Role, Tiers};
use cachebridge_dataplane::bridge::{self, BridgeError, Source};
use cachebridge_dataplane::config::Config;
use cachebridge_dataplane::metrics::Metrics;
use cachebridge_dataplane::writer::publisher::Publisher;
use cachebridge_testkit::sentinel::Timing;
use common::{SentinelGroup, Server, config, eventually, free_port, sentinel};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const NS: &str = "markets";
const NAME: &str = "quotes";

fn status(redis: &Server, secret: Option<&str>) -> CacheBridgeStatus {
    CacheBridgeStatus {
        endpoints: Endpoints {
            redis: Some(redis.url()),
            memcached: vec![],
            reader: None,
            sentinel: None,
            redis_cluster: None,
        },
        password_secret: secret.map(|name| SecretKeySelector {
            name: name.into(),
            key: "password".into(),
        }),
        key_prefix: "cb:markets:quotes:".into(),
        ..CacheBridgeStatus::default()
    }
}

fn bridge(status: Option<CacheBridgeStatus>) -> CacheBridge {
    let mut cb = CacheBridge::new(NAME, Default::default());
    cb.metadata.namespace = Some(NS.into());
    cb.status = status;
    cb
}

fn secret(name: &str, password: &str) -> Secret {
    let mut secret = Secret::default();
    secret.metadata.name = Some(name.into());
    secret.metadata.namespace = Some(NS.into());
    secret.data = Some(BTreeMap::from([(
        "password".to_owned(),
        ByteString(password.as_bytes().to_vec()),
    )]));
    secret
}

async fn fake(objects: (Option<CacheBridge>, Vec<Secret>)) -> kube::Client {
    let mut builder = kube_fake_client::ClientBuilder::new()
        .with_resource::<CacheBridge>()
        .with_status_subresource::<CacheBridge>();
    if let Some(cb) = objects.0 {
        builder = builder.with_object(cb);
    }
    for s in objects.1 {
        builder = builder.with_object(s);
    }
    builder.build().await.expect("fake API")
}

/// Publishes one overview straight into a Redis, as a writer would.
async fn seed(redis: &Server, password: Option<&str>, body: &'static str) {
    let mut cfg = config(Some(redis), &[]);
    cfg.key_prefix = Some("cb:markets:quotes:".into());
    let credentials = Credentials {
        redis_password: password.map(str::to_owned),
        ..Credentials::default()
    };
    let tiers = Tiers::connect_with(&cfg, &credentials, "seed", false).unwrap();
    let mut publisher = Publisher::new(
        tiers.keys,
        tiers.l3,
        None,
        (3, Duration::from_secs(1)),
        Arc::new(Metrics::new()),
    );
    let now = i64::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_millis()).unwrap();
    let report = publisher
        .publish(
            vec![(
                "market:overview".into(),
                Bytes::from_static(body.as_bytes()),
            )],
            now,
        )
        .await;
    assert_eq!(report.published, 1);
}

#[tokio::test]
async fn the_status_and_secret_give_the_connection_settings() {
    let redis = Server::redis();
    let client = fake((
        Some(bridge(Some(status(&redis, Some("quotes-redis"))))),
        vec![secret("quotes-redis", "s3cret")],
    ))
    .await;
    let resolved = Source::new(client, NS, NAME).resolve().await.unwrap();
    assert_eq!(resolved.redis_url, Some(redis.url()));
    assert_eq!(resolved.key_prefix.as_deref(), Some("cb:markets:quotes:"));
    assert_eq!(
        resolved.credentials.redis_password.as_deref(),
        Some("s3cret")
    );
    assert!(
        !format!("{resolved:?}").contains("s3cret"),
        "the password never reaches a log"
    );

    let config = bridge::configure(&Config::default(), &resolved);
    assert_eq!(config.redis.url, Some(redis.url()));
    assert!(!serde_yaml::to_string(&config).unwrap().contains("s3cret"));
}

#[tokio::test]
async fn missing_pieces_are_named() {
    let redis = Server::redis();
    let none = Source::new(fake((None, vec![])).await, NS, NAME)
        .resolve()
        .await
        .unwrap_err();
    assert!(matches!(none, BridgeError::NotFound(_)), "{none}");
    assert!(!none.is_transient());

    let no_status = Source::new(fake((Some(bridge(None)), vec![])).await, NS, NAME)
        .resolve()
        .await
        .unwrap_err();
    assert!(
        no_status.is_transient() && no_status.to_string().contains("no status yet"),
        "{no_status}"
    );

    let no_secret = fake((Some(bridge(Some(status(&redis, Some("gone"))))), vec![])).await;
    let err = Source::new(no_secret, NS, NAME)
        .resolve()
        .await
        .unwrap_err();
    assert!(
        err.is_transient() && err.to_string().contains("secrets"),
        "{err}"
    );
}

#[tokio::test]
async fn a_reader_follows_the_status_to_another_redis_without_restarting() {
    let first = Server::redis();
    let second = Server::redis_with_password("rotated");
    seed(&first, None, "{\"from\":\"first\"}").await;
    seed(&second, Some("rotated"), "{\"from\":\"second\"}").await;
    let client = fake((
        Some(bridge(Some(status(&first, None)))),
        vec![secret("quotes-redis", "rotated")],
    ))
    .await;

    let port = free_port();
    let mut base = Config::default();
    base.reader.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let source = Source::new(client.clone(), NS, NAME);
    let reader = tokio::spawn(async move {
        bridge::run(
            Role::Reader,
            &base,
            source,
            Duration::from_millis(50),
            std::future::pending(),
        )
        .await
    });

    let url = format!("http://127.0.0.1:{port}/api/v1/market/overview");
    let from = |want: &'static str| {
        let url = url.clone();
        move || {
            let url = url.clone();
            async move {
                let body: Value = common::client()
                    .get(&url)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (body["data"]["from"] == want).then_some(())
            }
        }
    };
    eventually("served from the first Redis", from("first")).await;

    // The operator moves the bridge to another Redis with a password.
    let bridges: Api<CacheBridge> = Api::namespaced(client, NS);
    let moved = json!({ "status": status(&second, Some("quotes-redis")) });
    bridges
        .patch_status(NAME, &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .expect("status update");
    eventually("served from the second Redis", from("second")).await;
    assert!(!reader.is_finished(), "the reader kept running");
    reader.abort();
}

#[tokio::test]
async fn a_status_naming_sentinels_gives_sentinel_mode_with_its_password() {
    let group = SentinelGroup::start(Timing::fast());
    let mut with_sentinel = status(&group.redis[1], Some("quotes-redis"));
    with_sentinel.redis_username = Some(sentinel::CLIENT_USER.into());
    with_sentinel.endpoints.sentinel = Some(SentinelEndpoints {
        servers: group.sentinel_addrs(),
        master_name: sentinel::MASTER.into(),
        password_secret: Some(SecretKeySelector {
            name: "quotes-sentinel".into(),
            key: "password".into(),
        }),
    });
    let client = fake((
        Some(bridge(Some(with_sentinel))),
        vec![
            secret("quotes-redis", sentinel::CLIENT_PASSWORD),
            secret("quotes-sentinel", sentinel::SENTINEL_PASSWORD),
        ],
    ))
    .await;
    let resolved = Source::new(client, NS, NAME).resolve().await.unwrap();
    assert_eq!(
        resolved.redis_url, None,
        "endpoints.redis (a replica here) is ignored when Sentinels are named"
    );
    let named = resolved.sentinel.clone().expect("Sentinel mode");
    assert_eq!(named.servers, group.sentinel_addrs());
    assert_eq!(named.master_name, sentinel::MASTER);
    assert!(!format!("{resolved:?}").contains(sentinel::SENTINEL_PASSWORD));

    let config = bridge::configure(&Config::default(), &resolved);
    assert!(config.redis.uses_sentinel() && config.redis.url.is_none());
    assert_eq!(config.redis.sentinel_username, None);
    // The settings work against the real Sentinels and the primary they name.
    let tiers = Tiers::connect_with(&config, &resolved.credentials, "probe", false).unwrap();
    let env =
        cachebridge_dataplane::cache::envelope::Envelope::new(7, 1, Bytes::from_static(b"{}"));
    let published = eventually("published through Sentinel", || {
        let l3 = Arc::clone(&tiers.l3);
        let env = env.clone();
        async move { l3.publish("market:overview", &env).await.ok() }
    })
    .await;
    assert!(matches!(
        published,
        cachebridge_dataplane::cache::l3::PublishOutcome::Published { .. }
    ));
    let primary = common::named_primary(&group).unwrap();
    let key = cachebridge_dataplane::keys::Keys::new("cb:markets:quotes:").value("market:overview");
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg(key)
        .query(&mut common::admin_conn(primary))
        .unwrap();
    assert!(stored.is_some(), "stored on the primary the Sentinels name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_naming_a_redis_cluster_gives_cluster_mode_with_a_tagged_prefix() {
    let cluster = common::RedisCluster::start(3);
    let mut on_cluster = status(&cluster.nodes[0], Some("quotes-redis"));
    on_cluster.redis_username = Some(sentinel::CLIENT_USER.into());
    on_cluster.endpoints.redis = None;
    on_cluster.endpoints.redis_cluster = Some(cluster.seeds());
    let client = fake((
        Some(bridge(Some(on_cluster))),
        vec![secret("quotes-redis", sentinel::CLIENT_PASSWORD)],
    ))
    .await;
    let resolved = Source::new(client, NS, NAME).resolve().await.unwrap();
    assert_eq!(resolved.redis_cluster, cluster.seeds());
    assert!(resolved.redis().contains("Redis Cluster"));

    let config = bridge::configure(&Config::default(), &resolved);
    assert!(config.redis.uses_cluster() && config.redis.url.is_none());
    assert_eq!(config.key_prefix(), "{cb:markets:quotes}:");
    // The settings work against the real cluster: the value lands on the
    // node that serves the tagged prefix's slot.
    let tiers = Tiers::connect_with(&config, &resolved.credentials, "probe", false).unwrap();
    let env =
        cachebridge_dataplane::cache::envelope::Envelope::new(7, 1, Bytes::from_static(b"{}"));
    eventually("published on the cluster", || {
        let l3 = Arc::clone(&tiers.l3);
        let env = env.clone();
        async move { l3.publish("market:overview", &env).await.ok() }
    })
    .await;
    let key = cachebridge_dataplane::keys::Keys::new(config.key_prefix()).value("market:overview");
    let slot = cachebridge_dataplane::cache::l3::cluster::slot_of(key.as_bytes());
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&key)
        .query(&mut cachebridge_testkit::cluster::admin(
            cluster.owner_of(slot),
        ))
        .unwrap();
    assert!(stored.is_some(), "stored on the slot's node");
}

#[test]
fn only_a_changed_memcached_list_is_switched_in_place() {
    let current = bridge::Resolved {
        redis_url: Some("redis://r:6379".into()),
        sentinel: None,
        redis_cluster: vec![],
        redis_username: None,
        memcached: vec!["m-0:11211".into(), "m-1:11211".into()],
        key_prefix: None,
        credentials: Credentials::default(),
    };
    let grown = bridge::Resolved {
        memcached: vec!["m-0:11211".into(), "m-1:11211".into(), "m-2:11211".into()],
        ..current.clone()
    };
    assert!(bridge::resized_only(&current, &grown));
    assert!(!bridge::resized_only(&current, &current), "no change");
    let moved = bridge::Resolved {
        redis_url: Some("redis://other:6379".into()),
        ..grown.clone()
    };
    assert!(!bridge::resized_only(&current, &moved), "Redis changed too");
    let dropped = bridge::Resolved {
        memcached: vec![],
        ..current.clone()
    };
    assert!(!bridge::resized_only(&current, &dropped), "L2 switched off");
}
