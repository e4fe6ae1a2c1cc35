//! Two bridges share one real `redis-server` (7.x), each with its own ACL
//! user built from the operator's own rule (`acl_rules`). Bridge B does its
//! real work (the dataplane's store publishes, subscribes and reports);
//! bridge A's user then tries everything that could tell it about B: key
//! names, key counts, B's values, hash, stream and channels, other clients,
//! the server's config, also from inside a Lua script. All of it is refused,
//! and what A may read (its replication info) names nothing of B.

use cachebridge_dataplane::cache::envelope::Envelope;
use cachebridge_dataplane::cache::l3::redis::{RedisStore, RedisTarget};
use cachebridge_dataplane::keys::Keys;
use cachebridge_operator::desired::redis::{ACL_COMMANDS, acl_rules};
use cachebridge_operator::stats;
use cachebridge_testkit::Server;
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use redis::aio::MultiplexedConnection;
use std::time::Duration;

const ADMIN: &str = "Adm1nPassw0rdForTheDefaultUser00";
const A: Tenant = Tenant {
    user: "bridge-a",
    password: "PasswordOfBridgeA000000000000000",
    prefix: "cb:shop:a:",
};
const B: Tenant = Tenant {
    user: "bridge-b",
    password: "PasswordOfBridgeB000000000000000",
    prefix: "cb:shop:b:",
};
/// B's reader pod: its name is in B's stats hash, which A must not see.
const B_READER: &str = "b-reader-6d5f8c7b9-x2x4q";

struct Tenant {
    user: &'static str,
    password: &'static str,
    prefix: &'static str,
}

impl Tenant {
    fn user_line(&self) -> String {
        format!(
            "{} on >{} {}",
            self.user,
            self.password,
            acl_rules(self.prefix)
        )
    }

    fn store(&self, server: &Server) -> RedisStore {
        RedisStore::new(
            RedisTarget {
                url: &server.url(),
                username: Some(self.user),
                password: Some(self.password),
            },
            Keys::new(self.prefix),
            Duration::from_secs(2),
            Duration::from_secs(60),
            100,
        )
        .expect("store")
    }

    async fn conn(&self, server: &Server) -> MultiplexedConnection {
        stats::client(&server.url(), Some(self.user), Some(self.password))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("the bridge's user logs in")
    }

    fn stats_target(&self, server: &Server) -> stats::RedisTarget {
        stats::RedisTarget {
            url: server.url(),
            username: Some(self.user.into()),
            password: Some(self.password.into()),
        }
    }
}

