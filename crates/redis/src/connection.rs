//! The connection to Redis: one node's self-reconnecting multiplexed connection, or the
//! cluster client; every command bounded by the command timeout.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use redis::{Cmd, FromRedisValue, Pipeline};
use stratacache_tier::{Error, ErrorKind};

#[cfg(feature = "cluster")]
use crate::cluster::Cluster;
use crate::config::RedisConfig;
use crate::errors::{config_error, map_error};
use crate::single::SingleNode;

#[derive(Clone)]
pub(crate) enum Connection {
    Single(Arc<SingleNode>),
    #[cfg(feature = "cluster")]
    Cluster(Arc<Cluster>),
}

impl Connection {
    pub(crate) fn new(config: &RedisConfig) -> Result<Self, Error> {
        #[cfg(feature = "cluster")]
        if config.cluster {
            return Ok(Self::Cluster(Arc::new(Cluster::new(config)?)));
        }
        let url = config
            .nodes
            .first()
            .ok_or_else(|| Error::new(ErrorKind::Config, "no Redis URL"))?;
        let client = open(url, config)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            // No response timeout of its own: every command is bounded once, by
            // `SingleNode::run`, so a call arms one timer, not two.
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        // Lazy: the first command connects, so a service starts while Redis is down.
        let node = SingleNode::new(client, manager_config, config.reconnect_after_timeouts)?;
        Ok(Self::Single(Arc::new(node)))
    }

    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        command: &Cmd,
        limit: Duration,
    ) -> Result<T, Error> {
        match self {
            Self::Single(node) => {
                node.run(limit, |mut manager| async move {
                    command.query_async(&mut manager).await.map_err(map_error)
                })
                .await
            }
            #[cfg(feature = "cluster")]
            Self::Cluster(cluster) => cluster.query(command, limit).await,
        }
    }

    pub(crate) async fn pipeline<T: FromRedisValue>(
        &self,
        pipeline: &Pipeline,
        limit: Duration,
    ) -> Result<T, Error> {
        match self {
            Self::Single(node) => {
                node.run(limit, |mut manager| async move {
                    pipeline.query_async(&mut manager).await.map_err(map_error)
                })
                .await
            }
            #[cfg(feature = "cluster")]
            Self::Cluster(cluster) => cluster.pipeline(pipeline, limit).await,
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        !matches!(self, Self::Single(_))
    }
}

#[cfg(feature = "tls")]
pub(crate) fn open(url: &str, config: &RedisConfig) -> Result<redis::Client, Error> {
    match &config.root_certificate {
        Some(root) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root.clone()),
            },
        ),
        None => redis::Client::open(url),
    }
    .map_err(config_error)
}

#[cfg(not(feature = "tls"))]
pub(crate) fn open(url: &str, _config: &RedisConfig) -> Result<redis::Client, Error> {
    redis::Client::open(url).map_err(config_error)
}
