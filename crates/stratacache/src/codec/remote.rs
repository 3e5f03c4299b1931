use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::{self, Either};
use std::time::{Duration, SystemTime};

use stratacache_tier::{ByteStore, CacheEntry, CacheTier, Error, ErrorKind, Lookup, Tags};

use super::envelope::{self, Head, TOMBSTONE};
use super::key::StoreKey;
use super::transforms::Transforms;
use super::{Codec, Postcard};
use crate::recovery::is_refusal;

/// A bytes-level store (Redis, memcached, any [`ByteStore`]) made into a typed fallback
/// tier: the codec boundary.
///
/// - **Keys** are encoded with the codec, then base64url: printable ASCII with no spaces
///   or control characters, valid for every backend. Keys longer than 200 bytes are
///   replaced by a SHA-256 digest, and the full key travels in the value so that a
///   digest collision reads as a miss, never as another key's value.
/// - **Values** travel in a versioned [envelope](#envelope) carrying the time the
///   value was produced, its TTL and a schema version of your choosing, so promotion
///   keeps the remaining TTL and bytes written by another schema or another program are
///   detected.
/// - **Bad bytes** (corrupt, truncated, foreign, another format or schema version) are a
///   [`Codec`](stratacache_tier::ErrorKind::Codec) error that the cache counts and reads
///   as a miss (even when strict); the entry is deleted from the store.
/// - **Writes** never replace an entry produced more than a second (and less than an
///   hour) after theirs ([`ByteStore::set_unless_within`]): a write sent to a server that
///   stalled, run when it resumed, lands on what was written since as a no-op and fails
///   [`Superseded`](stratacache_tier::ErrorKind::Superseded). Within that second (clocks
///   of instances disagree) the last write stands, as with a plain set; an entry from
///   over an hour ahead (a clock far off) is replaced. A host whose clock runs more than
///   a second ahead has its writes stand over the others' for as long as it is ahead.
///   What a reader found or loaded is stored only over older entries
///   ([`CacheTier::fill`]).
///
/// # Envelope
///
/// The head, always in clear: `b"SC"`, format version (1 byte, now 2), cached-at in ms
/// since the Unix epoch (u64 big-endian, so that two entries' bytes sort as their
/// times), flags (1 byte: bit 0 TTL present, bit 1 key check present, bit 2 tags
/// present, bit 3 sealed, bit 4 compressed, bit 5 tombstone), TTL in ms (u64 LE, if
/// present), schema version (u32 LE). (Format 1, still read, had the flags before the
/// time, little-endian.) Then the body: key check (u32 LE length + bytes, if present),
/// tags (u16 LE count, then each as u16 LE length + UTF-8, if present), then the payload
/// (compressed: u32 LE uncompressed length + an LZ4 block). Sealed (feature
/// `encryption`), the body is replaced by the key id (u32 LE), a 96-bit nonce and its
/// AES-256-GCM ciphertext and tag, with the namespace, the store key and everything
/// before the ciphertext as associated data. An invalidation leaves a tombstone: the
/// tombstone flag, and an empty payload.
///
/// ```
/// use std::time::Duration;
/// use stratacache::{Cache, Fallback, Remote};
/// use stratacache_redis::{RedisConfig, RedisStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), stratacache::Error> {
/// // Connects lazily: nothing is sent until the cache first reads or writes.
/// let redis = RedisStore::new(RedisConfig::from_url("redis://127.0.0.1:6379/").namespace("users"))?;
/// let cache: Cache<u64, String> = Cache::builder()
///     .ttl(Duration::from_secs(60))
///     .fallback(Fallback::remote(Remote::new(redis).schema_version(2)))
///     .build()?;
/// assert_eq!(cache.tier_names(), ["l1", "l2"]);
/// # Ok(()) }
/// ```
pub struct Remote<S, C = Postcard> {
    pub(crate) store: Arc<S>,
    codec: C,
    schema_version: u32,
    pub(crate) transforms: Transforms,
}

impl<S: ByteStore> From<S> for Remote<S> {
    fn from(store: S) -> Self {
        Self::new(store)
    }
}

impl<S: ByteStore> Remote<S> {
    /// `store` behind the postcard codec, schema version 0.
    #[must_use]
    pub fn new(store: S) -> Self {
        Self {
            store: Arc::new(store),
            codec: Postcard,
            schema_version: 0,
            transforms: Transforms::default(),
        }
    }
}

