#![doc = include_str!("../README.md")]

mod error;
mod memcached;
mod process;
mod proxy;
mod redis;

pub use error::Error;
pub use memcached::MemcachedServer;
pub use proxy::TcpProxy;
pub use redis::{RedisCluster, RedisServer, RedisTlsServer};
