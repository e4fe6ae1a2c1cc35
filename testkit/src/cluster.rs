//! A Redis Cluster of primaries on loopback: `redis-server
//! --cluster-enabled yes` processes joined by `redis-cli --cluster create`,
//! and the resharding protocol to move one hash slot to another node while
//! clients work (what `redis-cli --cluster reshard` does, slot by slot).
//!
//! Every node is protected like the Sentinel group's servers: the dataplane
//! logs in as the ACL user [`CLIENT_USER`] (created on every node, since a
//! cluster does not share ACLs), tests and `redis-cli` as `default` with
//! [`ADMIN_PASSWORD`].

use crate::{PATIENCE, Server};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::sentinel::{ADMIN_PASSWORD, CLIENT_PASSWORD, CLIENT_USER};

/// Primaries, each owning a third (or so) of the slots; no replicas.
pub struct RedisCluster {
    pub nodes: Vec<Server>,
}

impl RedisCluster {
    /// Starts `primaries` nodes (at least three, as `redis-cli` demands) and
    /// waits until every node reports the cluster healthy.
    pub fn start(primaries: usize) -> RedisCluster {
        let client_user = format!("{CLIENT_USER} on >{CLIENT_PASSWORD} ~* &* +@all");
        let mut args = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
            "--requirepass",
            ADMIN_PASSWORD,
            "--masterauth",
            ADMIN_PASSWORD,
            "--user",
        ];
        args.extend(client_user.split(' '));
        let nodes: Vec<Server> = (0..primaries).map(|_| Server::redis_args(&args)).collect();
        let cluster = RedisCluster { nodes };
        cluster.create();
        cluster.await_healthy();
        cluster
    }

    fn create(&self) {
        let status = Command::new("redis-cli")
            .args([
                "-a",
                ADMIN_PASSWORD,
                "--no-auth-warning",
                "--cluster",
                "create",
            ])
            .args(self.seeds())
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e})"));
        assert!(status.success(), "redis-cli --cluster create failed");
    }

    /// Every node says `cluster_state:ok` and knows every node.
    fn await_healthy(&self) {
        let deadline = Instant::now() + PATIENCE;
        let want = format!("cluster_known_nodes:{}", self.nodes.len());
        while !self.nodes.iter().all(|n| {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut admin(n.port))
                .unwrap_or_default();
            info.contains("cluster_state:ok") && info.contains(&want)
        }) {
            assert!(
                Instant::now() < deadline,
                "the cluster did not become healthy"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `HOST:PORT` of every node.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(Server::addr).collect()
    }

    /// The port of the node that serves `slot`, as that node itself says.
    pub fn owner_of(&self, slot: u16) -> u16 {
        let mut conn = admin(self.nodes[0].port);
        let ranges: Vec<(u16, u16, (String, u16))> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query::<Vec<redis::Value>>(&mut conn)
            .expect("CLUSTER SLOTS")
            .into_iter()
            .map(|range| {
                let redis::Value::Array(f) = range else {
                    panic!("unexpected CLUSTER SLOTS entry")
                };
                let (start, end): (u16, u16) = (
                    redis::from_redis_value(f[0].clone()).unwrap(),
                    redis::from_redis_value(f[1].clone()).unwrap(),
                );
                let node: (String, u16) = match &f[2] {
                    redis::Value::Array(n) => (
                        redis::from_redis_value(n[0].clone()).unwrap(),
                        redis::from_redis_value(n[1].clone()).unwrap(),
                    ),
                    _ => panic!("unexpected CLUSTER SLOTS node"),
                };
                (start, end, node)
            })
            .collect();
        ranges
            .into_iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, (_, port))| port)
            .unwrap_or_else(|| panic!("no node serves slot {slot}"))
    }

    /// Moves `slot` from the node on port `from` to the node on port `to`
    /// with the cluster's own protocol: the target imports, the source
    /// migrates, keys move `batch` at a time (`MIGRATE … KEYS`), calling
    /// `between` after each batch, then every node learns the new owner.
    /// Clients meanwhile get `ASK` for keys that moved and `TRYAGAIN` for
    /// multi-key commands whose keys are split; afterwards `MOVED`.
    /// Returns how many keys moved.
    pub fn migrate_slot(
        &self,
        slot: u16,
        from: u16,
        to: u16,
        batch: usize,
        mut between: impl FnMut(),
    ) -> usize {
        let (mut source, mut target) = (admin(from), admin(to));
        let source_id = my_id(&mut source);
        let target_id = my_id(&mut target);
        setslot(&mut target, slot, "IMPORTING", &source_id);
        setslot(&mut source, slot, "MIGRATING", &target_id);
        let mut moved = 0;
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(batch)
                .query(&mut source)
                .expect("CLUSTER GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("AUTH")
                .arg(ADMIN_PASSWORD)
                .arg("KEYS")
                .arg(&keys)
                .exec(&mut source)
                .expect("MIGRATE");
            moved += keys.len();
            between();
        }
        // The target first, as redis-cli does: it then answers for the slot
        // even before the source lets go.
        setslot(&mut target, slot, "NODE", &target_id);
        setslot(&mut source, slot, "NODE", &target_id);
        for node in &self.nodes {
            if node.port != from && node.port != to {
                setslot(&mut admin(node.port), slot, "NODE", &target_id);
            }
        }
        moved
    }
}

/// A connection to one node as the `default` (admin) user.
pub fn admin(port: u16) -> redis::Connection {
    let url = format!("redis://:{ADMIN_PASSWORD}@127.0.0.1:{port}");
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("cannot connect to the cluster node on {port}: {e}"))
}

fn my_id(conn: &mut redis::Connection) -> String {
    redis::cmd("CLUSTER")
        .arg("MYID")
        .query(conn)
        .expect("CLUSTER MYID")
}

fn setslot(conn: &mut redis::Connection, slot: u16, state: &str, node: &str) {
    redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg(state)
        .arg(node)
        .exec(conn)
        .unwrap_or_else(|e| panic!("CLUSTER SETSLOT {slot} {state}: {e}"));
}
