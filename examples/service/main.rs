//! The reference service: `cargo run -p stratacache-examples --features service --bin service`.
//!
//! Users over HTTP (`GET`/`PUT`/`DELETE /users/{id}`, `GET /metrics`), stored in an
//! SQLite file (`DATABASE_URL`, `postgres://…` for Postgres) and read through
//! stratacache: memory L1, and Redis L2 with a backplane when `REDIS_URL` is set.
//! `BIND` chooses the address (default `127.0.0.1:3000`); `RUST_LOG` what is logged
//! (default `info`: the cache's warnings, a Redis that stops answering among them).
//!
//! ```text
//! curl -X PUT localhost:3000/users/1 -H 'content-type: application/json' \
//!      -d '{"name":"ada","email":"ada@example.com"}'
//! curl localhost:3000/users/1
//! curl localhost:3000/metrics
//! ```

use stratacache::BoxError;
use stratacache_examples::service::{Config, Service};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::from_env()?;
    let redis = config.redis_url.as_deref().unwrap_or("none (memory only)");
    let service = Service::start(config.clone()).await?;
    println!(
        "listening on {} (database {}, Redis {redis}); Ctrl-C stops",
        service.url(),
        config.database_url
    );
    tokio::signal::ctrl_c().await?;
    service.stop().await
}
