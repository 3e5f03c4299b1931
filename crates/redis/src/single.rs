//! The connection to one Redis node: one multiplexed connection shared by every
//! command, opened on first use and replaced when it breaks or keeps timing out.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError};
use stratacache_tier::{Error, ErrorKind};

/// An attempt to connect, running on its own task, that every caller waiting for the
/// connection shares.
type Connecting = Shared<BoxFuture<'static, Result<MultiplexedConnection, Error>>>;

/// How long a failed attempt to connect answers for, from its start: the commands in
/// that time fail with its error rather than each dial a server that refused.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// redis-rs's multiplexed connection (every command pipelined on one socket), with
/// the reconnection this crate needs around it:
///
/// - **Lazy.** The connection opens on the first command, so a service starts while
///   Redis is down. One attempt at a time runs, on a task of its own, bounded by the
///   connect timeout whatever the commands waiting for it do (a command that gives up
///   does not cut it short); the commands that arrive while it runs share its outcome,
///   and so do those within [`RETRY_AFTER`] of its start when it failed; the first
///   command after that starts the next. (A server that is down, refusing connections
///   at once, is not dialled more than ten times a second however many commands come; a
///   circuit breaker on the tier, `Fallback::circuit_breaker`, spares it those too.)
/// - **Broken.** A command that finds the connection gone or unusable (the server
///   restarted or closed it, a reply out of step, `READONLY` from a master demoted by a
///   failover) replaces it; the command is made once more on the new one if a quarter
///   of its time is left. A server that only says "not now" (`LOADING`, `MASTERDOWN`,
///   `TRYAGAIN`, `CLUSTERDOWN`) keeps its connection: the command fails as
///   `Unavailable`.
/// - **Silent.** A connection whose commands time out `reconnect_after` times in a row
///   is replaced too: on a half-open connection (the server's host vanished) or behind
///   a stuck proxy the socket stays up, and would until the OS gives up on it, which
///   takes minutes.
///
/// The old connection is dropped once the commands still holding it end.
///
/// (redis-rs's `ConnectionManager` reconnects too, but only when the socket fails; at 128
/// concurrent tasks it reached 0.55–0.70× the bare multiplexed connection's throughput
/// in this crate's benches.)
pub(crate) struct SingleNode {
    client: redis::Client,
    config: AsyncConnectionConfig,
    connect_timeout: Duration,
    current: ArcSwap<Generation>,
    timeouts_in_a_row: AtomicU32,
    reconnect_after: u32,
}

/// The connection in use (once opened), the attempt to open it, and how many
/// generations were replaced before it.
struct Generation {
    number: u64,
    connection: OnceLock<MultiplexedConnection>,
    /// The last attempt to connect, and when it began.
    connecting: Mutex<Option<(Connecting, tokio::time::Instant)>>,
}

impl Generation {
    fn new(number: u64) -> Arc<Self> {
        Arc::new(Self {
            number,
            connection: OnceLock::new(),
            connecting: Mutex::new(None),
        })
    }
}

impl SingleNode {
    pub(crate) fn new(
        client: redis::Client,
        connect_timeout: Duration,
        reconnect_after: u32,
    ) -> Self {
        Self {
            client,
            // No response timeout of its own: every command is bounded once, by
            // `run`, so a call arms one timer, not two.
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(None),
            connect_timeout,
            current: ArcSwap::from(Generation::new(0)),
            timeouts_in_a_row: AtomicU32::new(0),
            reconnect_after,
        }
    }

