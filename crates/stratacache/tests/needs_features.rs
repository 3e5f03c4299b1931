//! What `cargo test -p stratacache` leaves out without its features, said in the test
//! output (as ignored tests) rather than passing silently.

#[cfg(not(all(feature = "encryption", feature = "compression")))]
#[test]
#[ignore = "tests/security.rs and the encryption/compression unit tests need --features encryption,compression"]
fn security_tests_need_the_encryption_and_compression_features() {}

#[cfg(not(feature = "quick_cache"))]
#[test]
#[ignore = "tests/s3_fifo.rs (the S3-FIFO L1 engine) needs --features quick_cache"]
fn s3_fifo_tests_need_the_quick_cache_feature() {}

#[cfg(not(feature = "metrics"))]
#[test]
#[ignore = "tests/metrics.rs (the `metrics` facade bridge) needs --features metrics"]
fn metrics_tests_need_the_metrics_feature() {}

#[cfg(not(feature = "opentelemetry"))]
#[test]
#[ignore = "tests/opentelemetry.rs (the OpenTelemetry bridge) needs --features opentelemetry"]
fn opentelemetry_tests_need_the_opentelemetry_feature() {}
