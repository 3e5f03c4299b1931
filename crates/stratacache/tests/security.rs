//! Payloads that stay private and small: encrypted and compressed remote entries, end to
//! end through the cache, in process (a map store the test can tamper with) and over a
//! real Redis and memcached.
#![cfg(all(feature = "encryption", feature = "compression"))]

use bytes::Bytes;
use stratacache::{Cache, Compression, Encryption, Fallback, Options, Remote, Tags};
use stratacache_memcached::{MemcachedConfig, MemcachedStore};
use stratacache_redis::{RedisConfig, RedisStore};
use stratacache_testkit::{MemcachedServer, RedisServer};
use stratacache_tier::mock::MemoryStore;

const KEY: [u8; 32] = [0x42; 32];

fn cache_over(store: &MemoryStore, encryption: &Encryption) -> Cache<String, String> {
    let remote = Remote::new(store.clone())
        .compress(Compression::lz4().threshold(64))
        .encrypt(encryption)
        .unwrap();
    Cache::builder()
        .fallback(Fallback::remote(remote))
        .build()
        .unwrap()
}

fn below() -> Options {
    Options::new().skip_l1()
}

#[tokio::test]
async fn the_store_sees_neither_values_nor_keys_nor_tags() {
    let store = MemoryStore::new().namespace("users");
    let cache = cache_over(&store, &Encryption::new(1, KEY).hash_keys());
    let secret = "ada.lovelace@example.com ".repeat(20);
    cache
        .tagged(["tenant:analytical-engines"])
        .insert("user:ada".into(), secret.clone())
        .await
        .unwrap();
    let keys = store.keys();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].starts_with('~'), "a keyed hash: {}", keys[0]);
    let stored = store.raw(&keys[0]).unwrap();
    for clear in ["ada", "lovelace", "user", "tenant", "analytical"] {
        assert!(
            !stored
                .windows(clear.len())
                .any(|window| window == clear.as_bytes()),
            "{clear:?} in the stored bytes"
        );
    }
    assert!(
        stored.len() < secret.len() / 2,
        "compressed before sealing: {}",
        stored.len()
    );
    let read = cache.with(below()).get("user:ada").await.unwrap();
    assert_eq!(read.as_deref(), Some(secret.as_str()));
    let entry = cache.get_entry("user:ada").await.unwrap().unwrap();
    assert_eq!(entry.tags(), &Tags::new(["tenant:analytical-engines"]));
    // Invalidating the tag writes a marker whose key is hashed too.
    cache
        .invalidate_tag("tenant:analytical-engines")
        .await
        .unwrap();
    assert!(
        store.keys().iter().all(|key| !key.contains("dGVuYW50")),
        "{:?}",
        store.keys()
    );
    assert!(store.keys().iter().any(|key| key.starts_with("!t~")));
}

/// The store key of `key` (postcard, then base64url).
fn store_key(key: &str) -> String {
    use base64::Engine;
    let encoded = postcard::to_stdvec(&key.to_string()).unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(encoded)
}

#[tokio::test]
async fn tampered_swapped_or_foreign_bytes_are_integrity_misses_and_deleted() {
    let store = MemoryStore::new().namespace("users");
    let cache = cache_over(&store, &Encryption::new(1, KEY));
    for name in ["a", "b"] {
        cache
            .insert(name.into(), format!("value of {name}"))
            .await
            .unwrap();
    }
    let (a, b) = (store_key("a"), store_key("b"));
    let (bytes_a, bytes_b) = (store.raw(&a).unwrap(), store.raw(&b).unwrap());
    let mut flipped = bytes_a.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    // A plain cache's entry, planted where sealed ones belong.
    let plain_store = MemoryStore::new().namespace("users");
    let plain: Cache<String, String> = Cache::builder()
        .fallback(Fallback::remote(Remote::new(plain_store.clone())))
        .build()
        .unwrap();
    plain.insert("a".into(), "planted".into()).await.unwrap();
    let planted = [
        ("b's ciphertext under a's key", bytes_b),
        ("a flipped bit", Bytes::from(flipped)),
        ("truncated", bytes_a.slice(..bytes_a.len() - 5)),
        ("plain bytes", plain_store.raw(&a).unwrap()),
    ];
    for (count, (what, bytes)) in (1..).zip(planted) {
        store.plant(&a, bytes);
        assert_eq!(cache.with(below()).get("a").await.unwrap(), None, "{what}");
        assert_eq!(cache.stats().integrity_failures, count, "{what}");
        assert!(!store.keys().contains(&a), "{what}: deleted");
    }
    assert_eq!(cache.stats().tiers[1].errors, 4, "the tier reported each");
    // b was never touched.
    assert_eq!(
        cache.with(below()).get("b").await.unwrap().as_deref(),
        Some("value of b")
    );
}

