//! A distributed lock on Redis: `SET NX PX` with a random token, released by
//! compare-and-delete.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use redis::Value;
use stratacache_tier::{BoxFuture, DistributedLock, Error};

use crate::config::RedisConfig;
use crate::connection::Connection;

/// Deletes the lock only if the token still holds it.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/// A [`DistributedLock`] on Redis, for
/// [`CacheBuilder::distributed_lock`](https://docs.rs/stratacache): the lock `name` is
/// the key `{namespace}:lock:{name in base64url}`, taken with `SET NX PX` and a random
/// token, released only by its token (a Lua compare-and-delete), so a holder whose lock
/// expired never releases another's. Every command is bounded by the command timeout.
///
/// ```no_run
/// use std::time::Duration;
/// use stratacache::{Cache, Fallback, Remote};
/// use stratacache_redis::{RedisBackplane, RedisConfig, RedisLock, RedisStore};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), stratacache::Error> {
/// let config = RedisConfig::from_url("redis://127.0.0.1:6379/").namespace("users");
/// let cache: Cache<u64, String> = Cache::builder()
///     .fallback(Fallback::remote(Remote::new(RedisStore::new(config.clone())?)))
///     .backplane(RedisBackplane::new(config.clone())?)
///     .distributed_lock(RedisLock::new(config)?, Duration::from_secs(5))
///     .build()?;
/// # Ok(()) }
/// ```
pub struct RedisLock {
    config: RedisConfig,
    connection: Connection,
    prefix: String,
}

impl RedisLock {
    /// Locks under `config`'s namespace.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](stratacache_tier::ErrorKind::Config) for an invalid URL.
    pub fn new(config: RedisConfig) -> Result<Self, Error> {
        let connection = Connection::new(&config)?;
        let prefix = format!("{}:lock:", config.namespace);
        Ok(Self {
            config,
            connection,
            prefix,
        })
    }

    fn key(&self, name: &[u8]) -> String {
        format!("{}{}", self.prefix, URL_SAFE_NO_PAD.encode(name))
    }
}

impl fmt::Debug for RedisLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLock")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl DistributedLock for RedisLock {
    fn try_lock(&self, name: Bytes, ttl: Duration) -> BoxFuture<'_, Result<Option<u64>, Error>> {
        Box::pin(async move {
            let token = fastrand::u64(1..);
            let mut command = redis::cmd("SET");
            command
                .arg(self.key(&name))
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(crate::store::px(ttl));
            let key = self.key(&name);
            let answer: Value = match self
                .connection
                .query(&command, self.config.command_timeout)
                .await
            {
                Ok(answer) => answer,
                Err(error) => {
                    // The `SET` may still land (a stalled server that resumes): a lock
                    // nobody knows it holds would make every other instance wait out its
                    // TTL. Released by its token, best effort: sent on the same
                    // connection, the release runs after the `SET` if both land.
                    let _ = self.unlock(name, token).await;
                    return Err(error);
                }
            };
            if matches!(answer, Value::Okay | Value::SimpleString(_)) {
                return Ok(Some(token));
            }
            // A `SET` retried after its first reply was lost finds its own token there.
            let holder: Option<u64> = self
                .connection
                .query(redis::cmd("GET").arg(&key), self.config.command_timeout)
                .await?;
            Ok((holder == Some(token)).then_some(token))
        })
    }

    fn unlock(&self, name: Bytes, token: u64) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let mut command = redis::cmd("EVAL");
            command.arg(RELEASE).arg(1).arg(self.key(&name)).arg(token);
            self.connection
                .query::<i64>(&command, self.config.command_timeout)
                .await
                .map(drop)
        })
    }
}
