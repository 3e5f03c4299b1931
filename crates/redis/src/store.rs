use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use redis::Value;
use stratacache_tier::{ByteStore, Error, ErrorKind};

use crate::config::RedisConfig;
use crate::connection::Connection;
use crate::key::{FullKey, keyed};

/// How many keys one `SCAN` step asks for while clearing.
const SCAN_BATCH: usize = 500;

/// The end of both conditional sets, once they decided to write: sets `KEYS[1]` to
/// `ARGV[1]`, expiring after `ARGV[2]` ms, or never when that is empty.
macro_rules! set_and_answer_stored {
    () => {
        r"if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"
    };
}

/// [`ByteStore::set_if_greater`] in one step on the server: sets `KEYS[1]` to `ARGV[1]`
/// (expiring after `ARGV[2]` ms, or never when that is empty) unless the bytes there
/// sort at or after it. Compared byte by byte: Lua's string comparison follows the
/// server's collation, which need not be the bytes' order. Equal values (two instances
/// filling one entry) are told apart by Lua's own equality first: a loop over every
/// byte of a large value would block the server.
const SET_IF_GREATER: &str = concat!(
    r"
local function sorts_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then return 0 end
if current and not sorts_before(current, ARGV[1]) then return 0 end
",
    set_and_answer_stored!()
);

/// [`ByteStore::set_unless_within`] in one step on the server: sets `KEYS[1]` to
/// `ARGV[1]` (expiring after `ARGV[2]` ms, or never when that is empty) unless the bytes
/// there sort after `ARGV[3]` and not after `ARGV[4]`, each over its own length, byte by
/// byte.
const SET_UNLESS_WITHIN: &str = concat!(
    r"
local function sorts_after(s, bound)
  local head = string.sub(s, 1, #bound)
  for i = 1, #head do
    local x, y = string.byte(head, i), string.byte(bound, i)
    if x ~= y then return x > y end
  end
  return false
end
local current = redis.call('GET', KEYS[1])
if current and sorts_after(current, ARGV[3]) and not sorts_after(current, ARGV[4]) then
  return 0
end
",
    set_and_answer_stored!()
);

/// One of this module's Lua scripts, sent by its SHA-1 (`EVALSHA`): a write carries 40
/// bytes of it, not the whole script. A server that does not know it (restarted,
/// `SCRIPT FLUSH`ed) answers `NOSCRIPT`, and is sent the script itself (`EVAL`), which
/// it keeps from then on.
struct Script {
    code: &'static str,
    /// redis-rs's own script of `code`, for the SHA-1 it works out.
    hashed: OnceLock<redis::Script>,
}

impl Script {
    const fn new(code: &'static str) -> Self {
        Self {
            code,
            hashed: OnceLock::new(),
        }
    }

    /// The script's SHA-1, in hex: what Redis names it by.
    fn sha(&self) -> &str {
        self.hashed
            .get_or_init(|| redis::Script::new(self.code))
            .get_hash()
    }
}

static SET_IF_GREATER_SCRIPT: Script = Script::new(SET_IF_GREATER);
static SET_UNLESS_WITHIN_SCRIPT: Script = Script::new(SET_UNLESS_WITHIN);

/// A Redis [`ByteStore`]: see the [crate docs](crate).
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    prefix: String,
    config: RedisConfig,
}

