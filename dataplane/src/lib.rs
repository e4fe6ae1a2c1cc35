//! CacheBridge dataplane: carries live market data from a trading service (the
//! writer) to web readers through a shared L1 (in-process) → L2 (Memcached) →
//! L3 (Redis) cache, with coherent L1s across reader replicas.

pub mod market;
