//! A backplane over Redis pub/sub: one channel per cache namespace.

use std::fmt;

use bytes::Bytes;
use futures::StreamExt;
use std::time::Duration;

use redis::aio::{PubSubSink, PubSubStream};
use stratacache_tier::{Backplane, BoxFuture, Error, ErrorKind, Subscription};

use crate::config::RedisConfig;
use crate::connection::{Connection, open};
use crate::errors::{bounded, map_error};

/// A [`Backplane`] over Redis pub/sub, for the instances of one cache: they publish on,
/// and subscribe to, the channel `{namespace}:backplane`. Publishing shares the store's
/// kind of self-reconnecting connection and its command timeout; each subscription has a
/// connection of its own, which ends the subscription when it drops (the cache then
/// drops its L1 and subscribes again).
///
/// On Redis Cluster it uses sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`, Redis 7+): the
/// channel lives on the shard that owns its slot, so a backplane's traffic loads one
/// shard, not every node; a subscription ends when its shard's connection drops or the
/// slot moves.
///
/// ```no_run
/// use stratacache::{Cache, Fallback, Remote};
/// use stratacache_redis::{RedisBackplane, RedisConfig, RedisStore};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), stratacache::Error> {
/// let config = RedisConfig::from_url("redis://127.0.0.1:6379/").namespace("users");
/// let cache: Cache<u64, String> = Cache::builder()
///     .fallback(Fallback::remote(Remote::new(RedisStore::new(config.clone())?)))
///     .backplane(RedisBackplane::new(config)?)
///     .build()?;
/// # Ok(()) }
/// ```
pub struct RedisBackplane {
    config: RedisConfig,
    /// The single node's client, for subscriptions (`None` on a cluster).
    client: Option<redis::Client>,
    publisher: Connection,
    channel: String,
}

impl RedisBackplane {
    /// A backplane on the channel of `config`'s namespace.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for an invalid URL.
    pub fn new(config: RedisConfig) -> Result<Self, Error> {
        let url = config
            .nodes
            .first()
            .ok_or_else(|| Error::new(ErrorKind::Config, "no Redis URL"))?;
        let client = if config.cluster {
            None
        } else {
            Some(open(url, &config)?)
        };
        let publisher = Connection::new(&config)?;
        let channel = format!("{}:backplane", config.namespace);
        Ok(Self {
            config,
            client,
            publisher,
            channel,
        })
    }

    /// The channel it publishes on.
    #[must_use]
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl RedisBackplane {
    #[cfg(feature = "cluster")]
    async fn subscribe_to_shard(&self) -> Result<Box<dyn Subscription>, Error> {
        crate::sharded::subscribe(&self.config, &self.channel).await
    }

    #[cfg(not(feature = "cluster"))]
    async fn subscribe_to_shard(&self) -> Result<Box<dyn Subscription>, Error> {
        Err(Error::new(
            ErrorKind::Config,
            "a cluster configuration needs the `cluster` feature",
        ))
    }
}

impl fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl Backplane for RedisBackplane {
    fn publish(&self, message: Bytes) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let mut command = redis::cmd(if self.client.is_some() {
                "PUBLISH"
            } else {
                "SPUBLISH"
            });
            command.arg(&self.channel).arg(message.as_ref());
            self.publisher
                .query::<i64>(&command, self.config.command_timeout)
                .await
                .map(drop)
        })
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<Box<dyn Subscription>, Error>> {
        Box::pin(async move {
            let Some(client) = &self.client else {
                return self.subscribe_to_shard().await;
            };
            let subscribe = async {
                let mut pubsub = client.get_async_pubsub().await.map_err(map_error)?;
                pubsub.subscribe(&self.channel).await.map_err(map_error)?;
                Ok::<_, Error>(pubsub.split())
            };
            let limit = self.config.connect_timeout + self.config.command_timeout;
            match tokio::time::timeout(limit, subscribe).await {
                Ok(Ok((sink, messages))) => Ok(Box::new(RedisSubscription {
                    sink,
                    messages,
                    timeout: self.config.command_timeout,
                }) as Box<dyn Subscription>),
                Ok(Err(error)) => Err(error),
                Err(_) => Err(Error::new(
                    ErrorKind::Timeout,
                    format!("subscribing took longer than {limit:?}"),
                )),
            }
        })
    }
}

/// A subscription on a connection of its own: messages come off the stream, and a
/// `PING` on the same connection proves it still delivers.
struct RedisSubscription {
    sink: PubSubSink,
    messages: PubSubStream,
    timeout: Duration,
}

impl Subscription for RedisSubscription {
    fn next(&mut self) -> BoxFuture<'_, Option<Bytes>> {
        Box::pin(async move {
            let message = self.messages.next().await?;
            Some(Bytes::copy_from_slice(message.get_payload_bytes()))
        })
    }

    fn check(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            bounded(self.timeout, self.sink.ping::<redis::Value>())
                .await
                .map(drop)
        })
    }
}
