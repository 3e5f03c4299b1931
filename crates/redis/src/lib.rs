//! A Redis store for stratacache: single node, or Redis Cluster with the `cluster`
//! feature.
//!
//! [`RedisStore`] is a [`ByteStore`](stratacache_tier::ByteStore): put it behind the
//! facade's codec boundary (`Fallback::remote(Remote::new(tier))`) to use it as a typed
//! L2. It uses [redis-rs](https://docs.rs/redis): one multiplexed connection per node,
//! shared by every command, opened on first use and reopened when it breaks; or the
//! async cluster client, which follows `MOVED` and `ASK` redirections.
//!
//! - Every command is bounded by [`RedisConfig::command_timeout`]: a server that is down
//!   or slow costs at most that, as a [`Timeout`](stratacache_tier::ErrorKind::Timeout)
//!   or [`Unavailable`](stratacache_tier::ErrorKind::Unavailable) error.
//! - A single node's connection is replaced after
//!   [`reconnect_after_timeouts`](RedisConfig::reconnect_after_timeouts) timeouts in a
//!   row, so a half-open socket or a stuck proxy costs a few timeouts, not minutes.
//! - TTLs are set on the server (`SET … PX`).
//! - Keys are prefixed with the namespace; [`clear`](stratacache_tier::ByteStore::clear)
//!   removes that namespace only (`SCAN MATCH` + `UNLINK`), never the whole database.
//! - Batches ([`get_many`](stratacache_tier::ByteStore::get_many),
//!   [`set_many`](stratacache_tier::ByteStore::set_many)) are one pipelined round trip
//!   on a single node, concurrent commands on a cluster.
//!
//! The connection is made lazily, so a service starts even while Redis is down.
//!
//! ```no_run
//! use stratacache::{Cache, Fallback, Remote};
//! use stratacache_redis::{RedisConfig, RedisStore};
//!
//! # async fn run() -> Result<(), stratacache::Error> {
//! let redis = RedisStore::new(RedisConfig::from_url("redis://127.0.0.1:6379/0").namespace("users"))?;
//! let cache: Cache<u64, String> =
//!     Cache::builder().fallback(Fallback::remote(Remote::new(redis))).build()?;
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! | feature   | enables                                  |
//! |-----------|------------------------------------------|
//! | `cluster` | Redis Cluster via [`RedisConfig::cluster`] |
//! | `tls`     | `rediss://` URLs (rustls), `RedisConfig::tls_root_certificate` |

mod backplane;
#[cfg(feature = "cluster")]
mod cluster;
mod config;
mod connection;
mod errors;
mod key;
mod lock;
#[cfg(feature = "cluster")]
mod sharded;
mod single;
mod store;

pub use backplane::RedisBackplane;
pub use config::RedisConfig;
pub use lock::RedisLock;
pub use store::RedisStore;
