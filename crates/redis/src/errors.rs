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

/// A failed Redis call, by kind: timeouts, refused or dropped connections (unavailable),
/// anything else.
pub(crate) fn map_error(error: RedisError) -> Error {
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

/// A client that could not be built from the configuration.
pub(crate) fn config_error(error: RedisError) -> Error {
    Error::from_source(ErrorKind::Config, error)
}
