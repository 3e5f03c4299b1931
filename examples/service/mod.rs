//! The reference service: users over HTTP (axum), stored in SQL (sqlx: an SQLite file by
//! default, Postgres when `DATABASE_URL` says so), read through stratacache (memory L1;
//! Redis L2 and a backplane when `REDIS_URL` is set), figures at `GET /metrics` in
//! Prometheus' text format.
//!
//! Run it with `cargo run -p stratacache-examples --features service --bin service`;
//! [`Service::start`] runs it inside a test or another program.

mod app;
mod config;
mod scratch;
mod users;

pub use app::Service;
pub use config::Config;
pub use scratch::ScratchDatabase;
pub use users::{User, UserFields, Users};
