//! What `cargo test -p stratacache-redis` leaves out without its features, said in the
//! test output (as ignored tests) rather than passing silently.

#[cfg(not(feature = "cluster"))]
#[test]
#[ignore = "tests/cluster.rs (a real 3-master cluster, sharded backplane, resharding) needs --features cluster"]
fn cluster_tests_need_the_cluster_feature() {}

#[cfg(not(feature = "tls"))]
#[test]
#[ignore = "tests/tls.rs (a real TLS-only redis-server) needs --features tls"]
fn tls_tests_need_the_tls_feature() {}