impl<S, C> Remote<S, C> {
    /// The version of your value type's layout. Entries written under another version
    /// read as misses (and are deleted), so a deploy that changes `V` doesn't misread
    /// the old bytes. Bump it whenever `V`'s serialized form changes.
    #[must_use]
    pub fn schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    /// Another codec for keys and values.
    #[must_use]
    pub fn codec<C2>(self, codec: C2) -> Remote<S, C2> {
        Remote {
            store: self.store,
            codec,
            schema_version: self.schema_version,
            transforms: self.transforms,
        }
    }

    /// Compresses values (feature `compression`): see [`Compression`](crate::Compression).
    /// Applied after serializing, before encrypting.
    #[cfg(feature = "compression")]
    #[must_use]
    pub fn compress(mut self, compression: crate::Compression) -> Self {
        self.transforms.compression = Some(compression);
        self
    }

    /// Encrypts what the store holds (feature `encryption`): see
    /// [`Encryption`](crate::Encryption). Keys are derived for the store's namespace
    /// here; the master keys are not kept.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] when two keys share an id.
    #[cfg(feature = "encryption")]
    pub fn encrypt(mut self, encryption: &crate::Encryption) -> Result<Self, Error>
    where
        S: ByteStore,
    {
        let sealer = encryption.derive(self.store.namespace())?;
        self.transforms.sealer = Some(Arc::new(sealer));
        Ok(self)
    }

    /// The typed tier this becomes, for composing it yourself (say, inside tower
    /// layers); [`Fallback::remote`](crate::Fallback::remote) does this for you. It reads
    /// no clock: the cache hands it each entry's remaining TTL.
    #[must_use]
    pub fn into_tier<K, V>(self) -> SerializedTier<K, V, S, C> {
        SerializedTier {
            store: self.store,
            codec: self.codec,
            schema_version: self.schema_version,
            transforms: self.transforms,
            _types: PhantomData,
        }
    }
}

impl<K, V, S, C> fmt::Debug for SerializedTier<K, V, S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SerializedTier")
            .field("schema_version", &self.schema_version)
            .finish_non_exhaustive()
    }
}

impl<S, C> fmt::Debug for Remote<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("schema_version", &self.schema_version)
            .finish_non_exhaustive()
    }
}

/// The typed [`CacheTier`] a [`Remote`] becomes: see [`Remote::into_tier`].
///
/// ```
/// use std::time::Duration;
/// use stratacache::{CacheEntry, CacheTier, FrozenClock, Remote};
/// # use std::collections::HashMap;
/// # use std::sync::Mutex;
/// # use bytes::Bytes;
/// # use stratacache::{ByteStore, Error};
/// # #[derive(Default)]
/// # struct MapStore(Mutex<HashMap<String, Bytes>>);
/// # impl ByteStore for MapStore {
/// #     async fn get(&self, key: &str) -> Result<Option<Bytes>, Error> {
/// #         Ok(self.0.lock().unwrap().get(key).cloned())
/// #     }
/// #     async fn set(&self, key: &str, value: Bytes, _: Option<Duration>) -> Result<(), Error> {
/// #         self.0.lock().unwrap().insert(key.to_string(), value);
/// #         Ok(())
/// #     }
/// #     async fn delete(&self, key: &str) -> Result<(), Error> {
/// #         self.0.lock().unwrap().remove(key);
/// #         Ok(())
/// #     }
/// #     async fn clear(&self) -> Result<(), Error> {
/// #         self.0.lock().unwrap().clear();
/// #         Ok(())
/// #     }
/// # }
///
/// # futures::executor::block_on(async {
/// // `MapStore` is an in-memory `ByteStore` standing in for Redis.
/// let tier = Remote::new(MapStore::default()).schema_version(1).into_tier::<u64, String>();
/// let ttl = Duration::from_secs(60);
/// let entry = CacheEntry::new("one".to_string(), FrozenClock::new().now(), Some(ttl));
/// tier.insert(1, entry.clone(), Some(ttl)).await?;
/// // The value, the time it was produced and its TTL all survive the bytes.
/// assert_eq!(tier.get(&1).await?, Some(entry));
/// assert_eq!(tier.get(&2).await?, None);
/// # Ok::<(), stratacache::Error>(())
/// # }).unwrap();
/// ```
pub struct SerializedTier<K, V, S, C = Postcard> {
    store: Arc<S>,
    codec: C,
    schema_version: u32,
    transforms: Transforms,
    _types: PhantomData<fn(K, V)>,
}

