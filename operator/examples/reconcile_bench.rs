//! Benchmark: reconcile 1000 CacheBridges against the in-memory API backend
//! (kube-fake-client) and report wall time, API requests per object for a
//! first pass, a readiness pass and a steady-state pass, and peak memory.
//!
//! `cargo run --release -p cachebridge-operator --example reconcile_bench [-- BRIDGES [CONCURRENCY]]`
//!
//! Not a timed test: the figures go into operator/BENCHMARKS.md.

use cachebridge_api::CacheBridge;
use cachebridge_operator::controller::{self, Context};
use cachebridge_operator::desired::Settings;
use cachebridge_operator::metrics::Metrics;
use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube_fake_client::{ClientBuilder, interceptor};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const NS: &str = "bench";

/// Requests the backend received, by kind of request.
#[derive(Default)]
struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
}

impl Counters {
    fn take(&self) -> (u64, u64) {
        (
            self.reads.swap(0, Ordering::Relaxed),
            self.writes.swap(0, Ordering::Relaxed),
        )
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bridges: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let counters = Arc::new(Counters::default());
    let client = backend(bridges, &counters).await;
    let mut ctx = Context::new(
        client.clone(),
        Settings::default(),
        Arc::new(Metrics::new()),
    );
    ctx.read_stats = false;
    let ctx = Arc::new(ctx);
    counters.take();
    println!("{bridges} CacheBridges, {concurrency} reconciles in flight, in-memory API backend\n");
    println!(
        "resident memory after loading the bridges into the backend: {}\n",
        proc_status("VmRSS:")
    );
    println!("| pass | wall time | per bridge | API reads/bridge | API writes/bridge |");
    println!("|---|---|---|---|---|");

    pass(
        "first (creates every child)",
        &client,
        &ctx,
        &counters,
        bridges,
        concurrency,
    )
    .await;
    pass(
        "second, unchanged",
        &client,
        &ctx,
        &counters,
        bridges,
        concurrency,
    )
    .await;
    make_ready(&client, bridges).await;
    counters.take();
    pass(
        "children became ready",
        &client,
        &ctx,
        &counters,
        bridges,
        concurrency,
    )
    .await;
    pass(
        "steady state",
        &client,
        &ctx,
        &counters,
        bridges,
        concurrency,
    )
    .await;
    println!(
        "\nresident memory at the end (backend holding every child): {}",
        proc_status("VmRSS:")
    );
    println!("peak resident memory (VmHWM): {}", proc_status("VmHWM:"));
}

async fn pass(
    name: &str,
    client: &Client,
    ctx: &Arc<Context>,
    counters: &Counters,
    bridges: usize,
    concurrency: usize,
) {
    let api: Api<CacheBridge> = Api::namespaced(client.clone(), NS);
    let start = Instant::now();
    let failures = stream::iter(0..bridges)
        .map(|i| {
            let (api, ctx) = (api.clone(), Arc::clone(ctx));
            async move {
                let cb = api.get(&format!("b{i}")).await.expect("bridge");
                controller::reconcile(Arc::new(cb), ctx).await.is_err()
            }
        })
        .buffer_unordered(concurrency)
        .filter(|failed| futures::future::ready(*failed))
        .count()
        .await;
    let elapsed = start.elapsed();
    // The bench's own GET of each bridge is not the operator's.
    let (reads, writes) = counters.take();
    let reads = reads.saturating_sub(bridges as u64);
    let n = bridges as f64;
    assert_eq!(failures, 0, "{failures} reconciles failed in pass {name}");
    println!(
        "| {name} | {:.2} s | {:.2} ms | {:.1} | {:.1} |",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / n,
        reads as f64 / n,
        writes as f64 / n
    );
}

async fn backend(bridges: usize, counters: &Arc<Counters>) -> Client {
    let objects: Vec<Value> = (0..bridges)
        .map(|i| {
            json!({
                "apiVersion": "cachebridge.dev/v1alpha1", "kind": "CacheBridge",
                "metadata": {"name": format!("b{i}"), "namespace": NS, "uid": format!("uid-{i}"), "generation": 1},
                "spec": {},
            })
        })
        .collect();
    let (r1, r2, w1, w2, w3, w4) = (
        Arc::clone(counters),
        Arc::clone(counters),
        Arc::clone(counters),
        Arc::clone(counters),
        Arc::clone(counters),
        Arc::clone(counters),
    );
    let count = |c: &Arc<Counters>, read: bool| {
        if read {
            c.reads.fetch_add(1, Ordering::Relaxed)
        } else {
            c.writes.fetch_add(1, Ordering::Relaxed)
        };
        Ok(None)
    };
    let funcs = interceptor::Funcs::new()
        .get(move |_| count(&r1, true))
        .list(move |_| {
            r2.reads.fetch_add(1, Ordering::Relaxed);
            Ok(None)
        })
        .create(move |_| count(&w1, false))
        .patch(move |_| count(&w2, false))
        .patch_status(move |_| count(&w3, false))
        .delete(move |_| count(&w4, false));
    ClientBuilder::new()
        .with_resource::<CacheBridge>()
        .with_status_subresource::<CacheBridge>()
        .with_status_subresource::<Deployment>()
        .with_status_subresource::<StatefulSet>()
        .with_runtime_objects(objects)
        .with_interceptor_funcs(funcs)
        .build()
        .await
        .expect("in-memory backend")
}

/// Plays the workload controllers: every pod of every bridge ready.
async fn make_ready(client: &Client, bridges: usize) {
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let deploy: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for i in 0..bridges {
        for (name, n) in [(format!("b{i}-redis"), 1), (format!("b{i}-memcached"), 2)] {
            let generation = sts.get(&name).await.unwrap().metadata.generation;
            let status = json!({"status": {"observedGeneration": generation, "replicas": n, "readyReplicas": n}});
            sts.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
        }
        for (name, n) in [(format!("b{i}-writer"), 1), (format!("b{i}-reader"), 2)] {
            let generation = deploy.get(&name).await.unwrap().metadata.generation;
            let status = json!({"status": {"observedGeneration": generation, "replicas": n, "readyReplicas": n}});
            deploy
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
        }
    }
}

fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l.trim_start_matches(field).trim().to_string())
        })
        .unwrap_or_else(|| "unknown (no /proc)".into())
}
