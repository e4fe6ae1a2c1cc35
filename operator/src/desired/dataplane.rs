//! The writer and reader Deployments and Services: the dataplane pods.
//!
//! Both run the dataplane image in `--bridge NAMESPACE/NAME` mode: they read
//! the CacheBridge status and the password Secret through the API (hence
//! their ServiceAccount token) and the mounted config file for the rest.
//! The config hash on the pod template rolls them when the config changes.

use super::Settings;
use super::autoscaling::reader_replicas;
use super::common::{
    config_map_volume, meta, mount, pod_meta, requirements, scratch_volume, secret_volume, selector,
};
use super::config::REPLAY_DIR;
use super::labels::{self, CONFIG_HASH, Component};
use super::names::{
    self, CONFIG_DIR, CONFIG_PATH, INGEST_PORT, INGEST_TOKEN_DIR, INGEST_TOKEN_KEY,
    WRITER_STATUS_PORT,
};
use super::pod_security::{ApiAccess, restricted};
use crate::validate::Bridge;
use cachebridge_api::v1alpha1::{Resources, SourceType};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSpec,
    PodTemplateSpec, Probe, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// uid of the dataplane image's non-root user.
pub const DATAPLANE_UID: i64 = 65532;

/// Whether the writer serves `POST /ingest` (the `Ingest` source).
pub fn ingests(b: &Bridge) -> bool {
    b.writer.source.type_ == SourceType::Ingest
}

/// One writer: it alone orders updates, so the old one stops before the new one starts.
pub fn writer_deployment(b: &Bridge, settings: &Settings, config_hash: &str) -> Deployment {
    let ingest = ingests(b);
    let image = b
        .writer
        .image
        .as_deref()
        .unwrap_or(&settings.dataplane_image);
    let mut container = dataplane_container("writer", image, &b.writer.resources);
    container.args = Some(role_args("writer", b));
    let mut ports = vec![port("http", WRITER_STATUS_PORT)];
    if ingest {
        ports.push(port("ingest", INGEST_PORT));
    }
    container.ports = Some(ports);
    // Not ready while Redis refuses its values: WriterReady must not lie.
    container.readiness_probe = Some(http_probe("/readyz", 5));
    container.liveness_probe = Some(http_probe("/healthz", 10));
    let mut volumes = base_volumes(b);
    if let Some(replay) = &b.writer.source.replay
        && b.writer.source.type_ == SourceType::Replay
    {
        volumes.push(config_map_volume("replay", replay.config_map.clone()));
        push_mount(&mut container, mount("replay", REPLAY_DIR, true));
    }
    if ingest {
        // Mounted, not an env var from the Secret: the kubelet updates a
        // mounted Secret in place, so a rotated token needs no restart.
        volumes.push(secret_volume("ingest-token", names::ingest_secret(b)));
        push_mount(
            &mut container,
            mount("ingest-token", INGEST_TOKEN_DIR, true),
        );
        container.env.get_or_insert_with(Vec::new).push(EnvVar {
            name: "CACHEBRIDGE_INGEST_TOKEN_FILE".into(),
            value: Some(format!("{INGEST_TOKEN_DIR}/{INGEST_TOKEN_KEY}")),
            ..Default::default()
        });
    }
    deployment(
        b,
        names::writer(b),
        Component::Writer,
        Some(1),
        DeploymentStrategy {
            type_: Some("Recreate".into()),
            ..Default::default()
        },
        pod_template(b, Component::Writer, container, volumes, config_hash),
    )
}

/// Readers roll one extra pod at a time and never drop below the desired count.
pub fn reader_deployment(b: &Bridge, settings: &Settings, config_hash: &str) -> Deployment {
    let mut args = role_args("reader", b);
    args.extend(["--listen".to_string(), format!("0.0.0.0:{}", b.reader.port)]);
    let image = b
        .reader
        .image
        .as_deref()
        .unwrap_or(&settings.dataplane_image);
    let mut container = dataplane_container("reader", image, &b.reader.resources);
    container.args = Some(args);
    container.ports = Some(vec![port("http", b.reader.port)]);
    container.readiness_probe = Some(http_probe("/readyz", 5));
    container.liveness_probe = Some(http_probe("/healthz", 10));
    deployment(
        b,
        names::reader(b),
        Component::Reader,
        // None with autoscaling: the HPA owns the count.
        reader_replicas(b),
        DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        },
        pod_template(
            b,
            Component::Reader,
            container,
            base_volumes(b),
            config_hash,
        ),
    )
}

