use std::net::SocketAddr;
use std::time::Duration;

/// How a [`Service`](super::Service) runs: where it listens, which database and which
/// Redis it uses. [`Config::from_env`] reads it the way the binary does.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen; port 0 takes a free one ([`Service::addr`](super::Service::addr)
    /// tells which).
    pub bind: SocketAddr,
    /// `sqlite://PATH?mode=rwc` (the file is created) or `postgres://…`.
    pub database_url: String,
    /// Redis as L2 and backplane; none: memory only.
    pub redis_url: Option<String>,
    /// The cache's name in figures and the Redis namespace its keys live in.
    pub cache_name: String,
    /// How long a user stays cached (the backplane drops replaced copies sooner).
    pub ttl: Duration,
    /// How long L1 keeps a copy, when shorter than `ttl`: with Redis, an instance then
    /// reads Redis again rather than the database.
    pub l1_ttl: Option<Duration>,
}

impl Config {
    /// `BIND` (default `127.0.0.1:3000`), `DATABASE_URL` (default an SQLite file,
    /// `stratacache-service.db`, in the working directory), `REDIS_URL` (unset: no
    /// Redis).
    ///
    /// # Errors
    ///
    /// When `BIND` is not a socket address.
    pub fn from_env() -> Result<Self, std::net::AddrParseError> {
        let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
        Ok(Self {
            bind: bind.parse()?,
            database_url: std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "sqlite://stratacache-service.db?mode=rwc".into()),
            redis_url: std::env::var("REDIS_URL")
                .ok()
                .filter(|url| !url.is_empty()),
            ..Self::new("")
        })
    }

    /// On a free loopback port, over `database_url`, without Redis.
    #[must_use]
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            redis_url: None,
            cache_name: "users".into(),
            ttl: Duration::from_secs(600),
            l1_ttl: None,
        }
    }

    /// With Redis at `url` as L2 and backplane.
    #[must_use]
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }
}
