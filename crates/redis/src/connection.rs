//! The connection to Redis: one node's multiplexed connection (reopened when it breaks), or the
//! cluster client; every command bounded by the command timeout.

use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, FromRedisValue, Pipeline};
use stratacache_tier::{Error, ErrorKind};

#[cfg(feature = "cluster")]
use crate::cluster::Cluster;
use crate::config::RedisConfig;
use crate::errors::config_error;
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
        // Lazy: the first command connects, so a service starts while Redis is down.
        let node = SingleNode::new(
            client,
            config.connect_timeout,
            config.reconnect_after_timeouts,
        );
        Ok(Self::Single(Arc::new(node)))
    }

    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        command: &Cmd,
        limit: Duration,
    ) -> Result<T, Error> {
        match self {
            Self::Single(node) => {
                node.run(limit, |mut connection| async move {
                    command.query_async(&mut connection).await
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
                node.run(limit, |mut connection| async move {
                    pipeline.query_async(&mut connection).await
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
