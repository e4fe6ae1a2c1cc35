//! `cachebridge-operator`: the command line. `run` starts the controller,
//! `crd` prints the CustomResourceDefinition, `render -f FILE` prints what
//! the controller would apply for a CacheBridge in a file, `metrics` lists
//! the metrics it exports.

use cachebridge_api::v1alpha1::defaults::DATAPLANE_IMAGE;
use cachebridge_operator::controller::{self, Context, Scope};
use cachebridge_operator::desired::Settings;
use cachebridge_operator::leader::{self, LeaseConfig};
use cachebridge_operator::metrics::Metrics;
use cachebridge_operator::server::{self, Health};
use cachebridge_operator::telemetry::{self, LogFormat};
use cachebridge_operator::{FIELD_MANAGER, crdgen, render};
use clap::{Args, Parser, Subcommand};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, CustomResourceExt};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

#[global_allocator]
static ALLOCATOR: cachebridge_operator::Allocator = cachebridge_operator::ALLOCATOR;

#[derive(Debug, Parser)]
#[command(
    name = "cachebridge-operator",
    version,
    about = "Runs CacheBridge resources: Redis, Memcached, a writer and readers, with honest status."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the controller (with leader election, metrics and health endpoints).
    Run(RunArgs),
    /// Prints the CacheBridge CustomResourceDefinition as YAML.
    Crd,
    /// Prints, as multi-document YAML, every object the controller would apply for the CacheBridge(s) in FILE.
    Render {
        /// A YAML file with one or more CacheBridge documents; `-` reads stdin.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        children: ChildArgs,
    },
    /// Prints the metrics the operator exports, as /metrics shows them (one series each, label values `example`).
    Metrics,
}

/// What every bridge's children depend on besides the bridge.
#[derive(Debug, Args)]
struct ChildArgs {
    /// The operator's own namespace: holds the Lease; its pods may reach managed Redis.
    #[arg(long, env = "POD_NAMESPACE", default_value = "cachebridge-system")]
    operator_namespace: String,
    /// Dataplane image of bridges that set no spec.writer.image / spec.reader.image.
    #[arg(long, env = "DATAPLANE_IMAGE", default_value = DATAPLANE_IMAGE)]
    dataplane_image: String,
    /// Who scrapes the writers' metrics: a JSON list of NetworkPolicyPeer objects
    /// that each writer's NetworkPolicy admits to its metrics port (chart podMonitor.scrapers).
    #[arg(long, env = "METRICS_SCRAPERS", value_name = "JSON", value_parser = parse_peers)]
    metrics_scrapers: Option<Peers>,
}

/// A parsed `--metrics-scrapers` (clap wants one type per argument).
#[derive(Debug, Clone)]
struct Peers(Vec<NetworkPolicyPeer>);

fn parse_peers(json: &str) -> Result<Peers, String> {
    serde_json::from_str(json).map(Peers).map_err(|e| {
        format!("expected a JSON list of NetworkPolicyPeer objects, like [{{\"namespaceSelector\": {{}}}}]: {e}")
    })
}

impl ChildArgs {
    fn settings(self) -> Settings {
        Settings {
            operator_namespace: self.operator_namespace,
            dataplane_image: self.dataplane_image,
            metrics_scrapers: self.metrics_scrapers.map(|p| p.0).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Serve CacheBridges of this namespace only (RBAC can then be a Role); all namespaces when unset.
    #[arg(long, env = "WATCH_NAMESPACE", value_name = "NAMESPACE")]
    namespace: Option<String>,
    #[command(flatten)]
    children: ChildArgs,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "cachebridge-operator")]
    lease_name: String,
    /// This replica's identity in the Lease [default: the pod name, else a random id].
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Run without leader election (a single replica, or local development).
    #[arg(long)]
    no_leader_election: bool,
    /// Do not talk to the bridges' Redis and Sentinels (when the operator cannot
    /// reach them): no cache figures, no Redis primary observed through Sentinel,
    /// and an external Redis is not probed (PING) before it counts as ready.
    #[arg(long)]
    no_stats: bool,
    /// Install or upgrade the CRD at start (server-side apply; needs RBAC on CRDs).
    #[arg(long)]
    apply_crd: bool,
    /// Where /metrics, /healthz and /readyz listen.
    #[arg(long, env = "LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
    /// Log filter (RUST_LOG wins when set).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    // The Kubernetes client and the Redis client (cache figures) both use
    // rustls; choose its crypto provider once, whatever else is linked.
    cachebridge_dataplane::tls::install_crypto_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => crdgen::crd_yaml().map_err(|e| e.to_string()),
        Command::Render { file, children } => read(&file).and_then(|text| {
            render::render(&text, &children.settings())
                .map_err(|e| format!("{}: {e}", file.display()))
        }),
        Command::Metrics => Ok(Metrics::new().with_examples().encode()),
        Command::Run(args) => run_blocking(args).map(|()| String::new()),
    };
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn read(file: &PathBuf) -> Result<String, String> {
    if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("cannot read stdin: {e}"))
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
    }
}

