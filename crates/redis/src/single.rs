//! The connection to one Redis node: one multiplexed connection shared by every
//! command, opened on first use and replaced when it breaks or keeps timing out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use stratacache_tier::{Error, ErrorKind};
use tokio::sync::OnceCell;

/// redis-rs's multiplexed connection (every command pipelined on one socket), with
/// the reconnection this crate needs around it:
///
/// - **Lazy.** The connection opens on the first command, so a service starts while
///   Redis is down; a failed attempt is tried again by the next command.
/// - **Broken.** A command that finds the connection gone (the server restarted or
///   closed it) replaces it; the command is made once more on the new one within what
///   is left of its time.
/// - **Silent.** A connection whose commands time out `reconnect_after` times in a row
///   is replaced too: on a half-open connection (the server's host vanished) or behind
///   a stuck proxy the socket stays up, and would until the OS gives up on it, which
///   takes minutes.
///
/// The old connection is dropped once the commands still holding it end.
///
/// (redis-rs's `ConnectionManager` reconnects too, but only when the socket fails, and
/// costs every command more than the connection it wraps: measured at 128 concurrent
/// tasks, 0.55× the throughput of the bare multiplexed connection.)
pub(crate) struct SingleNode {
    client: redis::Client,
    config: AsyncConnectionConfig,
    current: ArcSwap<Generation>,
    timeouts_in_a_row: AtomicU32,
    reconnect_after: u32,
}

/// The connection in use (once opened), and how many were replaced before it.
struct Generation {
    number: u64,
    connection: OnceCell<MultiplexedConnection>,
}

impl Generation {
    fn new(number: u64) -> Arc<Self> {
        Arc::new(Self {
            number,
            connection: OnceCell::new(),
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
        Fut: Future<Output = Result<T, Error>>,
    {
        let started = std::time::Instant::now();
        let mut result = self.attempt(limit, &call).await;
        if let Err(error) = &result
            && error.kind() == ErrorKind::Unavailable
            && let Some(left) = limit.checked_sub(started.elapsed())
            && left >= limit / 4
        {
            result = self.attempt(left, &call).await;
        }
        result
    }

    /// One try on the current connection within `limit`: its outcome decides whether
    /// the connection is replaced.
    async fn attempt<T, F, Fut>(&self, limit: Duration, call: &F) -> Result<T, Error>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let generation = self.current.load_full();
        let result = crate::errors::within(limit, async {
            call(self.connection(&generation).await?).await
        })
        .await;
        match &result {
            Ok(_) => {
                // Written only when it changes: a store on every call would bounce the
                // counter's cache line between cores.
                if self.timeouts_in_a_row.load(Ordering::Relaxed) != 0 {
                    self.timeouts_in_a_row.store(0, Ordering::Relaxed);
                }
            }
            Err(error) if error.kind() == ErrorKind::Unavailable => {
                self.replace(&generation);
            }
            Err(error) if error.kind() == ErrorKind::Timeout => self.timed_out(&generation),
            Err(_) => {}
        }
        result
    }

    /// The generation's connection, opened by the first caller that needs it (the
    /// others wait for that attempt rather than open their own).
    async fn connection(&self, generation: &Generation) -> Result<MultiplexedConnection, Error> {
        generation
            .connection
            .get_or_try_init(|| async {
                self.client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await
                    .map_err(crate::errors::map_error)
            })
            .await
            .cloned()
    }

    /// Counts a command that timed out on `generation`: the `reconnect_after`-th in a
    /// row replaces it. Timeouts of a connection already replaced say nothing of the
    /// new one.
    fn timed_out(&self, generation: &Arc<Generation>) {
        if self.current.load().number != generation.number {
            return;
        }
        let in_a_row = self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if self.reconnect_after > 0 && in_a_row >= self.reconnect_after {
            tracing::warn!(
                target: "stratacache::redis",
                timeouts = self.reconnect_after,
                "Redis stopped answering on an open connection; reconnecting"
            );
            self.replace(generation);
        }
    }

    /// Replaces `generation` with a fresh, unopened one, unless it was already.
    fn replace(&self, generation: &Arc<Generation>) {
        let fresh = Generation::new(generation.number + 1);
        let previous = self.current.compare_and_swap(generation, fresh);
        if Arc::ptr_eq(&previous, generation) {
            self.timeouts_in_a_row.store(0, Ordering::Relaxed);
        }
    }
}
