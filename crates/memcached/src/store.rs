use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use stratacache_tier::{ByteStore, Error, ErrorKind, sorts_within};

use crate::config::MemcachedConfig;
use crate::exptime;
use crate::generation::Generation;
use crate::pool::Pool;
use crate::protocol::{self, Reply};
use crate::ring::Ring;

/// A memcached [`ByteStore`] over several servers: see the [crate docs](crate).
///
/// # Semantics
///
/// - **Placement.** A key lives on the server that owns it on the ring, placed by the
///   key alone; with [`failure_limit`](MemcachedConfig::failure_limit), servers marked
///   down are skipped and their keys go to the next server on the ring.
/// - **TTL.** Whole seconds rounded up, at least 1. Over 30 days memcached needs an
///   absolute Unix time, which it cannot express past 2038-01-19 03:14:07 UTC: a longer
///   TTL (`Duration::MAX` included) is **clamped** to expire at that second, so it always
///   stores.
/// - **Generations.** Each server keeps this namespace's generation (the number in
///   every key's prefix) itself. Losing a server, or its generation key, loses only
///   that server's entries.
/// - **Routed around, then back.** When this client marks a server down, it moves that
///   server's generation before using it again, so the server never serves it an entry
///   from before its outage (one since deleted or rewritten on the next server); other
///   instances stop seeing those entries once they re-read the generation
///   ([`generation_refresh`](MemcachedConfig::generation_refresh)). Not covered: an
///   instance that kept using the server throughout and reads it before that move, and
///   a command already under way when the server was marked down.
/// - **Clear** moves the generation on every server at once (or runs `flush_all`, when
///   allowed). When a server cannot be reached, `clear` returns its error, saying how
///   many servers it reached, and this client moves that server's generation before
///   using it again; until then other instances may still read its old entries.
pub struct MemcachedStore {
    pub(crate) pools: Vec<Pool>,
    /// The namespace generation of each server, by the same index as `pools`.
    pub(crate) generations: Vec<Generation>,
    ring: Ring,
    pub(crate) config: MemcachedConfig,
}

pub(crate) fn all_down() -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "every memcached server is marked down",
    )
}

impl MemcachedStore {
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
            generations: config
                .servers
                .iter()
                .map(|_| Generation::default())
                .collect(),
            ring: Ring::new(&config.servers),
            config,
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

    pub(crate) fn route(&self, key: &[u8]) -> Option<usize> {
        let skip_down = self.config.failure_limit.is_some();
        self.ring
            .server_for(key, |server| skip_down && self.pools[server].is_down())
    }

    pub(crate) fn generation_key(&self) -> String {
        format!("{}:generation", self.config.namespace)
    }

    /// Sends `request` to server `index` and reads `replies` replies, within the command
    /// timeout, keeping the server's health.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would hold its arguments twice in every command's future"
    )]
    fn exchange(
        &self,
        index: usize,
        request: Vec<u8>,
        replies: usize,
    ) -> impl Future<Output = Result<Vec<Reply>, Error>> + Send + '_ {
        async move {
            let pool = &self.pools[index];
            let result = pool
                .exchange(
                    request,
                    replies,
                    self.config.max_value_size,
                    self.config.command_timeout,
                )
                .await;
            let failed = result.as_ref().is_err_and(Error::is_transient);
            let marked_down = pool.record(
                !failed,
                self.config.failure_limit,
                self.config.retry_down_after,
            );
            if marked_down {
                // Its keys now go to the next server, so what it holds may turn older
                // than what is written there: it is not read again before its
                // generation moves.
                self.generations[index].distrust();
            }
            // A protocol surprise broke the connection it came on (see `Pipeline`): the
            // next call opens another.
            result
        }
    }

    /// Sends one command to server `index` and reads its reply; a reply that is a
    /// failure (an error line, a value over the limit) is an error.
    pub(crate) fn one(
        &self,
        index: usize,
        request: Vec<u8>,
    ) -> impl Future<Output = Result<Reply, Error>> + Send + '_ {
        self.one_reply(index, request)
            .map(|reply| reply.and_then(Reply::into_result))
    }

    /// [`one`](Self::one), its reply as it came: the caller tells failures apart.
    pub(crate) fn one_reply(
        &self,
        index: usize,
        request: Vec<u8>,
    ) -> impl Future<Output = Result<Reply, Error>> + Send + '_ {
        self.exchange(index, request, 1).map(|replies| {
            replies?
                .pop()
                .ok_or_else(|| Error::new(ErrorKind::Other, "memcached sent no reply"))
        })
    }

    /// The time-to-live memcached holds for `key`; `None` when missing or unlimited.
    ///
    /// # Errors
    ///
    /// As [`ByteStore::get`].
    pub async fn server_ttl(&self, key: &str) -> Result<Option<Duration>, Error> {
        let (index, full) = self.locate(key).await?;
        let mut request = Vec::new();
        protocol::get_ttl(&mut request, full);
        Ok(match self.one(index, request).await? {
            Reply::Done(flags) => protocol::flag(flags.split(' '), 't').map(Duration::from_secs),
            _ => None,
        })
    }
}

