//! A memcached store for stratacache: several servers, consistent hashing, multiplexed
//! connections, the meta protocol.
//!
//! [`MemcachedStore`] is a [`ByteStore`](stratacache_tier::ByteStore): put it behind the
//! facade's codec boundary (`Fallback::remote(Remote::new(tier))`), which also makes
//! every key valid for memcached (printable, no spaces, hashed when long).
//!
//! - **Client.** A small meta-protocol client (`mg`, `ms`, `md`, `ma`, `mn`) over tokio,
//!   in this crate. The binary protocol is deprecated upstream; of the tokio clients
//!   that speak the meta protocol, `memcache`'s (`memcache::exp`) is experimental and
//!   "may change without notice", and `async-memcached` drives one connection to one
//!   server. Worth revisiting when `memcache::exp` is stable. Replies are parsed with a
//!   bound on every length.
//! - **Servers.** Keys are spread over a ketama-style ring (160 points per server,
//!   placed by XXH3: fast, stable, not cryptographic), so adding or removing one of N
//!   servers moves about 1/N of the keys. With one server nothing is hashed.
//! - **Connections.** Multiplexed: concurrent calls share a connection, their requests
//!   written back to back (one write when they queue up) and the replies, which
//!   memcached sends in order, handed back in order; another connection is opened,
//!   up to [`MemcachedConfig::max_connections`] per server, only when each open one
//!   carries 32 calls. Every command is bounded by [`MemcachedConfig::command_timeout`],
//!   connecting included; a call that times out leaves its connection in step (its late
//!   reply is read and dropped), and a connection that answered nothing while a call
//!   waited out its timeout (a hung server, a half-open socket) is closed.
//! - **Faults.** A down server's keys fail within the timeout while the others keep
//!   serving; when it returns it is used again. With
//!   [`MemcachedConfig::failure_limit`], a server that keeps failing is skipped for a
//!   while and its keys go to the next server on the ring; when it returns, its
//!   generation is moved first, so it never serves an entry from before its outage.
//! - **TTL** is set on the server (`T` flag, seconds rounded up). Past what memcached
//!   can express (2038-01-19 03:14:07 UTC) a TTL is clamped to that second, so
//!   `Duration::MAX` stores too. Values over [`MemcachedConfig::max_value_size`] are
//!   rejected before sending.
//! - **Clear.** memcached has no namespace delete, so keys carry a generation
//!   (`namespace:generation:key`) kept in memcached itself, one per server (losing a
//!   server loses only its own entries); `clear` moves it on every server, and other
//!   instances see the move within [`MemcachedConfig::generation_refresh`]. `flush_all`
//!   only with [`MemcachedConfig::allow_flush_all`].
//!
//! [`MemcachedStore`]'s `# Semantics` section has the full contract.
//!
//! ```no_run
//! use stratacache::{Cache, Fallback, Remote};
//! use stratacache_memcached::{MemcachedConfig, MemcachedStore};
//!
//! # fn run() -> Result<(), stratacache::Error> {
//! let memcached = MemcachedStore::new(
//!     MemcachedConfig::new(["10.0.0.1:11211", "10.0.0.2:11211"]).namespace("users"),
//! )?;
//! let cache: Cache<u64, String> =
//!     Cache::builder().fallback(Fallback::remote(Remote::new(memcached))).build()?;
//! # Ok(()) }
//! ```

mod config;
mod exptime;
mod generation;
mod namespace;
mod pipeline;
mod pool;
mod protocol;
mod ring;
mod store;

pub use config::MemcachedConfig;
pub use store::MemcachedStore;
