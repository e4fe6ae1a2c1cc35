//! Names of everything CacheBridge keeps in Redis and Memcached.
//!
//! Every name starts with the bridge's prefix (`cb:{namespace}:{name}:` unless
//! overridden) so several bridges can share one server, and an ACL user can be
//! limited to one bridge's keys with a single `~prefix*` pattern.
//!
//! On a Redis Cluster the prefix also carries a hash tag (`{…}`), so every
//! key of a bridge hashes to one slot and lives on one node: the publish
//! script touches four keys atomically, which Redis Cluster allows only
//! within one slot. [`with_hash_tag`] adds the tag when a prefix has none.

/// The logical keys the writer publishes and the reader serves.
pub mod logical {
    pub const OVERVIEW: &str = "market:overview";
    pub const TICKERS: &str = "market:tickers";
    pub const MOVERS: &str = "market:movers";
    pub const SIGNALS: &str = "signals";

    // Concatenated, not `format!`ed: built on every request for a symbol.
    pub fn ticker(symbol: &str) -> String {
        [TICKER_PREFIX, symbol].concat()
    }

    pub fn signal(symbol: &str) -> String {
        [SIGNAL_PREFIX, symbol].concat()
    }

    /// One-second bars of the last minutes (see `market::bars`).
    pub fn history(symbol: &str) -> String {
        format!("market:history:{symbol}")
    }

    const TICKER_PREFIX: &str = "market:ticker:";
    const SIGNAL_PREFIX: &str = "signal:";
}

/// `prefix` with a Redis Cluster hash tag: unchanged if it already has one
/// (a `{…}` with something inside), else its text up to a trailing `:`
/// wrapped in braces: `cb:ns:name:` becomes `{cb:ns:name}:`.
pub fn with_hash_tag(prefix: &str) -> String {
    let tag = crate::cache::l3::cluster::hash_tag(prefix.as_bytes());
    if tag.len() < prefix.len() {
        return prefix.to_owned();
    }
    format!("{{{}}}:", prefix.trim_end_matches(':'))
}

/// Physical names derived from one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Keys {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where a logical key's envelope is stored (same name in L2 and L3).
    pub fn value(&self, logical: &str) -> String {
        format!("{}v:{logical}", self.prefix)
    }

    /// Hash of logical key → latest version, guarding "only if newer".
    pub fn versions(&self) -> String {
        format!("{}versions", self.prefix)
    }

    /// Counter giving every update its place in the coherence order.
    pub fn seq(&self) -> String {
        format!("{}seq", self.prefix)
    }

    /// Capped stream of updates that readers replay after a gap.
    pub fn stream(&self) -> String {
        format!("{}updates", self.prefix)
    }

    /// Pub/sub channel of updates and heartbeats.
    pub fn channel(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// Hash of reader pod name → that reader's figures (JSON), which the
    /// operator reads for the resource status. One hash per bridge, so the
    /// operator finds every report with one HGETALL and needs no SCAN (which
    /// would list every key name on a shared server).
    pub fn reader_stats(&self) -> String {
        format!("{}stats:readers", self.prefix)
    }

    /// The logical key a physical value key names, if it is one of ours.
    pub fn logical_of<'a>(&self, physical: &'a str) -> Option<&'a str> {
        physical.strip_prefix(&self.prefix)?.strip_prefix("v:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_carries_the_prefix() {
        let keys = Keys::new("cb:ns:b:");
        for name in [
            keys.value(logical::OVERVIEW),
            keys.versions(),
            keys.seq(),
            keys.stream(),
            keys.channel(),
            keys.reader_stats(),
        ] {
            assert!(name.starts_with("cb:ns:b:"), "{name}");
        }
        assert_eq!(
            keys.value(&logical::ticker("AAPL")),
            "cb:ns:b:v:market:ticker:AAPL"
        );
        assert_eq!(keys.logical_of("cb:ns:b:v:signals"), Some("signals"));
        assert_eq!(keys.logical_of("other:v:signals"), None);
    }

    #[test]
    fn cluster_prefixes_get_one_hash_tag() {
        use crate::cache::l3::cluster::slot_of;
        assert_eq!(with_hash_tag("cb:ns:b:"), "{cb:ns:b}:");
        assert_eq!(with_hash_tag("plain"), "{plain}:");
        assert_eq!(with_hash_tag("{mine}:x:"), "{mine}:x:");
        assert_eq!(with_hash_tag("x{}:"), "{x{}}:");
        let keys = Keys::new(with_hash_tag("cb:ns:b:"));
        let slot = slot_of(keys.seq().as_bytes());
        for name in [
            keys.value(logical::OVERVIEW),
            keys.value(&logical::ticker("AAPL")),
            keys.versions(),
            keys.stream(),
            keys.channel(),
            keys.reader_stats(),
        ] {
            assert_eq!(slot_of(name.as_bytes()), slot, "{name}");
        }
    }
}
