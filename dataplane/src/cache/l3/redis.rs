//! L3 on Redis: values, versions, sequence, replay stream and announcements.
//!
//! The writer's update is one Lua script, so "store if newer, number it,
//! append it to the stream, announce it" happens atomically: no reader can
//! see a sequence number whose value is not yet stored, and announcements
//! leave in sequence order. The connection manager reconnects by itself; the
//! pub/sub connection is separate (Redis requires that) and its end is
//! reported to the caller, who resubscribes and replays.
//!
//! The primary is either one fixed URL or whatever the Sentinels name
//! ([`Locator`]). In Sentinel mode the store holds the current primary in a
//! swappable slot: a dropped connection, a timeout, a `READONLY` reply or a
//! `+switch-master` announcement make it look the primary up again, and a
//! subscription made on the old primary ends when the slot moves on, so the
//! reader's follower resubscribes (and resyncs) on the new one. Nothing
//! above this file knows which mode it runs in.
//!
//! On a Redis Cluster ([`Locator::Cluster`]) the "primary" is the node that
//! serves the bridge's hash slot, followed the same way: a `MOVED` reply
//! (the slot was resharded, or a replica took over) raises doubt, and the
//! look-up goes first to the node `MOVED` names. While the slot migrates,
//! single-key reads that get `ASK` are sent once to the importing node
//! (`ASKING`); a publish that gets `ASK` or `TRYAGAIN` (its keys are split
//! between the two nodes for a moment) fails and is held back by the writer,
//! which sends it again on its next round. Announcements use classic
//! `PUBLISH`, which a cluster delivers to subscribers on every node.