impl RedisStore {
    /// Runs `script`, one of this module's conditional sets, for `key`: `KEYS[1]`,
    /// `ARGV[1]` the value, `ARGV[2]` the TTL in ms (empty: none), then `more`. By its
    /// SHA-1, and by its text when the server does not know it. Whether it stored.
    ///
    /// The command is built before the future, which holds it and not the arguments as
    /// well (this future is part of every write's); the rare command by text is made
    /// from it.
    fn conditional_set<'a, const N: usize>(
        &'a self,
        script: &'static Script,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        more: [&[u8]; N],
    ) -> impl Future<Output = Result<bool, Error>> + Send + use<'a, N> {
        let mut by_sha = redis::cmd("EVALSHA");
        by_sha
            .arg(script.sha())
            .arg(1)
            .arg(self.key(key))
            .arg(value);
        match ttl {
            Some(ttl) => by_sha.arg(px(ttl)),
            None => by_sha.arg(""),
        };
        for argument in more {
            by_sha.arg(argument);
        }
        async move {
            let stored: i64 = match self.connection.query(&by_sha, self.limit()).await {
                Err(error)
                    if error
                        .source_as::<redis::RedisError>()
                        .is_some_and(|error| error.code() == Some("NOSCRIPT")) =>
                {
                    // Boxed, as it is rare (once per server and script): inline, a
                    // second command's future would be part of every conditional set's.
                    let mut by_text = redis::cmd("EVAL");
                    by_text.arg(script.code);
                    for argument in by_sha.args_iter().skip(2) {
                        if let redis::Arg::Simple(argument) = argument {
                            by_text.arg(argument);
                        }
                    }
                    Box::pin(self.connection.query(&by_text, self.limit())).await?
                }
                stored => stored?,
            };
            Ok(stored == 1)
        }
    }

    /// A tier for `config`. Nothing is connected yet: the first command connects, and
    /// a lost connection is re-established by itself.
    ///
    /// Call it within a tokio runtime: the connection's background task runs there.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a malformed URL, or when called outside a tokio runtime.
    pub fn new(config: RedisConfig) -> Result<Self, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::new(
                ErrorKind::Config,
                "RedisStore::new must be called within a tokio runtime",
            ));
        }
        Ok(Self {
            connection: Connection::new(&config)?,
            prefix: format!("{}:", config.namespace),
            config,
        })
    }

    fn key<'a>(&'a self, key: &'a str) -> FullKey<'a> {
        FullKey {
            prefix: &self.prefix,
            key,
        }
    }

    fn limit(&self) -> Duration {
        self.config.command_timeout
    }

    /// The time-to-live Redis holds for `key`, in milliseconds (`PTTL`): `None` when
    /// the key is missing or has no expiry.
    ///
    /// # Errors
    ///
    /// As [`ByteStore::get`].
    pub async fn server_ttl(&self, key: &str) -> Result<Option<Duration>, Error> {
        let millis: i64 = self
            .connection
            .query(&keyed("PTTL", self.key(key)), self.limit())
            .await?;
        Ok(u64::try_from(millis).ok().map(Duration::from_millis))
    }

    /// The `MATCH` pattern of this namespace, with glob characters escaped.
    fn pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.prefix.len() + 1);
        for character in self.prefix.chars() {
            if matches!(character, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(character);
        }
        pattern.push('*');
        pattern
    }

    /// Scans one node for this namespace and unlinks what it finds. Keys are unlinked one
    /// command each (pipelined) so that a cluster node never sees a cross-slot command.
    async fn clear_node(&self, connection: &Connection) -> Result<(), Error> {
        let pattern = self.pattern();
        let mut cursor = 0_u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH);
            let (next, keys): (u64, Vec<Vec<u8>>) = connection.query(&scan, self.limit()).await?;
            if !keys.is_empty() {
                let mut pipeline = redis::pipe();
                for key in keys {
                    pipeline.cmd("UNLINK").arg(key).ignore();
                }
                connection.pipeline::<()>(&pipeline, self.limit()).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// The primaries of the cluster, from `CLUSTER NODES`.
    async fn primaries(&self) -> Result<Vec<String>, Error> {
        let nodes: String = self
            .connection
            .query(&redis::cmd("CLUSTER").arg("NODES").clone(), self.limit())
            .await?;
        Ok(nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags = *fields.get(2)?;
                let live_primary = flags.split(',').any(|flag| flag == "master")
                    && !flags
                        .split(',')
                        .any(|flag| flag == "fail" || flag == "noaddr");
                let address = fields.get(1)?.split('@').next()?;
                let seed = self.config.nodes.first()?;
                live_primary.then(|| node_url(seed, address))
            })
            .collect())
    }
}

