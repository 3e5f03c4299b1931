use moka::notification::RemovalCause;

/// Why an entry left a [`MemoryTier`](crate::MemoryTier).
///
/// ```
/// use stratacache_memory::EvictionCause;
///
/// // Count what the tier dropped on its own, not what callers removed.
/// let causes = [EvictionCause::Size, EvictionCause::Explicit, EvictionCause::Expired];
/// let evicted = causes.iter().filter(|cause| cause.was_evicted()).count();
/// assert_eq!(evicted, 2);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EvictionCause {
    /// Its time-to-live (the entry's own, or the tier's) or time-to-idle ran out.
    Expired,
    /// It was removed to keep the tier within its capacity.
    Size,
    /// It was invalidated or the tier was cleared.
    Explicit,
    /// A newer entry replaced it under the same key.
    Replaced,
}

impl EvictionCause {
    /// Whether the tier dropped the entry on its own (expiry or capacity), as opposed to
    /// a caller removing or replacing it.
    #[must_use]
    pub const fn was_evicted(self) -> bool {
        matches!(self, Self::Expired | Self::Size)
    }
}

impl From<RemovalCause> for EvictionCause {
    fn from(cause: RemovalCause) -> Self {
        match cause {
            RemovalCause::Expired => Self::Expired,
            RemovalCause::Size => Self::Size,
            RemovalCause::Explicit => Self::Explicit,
            RemovalCause::Replaced => Self::Replaced,
        }
    }
}

/// An eviction listener, as the builder keeps it.
pub(crate) type Listener<K, V> = std::sync::Arc<
    dyn Fn(std::sync::Arc<K>, stratacache_tier::CacheEntry<V>, EvictionCause) + Send + Sync,
>;

/// An entry's weight, as the builder keeps it.
pub(crate) type Weigher<K, V> = std::sync::Arc<dyn Fn(&K, &V) -> u32 + Send + Sync>;
