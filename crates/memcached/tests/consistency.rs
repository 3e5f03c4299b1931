//! What `MemcachedStore` serves around outages, against real `memcached` processes from
//! the test kit: a server it routed around, or one that missed a `clear`, never serves
//! it an entry from before; losing one server never loses the others' entries.
//!
//! A "hung" server is one behind a `TcpProxy` whose open connections were stalled: the
//! tier's pooled connection stops answering (a command times out), while the new
//! connection it makes later is answered again, like a server that resumes.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use stratacache::{ByteStore, ErrorKind};
use stratacache_memcached::{MemcachedConfig, MemcachedStore};
use stratacache_testkit::{MemcachedServer, TcpProxy};

const TIMEOUT: Duration = Duration::from_millis(200);
/// How long a failed server is routed around. Some tests wait it out (the tier measures
/// it with the real clock), so it is short, yet far longer than the few commands they
/// send while the server is routed around.
const DOWN_FOR: Duration = Duration::from_secs(1);
const NAMESPACE: &str = "outage";

/// Two memcached servers, each behind a proxy that can make it hang.
struct Hangable {
    servers: Vec<MemcachedServer>,
    proxies: Vec<TcpProxy>,
}

impl Hangable {
    fn start() -> Self {
        let servers: Vec<_> = (0..2).map(|_| MemcachedServer::start().unwrap()).collect();
        let proxies = servers
            .iter()
            .map(|server| TcpProxy::start(([127, 0, 0, 1], server.port()).into()).unwrap())
            .collect();
        Self { servers, proxies }
    }

    /// The address the tier knows server `index` by: its proxy's.
    fn address(&self, index: usize) -> String {
        format!("127.0.0.1:{}", self.proxies[index].port())
    }

    /// Both servers, through their proxies, with short timeouts and no failure limit.
    fn config(&self) -> MemcachedConfig {
        MemcachedConfig::new([self.address(0), self.address(1)])
            .namespace(NAMESPACE)
            // One multiplexed connection per server: the one `hang` stalls.
            .max_connections(1)
            .command_timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
    }

    /// As [`config`](Self::config), routing around a server after one failure.
    fn rerouting(&self) -> MemcachedConfig {
        self.config().failure_limit(1).retry_down_after(DOWN_FOR)
    }

    /// A key that `tier` places on server `index`.
    fn key_on(&self, tier: &MemcachedStore, index: usize) -> String {
        let address = self.address(index);
        (0..1_000)
            .map(|i| format!("k{i}"))
            .find(|key| tier.server_for(key) == Some(address.as_str()))
            .unwrap()
    }

    /// Makes server `index` hang on every connection open to it now.
    fn hang(&self, index: usize) {
        self.proxies[index].stall_open_connections();
    }

    /// The namespace generation server `index` holds, read past its proxy.
    fn generation_on(&self, index: usize) -> u64 {
        let mut stream = std::net::TcpStream::connect(self.servers[index].address()).unwrap();
        stream
            .write_all(format!("mg {NAMESPACE}:generation v\r\n").as_bytes())
            .unwrap();
        let mut text = String::new();
        let mut buffer = [0; 256];
        while !text.starts_with("EN\r\n") && text.matches("\r\n").count() < 2 {
            let read = stream.read(&mut buffer).unwrap();
            assert!(read > 0, "memcached closed the connection after {text:?}");
            text.push_str(&String::from_utf8_lossy(&buffer[..read]));
        }
        text.lines()
            .nth(1)
            .and_then(|line| line.trim().parse().ok())
            .unwrap_or_else(|| panic!("no generation in {text:?}"))
    }
}