/// The URL of the node at `address` (`host:port` as `CLUSTER NODES` prints it, an IPv6
/// host unbracketed), with the scheme (TLS or not), the credentials and the parameters
/// (`?protocol=resp3`, `#insecure`) of `seed`.
fn node_url(seed: &str, address: &str) -> String {
    let (scheme, rest) = seed.split_once("://").unwrap_or(("redis", seed));
    let parameters = rest.find(['?', '#']).map_or("", |start| &rest[start..]);
    let authority = rest.split('/').next().unwrap_or_default();
    let userinfo = authority
        .rsplit_once('@')
        .map_or("", |(userinfo, _)| userinfo);
    let at = if userinfo.is_empty() { "" } else { "@" };
    let address = match address.rsplit_once(':') {
        Some((host, port)) if host.contains(':') && !host.starts_with('[') => {
            format!("[{host}]:{port}")
        }
        _ => address.to_owned(),
    };
    format!("{scheme}://{userinfo}{at}{address}/{parameters}")
}

fn set_command(command: &mut redis::Cmd, key: FullKey<'_>, value: &Bytes, ttl: Option<Duration>) {
    command.arg(key).arg(value.as_ref());
    if let Some(millis) = ttl.map(px) {
        command.arg("PX").arg(millis);
    }
}

/// `ttl` in the milliseconds of `PX`. Redis rejects `PX 0`, so a TTL under a millisecond
/// is rounded up to one; and a deadline past what it can hold (now plus the TTL over
/// `i64::MAX` ms), so a longer TTL is cut to about 146 million years.
pub(crate) fn px(ttl: Duration) -> u64 {
    const LONGEST: u64 = (i64::MAX as u64) / 2;
    u64::try_from(ttl.as_millis()).map_or(LONGEST, |millis| millis.clamp(1, LONGEST))
}

