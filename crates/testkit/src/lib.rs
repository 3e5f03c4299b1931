//! Real servers for tests: `redis-server` (single node, TLS, or a 3-master cluster) and
//! `memcached`, each on a free loopback port, stopped when dropped; and a [`TcpProxy`]
//! that can make open connections go silent, for fault tests.
//!
//! A missing binary is an [`Error`] naming the Debian package to install, never a silent
//! skip. `scripts/test.sh` installs the packages when they are missing.
//!
//! ```no_run
//! let redis = stratacache_testkit::RedisServer::start()?;
//! println!("redis at {}", redis.url());
//! # Ok::<(), stratacache_testkit::Error>(())
//! ```

mod error;
mod memcached;
mod process;
mod proxy;
mod redis;

pub use error::Error;
pub use memcached::MemcachedServer;
pub use proxy::TcpProxy;
pub use redis::{RedisCluster, RedisServer, RedisTlsServer};
