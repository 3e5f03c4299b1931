//! The tags an entry carries: names that invalidate many entries at once.

use std::fmt;
use std::sync::Arc;

/// The tags of an entry (`"tenant:7"`, `"products"`): invalidating a tag invalidates
/// every entry that carries it, in every tier and every instance of the cache.
///
/// Cheap to clone (shared). Duplicates are dropped; the order is kept.
///
/// ```
/// use stratacache_tier::Tags;
///
/// let tags = Tags::new(["tenant:7", "products", "tenant:7"]);
/// assert_eq!(tags.iter().collect::<Vec<_>>(), ["tenant:7", "products"]);
/// assert_eq!(tags.len(), 2);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Tags(Option<Arc<[Box<str>]>>);

impl Tags {
    /// The most tags an entry carries; more are a [`Config`](crate::ErrorKind::Config)
    /// error where they are given.
    pub const MAX_TAGS: usize = 64;

    /// The longest tag, in bytes.
    pub const MAX_TAG_LEN: usize = 1_024;

    /// These tags, without duplicates.
    #[must_use]
    pub fn new<I>(tags: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let mut unique: Vec<Box<str>> = Vec::new();
        for tag in tags {
            let tag: String = tag.into();
            if !unique.iter().any(|seen| **seen == *tag) {
                unique.push(tag.into_boxed_str());
            }
        }
        if unique.is_empty() {
            Self(None)
        } else {
            Self(Some(unique.into()))
        }
    }

    /// No tags.
    #[must_use]
    pub const fn none() -> Self {
        Self(None)
    }

    /// Whether there are none.
    #[must_use]
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// How many there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.as_deref().map_or(0, <[_]>::len)
    }

    /// The tags, in the order given.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|tag| &**tag)
    }

    /// These tags and `other`'s, without duplicates.
    ///
    /// ```
    /// use stratacache_tier::Tags;
    ///
    /// let both = Tags::new(["a", "b"]).union(&Tags::new(["b", "c"]));
    /// assert_eq!(both.iter().collect::<Vec<_>>(), ["a", "b", "c"]);
    /// ```
    #[must_use]
    pub fn union(&self, other: &Self) -> Self {
        if other.is_empty() {
            return self.clone();
        }
        if self.is_empty() {
            return other.clone();
        }
        Self::new(self.iter().chain(other.iter()))
    }

    /// Whether they stay within [`MAX_TAGS`](Self::MAX_TAGS) and
    /// [`MAX_TAG_LEN`](Self::MAX_TAG_LEN).
    #[must_use]
    pub fn within_limits(&self) -> bool {
        self.len() <= Self::MAX_TAGS && self.iter().all(|tag| tag.len() <= Self::MAX_TAG_LEN)
    }
}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<S: Into<String>> FromIterator<S> for Tags {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self::new(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_tags_hold_nothing() {
        let none = Tags::new(Vec::<String>::new());
        assert!(none.is_empty());
        assert_eq!(none, Tags::none());
        assert_eq!(none.iter().count(), 0);
    }

    #[test]
    fn limits_are_checked() {
        assert!(Tags::new(["a"; 1]).within_limits());
        let many: Tags = (0..=Tags::MAX_TAGS).map(|i| i.to_string()).collect();
        assert!(!many.within_limits());
        assert!(!Tags::new(["x".repeat(Tags::MAX_TAG_LEN + 1)]).within_limits());
    }
}