#[tokio::test]
async fn a_decompression_bomb_is_an_integrity_miss() {
    let store = MemoryStore::new().namespace("bombs");
    let big = Remote::new(store.clone()).compress(Compression::lz4());
    let writer: Cache<String, String> = Cache::builder()
        .fallback(Fallback::remote(big))
        .build()
        .unwrap();
    writer
        .insert("zeros".into(), "0".repeat(4 << 20))
        .await
        .unwrap();
    assert!(
        store.raw(&store_key("zeros")).unwrap().len() < 64 << 10,
        "4 MiB packs small"
    );
    let small =
        Remote::new(store.clone()).compress(Compression::lz4().max_decompressed_size(1 << 20));
    let reader: Cache<String, String> = Cache::builder()
        .fallback(Fallback::remote(small))
        .build()
        .unwrap();
    assert_eq!(reader.get("zeros").await.unwrap(), None);
    assert_eq!(reader.stats().integrity_failures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_hashing_end_to_end_on_redis_and_memcached() {
    let encryption = Encryption::new(1, KEY).hash_keys();
    let redis = RedisServer::start().unwrap();
    let memcached = MemcachedServer::start().unwrap();
    let redis_store =
        || RedisStore::new(RedisConfig::from_url(redis.url()).namespace("sec")).unwrap();
    let memcached_store = || {
        MemcachedStore::new(MemcachedConfig::new([memcached.address()]).namespace("sec")).unwrap()
    };
    let over_redis = |encryption: &Encryption| -> Cache<String, String> {
        Cache::builder()
            .fallback(Fallback::remote(
                Remote::new(redis_store())
                    .compress(Compression::lz4())
                    .encrypt(encryption)
                    .unwrap(),
            ))
            .build()
            .unwrap()
    };
    let over_memcached = |encryption: &Encryption| -> Cache<String, String> {
        Cache::builder()
            .fallback(Fallback::remote(
                Remote::new(memcached_store())
                    .compress(Compression::lz4())
                    .encrypt(encryption)
                    .unwrap(),
            ))
            .build()
            .unwrap()
    };
    for (name, writer, reader, wrong) in [
        (
            "redis",
            over_redis(&encryption),
            over_redis(&encryption),
            over_redis(&Encryption::new(1, [9; 32]).hash_keys()),
        ),
        (
            "memcached",
            over_memcached(&encryption),
            over_memcached(&encryption),
            over_memcached(&Encryption::new(1, [9; 32]).hash_keys()),
        ),
    ] {
        writer
            .insert("user:ada".into(), "Ada".repeat(300))
            .await
            .unwrap();
        let read = reader.get("user:ada").await.unwrap();
        assert_eq!(read.as_deref(), Some("Ada".repeat(300).as_str()), "{name}");
        // Another master key hashes keys elsewhere: a plain miss there.
        assert_eq!(wrong.get("user:ada").await.unwrap(), None, "{name}");
    }
    let keys = redis.cli(&["--raw", "KEYS", "sec:*"]).unwrap();
    assert!(keys.contains("sec:~") && !keys.contains("ada"), "{keys}");
}

#[tokio::test]
async fn another_cache_or_a_wrong_key_cannot_read_and_rotation_keeps_old_entries() {
    let store = MemoryStore::new().namespace("users");
    let writer = cache_over(&store, &Encryption::new(1, KEY));
    writer.insert("a".into(), "secret".into()).await.unwrap();
    let a = store_key("a");
    let sealed = store.raw(&a).unwrap();

    // The same bytes in another cache's namespace: bound to "users", they do not open.
    let other_store = MemoryStore::new().namespace("orders");
    other_store.plant(&a, sealed.clone());
    let other = cache_over(&other_store, &Encryption::new(1, KEY));
    assert_eq!(other.get("a").await.unwrap(), None);
    assert_eq!(other.stats().integrity_failures, 1);

    // A wrong master key reads a miss.
    store.plant(&a, sealed.clone());
    let wrong = cache_over(&store, &Encryption::new(1, [0x13; 32]));
    assert_eq!(wrong.get("a").await.unwrap(), None);
    assert_eq!(wrong.stats().integrity_failures, 1);

    // Rotation: key 2 seals, key 1 still opens what it sealed.
    store.plant(&a, sealed);
    let rotated = cache_over(
        &store,
        &Encryption::new(2, [0x77; 32]).also_open_with(1, KEY),
    );
    assert_eq!(rotated.get("a").await.unwrap().as_deref(), Some("secret"));
    rotated.insert("b".into(), "new".into()).await.unwrap();
    let only_key_1 = cache_over(&store, &Encryption::new(1, KEY));
    assert_eq!(
        only_key_1.get("b").await.unwrap(),
        None,
        "sealed with key 2"
    );
    assert_eq!(only_key_1.stats().integrity_failures, 1);
}

#[test]
fn a_store_without_a_namespace_cannot_be_encrypted() {
    let error = Remote::new(MemoryStore::new().namespace(""))
        .encrypt(&Encryption::new(1, KEY))
        .unwrap_err();
    assert_eq!(error.kind(), stratacache::ErrorKind::Config);
}