impl ByteStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, Error> {
        let value: Value = self
            .connection
            .query(&keyed("GET", self.key(key)), self.limit())
            .await?;
        match value {
            Value::Nil => Ok(None),
            Value::BulkString(bytes) => Ok(Some(Bytes::from(bytes))),
            other => Err(Error::new(
                ErrorKind::Codec,
                format!("GET answered {other:?}, not a string"),
            )),
        }
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), Error> {
        let mut command = redis::cmd("SET");
        set_command(&mut command, self.key(key), &value, ttl);
        self.connection.query::<()>(&command, self.limit()).await
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.connection
            .query::<()>(&keyed("UNLINK", self.key(key)), self.limit())
            .await
    }

    async fn clear(&self) -> Result<(), Error> {
        if !self.connection.is_cluster() {
            return self.clear_node(&self.connection).await;
        }
        for primary in self.primaries().await? {
            let node = Connection::new(&RedisConfig {
                nodes: vec![primary],
                cluster: false,
                ..self.config.clone()
            })?;
            self.clear_node(&node).await?;
        }
        Ok(())
    }

    fn max_value_size(&self) -> Option<usize> {
        // Redis's own limit for a string value.
        Some(512 * 1024 * 1024)
    }

    fn namespace(&self) -> &str {
        &self.config.namespace
    }

    /// The values of many keys, in one `MGET` round trip (concurrent `GET`s in a
    /// cluster, where one command may not cross slots).
    ///
    /// # Errors
    ///
    /// As [`ByteStore::get`].
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, Error> {
        if self.connection.is_cluster() {
            // A cluster pipeline must stay within one slot: ask concurrently instead.
            return futures::future::try_join_all(keys.iter().map(|key| self.get(key))).await;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One MGET: one command for the server to parse and one reply, where a
        // pipeline of GETs costs the server a command per key.
        let mut command = redis::cmd("MGET");
        for key in keys {
            command.arg(self.key(key));
        }
        let values: Vec<Option<Vec<u8>>> = self.connection.query(&command, self.limit()).await?;
        if values.len() != keys.len() {
            return Err(Error::new(
                ErrorKind::Codec,
                format!(
                    "MGET answered {} values for {} keys",
                    values.len(),
                    keys.len()
                ),
            ));
        }
        Ok(values
            .into_iter()
            .map(|value| value.map(Bytes::from))
            .collect())
    }

    fn set_if_greater(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        self.conditional_set(&SET_IF_GREATER_SCRIPT, key, &value, ttl, [])
    }

    fn set_unless_within(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        after: &[u8],
        up_to: &[u8],
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        self.conditional_set(&SET_UNLESS_WITHIN_SCRIPT, key, &value, ttl, [after, up_to])
    }

    /// Stores many values, in one pipelined round trip (concurrent commands in a
    /// cluster).
    ///
    /// # Errors
    ///
    /// As [`ByteStore::set`].
    async fn set_many(&self, items: &[(&str, Bytes, Option<Duration>)]) -> Result<(), Error> {
        if items.is_empty() {
            // redis-rs refuses an empty pipeline.
            return Ok(());
        }
        if self.connection.is_cluster() {
            let writes = items
                .iter()
                .map(|(key, value, ttl)| self.set(key, value.clone(), *ttl));
            return futures::future::try_join_all(writes).await.map(drop);
        }
        let mut pipeline = redis::pipe();
        for (key, value, ttl) in items {
            let mut command = redis::cmd("SET");
            set_command(&mut command, self.key(key), value, *ttl);
            pipeline.add_command(command).ignore();
        }
        self.connection
            .pipeline::<()>(&pipeline, self.limit())
            .await
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("namespace", &self.config.namespace)
            .field("cluster", &self.connection.is_cluster())
            .field("command_timeout", &self.config.command_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_nodes_url_keeps_the_seeds_scheme_and_credentials() {
        let seed = "rediss://app:p%40ss@10.0.0.1:7000/";
        assert_eq!(
            node_url(seed, "10.0.0.2:7001"),
            "rediss://app:p%40ss@10.0.0.2:7001/"
        );
        assert_eq!(node_url("redis://h:1", "::1:7002"), "redis://[::1]:7002/");
        assert_eq!(node_url("redis://h:1", "[::1]:7002"), "redis://[::1]:7002/");
        assert_eq!(node_url("redis://:pw@h:1/0", "h2:2"), "redis://:pw@h2:2/");
        assert_eq!(
            node_url("rediss://h:1/?protocol=resp3#insecure", "h2:2"),
            "rediss://h2:2/?protocol=resp3#insecure"
        );
    }

    /// The cache boxes one command's future (inside its own) for every remote call:
    /// under glibc's 1,032 bytes the box comes from the thread's cache, over it from a
    /// shared arena behind a lock. With the `cluster` feature on, a `GET` was 2,920
    /// bytes, on a single node too, while the cluster client's first connection was
    /// inline (a third more CPU per call at 128 tasks); a conditional set was 1,080.
    #[tokio::test]
    async fn every_commands_future_stays_small_enough_for_the_allocators_thread_cache() {
        let single = RedisStore::new(RedisConfig::from_url("redis://127.0.0.1:1")).unwrap();
        #[cfg(feature = "cluster")]
        let cluster = RedisStore::new(RedisConfig::cluster(["redis://127.0.0.1:1"])).unwrap();
        let stores = [
            ("single node", &single),
            #[cfg(feature = "cluster")]
            ("cluster", &cluster),
        ];
        for (name, store) in stores {
            for (command, size) in stratacache::mock::command_future_sizes(store) {
                assert!(size <= 800, "{name}: {command} holds {size} bytes");
            }
        }
    }
}