use super::cluster::ClusterSeeds;
use super::sentinel::{Login, Sentinels, info_field, open_client};
use super::{Message, Notice, PublishOutcome, Replay, Snapshot, Subscription};
use crate::cache::TierError;
use crate::cache::envelope::Envelope;
use crate::keys::Keys;
use bytes::Bytes;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// KEYS: versions hash, seq counter, stream, then each item's value key.
/// ARGV: ttl ms, channel, stream max length, then per item: logical key,
/// version, envelope bytes.
/// Each item is stored only if newer, numbered and appended to the stream;
/// the accepted ones are announced together in one message, in sequence
/// order. Should the script fail half-way, the items it stored were not
/// announced: readers see the gap at the next heartbeat and replay them
/// from the stream, which has them.
/// Versions are compared as Lua numbers: exact below 2^53, which writer
/// versions (microseconds since 1970) stay under until the year 2255.
const PUBLISH_LUA: &str = r#"
local replies, announced = {}, {}
for i = 4, #KEYS do
  local a = (i - 4) * 3 + 4
  local logical, version = ARGV[a], ARGV[a + 1]
  local current = tonumber(redis.call('HGET', KEYS[1], logical) or '0')
  if tonumber(version) <= current and redis.call('EXISTS', KEYS[i]) == 1 then
    replies[#replies + 1] = {0, current}
  else
    redis.call('SET', KEYS[i], ARGV[a + 2], 'PX', ARGV[1])
    redis.call('HSET', KEYS[1], logical, version)
    local seq = redis.call('INCR', KEYS[2])
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'key', logical, 'version', version)
    announced[#announced + 1] = '{"key":' .. cjson.encode(logical) .. ',"version":' .. version .. ',"seq":' .. seq .. '}'
    replies[#replies + 1] = {1, seq}
  end
end
if #announced > 0 then
  redis.call('PUBLISH', ARGV[2], '{"updates":[' .. table.concat(announced, ',') .. ']}')
end
return replies
"#;

/// KEYS: seq counter. ARGV: channel. Atomic so a heartbeat never overtakes
/// an update with a lower sequence.
const HEARTBEAT_LUA: &str = r#"
local seq = redis.call('GET', KEYS[1]) or '0'
redis.call('PUBLISH', ARGV[1], '{"heartbeat":' .. seq .. '}')
return tonumber(seq)
"#;

/// KEYS: seq counter, versions hash. The position and every key's version
/// at one instant, for a reader that cannot trust its position any more.
const SNAPSHOT_LUA: &str = r#"
return {redis.call('GET', KEYS[1]) or '0', redis.call('HGETALL', KEYS[2])}
"#;

/// How often the Sentinels are asked even without a reason: a safety net
/// for a missed announcement on a connection that did not break.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The fewest time between two look-ups, so a burst of failed calls costs
/// the Sentinels one question.
const LOOKUP_PAUSE: Duration = Duration::from_millis(50);

/// Where the primary is.
pub enum Locator {
    /// One fixed server, `redis[s]://HOST:PORT[/DB]`.
    Url(String),
    /// Whatever these Sentinels name.
    Sentinel(Sentinels),
    /// The cluster node that serves the bridge's slot.
    Cluster(ClusterSeeds),
}

/// Timings and limits of a store.
#[derive(Debug, Clone, Copy)]
pub struct StoreSettings {
    /// Longest one call may take.
    pub timeout: Duration,
    /// Expiry of stored values.
    pub ttl: Duration,
    /// Approximate length of the replay stream.
    pub stream_max_len: u64,
}

pub struct RedisStore {
    keys: Keys,
    slot: Arc<PrimarySlot>,
    publish_script: Script,
    heartbeat_script: Script,
    snapshot_script: Script,
    settings: StoreSettings,
    /// The Sentinel follower tasks, stopped with the store.
    follower: Vec<tokio::task::AbortHandle>,
}

/// How to reach Redis; the password is passed separately so it never sits
/// in a struct that might be logged or serialized.
pub struct RedisTarget<'a> {
    pub url: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
}

/// One primary and its connection.
struct Primary {
    /// `HOST:PORT` (Sentinel mode) or the URL: for logs and for noticing a move.
    addr: String,
    client: redis::Client,
    conn: ConnectionManager,
    generation: u64,
}

/// The primary in use, swapped when Sentinel names another one.
struct PrimarySlot {
    current: RwLock<Option<Arc<Primary>>>,
    /// Bumped on every swap; subscriptions end when it moves.
    generation: watch::Sender<u64>,
    /// How to find the primary again; none for a fixed URL.
    finder: Option<Finder>,
    /// Where the last `MOVED` pointed: the first node to ask.
    moved_to: RwLock<Option<String>>,
    login: Login,
    timeout: Duration,
    /// One look-up at a time; the others wait for its result.
    looking: tokio::sync::Mutex<()>,
    /// "Look again soon", from calls that failed in a way a failover explains.
    doubt: Notify,
}

impl RedisStore {
    /// Prepares a lazily connected store: a Redis that is down at start-up
    /// makes calls fail (and the breaker open), not the process exit.
    pub fn new(
        target: RedisTarget<'_>,
        keys: Keys,
        timeout: Duration,
        ttl: Duration,
        stream_max_len: u64,
    ) -> Result<Self, TierError> {
        let login = Login {
            username: target.username.map(str::to_owned),
            password: target.password.map(str::to_owned),
        };
        let settings = StoreSettings {
            timeout,
            ttl,
            stream_max_len,
        };
        RedisStore::open(Locator::Url(target.url.to_owned()), login, keys, settings)
    }

    /// A store on a fixed URL or following Sentinel; `login` is for Redis.
    /// In Sentinel mode the primary is looked up in the background (this
    /// needs a Tokio runtime); calls fail until it is found.
    pub fn open(
        locator: Locator,
        login: Login,
        keys: Keys,
        settings: StoreSettings,
    ) -> Result<Self, TierError> {
        crate::tls::install_crypto_provider();
        let (current, finder) = match locator {
            Locator::Url(url) => (
                Some(Arc::new(connect(&url, &login, 0, settings.timeout)?)),
                None,
            ),
            Locator::Sentinel(sentinels) => (None, Some(Finder::Sentinel(sentinels))),
            Locator::Cluster(seeds) => (None, Some(Finder::Cluster(seeds))),
        };
        let slot = Arc::new(PrimarySlot {
            current: RwLock::new(current),
            generation: watch::channel(0).0,
            finder,
            moved_to: RwLock::new(None),
            login,
            timeout: settings.timeout,
            looking: tokio::sync::Mutex::new(()),
            doubt: Notify::new(),
        });
        let follower = if slot.finder.is_some() {
            vec![
                tokio::spawn(Arc::clone(&slot).follow()).abort_handle(),
                tokio::spawn(Arc::clone(&slot).listen()).abort_handle(),
            ]
        } else {
            Vec::new()
        };
        Ok(RedisStore {
            keys,
            slot,
            publish_script: Script::new(PUBLISH_LUA),
            heartbeat_script: Script::new(HEARTBEAT_LUA),
            snapshot_script: Script::new(SNAPSHOT_LUA),
            settings,
            follower,
        })
    }

    /// The primary's connection to use now.
    fn conn(&self) -> Result<(ConnectionManager, u64), TierError> {
        let primary = self.slot.primary()?;
        Ok((primary.conn.clone(), primary.generation))
    }

    /// Bumped whenever the store moved to another primary.
    pub fn generation(&self) -> u64 {
        *self.slot.generation.borrow()
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, TierError> {
        let (mut conn, _) = self.conn()?;
        let call = tokio::time::timeout(self.settings.timeout, conn.get(key)).await;
        let value: Option<Vec<u8>> = match call {
            // The slot is migrating and this key already left: ask the
            // importing node, once.
            Ok(Err(e)) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Ask) => {
                let mut get = redis::cmd("GET");
                get.arg(key);
                self.asking(&e, &get).await?
            }
            Ok(reply) => self.judge(reply)?,
            Err(_) => {
                self.slot.doubt.notify_one();
                return Err(TierError::Timeout);
            }
        };
        Ok(value.map(Bytes::from))
    }

    /// Sends `cmd` to the node an `ASK` reply names, after `ASKING` on the
    /// same connection (a one-off: `ASK` lasts only while a slot migrates).
    async fn asking<T: redis::FromRedisValue>(
        &self,
        ask: &redis::RedisError,
        cmd: &redis::Cmd,
    ) -> Result<T, TierError> {
        let Some((addr, _)) = ask.redirect_node() else {
            return Err(TierError::Unavailable(ask.to_string()));
        };
        let client = open_client(&format!("redis://{addr}"), &self.slot.login)
            .map_err(|e| TierError::Unavailable(e.to_string()))?;
        let call = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            let (reply,): (T,) = redis::pipe()
                .cmd("ASKING")
                .ignore()
                .add_command(cmd.clone())
                .query_async(&mut conn)
                .await?;
            Ok(reply)
        };
        // Boxed: connecting is a future of kilobytes, and inline it would
        // make every `get`'s future (and each one above it, moved on every
        // miss) that large for a path taken only while a slot migrates.
        self.bounded(Box::pin(call)).await
    }

    pub async fn publish(
        &self,
        logical: &str,
        env: &Envelope,
    ) -> Result<PublishOutcome, TierError> {
        let mut outcomes = self
            .publish_many(&[(logical.to_owned(), env.clone())])
            .await?;
        outcomes
            .pop()
            .ok_or_else(|| TierError::Unavailable("empty reply to a publish".into()))
    }

    /// Offers many values in one round trip (one call of the publish
    /// script), each accepted or refused on its own, in order. A failure that
    /// a failover explains (the primary gone, or now a replica) is retried
    /// once on the new primary, when Sentinel names one.
    pub async fn publish_many(
        &self,
        items: &[(String, Envelope)],
    ) -> Result<Vec<PublishOutcome>, TierError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let call = self.publish_call(items);
        let (conn, generation) = self.conn()?;
        match self.send_publish(conn, &call).await {
            Err(e) if self.slot.look_again(generation).await => {
                tracing::info!(error = %e, "retrying the publish on the new primary");
                self.send_publish(self.conn()?.0, &call).await
            }
            other => other,
        }
    }

    fn publish_call(&self, items: &[(String, Envelope)]) -> redis::Cmd {
        let mut call = redis::cmd("EVALSHA");
        call.arg(self.publish_script.get_hash())
            .arg(3 + items.len())
            .arg(self.keys.versions())
            .arg(self.keys.seq())
            .arg(self.keys.stream());
        for (logical, _) in items {
            call.arg(self.keys.value(logical));
        }
        call.arg(self.settings.ttl.as_millis().max(1) as u64)
            .arg(self.keys.channel())
            .arg(self.settings.stream_max_len);
        for (logical, env) in items {
            call.arg(logical)
                .arg(env.version)
                .arg(env.encode().as_ref());
        }
        call
    }

    async fn send_publish(
        &self,
        mut conn: ConnectionManager,
        call: &redis::Cmd,
    ) -> Result<Vec<PublishOutcome>, TierError> {
        let first = tokio::time::timeout(self.settings.timeout, call.query_async(&mut conn))
            .await
            .map_err(|_| {
                self.slot.doubt.notify_one();
                TierError::Timeout
            })?;
        let replies: Vec<(u8, u64)> = match first {
            // A restarted Redis has forgotten the script: load it, send again.
            Err(e) if e.code() == Some("NOSCRIPT") => {
                self.bounded(self.publish_script.load_async(&mut conn))
                    .await?;
                self.bounded(call.query_async(&mut conn)).await?
            }
            other => self.judge(other)?,
        };
        Ok(replies.into_iter().map(outcome).collect())
    }

    /// `WAIT`: how many replicas have every write this store sent so far,
    /// waiting up to `timeout` for `replicas` of them.
    pub async fn wait_for_replicas(
        &self,
        replicas: u32,
        timeout: Duration,
    ) -> Result<u32, TierError> {
        let (mut conn, _) = self.conn()?;
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas)
            .arg(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        let call = wait.query_async(&mut conn);
        match tokio::time::timeout(self.settings.timeout + timeout, call).await {
            Ok(reply) => self.judge(reply),
            Err(_) => Err(TierError::Timeout),
        }
    }

    pub async fn heartbeat(&self) -> Result<u64, TierError> {
        let (mut conn, _) = self.conn()?;
        let mut invocation = self.heartbeat_script.prepare_invoke();
        invocation.key(self.keys.seq()).arg(self.keys.channel());
        self.bounded(invocation.invoke_async(&mut conn)).await
    }

    pub async fn current_seq(&self) -> Result<u64, TierError> {
        let (mut conn, _) = self.conn()?;
        let seq: Option<u64> = self.bounded(conn.get(self.keys.seq())).await?;
        Ok(seq.unwrap_or(0))
    }

    /// Names the primary's history: its replication id, which a promoted
    /// replica or a restarted server without its data does not share with
    /// the server it replaces. A change means "sequence numbers may repeat".
    pub async fn epoch(&self) -> Result<String, TierError> {
        let (mut conn, _) = self.conn()?;
        let info: String = self
            .bounded(redis::cmd("INFO").arg("replication").query_async(&mut conn))
            .await?;
        let role = info_field(&info, "role").unwrap_or("unknown");
        if self.slot.finder.is_some() && role != "master" {
            self.slot.doubt.notify_one();
            return Err(TierError::Unavailable(format!(
                "connected to a {role}, not to the primary"
            )));
        }
        info_field(&info, "master_replid")
            .map(str::to_owned)
            .ok_or_else(|| TierError::Unavailable("INFO names no replication id".into()))
    }

    /// The position and every key's version, read atomically.
    pub async fn snapshot(&self) -> Result<Snapshot, TierError> {
        let (mut conn, _) = self.conn()?;
        let mut invocation = self.snapshot_script.prepare_invoke();
        invocation.key(self.keys.seq()).key(self.keys.versions());
        let (seq, versions): (u64, HashMap<String, u64>) =
            self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(Snapshot {
            seq,
            versions: versions.into_iter().collect(),
        })
    }

    pub async fn replay_after(&self, seq: u64) -> Result<Replay, TierError> {
        let (mut conn, _) = self.conn()?;
        let start = format!("({seq}-0");
        let count = self.settings.stream_max_len.saturating_mul(2).max(100);
        let reply: redis::streams::StreamRangeReply = self
            .bounded(conn.xrange_count(self.keys.stream(), start, "+", count))
            .await?;
        let notices: Vec<Notice> = reply.ids.iter().filter_map(notice_of).collect();
        let current_seq = match notices.last() {
            Some(last) => last.seq,
            None => self.current_seq().await?,
        };
        Ok(super::replay_of(seq, notices, current_seq))
    }

    /// Announcements from the current primary, until its connection ends or
    /// the store moves to another primary.
    pub async fn subscribe(&self) -> Result<Subscription, TierError> {
        let primary = self.slot.primary()?;
        let mut pubsub = self.bounded(primary.client.get_async_pubsub()).await?;
        self.bounded(pubsub.subscribe(self.keys.channel())).await?;
        let mut moves = self.slot.generation.subscribe();
        let generation = primary.generation;
        let moved = async move {
            let _ = moves.wait_for(|g| *g != generation).await;
        };
        Ok(pubsub
            .into_on_message()
            .take_until(moved)
            .filter_map(|msg| async move {
                let payload: Vec<u8> = msg.get_payload().ok()?;
                match serde_json::from_slice::<Message>(&payload) {
                    Ok(message) => Some(futures::stream::iter(message.into_events())),
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring an unreadable coherence message");
                        None
                    }
                }
            })
            .flatten()
            .boxed())
    }

    /// HSET of this instance's field, and an expiry of the whole hash (Redis
    /// 7.0 has no per-field TTL): the hash of a bridge whose readers are all
    /// gone disappears by itself; stale fields of single readers are pruned
    /// by the operator, which reads them all anyway.
    pub async fn report_stats(
        &self,
        hash: &str,
        instance: &str,
        json: &str,
        ttl: Duration,
    ) -> Result<(), TierError> {
        let (mut conn, _) = self.conn()?;
        let mut pipe = redis::pipe();
        pipe.hset(hash, instance, json)
            .ignore()
            .expire(hash, ttl.as_secs().max(1) as i64)
            .ignore();
        self.bounded(pipe.query_async(&mut conn)).await
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, TierError> {
        match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(reply) => self.judge(reply),
            Err(_) => {
                self.slot.doubt.notify_one();
                Err(TierError::Timeout)
            }
        }
    }

    /// A reply as a tier result; failures a failover (or a resharding)
    /// explains raise doubt about the primary.
    fn judge<T>(&self, reply: redis::RedisResult<T>) -> Result<T, TierError> {
        reply.map_err(|e| {
            if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved)
                && let Some((addr, _)) = e.redirect_node()
            {
                *self
                    .slot
                    .moved_to
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = Some(addr.to_owned());
            }
            if suggests_failover(&e) {
                self.slot.doubt.notify_one();
            }
            TierError::Unavailable(e.to_string())
        })
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        for task in &self.follower {
            task.abort();
        }
    }
}