fn shared_redis() -> Server {
    let mut args = vec!["--requirepass".to_string(), ADMIN.to_string()];
    for tenant in [&A, &B] {
        args.push("--user".into());
        args.extend(tenant.user_line().split(' ').map(str::to_owned));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::redis_args(&args)
}

/// B at work: a value published (value, versions, sequence, stream,
/// announcement), a subscriber on its channel, and a reader's report.
async fn bridge_b_at_work(server: &Server) -> (RedisStore, impl Sized) {
    let store = B.store(server);
    let subscription = store
        .subscribe()
        .await
        .expect("B subscribes to its channel");
    let env = Envelope::new(1_700_000_000_000_000, 1_700_000_000_000, &b"{\"px\":1}"[..]);
    store
        .publish("market:overview", &env)
        .await
        .expect("B publishes");
    let report = format!(r#"{{"hitRatio": 0.99, "at": "{}"}}"#, Timestamp::now());
    store
        .report_stats(
            &Keys::new(B.prefix).reader_stats(),
            B_READER,
            &report,
            Duration::from_secs(60),
        )
        .await
        .expect("B's reader reports");
    (store, subscription)
}

/// B's key and channel names, as B's own user could list them.
fn b_names() -> Vec<String> {
    let keys = Keys::new(B.prefix);
    vec![
        keys.value("market:overview"),
        keys.versions(),
        keys.seq(),
        keys.stream(),
        keys.reader_stats(),
    ]
}

async fn run(conn: &mut MultiplexedConnection, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query_async(conn).await
}

/// Asserts Redis refuses `args` for lack of permission (not for any other
/// reason, such as a typo in the test).
async fn assert_refused(conn: &mut MultiplexedConnection, args: &[&str]) {
    match run(conn, args).await {
        Ok(value) => panic!("{args:?} must be refused, answered {value:?}"),
        Err(e) => {
            let message = e.to_string();
            // Inside a script Redis words it differently ("The user executing
            // the script can't run this command" / "can't access … keys").
            let refused = e.code() == Some("NOPERM")
                || message.contains("no permissions")
                || message.contains("user executing the script can't");
            assert!(
                refused,
                "{args:?} must be refused for lack of permission, failed with: {e}"
            );
        }
    }
}

#[tokio::test]
async fn a_bridge_learns_nothing_of_another_bridge_on_the_same_redis() {
    let server = shared_redis();
    let (_b, _b_listening) = bridge_b_at_work(&server).await;
    let mut a = A.conn(&server).await;
    let b = b_names();
    let (value, versions, seq, stream, reports) = (&b[0], &b[1], &b[2], &b[3], &b[4]);
    let channel = Keys::new(B.prefix).channel();

    // Key names, key counts, channel names: nothing lists them.
    for args in [
        vec!["SCAN", "0"],
        vec!["SCAN", "0", "MATCH", "cb:shop:b:*", "COUNT", "1000"],
        vec!["KEYS", "*"],
        vec!["RANDOMKEY"],
        vec!["DBSIZE"],
        vec!["PUBSUB", "CHANNELS"],
        vec!["PUBSUB", "NUMSUB", &channel],
        vec!["PUBSUB", "NUMPAT"],
        vec!["INFO"],
        vec!["INFO", "keyspace"],
        vec!["INFO", "everything"],
        vec!["INFO", "all"],
        vec!["INFO", "clients"],
        vec!["INFO", "commandstats"],
        vec!["CLIENT", "LIST"],
        vec!["CLIENT", "INFO"],
        vec!["ACL", "LIST"],
        vec!["ACL", "GETUSER", B.user],
        vec!["CONFIG", "GET", "*"],
        vec!["SLOWLOG", "GET"],
        vec!["MONITOR"],
        vec!["ROLE"],
        vec!["FUNCTION", "LIST"],
        vec![
            "SCRIPT",
            "EXISTS",
            "0000000000000000000000000000000000000000",
        ],
    ] {
        assert_refused(&mut a, &args).await;
    }

    // B's values, versions, sequence, stream and reports: not even whether they exist.
    for args in [
        vec!["GET", value],
        vec!["EXISTS", value],
        vec!["TYPE", value],
        vec!["TTL", value],
        vec!["OBJECT", "ENCODING", value],
        vec!["MEMORY", "USAGE", value],
        vec!["DUMP", value],
        vec!["HGETALL", versions],
        vec!["HGET", versions, "market:overview"],
        vec!["GET", seq],
        vec!["INCR", seq],
        vec!["XRANGE", stream, "-", "+"],
        vec!["XREAD", "STREAMS", stream, "0"],
        vec!["XINFO", "STREAM", stream],
        vec!["HGETALL", reports],
        vec!["HGET", reports, B_READER],
        vec!["HDEL", reports, B_READER],
        vec!["EXPIRE", reports, "1"],
        vec!["SET", value, "forged"],
        vec!["PUBLISH", &channel, "{\"heartbeat\":1}"],
        vec!["EVAL", "return redis.call('GET', KEYS[1])", "1", value],
    ] {
        assert_refused(&mut a, &args).await;
    }

    // A script A may load and run is held to A's rights, keys and all.
    for body in [
        "return redis.call('SCAN', '0')".to_string(),
        "return redis.call('KEYS', '*')".to_string(),
        "return redis.call('INFO', 'keyspace')".to_string(),
        format!("return redis.call('GET', '{value}')"),
        format!("return redis.call('HGETALL', '{reports}')"),
    ] {
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(&body)
            .query_async(&mut a)
            .await
            .expect("A may load a script");
        assert_refused(&mut a, &["EVALSHA", &sha, "0"]).await;
    }

    // B's channel: no subscription, by name or by pattern.
    let client = stats::client(&server.url(), Some(A.user), Some(A.password)).unwrap();
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    let by_name = pubsub.subscribe(&channel).await.expect_err("B's channel");
    assert!(by_name.to_string().contains("no permissions"), "{by_name}");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    let by_pattern = pubsub.psubscribe("cb:*").await.expect_err("a pattern");
    assert!(
        by_pattern.to_string().contains("no permissions"),
        "{by_pattern}"
    );

    // What A may read about the server names nothing of B's. (Redis checks
    // only INFO's first section: `replication keyspace` passes, and shows a
    // count of keys across all bridges, never a name; docs/security.md.)
    for args in [
        vec!["INFO", "replication"],
        vec!["INFO", "replication", "everything"],
        vec!["HELLO"],
        vec!["PING"],
    ] {
        let answer = run(&mut a, &args).await.expect("allowed");
        let text = format!("{answer:?}");
        for name in b.iter().chain([&channel, &B_READER.to_string()]) {
            assert!(!text.contains(name.as_str()), "{args:?} shows {name}");
        }
        assert!(!text.contains(B.prefix), "{args:?} shows B's prefix");
        assert!(!text.contains(B.user), "{args:?} shows B's user");
    }
}

#[tokio::test]
async fn both_bridges_still_work_side_by_side() {
    let server = shared_redis();
    let (b, _b_listening) = bridge_b_at_work(&server).await;
    let a = A.store(&server);
    let mut a_updates = a.subscribe().await.expect("A subscribes");
    let env = Envelope::new(1_700_000_000_000_001, 1_700_000_000_000, &b"{\"px\":2}"[..]);
    a.publish("market:overview", &env)
        .await
        .expect("A publishes");
    let heard = tokio::time::timeout(Duration::from_secs(5), a_updates.next())
        .await
        .expect("A hears its update in time");
    assert!(heard.is_some());
    assert_eq!(a.current_seq().await.expect("A's sequence"), 1);
    assert_eq!(b.current_seq().await.expect("B's sequence"), 1);
    a.epoch()
        .await
        .expect("A reads the epoch (INFO replication)");

    // The operator reads each bridge's reports as that bridge's user: B's
    // reader shows in B's figures only.
    let now = Timestamp::now();
    let b_reports = stats::read_reports(&B.stats_target(&server), B.prefix, now)
        .await
        .expect("B's reports");
    assert_eq!(b_reports.len(), 1);
    assert_eq!(b_reports[0].hit_ratio, Some(0.99));
    let a_reports = stats::read_reports(&A.stats_target(&server), A.prefix, now)
        .await
        .expect("A's (empty) hash");
    assert!(a_reports.is_empty());
}

/// What the rule grants, asked of the server (`ACL DRYRUN`, as admin) for
/// every command and subcommand it knows, with arguments under A's prefix
/// so that only the command is judged: exactly the listed ones, nothing
/// through a category; and `INFO` only with `replication` first.
#[tokio::test]
async fn the_rule_grants_exactly_the_listed_commands() {
    let server = shared_redis();
    let mut admin = stats::client(&server.url(), None, Some(ADMIN))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("admin");
    let commands: Vec<String> = redis::cmd("COMMAND")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .expect("COMMAND LIST");
    assert!(
        commands.len() > 200,
        "Redis knows {} commands",
        commands.len()
    );
    let mut granted = Vec::new();
    for command in &commands {
        let args = sample_call(&mut admin, command).await;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if dry_run(&mut admin, &args).await == "OK" {
            granted.push(format!("+{command}"));
        }
    }
    granted.sort();
    let mut listed: Vec<String> = ACL_COMMANDS
        .iter()
        .filter(|rule| commands.iter().any(|c| **rule == format!("+{c}")))
        .map(|rule| rule.to_string())
        .collect();
    // Redis lets every user end or reset its own connection.
    listed.extend(["+quit".to_string(), "+reset".to_string()]);
    listed.sort();
    assert_eq!(granted, listed);

    for (args, allowed) in [
        (vec!["info", "replication"], true),
        (vec!["info", "keyspace"], false),
        (vec!["info"], false),
        (vec!["client", "list"], false),
    ] {
        let answer = dry_run(&mut admin, &args).await;
        assert_eq!(answer == "OK", allowed, "{args:?}: {answer}");
    }
}

/// A call of `command` (`name` or `container|sub`) with as many arguments
/// as it takes at least, all of them a key under A's prefix.
async fn sample_call(admin: &mut MultiplexedConnection, command: &str) -> Vec<String> {
    let info: Vec<redis::Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg(command)
        .query_async(admin)
        .await
        .expect("COMMAND INFO");
    let arity = match info.first() {
        Some(redis::Value::Array(doc)) => redis::from_redis_value::<i64>(doc[1].clone()).unwrap(),
        other => panic!("COMMAND INFO {command}: {other:?}"),
    };
    let mut args: Vec<String> = command.split('|').map(str::to_owned).collect();
    let wanted = usize::try_from(arity.unsigned_abs()).unwrap();
    while args.len() < wanted {
        args.push(format!("{}x", A.prefix));
    }
    args
}

/// `ACL DRYRUN` of `args` as A: `OK` or why not.
async fn dry_run(admin: &mut MultiplexedConnection, args: &[&str]) -> String {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("DRYRUN").arg(A.user).arg(args);
    match cmd.query_async::<String>(admin).await {
        Ok(answer) => answer,
        Err(e) => e.to_string(),
    }
}
