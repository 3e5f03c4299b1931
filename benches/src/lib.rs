//! Shared set-up of the benches in `benches/`: the servers they measure against.
//! Run them with `cargo bench -p stratacache-benches`.

use stratacache_testkit::{MemcachedServer, RedisServer};

/// A Redis to bench against: `REDIS_URL` when set, otherwise a `redis-server` started
/// here (kept alive by the returned guard).
///
/// # Panics
///
/// When no `REDIS_URL` is set and `redis-server` cannot be started.
#[must_use]
pub fn redis() -> (Option<RedisServer>, String) {
    if let Ok(url) = std::env::var("REDIS_URL") {
        return (None, url);
    }
    let server = RedisServer::start().expect("start redis-server (or set REDIS_URL)");
    let url = server.url();
    (Some(server), url)
}

/// A memcached to bench against: the first of `MEMCACHED_SERVERS` when set, otherwise a
/// `memcached` started here (kept alive by the returned guard).
///
/// # Panics
///
/// When no `MEMCACHED_SERVERS` is set and `memcached` cannot be started.
#[must_use]
pub fn memcached() -> (Option<MemcachedServer>, String) {
    if let Some(first) = std::env::var("MEMCACHED_SERVERS").ok().and_then(|list| {
        list.split([',', ' '])
            .find(|server| !server.is_empty())
            .map(str::to_string)
    }) {
        return (None, first);
    }
    let server = MemcachedServer::start().expect("start memcached (or set MEMCACHED_SERVERS)");
    let address = server.address();
    (Some(server), address)
}

/// A current-thread tokio runtime, entered for the rest of the bench (tiers spawn their
/// connection tasks on it).
#[must_use]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