/// How many times [`ByteStore::set_if_greater`] reads and tries to swap before giving up.
const CAS_ATTEMPTS: usize = 8;

/// An answer that does not fit the request.
fn unexpected(reply: &Reply, request: &str) -> Error {
    Error::new(
        ErrorKind::Other,
        format!("memcached answered {reply:?} to {request}"),
    )
}

impl MemcachedStore {
    /// Refuses a value over [`MemcachedConfig::max_value_size`] before anything is sent.
    fn check_size(&self, value: &[u8]) -> Result<(), Error> {
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
        Ok(())
    }
}

impl MemcachedStore {
    /// Stores `value` under `key` unless `stands` holds for the bytes there, in one step
    /// by compare-and-swap: reads the value and its token, and stores only if the item
    /// is still as read (or still absent), reading again when another writer came in
    /// between.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would hold its arguments twice in every command's future"
    )]
    fn swap_unless(
        &self,
        key: &str,
        value: &Bytes,
        ttl: Option<Duration>,
        stands: impl Fn(&[u8]) -> bool + Send,
    ) -> impl Future<Output = Result<Swap, Error>> + Send {
        async move {
            self.check_size(value)?;
            let (index, full) = self.locate(key).await?;
            let expires = exptime::exptime(ttl, exptime::unix_now());
            for _ in 0..CAS_ATTEMPTS {
                let mut request = Vec::with_capacity(key.len() + 64);
                protocol::get_with_cas(&mut request, full);
                let request = match self.one_reply(index, request).await? {
                    // Over this client's limit: not this cache's to compare with.
                    Reply::TooLarge(_) => return Ok(Swap::Unreadable),
                    reply => reply.into_result()?,
                };
                let request = match request {
                    Reply::ValueAndCas(current, _) if stands(&current) => return Ok(Swap::Stands),
                    Reply::ValueAndCas(_, cas) => {
                        let mut request = Vec::with_capacity(key.len() + value.len() + 96);
                        protocol::set_if_unchanged(&mut request, full, value, expires, cas);
                        request
                    }
                    Reply::Missing => {
                        let mut request = Vec::with_capacity(key.len() + value.len() + 96);
                        protocol::set_if_absent(&mut request, full, value, expires);
                        request
                    }
                    other => return Err(unexpected(&other, "mg")),
                };
                match self.one(index, request).await? {
                    Reply::Done(_) => return Ok(Swap::Stored),
                    // Changed, added or removed since the read: read again.
                    Reply::Exists | Reply::NotStored | Reply::Missing => {}
                    other => return Err(unexpected(&other, "ms")),
                }
            }
            Ok(Swap::Contended)
        }
    }

    /// A plain [`set`](ByteStore::set) where a compare-and-swap could not decide: it
    /// stored. Boxed, as it is rare: inline, it would be part of every conditional
    /// set's future.
    async fn set_anyway(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        Box::pin(self.set(key, value, ttl)).await.map(|()| true)
    }
}

