use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The longest timeout kept: longer ones (`Duration::MAX`, say) would overflow the
/// deadlines computed from them.
const LONGEST_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Where and how to reach Redis.
#[derive(Clone, Debug)]
#[must_use]
pub struct RedisConfig {
    pub(crate) nodes: Vec<String>,
    pub(crate) cluster: bool,
    pub(crate) namespace: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) reconnect_after_timeouts: u32,
    #[cfg(feature = "tls")]
    pub(crate) root_certificate: Option<Vec<u8>>,
}

impl RedisConfig {
    /// A single node at `url` (`redis://[user:password@]host:port/db`).
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            nodes: vec![url.into()],
            cluster: false,
            namespace: "stratacache".into(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(250),
            reconnect_after_timeouts: 3,
            #[cfg(feature = "tls")]
            root_certificate: None,
        }
    }

    /// A single node at `host:port` (database 0; see [`database`](Self::database)).
    pub fn new(host: &str, port: u16) -> Self {
        Self::from_url(format!("redis://{host}:{port}/"))
    }

    /// Redis Cluster, discovered from these seed nodes.
    #[cfg(feature = "cluster")]
    pub fn cluster<I, S>(seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            nodes: seeds.into_iter().map(Into::into).collect(),
            cluster: true,
            ..Self::from_url("")
        }
    }

    /// Authenticates as `username` with `password` (ACL), or with `password` only when
    /// `username` is empty. Any characters may appear in either: they are
    /// percent-encoded into the URL (a `/`, `#`, `?`, `@` or `%` in a password would
    /// otherwise end or change it).
    pub fn credentials(mut self, username: &str, password: &str) -> Self {
        let (username, password) = (userinfo(username), userinfo(password));
        self.nodes = self
            .nodes
            .iter()
            .map(|url| match url.split_once("://") {
                Some((scheme, rest)) => format!("{scheme}://{username}:{password}@{rest}"),
                None => url.clone(),
            })
            .collect();
        self
    }

    /// The logical database index (single node only).
    pub fn database(mut self, database: u32) -> Self {
        self.nodes = self
            .nodes
            .iter()
            .map(|url| {
                let base = url.trim_end_matches('/');
                let base = match base.rsplit_once('/') {
                    Some((head, db)) if db.parse::<u32>().is_ok() && head.contains("://") => head,
                    _ => base,
                };
                format!("{base}/{database}")
            })
            .collect();
        self
    }

    /// The prefix of every key (`namespace:`): `clear` removes the keys under it. Give
    /// each cache its own, and let no namespace extend another's prefix: the keys of
    /// `users:v2` start with `users:`, so clearing `users` removes them too (use
    /// `users-v2`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long to wait for a connection (1 s by default; at most a day).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.min(LONGEST_TIMEOUT);
        self
    }

    /// How long any one command may take, reconnection included (250 ms by default; at
    /// most a day).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout.min(LONGEST_TIMEOUT);
        self
    }

    /// After this many commands in a row time out, drop a single node's connection and
    /// make a new one (3 by default; 0: never).
    ///
    /// The connection already reconnects when its socket fails, but not when replies
    /// stop coming on a socket that stays up (the server's host vanished, a proxy got
    /// stuck): then every command times out until the OS gives up on the socket, which
    /// takes minutes. The cluster client manages its own connections.
    pub fn reconnect_after_timeouts(mut self, timeouts: u32) -> Self {
        self.reconnect_after_timeouts = timeouts;
        self
    }

    /// Trust this CA certificate (PEM) for `rediss://` connections instead of the
    /// system's roots: for servers with a private CA.
    #[cfg(feature = "tls")]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// The namespace.
    #[must_use]
    pub fn namespace_name(&self) -> &str {
        &self.namespace
    }
}

/// `text` as it may stand in a URL's user information: every byte but the unreserved
/// ones (letters, digits, `-._~`) percent-encoded.
fn userinfo(text: &str) -> String {
    const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(text, RESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_with_any_characters_survive_the_url() {
        let password = "p@ss/w#rd?%41:é";
        let config = RedisConfig::new("h", 1).credentials("us:er", password);
        let info = redis::IntoConnectionInfo::into_connection_info(config.nodes[0].as_str())
            .expect("a valid URL");
        let redis = info.redis_settings();
        assert_eq!(redis.username(), Some("us:er"));
        assert_eq!(redis.password(), Some(password));
        assert_eq!(info.addr().to_string(), "h:1");
    }

    #[test]
    fn credentials_and_database_shape_the_url() {
        let config = RedisConfig::new("10.0.0.1", 6380)
            .credentials("app", "s3cret")
            .database(4);
        assert_eq!(config.nodes, ["redis://app:s3cret@10.0.0.1:6380/4"]);
        let again = RedisConfig::from_url("redis://h:1/2").database(5);
        assert_eq!(again.nodes, ["redis://h:1/5"]);
    }
}
