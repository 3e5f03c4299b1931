//! `RedisStore` over TLS (`rediss://`) against a real TLS-only `redis-server`.
#![cfg(feature = "tls")]

use std::time::Duration;

use stratacache::{Cache, Fallback, Remote};
use stratacache_redis::{RedisConfig, RedisStore};
use stratacache_testkit::RedisTlsServer;

#[tokio::test]
async fn values_round_trip_over_tls_and_an_untrusted_server_is_refused() {
    let server = RedisTlsServer::start().unwrap();
    let config = RedisConfig::from_url(server.url())
        .namespace("tls")
        .command_timeout(Duration::from_secs(2));
    let trusted = RedisStore::new(config.clone().tls_root_certificate(server.ca_pem())).unwrap();
    let cache: Cache<u64, String> = Cache::builder()
        .strict(true)
        .fallback(Fallback::remote(Remote::new(trusted)))
        .build()
        .unwrap();
    cache.insert(1, "over tls".into()).await.unwrap();
    let reader: Cache<u64, String> = Cache::builder()
        .strict(true)
        .fallback(Fallback::remote(Remote::new(
            RedisStore::new(config.clone().tls_root_certificate(server.ca_pem())).unwrap(),
        )))
        .build()
        .unwrap();
    assert_eq!(reader.get(&1).await.unwrap().as_deref(), Some("over tls"));

    // Without the CA, the server's certificate is not trusted: an error, not a hang.
    let untrusted: Cache<u64, String> = Cache::builder()
        .strict(true)
        .fallback(Fallback::remote(Remote::new(
            RedisStore::new(config).unwrap(),
        )))
        .build()
        .unwrap();
    assert!(untrusted.get(&1).await.is_err());
}
