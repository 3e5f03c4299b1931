use std::time::Duration;

/// Which memcached servers to use, and how.
#[derive(Clone, Debug)]
#[must_use]
pub struct MemcachedConfig {
    pub(crate) servers: Vec<String>,
    pub(crate) namespace: String,
    pub(crate) max_connections: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) max_value_size: usize,
    pub(crate) failure_limit: Option<u32>,
    pub(crate) retry_down_after: Duration,
    pub(crate) generation_refresh: Duration,
    pub(crate) flush_all: bool,
}

impl MemcachedConfig {
    /// Servers as `host:port`, in any order (the ring is built from their names).
    pub fn new<I, S>(servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            servers: servers.into_iter().map(Into::into).collect(),
            namespace: "stratacache".into(),
            max_connections: 16,
            connect_timeout: Duration::from_millis(500),
            command_timeout: Duration::from_millis(250),
            max_value_size: 1024 * 1024 - 1024,
            failure_limit: None,
            retry_down_after: Duration::from_secs(5),
            generation_refresh: Duration::from_secs(5),
            flush_all: false,
        }
    }

    /// Parses `MEMCACHED_SERVERS`-style text: addresses separated by commas or spaces.
    pub fn from_list(list: &str) -> Self {
        Self::new(
            list.split([',', ' '])
                .map(str::trim)
                .filter(|server| !server.is_empty()),
        )
    }

    /// The key prefix of this cache (at most 32 printable characters).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The most connections open to one server at once (16 by default). Connections are
    /// multiplexed: concurrent calls share one, their requests pipelined and their
    /// replies read in order; the next one is opened only when each open one carries
    /// 32 calls in flight.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// How long to wait for a connection (500 ms by default).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long any one command may take, connecting included (250 ms by default).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The largest value sent (1 MiB less 1 KiB of item overhead by default, matching
    /// memcached's default `-I 1m`); larger ones are rejected before sending.
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// After this many failures in a row, a server is marked down for
    /// [`retry_down_after`](Self::retry_down_after) and its keys go to the next server
    /// on the ring. Off by default: a down server's keys are then errors (counted misses).
    ///
    /// Writes and deletes made meanwhile land on the next server, so when the server is
    /// used again its namespace generation is moved first: what it held before is never
    /// served again. The cost is that server's share of the cache.
    pub fn failure_limit(mut self, failures: u32) -> Self {
        self.failure_limit = Some(failures.max(1));
        self
    }

    /// How long a server marked down is skipped (5 s by default).
    pub fn retry_down_after(mut self, after: Duration) -> Self {
        self.retry_down_after = after;
        self
    }

    /// How often each server's namespace generation is re-read, so that a `clear` by
    /// another instance, or a generation moved by one that routed around the server,
    /// reaches this one (5 s by default).
    pub fn generation_refresh(mut self, every: Duration) -> Self {
        self.generation_refresh = every;
        self
    }

    /// Let `clear` run `flush_all` on every server (everything on them, not only this
    /// namespace, is dropped). Off by default: `clear` moves the namespace generation
    /// on every server.
    pub fn allow_flush_all(mut self, allow: bool) -> Self {
        self.flush_all = allow;
        self
    }
}
