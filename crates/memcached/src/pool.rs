//! Pooled connections to one memcached server.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use stratacache_tier::{Error, ErrorKind};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::protocol::{self, Reply, io_error};

type Connection = BufReader<TcpStream>;

/// One server: idle connections, a bound on open ones, and its health.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) address: String,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
    connect_timeout: Duration,
    failures: AtomicU32,
    down_until: Mutex<Option<Instant>>,
}

impl Pool {
    pub(crate) fn new(address: String, max_connections: usize, connect_timeout: Duration) -> Self {
        Self {
            address,
            idle: Mutex::default(),
            permits: Semaphore::new(max_connections),
            connect_timeout,
            failures: AtomicU32::new(0),
            down_until: Mutex::default(),
        }
    }

    /// Sends `request` (one or more commands) and reads `replies` replies, on a pooled
    /// connection. A connection that failed is dropped, not reused.
    pub(crate) async fn exchange(
        &self,
        request: &[u8],
        replies: usize,
        max_value: usize,
    ) -> Result<Vec<Reply>, Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorKind::Unavailable, "connection pool closed"))?;
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut connection = match idle {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        connection
            .get_mut()
            .write_all(request)
            .await
            .map_err(io_error)?;
        let mut answers = Vec::with_capacity(replies);
        for _ in 0..replies {
            match protocol::read_reply(&mut connection, max_value).await {
                Ok(reply) => answers.push(reply),
                // A refused item leaves the stream in step; anything else may not.
                Err(error) if error.kind() == ErrorKind::Rejected && replies == 1 => {
                    self.idle
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(connection);
                    return Err(error);
                }
                Err(error) => return Err(error),
            }
        }
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(connection);
        Ok(answers)
    }

    async fn connect(&self) -> Result<Connection, Error> {
        match tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.address)).await {
            Ok(Ok(stream)) => {
                stream.set_nodelay(true).map_err(io_error)?;
                Ok(BufReader::new(stream))
            }
            Ok(Err(error)) => Err(Error::from_source(ErrorKind::Unavailable, error)),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "connecting to memcached at {} took over {:?}",
                    self.address, self.connect_timeout
                ),
            )),
        }
    }

    /// Drops idle connections (after a failure, they may all be broken).
    pub(crate) fn reset(&self) {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Counts one command's outcome; after `limit` failures in a row, marks the server
    /// down for `down_for`. Returns whether this call marked it down.
    pub(crate) fn record(&self, ok: bool, limit: Option<u32>, down_for: Duration) -> bool {
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            return false;
        }
        self.reset();
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if limit.is_some_and(|limit| failures >= limit) {
            *self
                .down_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(Instant::now() + down_for);
            self.failures.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }

    pub(crate) fn is_down(&self) -> bool {
        let mut down = self
            .down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *down {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                *down = None;
                false
            }
            None => false,
        }
    }
}