impl PrimarySlot {
    fn primary(&self) -> Result<Arc<Primary>, TierError> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current.clone().ok_or_else(|| {
            self.doubt.notify_one();
            let through = match &self.finder {
                Some(Finder::Cluster(_)) => "no Redis Cluster node found for the bridge's slot yet",
                _ => "no Redis primary found through Sentinel yet",
            };
            TierError::Unavailable(through.into())
        })
    }

    /// Looks the primary up again unless someone already moved on from
    /// `generation`; true when the store now uses another primary.
    async fn look_again(&self, generation: u64) -> bool {
        if self.finder.is_none() {
            return false;
        }
        let _one_at_a_time = self.looking.lock().await;
        if *self.generation.borrow() != generation {
            return true;
        }
        self.look_up().await
    }

    /// Asks the Sentinels (or the cluster) and swaps in the primary they
    /// name if it is new.
    async fn look_up(&self) -> bool {
        let Some(finder) = &self.finder else {
            return false;
        };
        let in_use = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|p| p.addr.clone());
        let found = match finder {
            Finder::Sentinel(sentinels) => sentinels.primary().await.map_err(|e| e.to_string()),
            Finder::Cluster(seeds) => {
                let moved = self
                    .moved_to
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                let hint = moved.or_else(|| in_use.clone());
                seeds
                    .owner(hint.as_deref())
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        let addr = match found {
            Ok(addr) => addr,
            Err(e) => {
                tracing::warn!(error = %e, "cannot find the Redis primary");
                return false;
            }
        };
        let same = in_use.as_deref() == Some(addr.as_str());
        if same {
            return false;
        }
        let generation = *self.generation.borrow() + 1;
        let url = format!("redis://{addr}");
        match connect(&url, &self.login, generation, self.timeout) {
            Ok(primary) => {
                tracing::info!(primary = %addr, via = %finder, generation, "following the Redis primary");
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(primary));
                self.generation.send_replace(generation);
                true
            }
            Err(e) => {
                tracing::warn!(primary = %addr, error = %e, "cannot use the Redis primary");
                false
            }
        }
    }

    /// Looks the primary up at start, on doubt and periodically.
    async fn follow(self: Arc<Self>) {
        loop {
            let generation = *self.generation.borrow();
            self.look_again(generation).await;
            tokio::time::sleep(LOOKUP_PAUSE).await;
            let _ = tokio::time::timeout(CHECK_EVERY, self.doubt.notified()).await;
        }
    }

    /// Turns Sentinel failover announcements into doubt (a cluster has no
    /// such channel: `MOVED` replies and the periodic check do that work).
    async fn listen(self: Arc<Self>) {
        if let Some(Finder::Sentinel(sentinels)) = &self.finder {
            sentinels.watch(|| self.doubt.notify_one()).await;
        }
    }
}

