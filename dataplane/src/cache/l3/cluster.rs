//! Finds the Redis Cluster node that serves one bridge.
//!
//! Every key of a bridge carries the same hash tag (see
//! [`crate::keys::with_hash_tag`]), so all of them live in one hash slot,
//! on one primary at a time. The store therefore needs no cluster client:
//! it talks to that one primary like to a single Redis, and asks the
//! cluster where the slot is only when it has a reason to doubt the node it
//! uses (a `MOVED` reply, a dropped connection, the periodic check) — the
//! same follower that tracks a Sentinel-named primary (see `redis.rs`).
//!
//! A look-up asks the seeds in turn (`CLUSTER SLOTS`, starting with the one
//! that answered last) and then the named node itself: after a resharding
//! the node that took the slot knows it at once, while the others learn it
//! through the cluster bus a moment later. One hop is followed when the
//! named node points elsewhere.

use super::sentinel::{Login, join_host_port, open_client};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The part of a key Redis Cluster hashes: the first `{…}` with something
/// inside, or else the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// The hash slot of a key: CRC16 (XModem) of its hash tag, modulo 16384.
pub fn slot_of(key: &[u8]) -> u16 {
    crc16_xmodem(hash_tag(key)) % SLOTS
}

/// CRC16-CCITT (XModem), the checksum Redis Cluster defines slots with.
fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Why the slot's node could not be found (yet).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    #[error("no cluster node answered: {0}")]
    Unreachable(String),
    #[error("no cluster node serves slot {slot}: {reason}")]
    NoOwner { slot: u16, reason: String },
}

/// The seed nodes of a cluster and the slot of one bridge.
#[derive(Debug)]
pub struct ClusterSeeds {
    seeds: Vec<String>,
    slot: u16,
    login: Login,
    timeout: Duration,
    /// The seed to ask first: the one that answered last.
    preferred: AtomicUsize,
}

impl ClusterSeeds {
    /// `seeds` are `HOST:PORT`; `slot` is the bridge's; `login` is the
    /// dataplane's ACL user, which must exist on every node.
    pub fn new(seeds: Vec<String>, slot: u16, login: Login, timeout: Duration) -> Self {
        ClusterSeeds {
            seeds,
            slot,
            login,
            timeout,
            preferred: AtomicUsize::new(0),
        }
    }

    pub fn slot(&self) -> u16 {
        self.slot
    }

    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }

    /// `HOST:PORT` of the primary serving the slot, confirmed by that node
    /// when `hint` (a `MOVED` target, or the node in use) is not it.
    pub async fn owner(&self, hint: Option<&str>) -> Result<String, ClusterError> {
        let mut reasons = Vec::new();
        let mut answered = false;
        let first = self.preferred.load(Ordering::Relaxed);
        let n = self.seeds.len();
        let hinted = hint.map(|h| (usize::MAX, h));
        let seeds = (0..n).map(|i| {
            let at = (first + i) % n;
            (at, self.seeds[at].as_str())
        });
        for (at, node) in hinted.into_iter().chain(seeds) {
            match self.ask(node).await {
                Ok(Some(named)) => {
                    answered = true;
                    // The named node knows best whether it holds the slot.
                    let confirmed = if named == node {
                        Ok(Some(named.clone()))
                    } else {
                        self.ask(&named).await
                    };
                    match confirmed {
                        Ok(Some(owner)) => {
                            if at != usize::MAX {
                                self.preferred.store(at, Ordering::Relaxed);
                            }
                            return Ok(owner);
                        }
                        Ok(None) => reasons.push(format!("{named} serves no node for it")),
                        Err(e) => reasons.push(format!("{node} names {named}: {e}")),
                    }
                }
                Ok(None) => {
                    answered = true;
                    reasons.push(format!("{node} knows no node for it"));
                }
                Err(e) => reasons.push(format!("{node}: {e}")),
            }
        }
        let reason = reasons.join("; ");
        if answered {
            Err(ClusterError::NoOwner {
                slot: self.slot,
                reason,
            })
        } else {
            Err(ClusterError::Unreachable(reason))
        }
    }

    /// The primary `node` says serves the slot (`CLUSTER SLOTS`).
    async fn ask(&self, node: &str) -> Result<Option<String>, String> {
        let client =
            open_client(&format!("redis://{node}"), &self.login).map_err(|e| e.to_string())?;
        let call = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async::<redis::Value>(&mut conn)
                .await
        };
        let reply = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no answer within {:?}", self.timeout)),
        };
        Ok(owner_in(&reply, self.slot, node))
    }
}

/// The primary of `slot` in a `CLUSTER SLOTS` reply: a list of
/// `[start, end, [host, port, id, …], replicas…]`. An empty host means
/// "the node you asked" (`asked` is its `HOST:PORT`).
pub fn owner_in(reply: &redis::Value, slot: u16, asked: &str) -> Option<String> {
    let redis::Value::Array(ranges) = reply else {
        return None;
    };
    ranges.iter().find_map(|range| {
        let redis::Value::Array(fields) = range else {
            return None;
        };
        let (start, end) = (int(fields.first()?)?, int(fields.get(1)?)?);
        if !(start..=end).contains(&i64::from(slot)) {
            return None;
        }
        let redis::Value::Array(primary) = fields.get(2)? else {
            return None;
        };
        let host = text(primary.first()?)?;
        let port = u16::try_from(int(primary.get(1)?)?).ok()?;
        if host.is_empty() || host == "?" {
            let asked_host = asked.rsplit_once(':').map_or(asked, |(h, _)| h);
            return Some(format!("{asked_host}:{port}"));
        }
        Some(join_host_port(&host, port))
    })
}

fn int(v: &redis::Value) -> Option<i64> {
    match v {
        redis::Value::Int(n) => Some(*n),
        _ => None,
    }
}

fn text(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn slots_match_the_redis_cluster_specification() {
        // The specification's check value, and keys whose slots Redis documents.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(
            slot_of(b"{user1000}.following"),
            slot_of(b"{user1000}.followers")
        );
        assert_eq!(slot_of(b"{cb:ns:b}:seq"), slot_of(b"cb:ns:b"));
        // An empty tag does not count: the whole key is hashed.
        assert_eq!(hash_tag(b"{}x{y}"), b"{}x{y}");
        assert_eq!(hash_tag(b"a{b}{c}"), b"b");
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn the_owner_is_read_from_cluster_slots() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                node("", 7001),
                node("10.0.0.9", 7009),
            ]),
        ]);
        assert_eq!(
            owner_in(&reply, 5460, "x:1").as_deref(),
            Some("10.0.0.1:7000")
        );
        assert_eq!(
            owner_in(&reply, 9000, "10.0.0.2:7001").as_deref(),
            Some("10.0.0.2:7001")
        );
        assert_eq!(owner_in(&Value::Array(vec![]), 1, "x:1"), None);
    }
}
