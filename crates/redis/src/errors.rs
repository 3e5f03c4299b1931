//! How Redis calls are bounded in time and how their errors become tier errors.

use std::future::Future;
use std::time::Duration;

use redis::RedisError;
use stratacache_tier::{Error, ErrorKind};

/// Runs a Redis call within `limit`.
pub(crate) async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, Error> {
    within(limit, async { call.await.map_err(map_error) }).await
}

/// The error of a command Redis did not answer within `limit`.
pub(crate) fn timed_out(limit: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("Redis did not answer within {limit:?}"),
    )
}

/// Runs a call within `limit`; running out is a [`Timeout`](ErrorKind::Timeout).
pub(crate) async fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(timed_out(limit)),
    }
}

/// Server errors that say "not now" rather than "never": a server loading its data
/// after a restart, a replica whose master is down, a demoted master after a failover,
/// a cluster mid-reconfiguration, a server refusing every write until it can save
/// again or reach its replicas.
const NOT_NOW: [&str; 7] = [
    "LOADING",
    "MASTERDOWN",
    "READONLY",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MISCONF",
    "NOREPLICAS",
];

/// Whether the connection `error` came on is of no further use: closed, broken, out
/// of step, or (`READONLY`) talking to a node that is no longer the master, so that a
/// new connection may reach the one that is. A server that only says "not now" keeps
/// its connection.
pub(crate) fn connection_unusable(error: &RedisError) -> bool {
    error.kind() != redis::ErrorKind::AuthenticationFailed
        && (error.is_connection_refusal()
            || error.is_io_error()
            || error.is_connection_dropped()
            || error.is_unrecoverable_error()
            || error.code() == Some("READONLY"))
}

/// A failed Redis call, by kind: timeouts; refused, dropped or unusable connections and
/// servers that cannot serve now (unavailable: transient); anything else, a wrong
/// password included.
pub(crate) fn map_error(error: RedisError) -> Error {
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else if connection_unusable(&error)
        || error.code().is_some_and(|code| NOT_NOW.contains(&code))
    {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Other
    };
    Error::from_source(kind, error)
}

/// A client that could not be built from the configuration.
pub(crate) fn config_error(error: RedisError) -> Error {
    Error::from_source(ErrorKind::Config, error)
}
