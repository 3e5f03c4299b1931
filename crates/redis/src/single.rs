//! The connection to one Redis node, replaced when commands keep timing out.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use stratacache_tier::{Error, ErrorKind};

/// A self-reconnecting multiplexed connection (`ConnectionManager`) that is itself
/// replaced after `reconnect_after` commands in a row time out.
///
/// `ConnectionManager` reconnects when its socket fails, not when replies stop coming:
/// on a half-open connection (the server's host vanished) or behind a stuck proxy, the
/// socket stays up and every command times out until the OS gives up on it, which takes
/// minutes. Timeouts in a row are the sign; a fresh connection is the cure, and the
/// old one is dropped once the commands still holding it end.
pub(crate) struct SingleNode {
    client: redis::Client,
    config: ConnectionManagerConfig,
    current: RwLock<Generation>,
    timeouts_in_a_row: AtomicU32,
    reconnect_after: u32,
}

/// The manager in use, and how many times it was replaced before.
#[derive(Clone)]
struct Generation {
    number: u64,
    manager: ConnectionManager,
}

impl SingleNode {
    pub(crate) fn new(
        client: redis::Client,
        config: ConnectionManagerConfig,
        reconnect_after: u32,
    ) -> Result<Self, Error> {
        let manager = lazy(&client, &config)?;
        Ok(Self {
            client,
            config,
            current: RwLock::new(Generation { number: 0, manager }),
            timeouts_in_a_row: AtomicU32::new(0),
            reconnect_after,
        })
    }

    /// Runs `call` on the current manager within `limit`, and replaces the manager when
    /// this is the `reconnect_after`-th timeout in a row.
    ///
    /// A call that finds the connection broken (the server restarted since the last
    /// command: the manager learns it only now, and reconnects) is made once more within
    /// what is left of `limit`: every command this crate sends is idempotent.
    pub(crate) async fn run<T, F, Fut>(&self, limit: Duration, call: F) -> Result<T, Error>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let started = std::time::Instant::now();
        // One handle per call (the retry takes another): every clone touches counters
        // that all callers share.
        let (number, manager) = {
            let current = self.current();
            (current.number, current.manager.clone())
        };
        let mut result = crate::errors::within(limit, call(manager)).await;
        if let Err(error) = &result
            && error.kind() == ErrorKind::Unavailable
            && let Some(left) = limit.checked_sub(started.elapsed())
            && left >= limit / 4
        {
            let manager = self.current().manager.clone();
            result = crate::errors::within(left, call(manager)).await;
        }
        match &result {
            // Timeouts of a connection already replaced say nothing of the new one.
            Err(error) if error.kind() == ErrorKind::Timeout => {
                if self.current().number == number {
                    let in_a_row = self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                    if self.reconnect_after > 0 && in_a_row >= self.reconnect_after {
                        self.replace(number);
                    }
                }
            }
            // Written only when it changes: a store on every call would bounce the
            // counter's cache line between cores.
            _ => {
                if self.timeouts_in_a_row.load(Ordering::Relaxed) != 0 {
                    self.timeouts_in_a_row.store(0, Ordering::Relaxed);
                }
            }
        }
        result
    }

    fn current(&self) -> std::sync::RwLockReadGuard<'_, Generation> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the manager of generation `number`, unless another command already did.
    fn replace(&self, number: u64) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.number != number {
            return;
        }
        // Lazy, so this never blocks: the next command connects.
        if let Ok(manager) = lazy(&self.client, &self.config) {
            *current = Generation {
                number: number + 1,
                manager,
            };
            self.timeouts_in_a_row.store(0, Ordering::Relaxed);
            tracing::warn!(
                target: "stratacache::redis",
                timeouts = self.reconnect_after,
                "Redis stopped answering on an open connection; reconnecting"
            );
        }
    }
}

fn lazy(
    client: &redis::Client,
    config: &ConnectionManagerConfig,
) -> Result<ConnectionManager, Error> {
    ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
        .map_err(crate::errors::config_error)
}
