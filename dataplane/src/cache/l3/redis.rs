//! L3 on Redis: values, versions, sequence, replay stream and announcements.
//!
//! The writer's update is one Lua script, so "store if newer, number it,
//! append it to the stream, announce it" happens atomically: no reader can
//! see a sequence number whose value is not yet stored, and announcements
//! leave in sequence order. The connection manager reconnects by itself; the
//! pub/sub connection is separate (Redis requires that) and its end is
//! reported to the caller, who resubscribes and replays.

use super::{Event, Notice, PublishOutcome, Replay, Subscription};
use crate::cache::TierError;
use crate::cache::envelope::Envelope;
use crate::keys::Keys;
use bytes::Bytes;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use std::time::Duration;

/// KEYS: value, versions hash, seq counter, stream.
/// ARGV: logical key, version, envelope bytes, ttl ms, channel, stream max length.
/// Versions are compared as Lua numbers: exact below 2^53, which writer
/// versions (microseconds since 1970) stay under until the year 2255.
const PUBLISH_LUA: &str = r#"
local current = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if tonumber(ARGV[2]) <= current and redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, current}
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local seq = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], seq .. '-0', 'key', ARGV[1], 'version', ARGV[2])
redis.call('PUBLISH', ARGV[5], '{"key":' .. cjson.encode(ARGV[1]) .. ',"version":' .. ARGV[2] .. ',"seq":' .. seq .. '}')
return {1, seq}
"#;

/// KEYS: seq counter. ARGV: channel. Atomic so a heartbeat never overtakes
/// an update with a lower sequence.
const HEARTBEAT_LUA: &str = r#"
local seq = redis.call('GET', KEYS[1]) or '0'
redis.call('PUBLISH', ARGV[1], '{"heartbeat":' .. seq .. '}')
return tonumber(seq)
"#;

pub struct RedisStore {
    keys: Keys,
    client: redis::Client,
    conn: ConnectionManager,
    publish_script: Script,
    heartbeat_script: Script,
    timeout: Duration,
    ttl: Duration,
    stream_max_len: u64,
}

/// How to reach Redis; the password is passed separately so it never sits
/// in a struct that might be logged or serialized.
pub struct RedisTarget<'a> {
    pub url: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
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
        crate::tls::install_crypto_provider();
        let client = open_client(&target).map_err(|e| TierError::Unavailable(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| TierError::Unavailable(e.to_string()))?;
        Ok(RedisStore {
            keys,
            client,
            conn,
            publish_script: Script::new(PUBLISH_LUA),
            heartbeat_script: Script::new(HEARTBEAT_LUA),
            timeout,
            ttl,
            stream_max_len,
        })
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, TierError> {
        let mut conn = self.conn.clone();
        let value: Option<Vec<u8>> = self.bounded(conn.get(key)).await?;
        Ok(value.map(Bytes::from))
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

    /// Offers many values in one round trip (a pipeline of the same script),
    /// each accepted or refused on its own, in order.
    pub async fn publish_many(
        &self,
        items: &[(String, Envelope)],
    ) -> Result<Vec<PublishOutcome>, TierError> {
        let mut pipe = redis::pipe();
        for (logical, env) in items {
            pipe.cmd("EVALSHA")
                .arg(self.publish_script.get_hash())
                .arg(4)
                .arg(self.keys.value(logical))
                .arg(self.keys.versions())
                .arg(self.keys.seq())
                .arg(self.keys.stream())
                .arg(logical)
                .arg(env.version)
                .arg(env.encode().as_ref())
                .arg(self.ttl.as_millis().max(1) as u64)
                .arg(self.keys.channel())
                .arg(self.stream_max_len);
        }
        let mut conn = self.conn.clone();
        let first = tokio::time::timeout(self.timeout, pipe.query_async(&mut conn))
            .await
            .map_err(|_| TierError::Timeout)?;
        let replies: Vec<(u8, u64)> = match first {
            // A restarted Redis has forgotten the script: load it, send again.
            Err(e) if e.code() == Some("NOSCRIPT") => {
                self.bounded(self.publish_script.load_async(&mut conn))
                    .await?;
                self.bounded(pipe.query_async(&mut conn)).await?
            }
            other => other.map_err(|e| TierError::Unavailable(e.to_string()))?,
        };
        Ok(replies.into_iter().map(outcome).collect())
    }

    pub async fn heartbeat(&self) -> Result<u64, TierError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.heartbeat_script.prepare_invoke();
        invocation.key(self.keys.seq()).arg(self.keys.channel());
        self.bounded(invocation.invoke_async(&mut conn)).await
    }

    pub async fn current_seq(&self) -> Result<u64, TierError> {
        let mut conn = self.conn.clone();
        let seq: Option<u64> = self.bounded(conn.get(self.keys.seq())).await?;
        Ok(seq.unwrap_or(0))
    }

    pub async fn replay_after(&self, seq: u64) -> Result<Replay, TierError> {
        let mut conn = self.conn.clone();
        let start = format!("({seq}-0");
        let count = self.stream_max_len.saturating_mul(2).max(100);
        let reply: redis::streams::StreamRangeReply = self
            .bounded(conn.xrange_count(self.keys.stream(), start, "+", count))
            .await?;
        let notices: Vec<Notice> = reply.ids.iter().filter_map(notice_of).collect();
        let current_seq = match notices.last() {
            Some(last) => last.seq,
            None => self.current_seq().await?,
        };
        let complete = match notices.first() {
            Some(first) => first.seq == seq + 1 && notices.len() as u64 == current_seq - seq,
            None => current_seq <= seq,
        };
        Ok(if complete {
            Replay::Notices(notices)
        } else {
            Replay::Lost { current_seq }
        })
    }

    pub async fn subscribe(&self) -> Result<Subscription, TierError> {
        let mut pubsub = self.bounded(self.client.get_async_pubsub()).await?;
        self.bounded(pubsub.subscribe(self.keys.channel())).await?;
        Ok(pubsub
            .into_on_message()
            .filter_map(|msg| async move {
                let payload: Vec<u8> = msg.get_payload().ok()?;
                match serde_json::from_slice::<Event>(&payload) {
                    Ok(event) => Some(event),
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring an unreadable coherence message");
                        None
                    }
                }
            })
            .boxed())
    }

    pub async fn put_stats(&self, key: &str, json: &str, ttl: Duration) -> Result<(), TierError> {
        let mut conn = self.conn.clone();
        self.bounded(conn.set_ex(key, json, ttl.as_secs().max(1)))
            .await
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, TierError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(TierError::Unavailable(e.to_string())),
            Err(_) => Err(TierError::Timeout),
        }
    }
}

/// The script's `{accepted, seq or current version}` reply.
fn outcome((accepted, number): (u8, u64)) -> PublishOutcome {
    match accepted {
        1 => PublishOutcome::Published { seq: number },
        _ => PublishOutcome::Outdated { current: number },
    }
}

fn open_client(target: &RedisTarget<'_>) -> redis::RedisResult<redis::Client> {
    use redis::IntoConnectionInfo;
    let info = target.url.into_connection_info()?;
    let mut settings = info.redis_settings().clone();
    if let Some(user) = target.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = target.password {
        settings = settings.set_password(password);
    }
    redis::Client::open(info.set_redis_settings(settings))
}

/// A stream entry back into a notice; the id's first part is the sequence.
fn notice_of(entry: &redis::streams::StreamId) -> Option<Notice> {
    let seq = entry.id.split_once('-')?.0.parse().ok()?;
    let key: String = entry.get("key")?;
    let version: u64 = entry.get("version")?;
    Some(Notice { key, version, seq })
}
