//! Examples live beside this crate; run them with `cargo run --example NAME`. What
//! several examples share lives here.

use stratacache_testkit::RedisServer;

/// The Redis an example runs against: `REDIS_URL` when set, otherwise a `redis-server`
/// started here (kept alive by the returned guard).
///
/// # Errors
///
/// When no `REDIS_URL` is set and `redis-server` cannot be started.
pub fn redis() -> Result<(Option<RedisServer>, String), stratacache_testkit::Error> {
    if let Ok(url) = std::env::var("REDIS_URL") {
        return Ok((None, url));
    }
    let server = RedisServer::start()?;
    let url = server.url();
    Ok((Some(server), url))
}

#[cfg(feature = "service")]
#[path = "../service/mod.rs"]
pub mod service;
