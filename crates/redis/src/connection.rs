//! The connection to Redis: one node's self-reconnecting multiplexed connection, or the
//! cluster client; every command bounded by the command timeout.

use std::future::Future;
use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError};
use stratacache_tier::{Error, ErrorKind};

use crate::RedisConfig;
use crate::single::SingleNode;

#[derive(Clone)]
pub(crate) enum Connection {
    Single(std::sync::Arc<SingleNode>),
    #[cfg(feature = "cluster")]
    Cluster(std::sync::Arc<Cluster>),
}

/// The cluster client and its connection, made on first use.
#[cfg(feature = "cluster")]
pub(crate) struct Cluster {
    connection: tokio::sync::OnceCell<redis::cluster_async::ClusterConnection>,
    client: redis::cluster::ClusterClient,
}

impl Connection {
    pub(crate) fn new(config: &RedisConfig) -> Result<Self, Error> {
        #[cfg(feature = "cluster")]
        if config.cluster {
            let client = redis::cluster::ClusterClient::builder(config.nodes.clone())
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.command_timeout)
                .retries(1)
                .build()
                .map_err(config_error)?;
            return Ok(Self::Cluster(std::sync::Arc::new(Cluster {
                connection: tokio::sync::OnceCell::new(),
                client,
            })));
        }
        let url = config
            .nodes
            .first()
            .ok_or_else(|| Error::new(ErrorKind::Config, "no Redis URL"))?;
        let client = open(url, config)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        // Lazy: the first command connects, so a service starts while Redis is down.
        let node = SingleNode::new(client, manager_config, config.reconnect_after_timeouts)?;
        Ok(Self::Single(std::sync::Arc::new(node)))
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
            Self::Cluster(..) => {
                let mut connection = self.cluster(limit).await?;
                bounded(limit, command.query_async(&mut connection)).await
            }
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
            Self::Cluster(..) => {
                let mut connection = self.cluster(limit).await?;
                bounded(limit, pipeline.query_async(&mut connection)).await
            }
        }
    }

    #[cfg(feature = "cluster")]
    async fn cluster(
        &self,
        limit: Duration,
    ) -> Result<redis::cluster_async::ClusterConnection, Error> {
        let Self::Cluster(cluster) = self else {
            unreachable!("only called on a cluster")
        };
        bounded(limit, async {
            cluster
                .connection
                .get_or_try_init(|| cluster.client.get_async_connection())
                .await
                .cloned()
        })
        .await
    }

    pub(crate) fn is_cluster(&self) -> bool {
        !matches!(self, Self::Single(_))
    }
}

#[cfg(feature = "tls")]
fn open(url: &str, config: &RedisConfig) -> Result<redis::Client, Error> {
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
fn open(url: &str, _config: &RedisConfig) -> Result<redis::Client, Error> {
    redis::Client::open(url).map_err(config_error)
}

/// Runs a Redis call within `limit`.
#[cfg(feature = "cluster")]
async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, Error> {
    within(limit, async { call.await.map_err(map_error) }).await
}

/// Runs a call within `limit`; running out is a [`Timeout`](ErrorKind::Timeout).
pub(crate) async fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("Redis did not answer within {limit:?}"),
        )),
    }
}

fn map_error(error: RedisError) -> Error {
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_connection_refusal() || error.is_io_error() || error.is_connection_dropped()
    {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Other
    };
    Error::from_source(kind, error)
}

pub(crate) fn config_error(error: RedisError) -> Error {
    Error::from_source(ErrorKind::Config, error)
}
