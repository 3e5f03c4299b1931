use std::fmt;
use std::sync::Arc;

use stratacache_tier::CacheEntry;

type Predicate<V> = Arc<dyn Fn(&CacheEntry<V>) -> bool + Send + Sync>;

/// A yes, a no, or a question asked of each entry.
enum Rule<V> {
    Always,
    Never,
    When(Predicate<V>),
}

impl<V> Rule<V> {
    #[inline]
    fn allows(&self, entry: &CacheEntry<V>) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::When(predicate) => predicate(entry),
        }
    }
}

impl<V> Clone for Rule<V> {
    fn clone(&self) -> Self {
        match self {
            Self::Always => Self::Always,
            Self::Never => Self::Never,
            Self::When(predicate) => Self::When(Arc::clone(predicate)),
        }
    }
}

impl<V> fmt::Debug for Rule<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Always => "Always",
            Self::Never => "Never",
            Self::When(_) => "When(..)",
        })
    }
}

macro_rules! policy {
    ($(#[$doc:meta])* $name:ident, $verb:literal) => {
        $(#[$doc])*
        pub struct $name<V>(Rule<V>);

        impl<V> Clone for $name<V> {
            fn clone(&self) -> Self {
                Self(self.0.clone())
            }
        }

        impl<V> fmt::Debug for $name<V> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }

        impl<V> $name<V> {
            #[doc = concat!("Always ", $verb, ".")]
            #[must_use]
            pub const fn always() -> Self {
                Self(Rule::Always)
            }

            #[doc = concat!("Never ", $verb, ".")]
            #[must_use]
            pub const fn never() -> Self {
                Self(Rule::Never)
            }

            #[doc = concat!($verb, " the entries for which `predicate` returns `true`.")]
            #[must_use]
            pub fn when(predicate: impl Fn(&CacheEntry<V>) -> bool + Send + Sync + 'static) -> Self {
                Self(Rule::When(Arc::new(predicate)))
            }

            /// Whether the policy lets `entry` through.
            #[must_use]
            #[inline]
            pub fn allows(&self, entry: &CacheEntry<V>) -> bool {
                self.0.allows(entry)
            }
        }

        impl<V> Default for $name<V> {
            fn default() -> Self {
                Self::always()
            }
        }
    };
}

policy!(
    /// Whether a hit in a fallback tier is copied into the tiers above it.
    ///
    /// Set on the [`Fallback`](crate::Fallback) whose hits it governs. A promoted entry
    /// keeps the time its value was produced and never outlives its remaining TTL.
    /// The default is [`always`](Self::always).
    ///
    /// ```
    /// use stratacache::PromotionPolicy;
    ///
    /// // Copy only small values up into memory.
    /// let policy = PromotionPolicy::<Vec<u8>>::when(|entry| entry.value().len() < 4096);
    /// # let _ = policy;
    /// ```
    PromotionPolicy,
    "promote"
);

policy!(
    /// Whether a tier stores an entry: on [`insert`](crate::Cache::insert), after a load,
    /// and on promotion.
    ///
    /// Set per tier, on the [`CacheBuilder`](crate::CacheBuilder) for L1 and on each
    /// [`Fallback`](crate::Fallback). The default is [`always`](Self::always).
    ///
    /// ```
    /// use stratacache::{Cache, CacheEntry, Fallback, InsertPolicy, TierWriteResult};
    ///
    /// # futures::executor::block_on(async {
    /// // Large values stay out of memory; L2 takes everything.
    /// let small = InsertPolicy::when(|entry: &CacheEntry<Vec<u8>>| entry.value().len() <= 1024);
    /// let cache: Cache<u64, Vec<u8>> = Cache::builder()
    ///     .insert_policy(small)
    ///     .fallback(Fallback::memory(|tier| tier))
    ///     .build()?;
    /// let outcome = cache.insert(1, vec![0; 4096]).await?;
    /// assert!(matches!(outcome.tiers()[0].result(), TierWriteResult::Declined));
    /// assert!(matches!(outcome.tiers()[1].result(), TierWriteResult::Stored));
    /// assert_eq!(cache.get(&1).await?.map(|value| value.len()), Some(4096)); // from L2
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    InsertPolicy,
    "store"
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn policies_answer_as_configured() {
        let small = CacheEntry::new(1, SystemTime::UNIX_EPOCH, None);
        let large = CacheEntry::new(100, SystemTime::UNIX_EPOCH, None);
        let when = InsertPolicy::when(|entry: &CacheEntry<i32>| *entry.value() < 10);
        assert!(when.allows(&small));
        assert!(!when.allows(&large));
        assert!(PromotionPolicy::always().allows(&large));
        assert!(!PromotionPolicy::never().allows(&small));
        assert!(InsertPolicy::default().allows(&large));
    }
}