/// How long an invalidation's tombstone stays: a load that began before the invalidation
/// and ends within this cannot put back what it read. Longer loads can.
pub(crate) const TOMBSTONE_TTL: Duration = Duration::from_secs(10);

impl<K, V, S, C> SerializedTier<K, V, S, C>
where
    C: Codec<K> + Codec<V>,
{
    fn key(&self, key: &K) -> Result<StoreKey, Error> {
        thread_local! {
            /// Where keys are encoded before they become text: one buffer per thread
            /// rather than one per call.
            static ENCODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        let encode = |encoded: &mut Vec<u8>| {
            Codec::<K>::encode(&self.codec, key, encoded)
                .map(|()| self.transforms.store_key(encoded))
        };
        ENCODED
            .try_with(|scratch| {
                // A key whose encoding reaches a cache on this thread finds the buffer
                // in use: it gets one of its own.
                let Ok(mut encoded) = scratch.try_borrow_mut() else {
                    return encode(&mut Vec::new());
                };
                encoded.clear();
                let store_key = encode(&mut encoded);
                // A huge key does not keep its room for ever.
                if encoded.capacity() > 4_096 {
                    *encoded = Vec::new();
                }
                store_key
            })
            // The thread is ending and its buffer is gone.
            .unwrap_or_else(|_| encode(&mut Vec::new()))
    }

    /// Decodes `bytes`; bad bytes never heal, so they are removed and the next lookup
    /// reloads.
    async fn decode_or_delete(&self, key: &StoreKey, bytes: &[u8]) -> Lookup<V>
    where
        S: ByteStore,
    {
        let decoded = self.decode(key, bytes);
        if decoded.is_err() {
            // Boxed, as it is rare: inline, the delete would be part of every read's
            // future, held beside what was decoded.
            let _ = Box::pin(self.store.delete(&key.text)).await;
        }
        decoded
    }

    fn decode(&self, key: &StoreKey, bytes: &[u8]) -> Result<Option<CacheEntry<V>>, Error> {
        self.transforms.read(bytes, key, |head, body| {
            if head.flags & TOMBSTONE != 0 {
                // An invalidation's: absent, not bad bytes.
                return Ok(None);
            }
            if head.schema_version != self.schema_version {
                return Err(Error::new(
                    ErrorKind::Codec,
                    format!(
                        "entry written with schema version {}, this cache reads {}",
                        head.schema_version, self.schema_version
                    ),
                ));
            }
            if body.key_check != key.check.as_deref() {
                // Another key whose digest collides with ours: not our entry.
                return Ok(None);
            }
            let value = Codec::<V>::decode(&self.codec, body.payload)?;
            let entry = CacheEntry::new(value, head.cached_at, head.ttl).with_tags(body.tags);
            Ok(Some(entry))
        })
    }
}

impl<K, V, S, C> CacheTier<K, V> for SerializedTier<K, V, S, C>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: ByteStore,
    C: Codec<K> + Codec<V>,
{
    async fn get(&self, key: &K) -> Result<Option<CacheEntry<V>>, Error> {
        let key = self.key(key)?;
        let Some(bytes) = self.store.get(&key.text).await? else {
            return Ok(None);
        };
        self.decode_or_delete(&key, &bytes).await
    }

    /// One [`ByteStore::get_many`] for every key (one pipelined round trip on Redis, one
    /// multi-get on memcached); bad bytes fail their own key alone, and are deleted.
    async fn get_many(&self, keys: &[K]) -> Result<Vec<Lookup<V>>, Error>
    where
        K: Sync,
    {
        let store_keys = keys
            .iter()
            .map(|key| self.key(key))
            .collect::<Result<Vec<_>, _>>()?;
        let texts: Vec<&str> = store_keys.iter().map(|key| key.text.as_str()).collect();
        let answers = self.store.get_each(&texts).await;
        // Every key failed (the store is down): the batch fails, as one call would; when
        // only some did (one server of several), each answers for itself.
        if answers.iter().all(Result::is_err)
            && let Some(Err(error)) = answers.first()
        {
            return Err(error.clone());
        }
        let mut found = Vec::with_capacity(answers.len());
        for (key, bytes) in store_keys.iter().zip(answers) {
            found.push(match bytes {
                Err(error) => Err(error),
                Ok(None) => Ok(None),
                Ok(Some(bytes)) => self.decode_or_delete(key, &bytes).await,
            });
        }
        Ok(found)
    }

    fn insert(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        // Encoded now: the future holds the bytes, not the key and the entry as well.
        let (store_key, bytes) = match self.stored(&key, &entry, keep_for) {
            Ok(Some(stored)) => stored,
            Ok(None) => return Either::Left(future::ready(Ok(()))),
            Err(error) => return Either::Left(future::ready(Err(error))),
        };
        let (after, up_to) = envelope::late_write_bounds(entry.cached_at());
        Either::Right(async move {
            if self
                .store
                .set_unless_within(&store_key.text, bytes, keep_for, &after, &up_to)
                .await?
            {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::Superseded,
                    "an entry produced over a second (and under an hour) after this one \
                     stands under the key: this write landed late",
                ))
            }
        })
    }

    /// [`ByteStore::set_if_greater`]: the head's time comes first, big-endian, so the
    /// store keeps whichever of two entries (or of an entry and a tombstone) is newer;
    /// of two made in one millisecond, the tombstone.
    fn fill(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        // Encoded now, as `insert`.
        let (store_key, bytes) = match self.stored(&key, &entry, keep_for) {
            Ok(Some(stored)) => stored,
            Ok(None) => return Either::Left(future::ready(Ok(false))),
            Err(error) => return Either::Left(future::ready(Err(error))),
        };
        Either::Right(async move {
            self.store
                .set_if_greater(&store_key.text, bytes, keep_for)
                .await
        })
    }

    async fn invalidate(&self, key: &K) -> Result<(), Error> {
        let key = self.key(key)?;
        self.store.delete(&key.text).await
    }

    /// Leaves a tombstone dated `at` for 10 s: read as absent, and newer
    /// than any fill of an entry produced before `at`. A store that refuses the
    /// tombstone (Redis out of memory) gets a plain delete, which leaves none.
    async fn invalidate_at(&self, key: &K, at: SystemTime) -> Result<(), Error> {
        let store_key = self.key(key)?;
        let tombstone = self.tombstone(&store_key, at)?;
        let set = self
            .store
            .set(&store_key.text, tombstone, Some(TOMBSTONE_TTL));
        match set.await {
            // A store that refuses to take bytes (Redis out of memory) still deletes:
            // better a plain delete than the entry this removal is for.
            Err(error) if is_refusal(error.kind()) => self.store.delete(&store_key.text).await,
            done => done,
        }
    }

    /// A tombstone as [`invalidate_at`](Self::invalidate_at)'s, stored in one step
    /// unless an entry [newer](CacheEntry::is_newer_than) than `than` stands
    /// ([`ByteStore::set_unless_within`]).
    /// A store that refuses the tombstone gets a read, then a plain delete.
    async fn invalidate_unless_newer(
        &self,
        key: &K,
        at: SystemTime,
        than: SystemTime,
    ) -> Result<bool, Error> {
        let store_key = self.key(key)?;
        let tombstone = self.tombstone(&store_key, at)?;
        let (after, up_to) = envelope::newer_than_bounds(than);
        let set = self.store.set_unless_within(
            &store_key.text,
            tombstone,
            Some(TOMBSTONE_TTL),
            &after,
            &up_to,
        );
        match set.await {
            Err(error) if is_refusal(error.kind()) => match self.get(key).await? {
                Some(theirs) if theirs.is_newer_than(than) => Ok(false),
                _ => self.store.delete(&store_key.text).await.map(|()| true),
            },
            done => done,
        }
    }

    async fn clear(&self) -> Result<(), Error> {
        self.store.clear().await
    }
}

