//! The kit starts real servers that answer, and stops them.

use std::io::{Read, Write};
use std::net::TcpStream;

use stratacache_testkit::{MemcachedServer, RedisCluster, RedisServer};

fn ask(port: u16, request: &[u8]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.write_all(request)?;
    let mut reply = [0; 256];
    let read = stream.read(&mut reply)?;
    Ok(String::from_utf8_lossy(&reply[..read]).into_owned())
}

#[test]
fn redis_starts_stops_and_restarts() {
    let mut redis = RedisServer::start().unwrap();
    assert!(ask(redis.port(), b"PING\r\n").unwrap().starts_with("+PONG"));
    redis.stop();
    assert!(
        ask(redis.port(), b"PING\r\n").is_err(),
        "stopped means stopped"
    );
    redis.restart().unwrap();
    assert!(ask(redis.port(), b"PING\r\n").unwrap().starts_with("+PONG"));
}

#[test]
fn memcached_starts_and_stops() {
    let mut memcached = MemcachedServer::start().unwrap();
    assert!(
        ask(memcached.port(), b"version\r\n")
            .unwrap()
            .starts_with("VERSION")
    );
    memcached.stop();
    assert!(ask(memcached.port(), b"version\r\n").is_err());
}

#[test]
fn cluster_forms_with_three_masters() {
    let cluster = RedisCluster::start().unwrap();
    assert_eq!(cluster.urls().len(), 3);
    let info = cluster.nodes()[0].cli(&["cluster", "info"]).unwrap();
    assert!(info.contains("cluster_state:ok"), "{info}");
    assert!(info.contains("cluster_known_nodes:3"), "{info}");
}

/// Asks with a read timeout: a paused server accepts (the kernel does) but never answers.
fn ask_within(port: u16, request: &[u8], limit: std::time::Duration) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(limit))?;
    stream.write_all(request)?;
    let mut reply = [0; 256];
    let read = stream.read(&mut reply)?;
    Ok(String::from_utf8_lossy(&reply[..read]).into_owned())
}

#[test]
fn memcached_pauses_resumes_and_names_its_pid() {
    let mut memcached = MemcachedServer::start().unwrap();
    let pid = memcached.pid().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("memcached"), "the pid is the server's");
    memcached.pause().unwrap();
    let limit = std::time::Duration::from_millis(200);
    assert!(
        ask_within(memcached.port(), b"version\r\n", limit).is_err(),
        "paused: nothing answers"
    );
    memcached.resume().unwrap();
    assert!(
        ask_within(memcached.port(), b"version\r\n", limit * 10)
            .unwrap()
            .starts_with("VERSION")
    );
    memcached.stop();
    assert_eq!(memcached.pid(), None);
}
