//! Sharded pub/sub on Redis Cluster (feature `cluster`): `SSUBSCRIBE` on the shard that
//! owns the channel's slot, over RESP3.

use std::time::Duration;

use bytes::Bytes;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Msg, ProtocolVersion, PushInfo, PushKind};
use stratacache_tier::{BoxFuture, Error, Subscription};
use tokio::sync::mpsc;

use crate::config::RedisConfig;
use crate::errors::{bounded, config_error};

/// Subscribes to `channel` on the shard that owns it. Each subscription has a cluster
/// connection of its own: the client reports pushes (messages, and disconnections that
/// name no node) for all its connections at once.
pub(crate) async fn subscribe(
    config: &RedisConfig,
    channel: &str,
) -> Result<Box<dyn Subscription>, Error> {
    let (sender, pushes) = mpsc::unbounded_channel();
    let client = ClusterClient::builder(config.nodes.clone())
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.command_timeout)
        .use_protocol(ProtocolVersion::RESP3)
        .push_sender(sender)
        .build()
        .map_err(config_error)?;
    let limit = config.connect_timeout + config.command_timeout;
    let mut connection = bounded(limit, client.get_async_connection()).await?;
    bounded(config.command_timeout, connection.ssubscribe(channel)).await?;
    Ok(Box::new(ShardSubscription {
        connection,
        pushes,
        channel: channel.to_owned(),
        timeout: config.command_timeout,
    }))
}

struct ShardSubscription {
    connection: ClusterConnection,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    channel: String,
    timeout: Duration,
}

impl Subscription for ShardSubscription {
    fn next(&mut self) -> BoxFuture<'_, Option<Bytes>> {
        Box::pin(async move {
            loop {
                let push = self.pushes.recv().await?;
                match push.kind {
                    PushKind::SMessage => {
                        if let Some(message) = Msg::from_push_info(push) {
                            return Some(Bytes::copy_from_slice(message.get_payload_bytes()));
                        }
                    }
                    // The client subscribes again by itself after a reconnection, and a
                    // slot that moved unsubscribes: either way, messages may have been
                    // missed. The subscription ends (the cache drops L1 and subscribes
                    // again).
                    PushKind::Disconnection | PushKind::SUnsubscribe => return None,
                    _ => {}
                }
            }
        })
    }

    /// A command routed by the channel's slot: it crosses the connection that carries
    /// the subscription.
    fn check(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let mut command = redis::cmd("EXISTS");
            command.arg(&self.channel);
            bounded(
                self.timeout,
                command.query_async::<i64>(&mut self.connection),
            )
            .await
            .map(drop)
        })
    }
}
