use std::time::{Duration, SystemTime};

use stratacache_tier::CacheEntry;

/// A request to a cache tier, as a `tower::Service` receives it.
///
/// ```
/// use stratacache_service::CacheRequest;
///
/// let get: CacheRequest<u64, String> = CacheRequest::Get(7);
/// assert!(get.is_read());
/// assert!(!CacheRequest::<u64, String>::Clear.is_read());
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheRequest<K, V> {
    /// Fetch the entry under the key.
    Get(K),
    /// Store the entry under the key, to be kept for `keep_for` (see
    /// [`CacheTier::insert`](stratacache_tier::CacheTier::insert)).
    Insert {
        /// The key.
        key: K,
        /// The entry, with its timestamps.
        entry: CacheEntry<V>,
        /// How long to keep it from now, as the cache measured it (`None`: no limit).
        keep_for: Option<Duration>,
    },
    /// Remove the entry under the key.
    Invalidate(K),
    /// Store the entry unless the tier holds something newer (see
    /// [`CacheTier::fill`](stratacache_tier::CacheTier::fill)); answered with
    /// [`CacheResponse::Filled`].
    Fill {
        /// The key.
        key: K,
        /// The entry, with its timestamps.
        entry: CacheEntry<V>,
        /// How long to keep it from now, as the cache measured it (`None`: no limit).
        keep_for: Option<Duration>,
    },
    /// Remove the entry under the key as of a time (see
    /// [`CacheTier::invalidate_at`](stratacache_tier::CacheTier::invalidate_at)).
    InvalidateAt {
        /// The key.
        key: K,
        /// When, by the cache's clock.
        at: SystemTime,
    },
    /// Remove the entry under the key as of a time unless the tier holds one newer than
    /// `than` (see
    /// [`CacheTier::invalidate_unless_newer`](stratacache_tier::CacheTier::invalidate_unless_newer));
    /// answered with [`CacheResponse::Invalidated`].
    InvalidateUnlessNewer {
        /// The key.
        key: K,
        /// When, by the cache's clock.
        at: SystemTime,
        /// The change whose newer entries stand.
        than: SystemTime,
    },
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
///
/// ```
/// use stratacache_service::CacheResponse;
///
/// let answer: CacheResponse<String> = CacheResponse::Entry(None);
/// assert_eq!(answer, CacheResponse::Entry(None));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheResponse<V> {
    /// The answer to [`CacheRequest::Get`].
    Entry(Option<CacheEntry<V>>),
    /// The answer to [`Insert`](CacheRequest::Insert),
    /// [`Invalidate`](CacheRequest::Invalidate), [`InvalidateAt`](CacheRequest::InvalidateAt)
    /// and [`Clear`](CacheRequest::Clear).
    Done,
    /// The answer to [`CacheRequest::Fill`]: whether the tier stored the entry.
    Filled(bool),
    /// The answer to [`CacheRequest::InvalidateUnlessNewer`]: whether the tier removed
    /// the entry.
    Invalidated(bool),
}
