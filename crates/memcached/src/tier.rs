use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use stratacache_tier::{ByteStore, Error, ErrorKind};

use crate::MemcachedConfig;
use crate::pool::Pool;
use crate::protocol::{self, Reply};
use crate::ring::Ring;

/// A memcached [`ByteStore`] over several servers: see the [crate docs](crate).
pub struct MemcachedTier {
    pools: Vec<Pool>,
    ring: Ring,
    config: MemcachedConfig,
    /// The namespace generation and when it was last read.
    generation: Mutex<Option<(u64, Instant)>>,
}

impl MemcachedTier {
    /// A tier over `config`'s servers. Nothing is connected until the first command.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] with no servers, or a namespace that would not fit in a key.
    pub fn new(config: MemcachedConfig) -> Result<Self, Error> {
        if config.servers.is_empty() {
            return Err(Error::new(ErrorKind::Config, "no memcached servers"));
        }
        if config.namespace.len() > 32 || protocol::check_key(&config.namespace).is_err() {
            return Err(Error::new(
                ErrorKind::Config,
                "the namespace must be 1 to 32 printable characters without spaces",
            ));
        }
        let pools = config
            .servers
            .iter()
            .map(|server| {
                Pool::new(
                    server.clone(),
                    config.max_connections,
                    config.connect_timeout,
                )
            })
            .collect();
        Ok(Self {
            pools,
            ring: Ring::new(&config.servers),
            config,
            generation: Mutex::default(),
        })
    }

    /// The address of the server that holds `key` now (down servers skipped).
    ///
    /// Keys are placed by the key alone, not by namespace or generation, so a `clear`
    /// does not reshuffle them over the servers.
    #[must_use]
    pub fn server_for(&self, key: &str) -> Option<&str> {
        self.route(key.as_bytes())
            .map(|index| self.pools[index].address.as_str())
    }

    fn route(&self, key: &[u8]) -> Option<usize> {
        let skip_down = self.config.failure_limit.is_some();
        self.ring
            .server_for(key, |server| skip_down && self.pools[server].is_down())
    }

    fn generation_key(&self) -> String {
        format!("{}:generation", self.config.namespace)
    }

    /// Sends `request` to server `index` and reads `replies` replies, within the command
    /// timeout, keeping the server's health.
    async fn exchange(
        &self,
        index: usize,
        request: &[u8],
        replies: usize,
    ) -> Result<Vec<Reply>, Error> {
        let pool = &self.pools[index];
        let limit = self.config.command_timeout;
        let result = match tokio::time::timeout(
            limit,
            pool.exchange(request, replies, self.config.max_value_size),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "memcached at {} did not answer within {limit:?}",
                    pool.address
                ),
            )),
        };
        let failed = result.as_ref().is_err_and(Error::is_transient);
        pool.record(
            !failed,
            self.config.failure_limit,
            self.config.retry_down_after,
        );
        if let Err(error) = &result
            && !error.is_transient()
            && error.kind() != ErrorKind::Rejected
        {
            // A protocol surprise: the connection may be out of step.
            pool.reset();
        }
        result
    }

    /// Sends one command to the server that owns `key` and reads its reply.
    async fn one(&self, key: &str, request: &[u8]) -> Result<Reply, Error> {
        let index = self.route(key.as_bytes()).ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                "every memcached server is marked down",
            )
        })?;
        let mut replies = self.exchange(index, request, 1).await?;
        replies
            .pop()
            .ok_or_else(|| Error::new(ErrorKind::Other, "memcached sent no reply"))
    }

    /// The namespace generation, re-read when older than `generation_refresh`.
    async fn generation(&self) -> Result<u64, Error> {
        let cached = *self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((generation, read_at)) = cached
            && read_at.elapsed() < self.config.generation_refresh
        {
            return Ok(generation);
        }
        let generation = self
            .bump_generation(0)
            .await
            .or_else(|error| match cached {
                // Keep serving on the last known generation while its server is unreachable.
                Some((generation, _)) => Ok(generation),
                None => Err(error),
            })?;
        Ok(generation)
    }

    /// Adds `delta` to the generation (creating it, when missing, at the current time in
    /// ms, so that a generation key lost to eviction never brings back an old prefix).
    async fn bump_generation(&self, delta: u64) -> Result<u64, Error> {
        let key = self.generation_key();
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let mut request = Vec::new();
        protocol::add(&mut request, &key, now_ms, delta);
        let generation = match self.one(&key, &request).await? {
            Reply::Value(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| text.trim().parse().ok()),
            _ => None,
        }
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Other,
                "memcached answered the generation with no number",
            )
        })?;
        *self
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((generation, Instant::now()));
        Ok(generation)
    }

    async fn key(&self, key: &str) -> Result<String, Error> {
        let full = format!(
            "{}:{}:{key}",
            self.config.namespace,
            self.generation().await?
        );
        protocol::check_key(&full)?;
        Ok(full)
    }

    /// The time-to-live memcached holds for `key`; `None` when missing or unlimited.
    ///
    /// # Errors
    ///
    /// As [`ByteStore::get`].
    pub async fn server_ttl(&self, key: &str) -> Result<Option<Duration>, Error> {
        let full = self.key(key).await?;
        let mut request = Vec::new();
        protocol::get_ttl(&mut request, &full);
        Ok(match self.one(key, &request).await? {
            Reply::Done(flags) => flags
                .split(' ')
                .find_map(|flag| flag.strip_prefix('t'))
                .and_then(|ttl| ttl.parse::<u64>().ok())
                .map(Duration::from_secs),
            _ => None,
        })
    }

    /// The values of many keys: one pipelined request per server, servers in parallel.
    ///
    /// # Errors
    ///
    /// The first server that fails.
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, Error> {
        let mut by_server: Vec<Vec<(usize, String)>> =
            (0..self.pools.len()).map(|_| Vec::new()).collect();
        for (position, key) in keys.iter().enumerate() {
            let full = self.key(key).await?;
            let server = self.route(key.as_bytes()).ok_or_else(|| {
                Error::new(
                    ErrorKind::Unavailable,
                    "every memcached server is marked down",
                )
            })?;
            by_server[server].push((position, full));
        }
        let batches = by_server
            .iter()
            .enumerate()
            .filter(|(_, batch)| !batch.is_empty())
            .map(|(server, batch)| async move {
                let mut request = Vec::new();
                for (_, key) in batch {
                    protocol::get(&mut request, key);
                }
                protocol::noop(&mut request);
                let replies = self.exchange(server, &request, batch.len() + 1).await?;
                Ok::<_, Error>(
                    batch
                        .iter()
                        .map(|(position, _)| *position)
                        .zip(replies)
                        .collect::<Vec<_>>(),
                )
            });
        let mut values = vec![None; keys.len()];
        for batch in futures::future::try_join_all(batches).await? {
            for (position, reply) in batch {
                if let Reply::Value(bytes) = reply {
                    values[position] = Some(bytes);
                }
            }
        }
        Ok(values)
    }
}

