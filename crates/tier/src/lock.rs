//! The contract of a distributed lock: how instances of one cache agree that only one of
//! them loads a key at a time.

use std::time::Duration;

use bytes::Bytes;

use crate::Error;
use crate::backplane::BoxFuture;

/// A lock shared by the instances of one cache (a Redis key, say), for the distributed
/// stampede lock: an instance that misses a key takes the key's lock before loading it,
/// so that the others wait for its value instead of loading too.
///
/// Best effort by design: a lock lives at most its TTL (its holder may die), and a
/// caller that cannot take it or reach it loads anyway.
pub trait DistributedLock: Send + Sync + 'static {
    /// Takes the lock `name` for `ttl` if no one holds it: `Some(token)` when taken,
    /// `None` when held by someone else.
    ///
    /// # Errors
    ///
    /// When the lock's store cannot be reached in time.
    fn try_lock(&self, name: Bytes, ttl: Duration) -> BoxFuture<'_, Result<Option<u64>, Error>>;

    /// Releases `name` if `token` still holds it (a lock that expired and was taken by
    /// another is left alone).
    ///
    /// # Errors
    ///
    /// When the lock's store cannot be reached in time.
    fn unlock(&self, name: Bytes, token: u64) -> BoxFuture<'_, Result<(), Error>>;
}
