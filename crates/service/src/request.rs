use stratacache_tier::CacheEntry;

/// A request to a cache tier, as a `tower::Service` receives it.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheRequest<K, V> {
    /// Fetch the entry under the key.
    Get(K),
    /// Store the entry under the key.
    Insert(K, CacheEntry<V>),
    /// Remove the entry under the key.
    Invalidate(K),
    /// Remove every entry.
    Clear,
}

impl<K, V> CacheRequest<K, V> {
    /// Whether the request only reads (and so may be retried freely).
    #[must_use]
    pub const fn is_read(&self) -> bool {
        matches!(self, Self::Get(_))
    }
}

/// A tier's answer.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheResponse<V> {
    /// The answer to [`CacheRequest::Get`].
    Entry(Option<CacheEntry<V>>),
    /// The answer to a write, invalidation or clear.
    Done,
}
