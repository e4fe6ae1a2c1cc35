//! Stage 2 of a reconcile: everything a bridge consists of, as objects.
//!
//! [`build`] is a pure function of the validated [`Bridge`] and the operator
//! [`Settings`]: no client, no clock, no randomness. Its result, [`Desired`],
//! is a typed struct with one field per child, so `apply` (which destructures
//! it) cannot forget a kind, and what the bridge does not want (a managed
//! Redis after switching to an external one) is known from the types alone.

pub mod autoscaling;
pub mod common;
pub mod config;
pub mod dataplane;
pub mod labels;
pub mod memcached;
pub mod names;
pub mod pod_security;
pub mod policy;
pub mod rbac;
pub mod redis;
pub mod script;
pub mod secret;
pub mod sentinel;

use crate::error::Result;
use crate::validate::{Bridge, MemcachedPlan, RedisPlan};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::Serialize;

/// What the operator itself brings to every build.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The operator's namespace: its pods may reach managed Redis for cache figures.
    pub operator_namespace: String,
    /// The dataplane image of bridges that set none (`--dataplane-image`).
    pub dataplane_image: String,
    /// Who scrapes the writers' metrics port (`--metrics-scrapers`): admitted
    /// by each writer's NetworkPolicy. Readers' port is open to all anyway.
    pub metrics_scrapers: Vec<NetworkPolicyPeer>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            operator_namespace: "cachebridge-system".into(),
            dataplane_image: cachebridge_api::v1alpha1::defaults::DATAPLANE_IMAGE.into(),
            metrics_scrapers: Vec::new(),
        }
    }
}

/// Every child object of one bridge.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub dataplane: DataplaneObjects,
    /// `None` when Redis is external.
    pub redis: Option<RedisObjects>,
    /// `None` when Memcached is external.
    pub memcached: Option<MemcachedObjects>,
    pub writer: WriterObjects,
    pub reader: ReaderObjects,
}