/// How a moving primary is found again.
enum Finder {
    Sentinel(Sentinels),
    Cluster(ClusterSeeds),
}

impl std::fmt::Display for Finder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finder::Sentinel(s) => write!(f, "Sentinel master {}", s.master()),
            Finder::Cluster(c) => write!(f, "cluster slot {}", c.slot()),
        }
    }
}

/// A lazily connecting manager for one server.
fn connect(
    url: &str,
    login: &Login,
    generation: u64,
    timeout: Duration,
) -> Result<Primary, TierError> {
    let client = open_client(url, login).map_err(|e| TierError::Unavailable(e.to_string()))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
        .map_err(|e| TierError::Unavailable(e.to_string()))?;
    Ok(Primary {
        addr: url.trim_start_matches("redis://").to_owned(),
        client,
        conn,
        generation,
    })
}

/// Errors after which the primary may be elsewhere: it is gone, it has
/// become a replica (also inside a script, where the code is wrapped), or
/// the cluster moved the slot (`MOVED`) or is moving it (`ASK`, `TRYAGAIN`).
fn suggests_failover(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.code(),
            Some("READONLY" | "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN")
        )
        || e.to_string().contains("READONLY")
}

/// The script's `{accepted, seq or current version}` reply.
fn outcome((accepted, number): (u8, u64)) -> PublishOutcome {
    match accepted {
        1 => PublishOutcome::Published { seq: number },
        _ => PublishOutcome::Outdated { current: number },
    }
}

/// A stream entry back into a notice; the id's first part is the sequence.
/// `None` for an entry that is not one (anything may be written to the
/// stream by a client with access): such entries are skipped, and the
/// replay they belong to is judged incomplete.
pub fn notice_of(entry: &redis::streams::StreamId) -> Option<Notice> {
    let seq = entry.id.split_once('-')?.0.parse().ok()?;
    let key: String = entry.get("key")?;
    let version: u64 = entry.get("version")?;
    Some(Notice { key, version, seq })
}
