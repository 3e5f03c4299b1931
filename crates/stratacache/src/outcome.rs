//! What a write did at each tier.

use std::fmt;
use std::sync::Arc;

use stratacache_tier::Error;

/// What an [`insert`](crate::Cache::insert), [`invalidate`](crate::Cache::invalidate) or
/// [`clear`](crate::Cache::clear) did at each tier, L1 first.
///
/// Without [`strict`](crate::CacheBuilder::strict), a tier that fails a write does not
/// fail the call: the outcome says which tiers took the write and which did not, so a
/// caller that cares (say, before telling a user their change is saved everywhere) can
/// check [`is_complete`](Self::is_complete). With `strict`, an incomplete write is
/// returned as the first failure's error instead.
///
/// ```
/// use stratacache::{Cache, Fallback, TierWriteResult};
///
/// # futures::executor::block_on(async {
/// let cache: Cache<u64, String> = Cache::builder().fallback(Fallback::memory(|tier| tier)).build()?;
/// let outcome = cache.insert(1, "one".to_string()).await?;
/// assert!(outcome.is_complete());
/// assert_eq!(outcome.tiers().len(), 2);
/// assert!(matches!(outcome.tiers()[0].result(), TierWriteResult::Stored));
/// # Ok::<(), stratacache::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct WriteOutcome {
    tiers: Vec<TierWrite>,
}

impl WriteOutcome {
    pub(crate) fn new(tiers: Vec<TierWrite>) -> Self {
        Self { tiers }
    }

    /// Whether every tier took the write (none failed).
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.first_failure().is_none()
    }

    /// What the write did at each tier, L1 first.
    #[must_use]
    pub fn tiers(&self) -> &[TierWrite] {
        &self.tiers
    }

    /// The tiers that failed, with their errors, L1 first.
    pub fn failures(&self) -> impl Iterator<Item = (&str, &Error)> {
        self.tiers.iter().filter_map(|tier| match &tier.result {
            TierWriteResult::Failed(error) | TierWriteResult::Queued(error) => {
                Some((&*tier.tier, error))
            }
            _ => None,
        })
    }

    /// The error of the lowest tier that failed: the one a strict cache returns.
    pub(crate) fn first_failure(&self) -> Option<&Error> {
        self.failures().last().map(|(_, error)| error)
    }
}

/// What a write did at one tier.
///
/// ```
/// use stratacache::{Cache, Fallback, TierWrite};
///
/// # futures::executor::block_on(async {
/// let cache: Cache<u64, &str> = Cache::builder()
///     .fallback(Fallback::memory(|tier| tier).name("shared"))
///     .build()?;
/// let outcome = cache.insert(1, "one").await?;
/// let tiers: Vec<&str> = outcome.tiers().iter().map(TierWrite::tier).collect();
/// assert_eq!(tiers, ["l1", "shared"]);
/// # Ok::<(), stratacache::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct TierWrite {
    pub(crate) tier: Arc<str>,
    pub(crate) result: TierWriteResult,
}

impl TierWrite {
    /// The tier's name.
    #[must_use]
    pub fn tier(&self) -> &str {
        &self.tier
    }

    /// What happened there.
    #[must_use]
    pub fn result(&self) -> &TierWriteResult {
        &self.result
    }
}

impl fmt::Debug for TierWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.tier, self.result)
    }
}

/// What a write did at one tier: see [`WriteOutcome`].
///
/// ```
/// use stratacache::{Cache, Fallback, InsertPolicy, TierWriteResult};
///
/// # futures::executor::block_on(async {
/// let cache: Cache<u64, &str> = Cache::builder()
///     .insert_policy(InsertPolicy::never()) // L1 keeps no copies
///     .fallback(Fallback::memory(|tier| tier))
///     .build()?;
/// let inserted = cache.insert(1, "one").await?;
/// assert!(matches!(inserted.tiers()[0].result(), TierWriteResult::Declined));
/// assert!(matches!(inserted.tiers()[1].result(), TierWriteResult::Stored));
/// let removed = cache.invalidate(&1).await?;
/// assert!(removed.tiers().iter().all(|tier| matches!(tier.result(), TierWriteResult::Removed)));
/// # Ok::<(), stratacache::Error>(())
/// # }).unwrap();
/// ```
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum TierWriteResult {
    /// The tier stores the new value.
    Stored,
    /// The tier no longer holds the key (an `invalidate` or a `clear`).
    Removed,
    /// The tier keeps no copy of this value (its insert policy declined it, or its copy
    /// would already be expired), and dropped any older copy.
    Declined,
    /// A tier below failed, so this one dropped its copy of the key rather than hold a
    /// value the tiers below may not have; or, for L1, another instance's write of the
    /// key was announced while this one was under way, and which of the two the shared
    /// tiers kept is unknown; or a refresh's value ([`Strategy::Reload`](crate::Strategy::Reload))
    /// was refused by a shared tier that holds a newer one, which stands.
    Dropped,
    /// The tier failed; what it holds now is unknown.
    Failed(Error),
    /// The tier is down (this error says how); the change waits in the tier's
    /// [recovery queue](crate::Fallback::auto_recovery) and is replayed when it answers
    /// again. Meanwhile the cache reads the key there as the change says.
    Queued(Error),
}
