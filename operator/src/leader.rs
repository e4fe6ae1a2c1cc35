//! Leader election through a `coordination.k8s.io` Lease (kube-lease-manager).
//!
//! Several operator replicas may run; only the holder of the Lease runs the
//! controller. Losing the Lease stops the controller at once (two writers
//! would fight over the same objects); shutting down releases the Lease so
//! a standby takes over without waiting for it to expire.

use crate::metrics::Metrics;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::watch;

/// Where the Lease lives and who we are.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
}

/// Resolves when the work must stop (leadership lost or shutdown).
pub type StopSignal = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// Runs `work` each time this replica becomes the leader, until `shutdown` turns true.
pub async fn run_when_leader<W, F>(
    client: Client,
    lease: LeaseConfig,
    metrics: &Metrics,
    mut shutdown: watch::Receiver<bool>,
    mut work: W,
) -> Result<(), kube_lease_manager::LeaseManagerError>
where
    W: FnMut(StopSignal) -> F,
    F: Future<Output = ()>,
{
    let manager = LeaseManagerBuilder::new(client, &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(15)
        .with_grace(5)
        .build()
        .await?;
    let (leader, task) = manager.watch().await;
    loop {
        let mut waiting = leader.clone();
        tokio::select! {
            became = waiting.wait_for(|is| *is) => if became.is_err() { break },
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        tracing::info!(identity = %lease.identity, "leading: starting the controller");
        metrics.leader.set(1);
        let (mut lost, mut stop) = (leader.clone(), shutdown.clone());
        work(Box::pin(async move {
            tokio::select! {
                _ = lost.wait_for(|is| !*is) => tracing::warn!("lost the lease: stopping the controller"),
                _ = stop.wait_for(|stop| *stop) => {}
            }
        }))
        .await;
        metrics.leader.set(0);
        if *shutdown.borrow() {
            break;
        }
    }
    // Closing the channel makes the manager release the Lease and return.
    drop(leader);
    match task.await {
        Ok(result) => result.map(|_| ()),
        Err(join) => {
            tracing::warn!(error = %join, "the lease task ended abnormally");
            Ok(())
        }
    }
}