impl<K, V, S, C> SerializedTier<K, V, S, C>
where
    S: ByteStore,
    C: Codec<K> + Codec<V>,
{
    /// The bytes of a removal of `store_key` dated `at`: the tombstone flag, an empty
    /// payload.
    fn tombstone(&self, store_key: &StoreKey, at: SystemTime) -> Result<Bytes, Error> {
        let head = Head {
            cached_at: at,
            ttl: None,
            schema_version: self.schema_version,
            flags: TOMBSTONE,
        };
        let bytes = self
            .transforms
            .write(head, store_key, &Tags::none(), |_| Ok(()))?;
        Ok(Bytes::from(bytes))
    }

    /// `key`'s store key and `entry`'s bytes under it, to keep for `keep_for`; `None`
    /// when there is nothing to keep (no time left).
    fn stored(
        &self,
        key: &K,
        entry: &CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> Result<Option<(StoreKey, Bytes)>, Error> {
        let store_key = self.key(key)?;
        if keep_for == Some(Duration::ZERO) {
            return Ok(None);
        }
        let bytes = self.encode(&store_key, entry)?;
        Ok(Some((store_key, bytes)))
    }

    /// `entry`'s stored bytes under `store_key`.
    fn encode(&self, store_key: &StoreKey, entry: &CacheEntry<V>) -> Result<Bytes, Error> {
        if !entry.tags().within_limits() {
            return Err(Error::new(
                ErrorKind::Rejected,
                format!(
                    "an entry carries at most {} tags of at most {} bytes",
                    Tags::MAX_TAGS,
                    Tags::MAX_TAG_LEN
                ),
            ));
        }
        let head = Head {
            cached_at: entry.cached_at(),
            ttl: entry.ttl(),
            schema_version: self.schema_version,
            flags: 0,
        };
        let bytes = self
            .transforms
            .write(head, store_key, entry.tags(), |out| {
                Codec::<V>::encode(&self.codec, entry.value(), out)
            })?;
        if let Some(limit) = self
            .store
            .max_value_size()
            .filter(|limit| bytes.len() > *limit)
        {
            return Err(Error::new(
                ErrorKind::Rejected,
                format!(
                    "value of {} bytes is over the store's limit of {limit}",
                    bytes.len()
                ),
            ));
        }
        Ok(Bytes::from(bytes))
    }
}

#[cfg(test)]
mod tests {
    use stratacache_tier::Error;
    use stratacache_tier::mock::MemoryStore;

    use super::{Codec, Postcard, Remote, SerializedTier};

    fn tier() -> SerializedTier<String, u32, MemoryStore> {
        Remote::new(MemoryStore::new()).into_tier()
    }

    /// A key codec that encodes another key through a tier on the same thread first, as
    /// a `Serialize` impl that reaches a cache would.
    struct Reentrant;

    impl Codec<String> for Reentrant {
        fn encode(&self, value: &String, out: &mut Vec<u8>) -> Result<(), Error> {
            let inner = tier().key(&format!("inner {value}"))?;
            assert!(!inner.text.is_empty());
            Codec::<String>::encode(&Postcard, value, out)
        }

        fn decode(&self, bytes: &[u8]) -> Result<String, Error> {
            Codec::<String>::decode(&Postcard, bytes)
        }
    }

    impl Codec<u32> for Reentrant {
        fn encode(&self, value: &u32, out: &mut Vec<u8>) -> Result<(), Error> {
            Codec::<u32>::encode(&Postcard, value, out)
        }

        fn decode(&self, bytes: &[u8]) -> Result<u32, Error> {
            Codec::<u32>::decode(&Postcard, bytes)
        }
    }

    #[test]
    fn a_key_encoded_while_another_is_encoded_on_the_thread_is_its_own() {
        let nested: SerializedTier<String, u32, MemoryStore, Reentrant> =
            Remote::new(MemoryStore::new()).codec(Reentrant).into_tier();
        let key = nested.key(&"outer".to_owned()).unwrap();
        assert_eq!(key.text, tier().key(&"outer".to_owned()).unwrap().text);
    }

    #[test]
    fn keys_encoded_one_after_another_share_nothing_but_the_buffer() {
        let tier = tier();
        let huge = "k".repeat(10_000);
        let (short, long) = (tier.key(&"a".to_owned()).unwrap(), tier.key(&huge).unwrap());
        assert!(long.text.starts_with('#'), "a long key becomes a digest");
        assert_eq!(long.check.as_deref().map(<[u8]>::len), Some(10_002));
        let again = tier.key(&"a".to_owned()).unwrap();
        assert_eq!((again.text, again.check), (short.text, None));
    }
}
