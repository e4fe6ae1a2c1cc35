//! Whole answers to `?symbols=` requests, kept by the request's list while
//! no announced version changed.
//!
//! A list of N symbols costs N L1 look-ups (a hash, the key's version floor
//! behind a lock, moka's bookkeeping) before [`super::render::Composites`]
//! even finds the rendered answer, so a 20-symbol list ran at under half
//! the rate of a server answering the same bytes. Yet the answer cannot
//! change until some key's floor rises, and floors rise in bursts, once per
//! writer publish. So the answer is kept against the cache's change counter
//! ([`crate::cache::TieredCache::changes`]) and, until the counter moves,
//! served with one look-up by the list's text.
//!
//! Why this is never older than a look-up would be: the counter is read
//! *before* the look-ups that built the answer, and every part was at least
//! its floor then; an unchanged counter means no floor has risen since.
//! Answers with a superseded part (a failover's last resort) are not kept.

use super::render::Rendered;
use super::respond::Served;
use std::sync::Arc;

/// Distinct lists kept; a list is at most a few hundred symbols.
const MAX_LISTS: u64 = 1024;

/// One kept answer.
pub struct Kept {
    /// The cache's change counter before the look-ups behind `served`.
    pub changes: u64,
    pub served: Served,
    pub rendered: Arc<Rendered>,
}

pub struct Memo(moka::sync::Cache<Box<str>, Arc<Kept>>);

impl Memo {
    pub fn new() -> Self {
        Memo(moka::sync::Cache::new(MAX_LISTS))
    }

    /// The answer kept for `list`, if nothing changed since it was built.
    pub fn get(&self, list: &str, changes: u64) -> Option<Arc<Kept>> {
        self.0.get(list).filter(|kept| kept.changes == changes)
    }

    /// Keeps an answer built from look-ups that started at `changes`.
    pub fn keep(&self, list: &str, kept: Kept) {
        if !kept.served.superseded() {
            self.0.insert(list.into(), Arc::new(kept));
        }
    }
}

impl Default for Memo {
    fn default() -> Self {
        Memo::new()
    }
}
