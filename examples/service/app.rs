use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use stratacache::{BoxError, Cache, FailSafe, Fallback, Remote};
use stratacache_redis::{RedisBackplane, RedisConfig, RedisStore};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{Config, User, UserFields, Users};

/// A running service: its address, its cache and its table, stopped by
/// [`stop`](Self::stop) (or when dropped).
pub struct Service {
    addr: SocketAddr,
    shared: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

/// What the handlers share.
#[derive(Clone)]
struct Shared {
    cache: Cache<u64, User>,
    users: Users,
    recorder: Arc<PrometheusRecorder>,
}

/// The read-through cache in front of `users`: memory L1; with Redis, an L2 every
/// instance shares and a backplane that drops other instances' replaced L1 copies.
/// Fail-safe serves a user past its TTL, for an hour, while the database fails; a
/// circuit breaker stops waiting on a Redis that is down.
fn users_cache(config: &Config, users: Users) -> Result<Cache<u64, User>, stratacache::Error> {
    let mut builder = Cache::builder()
        .name(config.cache_name.clone())
        .memory(|l1| l1.max_capacity(100_000))
        .ttl(config.l1_ttl.unwrap_or(config.ttl).min(config.ttl))
        .loader(users)
        .cache_not_found(Duration::from_secs(30))
        .stampede_protection(true)
        .fail_safe(FailSafe::new(Duration::from_secs(3_600)).throttle(Duration::from_secs(5)));
    if let Some(url) = &config.redis_url {
        let redis = RedisConfig::from_url(url.clone())
            .namespace(config.cache_name.clone())
            .command_timeout(Duration::from_millis(250));
        builder = builder
            .fallback(
                Fallback::remote(Remote::new(RedisStore::new(redis.clone())?))
                    .ttl(config.ttl)
                    // Down or stalled: skipped at once for a second, not waited on.
                    .circuit_breaker(3, Duration::from_secs(1)),
            )
            .backplane(RedisBackplane::new(redis)?);
    }
    builder.build()
}

impl Service {
    /// Connects to the database (creating the table), builds the cache and starts
    /// serving on `config.bind`.
    ///
    /// # Errors
    ///
    /// When the database cannot be reached, the cache cannot be built or the address
    /// cannot be bound.
    pub async fn start(config: Config) -> Result<Self, BoxError> {
        let users = Users::connect(&config.database_url).await?;
        let shared = Shared {
            cache: users_cache(&config, users.clone())?,
            users,
            recorder: Arc::new(PrometheusBuilder::new().build_recorder()),
        };
        let router = Router::new()
            .route("/users/{id}", get(read).put(write).delete(remove))
            .route("/metrics", get(metrics))
            .with_state(shared.clone());
        let listener = TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            addr,
            shared,
            shutdown: Some(shutdown),
            server,
        })
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its cache (to read its statistics).
    #[must_use]
    pub fn cache(&self) -> &Cache<u64, User> {
        &self.shared.cache
    }

    /// Its table (to count queries).
    #[must_use]
    pub fn users(&self) -> &Users {
        &self.shared.users
    }

    /// Stops accepting connections and waits for those open to finish.
    ///
    /// # Errors
    ///
    /// The server's.
    pub async fn stop(mut self) -> Result<(), BoxError> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        (&mut self.server).await??;
        Ok(())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A failure of the database or the cache: 503, with what failed.
fn unavailable(error: impl std::fmt::Display) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response()
}

/// `GET /users/{id}`: read through the cache.
async fn read(State(shared): State<Shared>, Path(id): Path<u64>) -> Response {
    match shared.cache.get(&id).await {
        Ok(Some(user)) => axum::Json(user).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => unavailable(error),
    }
}

/// `PUT /users/{id}`: write the table, then invalidate the cached user (on every
/// instance, through the backplane); the next read loads the row. Invalidating rather
/// than storing the new user keeps two concurrent PUTs from leaving the cache on the
/// one the table did not keep, and a read that loaded the old row while the write ran
/// is not stored over it (the cache's write tickets).
async fn write(
    State(shared): State<Shared>,
    Path(id): Path<u64>,
    axum::Json(fields): axum::Json<UserFields>,
) -> Response {
    if let Some(problem) = fields.problem() {
        return (StatusCode::UNPROCESSABLE_ENTITY, problem).into_response();
    }
    if i64::try_from(id).is_err() {
        return (StatusCode::UNPROCESSABLE_ENTITY, "id out of range").into_response();
    }
    let user = match shared.users.upsert(id, fields).await {
        Ok(user) => user,
        Err(error) => return unavailable(error),
    };
    // A remote tier that cannot take the invalidation now keeps it waiting and replays
    // it when it answers again (`CacheStats::recovery_queued`); L1 copies are dropped
    // meanwhile.
    if let Err(error) = shared.cache.invalidate(&id).await {
        tracing::warn!(user = id, %error, "cache invalidation failed");
    }
    axum::Json(user).into_response()
}

/// `DELETE /users/{id}`: delete the row, then every cached copy.
async fn remove(State(shared): State<Shared>, Path(id): Path<u64>) -> Response {
    let existed = match shared.users.delete(id).await {
        Ok(existed) => existed,
        Err(error) => return unavailable(error),
    };
    if let Err(error) = shared.cache.invalidate(&id).await {
        tracing::warn!(user = id, %error, "cache invalidation failed");
    }
    if existed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// `GET /metrics`: the cache's figures (`cache_requests` by tier and outcome, …) and
/// `db_queries`, in Prometheus' text format.
async fn metrics(State(shared): State<Shared>) -> Response {
    metrics::with_local_recorder(shared.recorder.as_ref(), || {
        shared.cache.publish_metrics();
        metrics::counter!("db.queries").absolute(shared.users.queries());
    });
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.recorder.handle().render(),
    )
        .into_response()
}