impl ByteStore for MemcachedTier {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, Error> {
        let full = self.key(key).await?;
        let mut request = Vec::new();
        protocol::get(&mut request, &full);
        match self.one(key, &request).await? {
            Reply::Value(bytes) => Ok(Some(bytes)),
            Reply::Missing => Ok(None),
            other => Err(Error::new(
                ErrorKind::Other,
                format!("memcached answered {other:?} to mg"),
            )),
        }
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), Error> {
        if value.len() > self.config.max_value_size {
            return Err(Error::new(
                ErrorKind::Rejected,
                format!(
                    "value of {} bytes is over memcached's limit of {}",
                    value.len(),
                    self.config.max_value_size
                ),
            ));
        }
        let full = self.key(key).await?;
        let mut request = Vec::with_capacity(full.len() + value.len() + 32);
        protocol::set(&mut request, &full, &value, ttl);
        match self.one(key, &request).await? {
            Reply::Done(_) => Ok(()),
            other => Err(Error::new(
                ErrorKind::Rejected,
                format!("memcached did not store it: {other:?}"),
            )),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let full = self.key(key).await?;
        let mut request = Vec::new();
        protocol::delete(&mut request, &full);
        match self.one(key, &request).await? {
            Reply::Done(_) | Reply::Missing => Ok(()),
            other => Err(Error::new(
                ErrorKind::Other,
                format!("memcached answered {other:?} to md"),
            )),
        }
    }

    async fn clear(&self) -> Result<(), Error> {
        if !self.config.flush_all {
            // memcached has no namespace delete: moving the generation orphans every key
            // of the old one (they age out or are evicted).
            self.bump_generation(1).await?;
            return Ok(());
        }
        let mut request = Vec::new();
        protocol::flush_all(&mut request);
        for server in 0..self.pools.len() {
            self.exchange(server, &request, 1).await?;
        }
        Ok(())
    }

    fn max_value_size(&self) -> Option<usize> {
        Some(self.config.max_value_size)
    }
}

impl fmt::Debug for MemcachedTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedTier")
            .field("servers", &self.config.servers)
            .field("namespace", &self.config.namespace)
            .finish_non_exhaustive()
    }
}