/// How a compare-and-swap ended.
enum Swap {
    Stored,
    /// What is there stands: nothing was stored.
    Stands,
    /// Other writers changed the item between the read and the store of each attempt.
    Contended,
    /// What is there is over this client's size limit (another client's): it could not
    /// be compared.
    Unreadable,
}

impl ByteStore for MemcachedStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, Error> {
        let (index, full) = self.locate(key).await?;
        let mut request = Vec::with_capacity(key.len() + 64);
        protocol::get(&mut request, full);
        match self.one(index, request).await? {
            Reply::Value(bytes) => Ok(Some(bytes)),
            Reply::Missing => Ok(None),
            other => Err(unexpected(&other, "mg")),
        }
    }

    /// Stores `value` under `key` on its server, to expire after `ttl` (`None`: never).
    ///
    /// The TTL is rounded up to whole seconds (at least 1). Past what memcached can
    /// express (an absolute time after 2038-01-19 03:14:07 UTC, e.g. `Duration::MAX` or
    /// 12 years) it is clamped to expire at that second: the value is always stored.
    ///
    /// # Errors
    ///
    /// As [`ByteStore::set`]; [`ErrorKind::Rejected`] for a value over
    /// [`MemcachedConfig::max_value_size`], before anything is sent.
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), Error> {
        self.check_size(&value)?;
        let (index, full) = self.locate(key).await?;
        let mut request = Vec::with_capacity(key.len() + value.len() + 96);
        let expires = exptime::exptime(ttl, exptime::unix_now());
        protocol::set(&mut request, full, &value, expires);
        match self.one(index, request).await? {
            Reply::Done(_) => Ok(()),
            other => Err(Error::new(
                ErrorKind::Rejected,
                format!("memcached did not store it: {other:?}"),
            )),
        }
    }

    /// With memcached's compare-and-swap: reads the value and its token, and stores only
    /// if the item is still as read (or still absent), asking again when another writer
    /// came in between; after 8 such attempts, answers that it did not store (others
    /// keep writing the key). A value there over this client's limit is replaced. TTL as
    /// [`set`](Self::set).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would hold its arguments twice in every command's future"
    )]
    fn set_if_greater(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        async move {
            let swapped = self.swap_unless(key, &value, ttl, |current| current >= &value[..]);
            match swapped.await? {
                Swap::Stored => Ok(true),
                Swap::Stands | Swap::Contended => Ok(false),
                // Bad bytes to this client: replaced, as a read would have them deleted.
                Swap::Unreadable => self.set_anyway(key, value, ttl).await,
            }
        }
    }

    /// With memcached's compare-and-swap, as [`set_if_greater`](Self::set_if_greater);
    /// after 8 attempts that others' writes came between, or over a value past this
    /// client's limit, a plain [`set`](Self::set): a write stands.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would hold its arguments twice in every command's future"
    )]
    fn set_unless_within(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        after: &[u8],
        up_to: &[u8],
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        async move {
            let stands = |current: &[u8]| sorts_within(current, after, up_to);
            match self.swap_unless(key, &value, ttl, stands).await? {
                Swap::Stored => Ok(true),
                Swap::Stands => Ok(false),
                Swap::Contended | Swap::Unreadable => self.set_anyway(key, value, ttl).await,
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let (index, full) = self.locate(key).await?;
        let mut request = Vec::with_capacity(key.len() + 64);
        protocol::delete(&mut request, full);
        match self.one(index, request).await? {
            Reply::Done(_) | Reply::Missing => Ok(()),
            other => Err(unexpected(&other, "md")),
        }
    }

    /// Removes every key of this namespace: moves the generation on every server at
    /// once, or runs `flush_all` on each when
    /// [`allow_flush_all`](MemcachedConfig::allow_flush_all) is set.
    ///
    /// # Errors
    ///
    /// When a server could not be reached: its error, of its kind, with how many servers
    /// were cleared. The others are cleared all the same; this client moves the missed
    /// server's generation before using it again, so it never serves this client an
    /// entry from before the clear.
    async fn clear(&self) -> Result<(), Error> {
        let outcomes =
            futures::future::join_all((0..self.pools.len()).map(|index| self.clear_server(index)))
                .await;
        let mut cleared = 0;
        let mut first_failure = None;
        for (index, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(()) => cleared += 1,
                Err(error) => {
                    // It may still hold entries from before the clear.
                    self.generations[index].distrust();
                    if first_failure.is_none() {
                        first_failure = Some(error);
                    }
                }
            }
        }
        match first_failure {
            None => Ok(()),
            Some(error) => Err(Error::new(
                error.kind(),
                format!(
                    "clear reached {cleared} of {} memcached servers; \
                     the others are cleared before this client uses them again: {error}",
                    self.pools.len()
                ),
            )
            .with_source(error)),
        }
    }

    fn max_value_size(&self) -> Option<usize> {
        Some(self.config.max_value_size)
    }

    fn namespace(&self) -> &str {
        &self.config.namespace
    }

    /// The values of many keys: one pipelined request per server, servers in parallel.
    ///
    /// # Errors
    ///
    /// The first server that fails.
    /// One multi-get per server, all at once; the first failure fails the batch (see
    /// [`get_each`](Self::get_each) for an answer per key).
    ///
    /// # Errors
    ///
    /// As [`ByteStore::get`].
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, Error> {
        self.get_each(keys).await.into_iter().collect()
    }

    /// One multi-get per server, all at once: a server that fails fails its own keys
    /// only, the others' are answered.
    async fn get_each(&self, keys: &[&str]) -> Vec<Result<Option<Bytes>, Error>> {
        let mut values: Vec<Result<Option<Bytes>, Error>> = keys.iter().map(|_| Ok(None)).collect();
        let mut by_server: Vec<Vec<(usize, &str)>> =
            (0..self.pools.len()).map(|_| Vec::new()).collect();
        for (position, key) in keys.iter().enumerate() {
            match self.route(key.as_bytes()) {
                Some(server) => by_server[server].push((position, *key)),
                None => values[position] = Err(all_down()),
            }
        }
        let batches = by_server
            .iter()
            .enumerate()
            .filter(|(_, batch)| !batch.is_empty())
            .map(|(server, batch)| async move {
                let replies = async {
                    // Each server's keys carry that server's generation.
                    let generation = self.generation(server, false).await?;
                    let mut request = Vec::new();
                    for (_, key) in batch {
                        protocol::get(&mut request, self.full_key(generation, key)?);
                    }
                    protocol::noop(&mut request);
                    self.exchange(server, request, batch.len() + 1).await
                };
                (batch, replies.await)
            });
        for (batch, replies) in futures::future::join_all(batches).await {
            let replies = match replies {
                Ok(replies) => replies,
                Err(error) => {
                    for (position, _) in batch {
                        values[*position] = Err(error.clone());
                    }
                    continue;
                }
            };
            for ((position, _), reply) in batch.iter().zip(replies) {
                values[*position] = match reply {
                    // Another writer's value over the limit: absent for this batch, rather
                    // than failing every other key of it.
                    Reply::TooLarge(_) => Ok(None),
                    reply => reply.into_result().map(|reply| match reply {
                        Reply::Value(bytes) => Some(bytes),
                        _ => None,
                    }),
                };
            }
        }
        values
    }
}

impl fmt::Debug for MemcachedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedStore")
            .field("servers", &self.config.servers)
            .field("namespace", &self.config.namespace)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache boxes one command's future (inside its own) for every remote call:
    /// under glibc's 1,032 bytes the box comes from the thread's cache, over it from a
    /// shared arena behind a lock. The cache's box of a `GET` was 1,872 bytes, of a
    /// write 2,304, before the rare steps (connecting, asking the generation, a full
    /// queue, a plain set after a contended swap) were boxed and the `async fn`s that
    /// held their arguments twice went.
    #[tokio::test]
    async fn every_commands_future_stays_small_enough_for_the_allocators_thread_cache() {
        let store = MemcachedStore::new(MemcachedConfig::new(["127.0.0.1:1"])).unwrap();
        for (command, size) in stratacache::mock::command_future_sizes(&store) {
            assert!(size <= 800, "{command} holds {size} bytes");
        }
    }
}