    /// Runs `call` on the connection within `limit` (opening it if need be); see the
    /// type's docs for what a broken or silent connection does. Every command this
    /// crate sends is idempotent, so making one twice is safe.
    pub(crate) async fn run<T, F, Fut>(&self, limit: Duration, call: F) -> Result<T, Error>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        match self.attempt(deadline, limit, &call).await {
            // The connection was found broken and replaced: once more on a new one, if
            // enough time is left.
            Err((_, true)) if deadline - tokio::time::Instant::now() >= limit / 4 => self
                .attempt(deadline, limit, &call)
                .await
                .map_err(|(error, _)| error),
            outcome => outcome.map_err(|(error, _)| error),
        }
    }

    /// One try on the current connection, until `deadline` (`limit` is what the error
    /// says): its outcome decides whether the connection is replaced, and the error
    /// says whether it was. A failure to connect replaces nothing: the next command
    /// starts another attempt (see the type's docs).
    async fn attempt<T, F, Fut>(
        &self,
        deadline: tokio::time::Instant,
        limit: Duration,
        call: &F,
    ) -> Result<T, (Error, bool)>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        // The usual case touches no shared reference count: a guard, not an `Arc`.
        let (mut number, open) = {
            let generation = self.current.load();
            (generation.number, generation.connection.get().cloned())
        };
        let connection = match open {
            Some(connection) => connection,
            None => {
                let generation = self.current.load_full();
                number = generation.number;
                match tokio::time::timeout_at(deadline, self.connect(&generation)).await {
                    Ok(Ok(connection)) => connection,
                    Ok(Err(error)) => return Err((error, false)),
                    Err(_) => return Err((crate::errors::timed_out(limit), false)),
                }
            }
        };
        let result = match tokio::time::timeout_at(deadline, call(connection)).await {
            Ok(result) => result,
            Err(_) => {
                self.timed_out(number);
                return Err((crate::errors::timed_out(limit), false));
            }
        };
        match result {
            Ok(value) => {
                // Written only when it changes: a store on every call would bounce the
                // counter's cache line between cores.
                if self.timeouts_in_a_row.load(Ordering::Relaxed) != 0 {
                    self.timeouts_in_a_row.store(0, Ordering::Relaxed);
                }
                Ok(value)
            }
            Err(error) => {
                let replaced = crate::errors::connection_unusable(&error);
                if replaced {
                    self.replace(number);
                }
                Err((crate::errors::map_error(error), replaced))
            }
        }
    }

    /// Waits for `generation`'s connection: joins the attempt under way, or starts one if
    /// there is none or the last one failed.
    async fn connect(&self, generation: &Generation) -> Result<MultiplexedConnection, Error> {
        let attempt = {
            let mut connecting = generation
                .connecting
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Polled here rather than peeked: an attempt every waiter gave up on has
            // not been polled to its end, and must still count as failed.
            match connecting.take() {
                Some((attempt, began))
                    if !matches!(attempt.clone().now_or_never(), Some(Err(_)))
                        || began.elapsed() < RETRY_AFTER =>
                {
                    connecting.insert((attempt, began)).0.clone()
                }
                _ => {
                    let began = tokio::time::Instant::now();
                    connecting
                        .insert((self.start_connecting(), began))
                        .0
                        .clone()
                }
            }
        };
        let connection = attempt.await?;
        let _ = generation.connection.set(connection.clone());
        Ok(connection)
    }

    /// Starts connecting on a task of its own, bounded by the connect timeout.
    fn start_connecting(&self) -> Connecting {
        let (client, config, limit) = (
            self.client.clone(),
            self.config.clone(),
            self.connect_timeout,
        );
        let task = tokio::spawn(async move {
            match tokio::time::timeout(
                limit,
                client.get_multiplexed_async_connection_with_config(&config),
            )
            .await
            {
                Ok(connected) => connected.map_err(crate::errors::map_error),
                Err(_) => Err(Error::new(
                    ErrorKind::Timeout,
                    format!("connecting to Redis took over {limit:?}"),
                )),
            }
        });
        async move {
            task.await.unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Unavailable,
                    "the attempt to connect to Redis was cancelled",
                ))
            })
        }
        .boxed()
        .shared()
    }

    /// Counts a command that timed out on generation `number`: the `reconnect_after`-th
    /// in a row replaces it. Timeouts of a connection already replaced say nothing of
    /// the new one.
    fn timed_out(&self, number: u64) {
        if self.current.load().number != number {
            return;
        }
        let in_a_row = self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if self.reconnect_after > 0 && in_a_row >= self.reconnect_after {
            tracing::warn!(
                target: "stratacache::redis",
                timeouts = self.reconnect_after,
                "Redis stopped answering on an open connection; reconnecting"
            );
            self.replace(number);
        }
    }

    /// Replaces generation `number` with a fresh, unopened one, unless it was already.
    fn replace(&self, number: u64) {
        let current = self.current.load_full();
        if current.number != number {
            return;
        }
        let previous = self
            .current
            .compare_and_swap(&current, Generation::new(number + 1));
        if Arc::ptr_eq(&previous, &current) {
            self.timeouts_in_a_row.store(0, Ordering::Relaxed);
        }
    }
}