/// Shared by writer and readers.
#[derive(Debug, Clone, PartialEq)]
pub struct DataplaneObjects {
    pub service_account: ServiceAccount,
    pub role: Role,
    pub role_binding: RoleBinding,
    pub config_map: ConfigMap,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisObjects {
    /// Without data: `apply` generates the passwords once.
    pub secret: Secret,
    pub service: Service,
    pub stateful_set: StatefulSet,
    pub network_policy: NetworkPolicy,
    /// `None` with a single Redis pod: nothing to fail over to.
    pub failover: Option<FailoverObjects>,
}

/// What automatic failover adds to a replicated managed Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverObjects {
    pub redis_pdb: PodDisruptionBudget,
    pub sentinel_headless: Service,
    pub sentinel_service: Service,
    pub sentinel_stateful_set: StatefulSet,
    pub sentinel_pdb: PodDisruptionBudget,
    pub sentinel_network_policy: NetworkPolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemcachedObjects {
    pub service: Service,
    pub stateful_set: StatefulSet,
    pub network_policy: NetworkPolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WriterObjects {
    pub deployment: Deployment,
    /// Only for the `Ingest` source.
    pub service: Option<Service>,
    /// Only for the `Ingest` source: the bearer token, without its data
    /// (`apply` generates it once).
    pub token_secret: Option<Secret>,
    pub network_policy: NetworkPolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReaderObjects {
    pub deployment: Deployment,
    pub service: Service,
    pub pdb: PodDisruptionBudget,
    pub network_policy: NetworkPolicy,
    /// Only with `spec.reader.autoscaling`.
    pub hpa: Option<HorizontalPodAutoscaler>,
}

/// Builds every child of the bridge.
pub fn build(b: &Bridge, settings: &Settings) -> Result<Desired> {
    let yaml = serde_yaml::to_string(&config::dataplane_config(b))?;
    let hash = config::config_hash(&yaml);
    Ok(Desired {
        dataplane: DataplaneObjects {
            service_account: rbac::service_account(b),
            role: rbac::role(b, &dataplane_secrets(b)),
            role_binding: rbac::role_binding(b),
            config_map: config::config_map(b, &yaml),
        },
        redis: match &b.redis {
            RedisPlan::Managed(m) => Some(RedisObjects {
                secret: secret::password_secret(b),
                service: redis::service(b),
                stateful_set: redis::stateful_set(b, m),
                network_policy: policy::redis(b, settings),
                failover: b.failover.as_ref().map(|f| FailoverObjects {
                    redis_pdb: policy::redis_pdb(b),
                    sentinel_headless: sentinel::headless_service(b),
                    sentinel_service: sentinel::service(b),
                    sentinel_stateful_set: sentinel::stateful_set(b, m, f),
                    sentinel_pdb: policy::sentinel_pdb(b),
                    sentinel_network_policy: policy::sentinel(b, settings),
                }),
            }),
            RedisPlan::External(_) => None,
        },
        memcached: match &b.memcached {
            MemcachedPlan::Managed(m) => Some(MemcachedObjects {
                service: memcached::service(b),
                stateful_set: memcached::stateful_set(b, m),
                network_policy: policy::memcached(b),
            }),
            MemcachedPlan::External(_) => None,
        },
        writer: WriterObjects {
            deployment: dataplane::writer_deployment(b, settings, &hash),
            service: dataplane::writer_service(b),
            token_secret: dataplane::ingests(b).then(|| secret::ingest_token_secret(b)),
            network_policy: policy::writer(b, settings),
        },
        reader: ReaderObjects {
            deployment: dataplane::reader_deployment(b, settings, &hash),
            service: dataplane::reader_service(b),
            pdb: policy::reader_pdb(b),
            network_policy: policy::reader(b),
            hpa: autoscaling::reader_hpa(b),
        },
    })
}

/// The Secret the dataplane reads the Redis password from, and its key.
pub fn password_secret(b: &Bridge) -> (String, String) {
    match &b.redis {
        RedisPlan::Managed(_) => (names::redis_secret(b), names::PASSWORD_KEY.to_string()),
        RedisPlan::External(e) => (
            e.password_secret.name.clone(),
            e.password_secret.key.clone(),
        ),
    }
}

/// The Secret key holding the ingest token, for the `Ingest` source.
pub fn ingest_token_secret(b: &Bridge) -> Option<(String, String)> {
    dataplane::ingests(b).then(|| (names::ingest_secret(b), names::INGEST_TOKEN_KEY.to_string()))
}

/// Every Secret the dataplane reads: the Redis password's and, for an
/// external Redis found through Sentinel, the Sentinel password's.
pub fn dataplane_secrets(b: &Bridge) -> Vec<String> {
    let mut secrets = vec![password_secret(b).0];
    if let RedisPlan::External(e) = &b.redis
        && let Some(s) = e.sentinel.as_ref().and_then(|s| s.password_secret.as_ref())
        && !secrets.contains(&s.name)
    {
        secrets.push(s.name.clone());
    }
    secrets
}

/// The kinds of child a bridge can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ServiceAccount,
    Role,
    RoleBinding,
    ConfigMap,
    Secret,
    Service,
    NetworkPolicy,
    StatefulSet,
    Deployment,
    PodDisruptionBudget,
    HorizontalPodAutoscaler,
}

/// A child by kind and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildKey {
    pub kind: Kind,
    pub name: String,
}

/// One desired child, borrowed, with its kind in the type.
#[derive(Debug, Clone, Copy)]
pub enum Child<'a> {
    ServiceAccount(&'a ServiceAccount),
    Role(&'a Role),
    RoleBinding(&'a RoleBinding),
    ConfigMap(&'a ConfigMap),
    Secret(&'a Secret),
    Service(&'a Service),
    NetworkPolicy(&'a NetworkPolicy),
    StatefulSet(&'a StatefulSet),
    Deployment(&'a Deployment),
    PodDisruptionBudget(&'a PodDisruptionBudget),
    HorizontalPodAutoscaler(&'a HorizontalPodAutoscaler),
}

impl Child<'_> {
    pub fn key(&self) -> ChildKey {
        let (kind, meta) = match self {
            Child::ServiceAccount(o) => (Kind::ServiceAccount, &o.metadata),
            Child::Role(o) => (Kind::Role, &o.metadata),
            Child::RoleBinding(o) => (Kind::RoleBinding, &o.metadata),
            Child::ConfigMap(o) => (Kind::ConfigMap, &o.metadata),
            Child::Secret(o) => (Kind::Secret, &o.metadata),
            Child::Service(o) => (Kind::Service, &o.metadata),
            Child::NetworkPolicy(o) => (Kind::NetworkPolicy, &o.metadata),
            Child::StatefulSet(o) => (Kind::StatefulSet, &o.metadata),
            Child::Deployment(o) => (Kind::Deployment, &o.metadata),
            Child::PodDisruptionBudget(o) => (Kind::PodDisruptionBudget, &o.metadata),
            Child::HorizontalPodAutoscaler(o) => (Kind::HorizontalPodAutoscaler, &o.metadata),
        };
        ChildKey {
            kind,
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    /// The object as JSON, with `apiVersion` and `kind`, as it would be applied.
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        fn typed<K: Serialize + kube::Resource<DynamicType = ()>>(
            o: &K,
        ) -> serde_json::Result<serde_json::Value> {
            let mut value = serde_json::to_value(o)?;
            if let Some(map) = value.as_object_mut() {
                map.insert("apiVersion".into(), K::api_version(&()).into());
                map.insert("kind".into(), K::kind(&()).into());
            }
            Ok(value)
        }
        match self {
            Child::ServiceAccount(o) => typed(*o),
            Child::Role(o) => typed(*o),
            Child::RoleBinding(o) => typed(*o),
            Child::ConfigMap(o) => typed(*o),
            Child::Secret(o) => typed(*o),
            Child::Service(o) => typed(*o),
            Child::NetworkPolicy(o) => typed(*o),
            Child::StatefulSet(o) => typed(*o),
            Child::Deployment(o) => typed(*o),
            Child::PodDisruptionBudget(o) => typed(*o),
            Child::HorizontalPodAutoscaler(o) => typed(*o),
        }
    }
}

impl Desired {
    /// Every child, in apply order: identity and config before the servers,
    /// NetworkPolicies before the pods they protect, servers before clients.
    pub fn children(&self) -> Vec<Child<'_>> {
        // Destructured in full: a new field fails to compile until listed here.
        let Desired {
            dataplane:
                DataplaneObjects {
                    service_account,
                    role,
                    role_binding,
                    config_map,
                },
            redis,
            memcached,
            writer:
                WriterObjects {
                    deployment: writer_deployment,
                    service: writer_service,
                    token_secret,
                    network_policy: writer_policy,
                },
            reader:
                ReaderObjects {
                    deployment: reader_deployment,
                    service: reader_service,
                    pdb,
                    network_policy: reader_policy,
                    hpa,
                },
        } = self;
        let mut children = vec![
            Child::ServiceAccount(service_account),
            Child::Role(role),
            Child::RoleBinding(role_binding),
            Child::ConfigMap(config_map),
        ];
        if let Some(RedisObjects {
            secret,
            service,
            stateful_set,
            network_policy,
            failover,
        }) = redis
        {
            children.extend([
                Child::Secret(secret),
                Child::NetworkPolicy(network_policy),
                Child::Service(service),
                Child::StatefulSet(stateful_set),
            ]);
            if let Some(FailoverObjects {
                redis_pdb,
                sentinel_headless,
                sentinel_service,
                sentinel_stateful_set,
                sentinel_pdb,
                sentinel_network_policy,
            }) = failover
            {
                children.extend([
                    Child::PodDisruptionBudget(redis_pdb),
                    Child::NetworkPolicy(sentinel_network_policy),
                    Child::Service(sentinel_headless),
                    Child::Service(sentinel_service),
                    Child::StatefulSet(sentinel_stateful_set),
                    Child::PodDisruptionBudget(sentinel_pdb),
                ]);
            }
        }
        if let Some(MemcachedObjects {
            service,
            stateful_set,
            network_policy,
        }) = memcached
        {
            children.extend([
                Child::NetworkPolicy(network_policy),
                Child::Service(service),
                Child::StatefulSet(stateful_set),
            ]);
        }
        children.extend(token_secret.iter().map(Child::Secret));
        children.push(Child::NetworkPolicy(writer_policy));
        children.extend(writer_service.iter().map(Child::Service));
        children.extend([
            Child::Deployment(writer_deployment),
            Child::NetworkPolicy(reader_policy),
            Child::Service(reader_service),
            Child::Deployment(reader_deployment),
            Child::PodDisruptionBudget(pdb),
        ]);
        // After the Deployment it scales.
        children.extend(hpa.iter().map(Child::HorizontalPodAutoscaler));
        children
    }

    /// Children a bridge may have but this one does not want (any more).
    pub fn unwanted(&self, b: &Bridge) -> Vec<ChildKey> {
        let key = |kind, name| ChildKey { kind, name };
        let mut unwanted = Vec::new();
        if self.redis.is_none() {
            unwanted.extend([
                key(Kind::StatefulSet, names::redis(b)),
                key(Kind::Service, names::redis(b)),
                key(Kind::NetworkPolicy, names::redis(b)),
                key(Kind::Secret, names::redis_secret(b)),
            ]);
        }
        if self.redis.as_ref().is_none_or(|r| r.failover.is_none()) {
            unwanted.extend([
                key(Kind::PodDisruptionBudget, names::redis(b)),
                key(Kind::StatefulSet, names::sentinel(b)),
                key(Kind::Service, names::sentinel(b)),
                key(Kind::Service, names::sentinel_headless(b)),
                key(Kind::NetworkPolicy, names::sentinel(b)),
                key(Kind::PodDisruptionBudget, names::sentinel(b)),
            ]);
        }
        if self.memcached.is_none() {
            unwanted.extend([
                key(Kind::StatefulSet, names::memcached(b)),
                key(Kind::Service, names::memcached(b)),
                key(Kind::NetworkPolicy, names::memcached(b)),
            ]);
        }
        if self.writer.service.is_none() {
            unwanted.push(key(Kind::Service, names::writer(b)));
        }
        if self.reader.hpa.is_none() {
            unwanted.push(key(Kind::HorizontalPodAutoscaler, names::reader(b)));
        }
        if self.writer.token_secret.is_none() {
            unwanted.push(key(Kind::Secret, names::ingest_secret(b)));
        }
        unwanted
    }
}