/// Waits until `tier` places `key` on `address` again: the down period is real time.
async fn wait_until_routed_to(tier: &MemcachedStore, key: &str, address: &str) {
    let started = Instant::now();
    while tier.server_for(key) != Some(address) {
        assert!(
            started.elapsed() < 20 * DOWN_FOR,
            "still routed around after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(DOWN_FOR / 10).await;
    }
}

/// Makes server `index` hang and fails one command on `key` there, so that `tier`
/// routes around it.
async fn hang_until_routed_around(rig: &Hangable, tier: &MemcachedStore, key: &str, index: usize) {
    rig.hang(index);
    let error = tier.get(key).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert_eq!(
        tier.server_for(key),
        Some(rig.address(1 - index).as_str()),
        "routed around"
    );
}

#[tokio::test]
async fn a_value_deleted_while_its_server_hung_does_not_come_back_when_it_resumes() {
    let rig = Hangable::start();
    let tier = MemcachedStore::new(rig.rerouting()).unwrap();
    let key = rig.key_on(&tier, 0);
    tier.set(&key, Bytes::from_static(b"v1"), None)
        .await
        .unwrap();

    hang_until_routed_around(&rig, &tier, &key, 0).await;
    tier.delete(&key).await.unwrap();
    assert_eq!(tier.get(&key).await.unwrap(), None);
    assert_eq!(
        tier.server_for(&key),
        Some(rig.address(1).as_str()),
        "the delete went to the other server"
    );

    wait_until_routed_to(&tier, &key, &rig.address(0)).await;
    assert_eq!(
        tier.get(&key).await.unwrap(),
        None,
        "the resumed server still holds v1; it must not be served"
    );
    let other = MemcachedStore::new(rig.rerouting()).unwrap();
    assert_eq!(
        other.get(&key).await.unwrap(),
        None,
        "nor to another client, which reads the moved generation"
    );
}

#[tokio::test]
async fn a_value_rewritten_while_its_server_hung_is_never_read_as_the_old_one() {
    let rig = Hangable::start();
    let tier = MemcachedStore::new(rig.rerouting()).unwrap();
    let key = rig.key_on(&tier, 0);
    tier.set(&key, Bytes::from_static(b"v1"), None)
        .await
        .unwrap();

    hang_until_routed_around(&rig, &tier, &key, 0).await;
    tier.set(&key, Bytes::from_static(b"v2"), None)
        .await
        .unwrap();
    assert_eq!(tier.get(&key).await.unwrap().as_deref(), Some(&b"v2"[..]));
    assert_eq!(
        tier.server_for(&key),
        Some(rig.address(1).as_str()),
        "v2 went to the other server"
    );

    wait_until_routed_to(&tier, &key, &rig.address(0)).await;
    // v2 stays on the other server, where the key no longer goes: a miss, never v1.
    assert_eq!(tier.get(&key).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_servers_generation_moves_once_however_many_requests_arrive_at_once() {
    let rig = Hangable::start();
    let tier = Arc::new(MemcachedStore::new(rig.rerouting()).unwrap());
    let key = rig.key_on(&tier, 0);
    tier.set(&key, Bytes::from_static(b"v1"), None)
        .await
        .unwrap();
    let before = rig.generation_on(0);

    hang_until_routed_around(&rig, &tier, &key, 0).await;
    wait_until_routed_to(&tier, &key, &rig.address(0)).await;
    let reads: Vec<_> = (0..50)
        .map(|_| {
            let (tier, key) = (Arc::clone(&tier), key.clone());
            tokio::spawn(async move { tier.get(&key).await })
        })
        .collect();
    let all = async {
        for read in reads {
            assert_eq!(read.await.unwrap().unwrap(), None);
        }
    };
    tokio::time::timeout(10 * TIMEOUT, all)
        .await
        .expect("the reads wait for one move, within the command timeout");
    assert_eq!(rig.generation_on(0), before + 1, "moved exactly once");
}

#[tokio::test]
async fn a_server_that_missed_a_clear_is_reported_and_never_serves_older_entries() {
    let rig = Hangable::start();
    let tier = MemcachedStore::new(rig.config()).unwrap();
    let (on_hung, on_other) = (rig.key_on(&tier, 0), rig.key_on(&tier, 1));
    for key in [&on_hung, &on_other] {
        tier.set(key, Bytes::from_static(b"old"), None)
            .await
            .unwrap();
    }

    rig.hang(0);
    let error = tier.clear().await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(error.message().contains("1 of 2"), "{error}");
    assert_eq!(
        tier.get(&on_other).await.unwrap(),
        None,
        "cleared where reached"
    );
    // The tier's next connection to the hung server is answered: it is back, still
    // holding "old" under the generation the clear could not move.
    assert_eq!(
        tier.get(&on_hung).await.unwrap(),
        None,
        "its generation is moved before it is read"
    );
}

/// With one generation key for the whole namespace, it lived on the server that owns
/// `namespace:generation` on the ring, and losing that server (or the key) lost every
/// entry on every server. Each server now keeps its own generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_server_of_the_old_generation_key_keeps_the_other_servers_entries() {
    let mut servers: Vec<_> = (0..2).map(|_| MemcachedServer::start().unwrap()).collect();
    let addresses: Vec<String> = servers.iter().map(MemcachedServer::address).collect();
    let config = || {
        MemcachedConfig::new(addresses.clone())
            .namespace(NAMESPACE)
            .command_timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .failure_limit(1)
            .retry_down_after(Duration::from_secs(60))
    };
    let tier = MemcachedStore::new(config()).unwrap();
    let lost = addresses
        .iter()
        .position(|address| {
            tier.server_for(&format!("{NAMESPACE}:generation")) == Some(address.as_str())
        })
        .unwrap();
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    for key in &keys {
        tier.set(key, Bytes::from(key.clone()), None).await.unwrap();
    }
    let kept: Vec<&String> = keys
        .iter()
        .filter(|key| tier.server_for(key) != Some(addresses[lost].as_str()))
        .collect();
    assert!(kept.len() > 20, "{} keys on the other server", kept.len());

    servers[lost].stop();
    let fresh = MemcachedStore::new(config()).unwrap();
    for reader in [&tier, &fresh] {
        for key in &kept {
            assert_eq!(
                reader.get(key).await.unwrap().as_deref(),
                Some(key.as_bytes()),
                "{key} with the server down"
            );
        }
    }

    // Back, and empty: its generation key is gone with the rest.
    servers[lost].restart().unwrap();
    let after = MemcachedStore::new(config()).unwrap();
    for reader in [&tier, &fresh, &after] {
        for key in &kept {
            assert_eq!(
                reader.get(key).await.unwrap().as_deref(),
                Some(key.as_bytes()),
                "{key} after the restart"
            );
        }
    }
}

/// The same with a hang: re-reading the generation on every command, as another
/// instance would after `generation_refresh`, never asks the hung server for the other
/// server's keys.
#[tokio::test]
async fn a_hung_server_does_not_take_the_other_servers_entries_with_it() {
    let rig = Hangable::start();
    let tier = MemcachedStore::new(rig.rerouting().generation_refresh(Duration::ZERO)).unwrap();
    let generation_key = format!("{NAMESPACE}:generation");
    let hung = (0..2)
        .find(|index| tier.server_for(&generation_key) == Some(rig.address(*index).as_str()))
        .unwrap();
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    for key in &keys {
        tier.set(key, Bytes::from(key.clone()), None).await.unwrap();
    }

    rig.hang(hung);
    let other = rig.address(1 - hung);
    let kept: Vec<&String> = keys
        .iter()
        .filter(|key| tier.server_for(key) == Some(other.as_str()))
        .collect();
    assert!(kept.len() > 10, "{} keys on the other server", kept.len());
    for key in kept {
        assert_eq!(
            tier.get(key).await.unwrap().as_deref(),
            Some(key.as_bytes()),
            "{key}"
        );
    }
}