fn run_blocking(args: RunArgs) -> Result<(), String> {
    telemetry::init(args.log_format, &args.log_level);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(run(args))
}

async fn run(args: RunArgs) -> Result<(), String> {
    let client = Client::try_default().await.map_err(|e| {
        format!(
            "cannot reach the Kubernetes API (is a kubeconfig or in-cluster config there?): {e}"
        )
    })?;
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let health = Health {
        metrics: Arc::clone(&metrics),
        ready: Arc::clone(&ready),
    };
    let listen = args.listen;
    tokio::spawn(async move {
        if let Err(e) = server::serve(listen, health).await {
            tracing::error!(error = %e, %listen, "the metrics and health server stopped");
        }
    });
    let scope = match &args.namespace {
        Some(ns) => Scope::Namespace(ns.clone()),
        None => Scope::Cluster,
    };
    if args.apply_crd {
        apply_crd(&client).await?;
    }
    check_crd(&client, &scope).await?;
    ready.store(true, Ordering::Release);
    let lease_namespace = args.children.operator_namespace.clone();
    let settings = args.children.settings();
    let mut context = Context::new(client.clone(), settings, Arc::clone(&metrics));
    context.read_stats = !args.no_stats;
    context.observe_primary = !args.no_stats;
    context.probe_redis = !args.no_stats;
    let ctx = Arc::new(context);
    let shutdown = shutdown_signal();
    tracing::info!(scope = ?scope, "cachebridge-operator starting");
    if args.no_leader_election {
        let mut stop = shutdown.clone();
        metrics.leader.set(1);
        controller::run(ctx, scope, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
        return Ok(());
    }
    let lease = LeaseConfig {
        namespace: lease_namespace,
        name: args.lease_name,
        identity: args.identity.unwrap_or_else(random_identity),
    };
    leader::run_when_leader(client, lease, &metrics, shutdown, |stop| {
        controller::run(Arc::clone(&ctx), scope.clone(), stop)
    })
    .await
    .map_err(|e| format!("leader election failed: {e}"))
}

/// A watch that turns true on SIGTERM or Ctrl-C: the controller finishes
/// the reconciles in flight, then the Lease is released.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    rx
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn random_identity() -> String {
    use rand::Rng;
    let suffix: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(12)
        .map(char::from)
        .collect();
    format!("cachebridge-operator-{suffix}")
}

/// Server-side applies the CRD, so upgrades of the operator upgrade it too
/// (Helm never upgrades CRDs it installed from `crds/`).
async fn apply_crd(client: &Client) -> Result<(), String> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = cachebridge_api::v1alpha1::crd();
    let name = cachebridge_api::CacheBridge::crd_name();
    crds.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .map_err(|e| format!("cannot apply the CRD {name}: {e}"))?;
    tracing::info!(name, "CRD applied");
    Ok(())
}

/// Fails early, with the fix, when the CRD is missing or RBAC forbids reading it.
async fn check_crd(client: &Client, scope: &Scope) -> Result<(), String> {
    let api = scope.api::<cachebridge_api::CacheBridge>(client.clone());
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(
            "the CacheBridge CRD is not installed: run `kubectl apply --server-side -f crds/cachebridge.yaml` (or start with --apply-crd)".into(),
        ),
        Err(kube::Error::Api(e)) if e.code == 403 => Err(format!(
            "RBAC forbids listing cachebridges{}: {}",
            match scope {
                Scope::Namespace(ns) => format!(" in namespace {ns}"),
                Scope::Cluster => " cluster-wide (use --namespace for one-namespace mode)".into(),
            },
            e.message
        )),
        Err(e) => Err(format!("cannot list cachebridges: {e}")),
    }
}
