//! The Redis Cluster client (feature `cluster`): made on first use, following MOVED and
//! ASK redirections; every call bounded by the command timeout.

use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline};
use stratacache_tier::Error;

use crate::config::RedisConfig;
use crate::errors::{bounded, config_error};

/// The cluster client and its connection, made on first use.
pub(crate) struct Cluster {
    connection: tokio::sync::OnceCell<ClusterConnection>,
    client: ClusterClient,
}

impl Cluster {
    pub(crate) fn new(config: &RedisConfig) -> Result<Self, Error> {
        // Each node's reply is bounded by the command timeout (a stalled node fails the
        // request, and redis-rs reconnects); the whole call, redirections and retry
        // included, by `bounded` below. redis-rs's own overall timeout would be a third
        // timer per call, bounding the same thing: off.
        let client = ClusterClient::builder(config.nodes.clone())
            .connection_timeout(config.connect_timeout)
            .response_timeout(config.command_timeout)
            .overall_response_timeout(None)
            .retries(1)
            .build()
            .map_err(config_error)?;
        Ok(Self {
            connection: tokio::sync::OnceCell::new(),
            client,
        })
    }

    async fn connection(&self, limit: Duration) -> Result<ClusterConnection, Error> {
        // Once made, taken without arming a timer.
        if let Some(connection) = self.connection.get() {
            return Ok(connection.clone());
        }
        // Boxed: connecting to a cluster is a 2 KiB future, and inline it would be part
        // of every command's future, on a single node too (the `Connection` enum's
        // future is as large as its largest arm).
        Box::pin(bounded(limit, async {
            self.connection
                .get_or_try_init(|| self.client.get_async_connection())
                .await
                .cloned()
        }))
        .await
    }

    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        command: &Cmd,
        limit: Duration,
    ) -> Result<T, Error> {
        let mut connection = self.connection(limit).await?;
        bounded(limit, command.query_async(&mut connection)).await
    }

    pub(crate) async fn pipeline<T: FromRedisValue>(
        &self,
        pipeline: &Pipeline,
        limit: Duration,
    ) -> Result<T, Error> {
        let mut connection = self.connection(limit).await?;
        bounded(limit, pipeline.query_async(&mut connection)).await
    }
}
