//! Memory L1 over a Redis L2 whose entries are compressed, encrypted and stored under
//! keyed hashes: prints what the application reads and what Redis actually holds.
//! `cargo run --example encrypted` (uses `REDIS_URL` when set, otherwise starts its own
//! `redis-server`).

use serde::{Deserialize, Serialize};
use stratacache::{Cache, Compression, Encryption, Fallback, Remote};
use stratacache_redis::{RedisConfig, RedisStore};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Patient {
    name: String,
    diagnosis: String,
    notes: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, url) = stratacache_examples::redis()?;
    // In production the master key comes from a secret store (Vault, KMS, a mounted
    // secret); an id names it in every entry, so keys rotate without a flush (with
    // `hash_keys`, a rotation starts from an empty Redis: keys hash elsewhere).
    let master_key = [0x5a; 32];
    let encryption = Encryption::new(1, master_key).hash_keys();
    let redis = RedisStore::new(RedisConfig::from_url(&url).namespace("clinic"))?;
    let cache: Cache<String, Patient> = Cache::builder()
        .fallback(Fallback::remote(
            Remote::new(redis)
                .compress(Compression::lz4())
                .encrypt(&encryption)?,
        ))
        .build()?;

    let patient = Patient {
        name: "Ada Lovelace".into(),
        diagnosis: "fine".into(),
        notes: "Prefers appointments in the morning. ".repeat(30),
    };
    cache
        .tagged(["ward:7"])
        .insert("patient:1815".into(), patient.clone())
        .await?;
    println!(
        "the application reads: {:?}",
        cache.get("patient:1815").await?.map(|p| p.name)
    );

    let client = redis::Client::open(url.as_str())?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("clinic:*")
        .query_async(&mut connection)
        .await?;
    for key in keys {
        let bytes: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut connection)
            .await?;
        let shown: String = bytes.iter().take(48).map(|b| format!("{b:02x}")).collect();
        println!("Redis holds {key} = {} bytes: {shown}…", bytes.len());
        let clear = ["Ada", "Lovelace", "patient", "ward", "morning"];
        let leaked: Vec<_> = clear
            .iter()
            .filter(|word| bytes.windows(word.len()).any(|w| w == word.as_bytes()))
            .collect();
        println!("  words of the entry found in it: {leaked:?}");
    }
    println!(
        "the patient's fields alone are {} bytes: compressed, then sealed",
        patient.name.len() + patient.diagnosis.len() + patient.notes.len()
    );
    Ok(())
}