pub fn reader_service(b: &Bridge) -> Service {
    service(
        b,
        names::reader(b),
        Component::Reader,
        b.reader.service_type,
        ("http", b.reader.port),
    )
}

/// Only for the `Ingest` source: where trading services POST ticks.
pub fn writer_service(b: &Bridge) -> Option<Service> {
    ingests(b).then(|| {
        service(
            b,
            names::writer(b),
            Component::Writer,
            Default::default(),
            ("ingest", INGEST_PORT),
        )
    })
}

fn role_args(role: &str, b: &Bridge) -> Vec<String> {
    vec![
        role.to_string(),
        "--bridge".to_string(),
        format!("{}/{}", b.namespace, b.name),
        "--config".to_string(),
        CONFIG_PATH.to_string(),
    ]
}

fn dataplane_container(name: &str, image: &str, resources: &Resources) -> Container {
    Container {
        name: name.into(),
        image: Some(image.into()),
        env: Some(vec![
            EnvVar {
                name: "CACHEBRIDGE_LOG_FORMAT".into(),
                value: Some("json".into()),
                ..Default::default()
            },
            // Readers name their stats document after the pod.
            EnvVar {
                name: "POD_NAME".into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.name".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]),
        resources: Some(requirements(resources)),
        volume_mounts: Some(vec![
            mount("config", CONFIG_DIR, true),
            mount("tmp", "/tmp", false),
        ]),
        ..Default::default()
    }
}

fn base_volumes(b: &Bridge) -> Vec<Volume> {
    vec![
        config_map_volume("config", names::dataplane(b)),
        scratch_volume("tmp", false),
    ]
}

fn push_mount(container: &mut Container, m: VolumeMount) {
    container.volume_mounts.get_or_insert_with(Vec::new).push(m);
}

fn pod_template(
    b: &Bridge,
    component: Component,
    container: Container,
    volumes: Vec<Volume>,
    config_hash: &str,
) -> PodTemplateSpec {
    let annotations = BTreeMap::from([(CONFIG_HASH.to_string(), config_hash.to_string())]);
    let spec = PodSpec {
        service_account_name: Some(names::dataplane(b)),
        containers: vec![container],
        volumes: Some(volumes),
        termination_grace_period_seconds: Some(30),
        ..Default::default()
    };
    PodTemplateSpec {
        metadata: Some(pod_meta(b, component, Some(annotations))),
        spec: Some(restricted(
            spec,
            DATAPLANE_UID,
            ApiAccess::ServiceAccountToken,
        )),
    }
}

fn deployment(
    b: &Bridge,
    name: String,
    component: Component,
    replicas: Option<i32>,
    strategy: DeploymentStrategy,
    template: PodTemplateSpec,
) -> Deployment {
    Deployment {
        metadata: meta(b, name, component),
        spec: Some(DeploymentSpec {
            replicas,
            selector: selector(b, component),
            strategy: Some(strategy),
            template,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service(
    b: &Bridge,
    name: String,
    component: Component,
    type_: cachebridge_api::v1alpha1::ServiceType,
    (port_name, port): (&str, i32),
) -> Service {
    Service {
        metadata: meta(b, name, component),
        spec: Some(ServiceSpec {
            type_: Some(service_type(type_).into()),
            selector: Some(labels::selector(b, component)),
            ports: Some(vec![ServicePort {
                name: Some(port_name.into()),
                port,
                target_port: Some(IntOrString::String(port_name.into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service_type(t: cachebridge_api::v1alpha1::ServiceType) -> &'static str {
    use cachebridge_api::v1alpha1::ServiceType;
    match t {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    }
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn http_probe(path: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        ..Default::default()
    }
}
