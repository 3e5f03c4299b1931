use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// A boxed error that can cross threads: the source type [`Error`] wraps.
///
/// ```
/// use stratacache_tier::{BoxError, Error, ErrorKind};
///
/// let boxed: BoxError = "connection refused".into();
/// let err = Error::from_source(ErrorKind::Unavailable, boxed);
/// assert_eq!(err.to_string(), "unavailable: connection refused");
/// ```
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong, for callers to match on.
///
/// ```
/// use stratacache_tier::{Error, ErrorKind};
///
/// fn advice(err: &Error) -> &'static str {
///     match err.kind() {
///         ErrorKind::Unavailable | ErrorKind::Timeout => "try again later",
///         ErrorKind::Codec => "drop the entry",
///         _ => "give up",
///     }
/// }
/// assert_eq!(advice(&Error::new(ErrorKind::Timeout, "slow")), "try again later");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The tier could not be reached or refused the connection.
    Unavailable,
    /// The tier did not answer within its time limit.
    Timeout,
    /// Bytes could not be encoded or decoded (corrupt, truncated or foreign data).
    Codec,
    /// Bytes failed a security check: a ciphertext that does not authenticate (tampered,
    /// truncated, copied under another key or cache), encrypted under a key this cache
    /// does not hold, plain bytes where encrypted ones belong, or a payload that would
    /// decompress past its limit. A security event: counted apart from codec errors.
    Integrity,
    /// The tier refused the request itself: an oversized value, an invalid key.
    Rejected,
    /// The tier holds an entry produced well after the one written (a write sent long
    /// ago, landing late after a server stalled): the newer entry stands, and the write
    /// changed nothing there.
    Superseded,
    /// The caller's loader failed; [`Error::source`](StdError::source) holds its error.
    Loader,
    /// The tier was not called: its circuit breaker is open after repeated failures.
    CircuitOpen,
    /// A cache or tier was configured inconsistently (reported by `build`).
    Config,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// A short, stable, lower-case name for logs and metrics labels.
    ///
    /// ```
    /// use stratacache_tier::ErrorKind;
    ///
    /// assert_eq!(ErrorKind::Unavailable.as_str(), "unavailable");
    /// assert_eq!(ErrorKind::Codec.to_string(), ErrorKind::Codec.as_str());
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Codec => "codec",
            Self::Integrity => "integrity",
            Self::Rejected => "rejected",
            Self::Superseded => "superseded",
            Self::Loader => "loader",
            Self::CircuitOpen => "circuit_open",
            Self::Config => "config",
            Self::Other => "other",
        }
    }

    /// Whether trying again later may succeed: [`Unavailable`](Self::Unavailable) and
    /// [`Timeout`](Self::Timeout).
    ///
    /// ```
    /// use stratacache_tier::ErrorKind;
    ///
    /// assert!(ErrorKind::Timeout.is_transient());
    /// assert!(!ErrorKind::Codec.is_transient());
    /// ```
    #[must_use]
    pub const fn is_transient(self) -> bool {
        matches!(self, Self::Unavailable | Self::Timeout)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every stratacache operation: a [`ErrorKind`], a message and an optional source.
///
/// `Error` is cheap to clone (one reference count), so one failure can be handed to
/// every caller that waited on the same load.
///
/// ```
/// use stratacache_tier::{Error, ErrorKind};
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let err = Error::new(ErrorKind::Unavailable, "redis is down").with_source(io);
/// assert_eq!(err.kind(), ErrorKind::Unavailable);
/// assert!(err.is_transient());
/// assert_eq!(err.to_string(), "unavailable: redis is down");
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
    source: Option<BoxError>,
}

impl Error {
    /// Creates an error of `kind` with a message.
    #[must_use]
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                kind,
                message: message.into(),
                source: None,
            }),
        }
    }

    /// Creates an error of `kind` whose message is its source's.
    ///
    /// ```
    /// use stratacache_tier::{Error, ErrorKind};
    ///
    /// let io = std::io::Error::other("connection reset");
    /// let err = Error::from_source(ErrorKind::Unavailable, io);
    /// assert_eq!(err.message(), "connection reset");
    /// assert!(err.source_as::<std::io::Error>().is_some());
    /// ```
    #[must_use]
    pub fn from_source(kind: ErrorKind, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        Self {
            inner: Arc::new(Inner {
                kind,
                message: Cow::Owned(source.to_string()),
                source: Some(source),
            }),
        }
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(self, source: impl Into<BoxError>) -> Self {
        let source = Some(source.into());
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => Self {
                inner: Arc::new(Inner { source, ..inner }),
            },
            Err(shared) => Self {
                inner: Arc::new(Inner {
                    kind: shared.kind,
                    message: shared.message.clone(),
                    source,
                }),
            },
        }
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The message, without the kind.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Whether trying again later may succeed ([`Unavailable`](ErrorKind::Unavailable) or
    /// [`Timeout`](ErrorKind::Timeout)).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        self.inner.kind.is_transient()
    }

    /// The source error downcast to `E`, if it is one.
    ///
    /// ```
    /// use stratacache_tier::{Error, ErrorKind};
    ///
    /// let err = Error::new(ErrorKind::Codec, "truncated").with_source(std::fmt::Error);
    /// assert!(err.source_as::<std::fmt::Error>().is_some());
    /// assert!(err.source_as::<std::io::Error>().is_none());
    /// ```
    #[must_use]
    pub fn source_as<E: StdError + 'static>(&self) -> Option<&E> {
        self.inner.source.as_deref()?.downcast_ref::<E>()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Error");
        debug
            .field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(source) = &self.inner.source {
            debug.field("source", source);
        }
        debug.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.inner.kind, self.inner.message)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_is_reachable_and_downcastable() {
        let io = std::io::Error::other("boom");
        let err = Error::from_source(ErrorKind::Other, io);
        assert_eq!(err.message(), "boom");
        assert!(err.source().is_some());
        assert_eq!(
            err.source_as::<std::io::Error>().map(ToString::to_string),
            Some("boom".into())
        );
        assert!(err.source_as::<fmt::Error>().is_none());
    }

    #[test]
    fn with_source_on_a_shared_error_keeps_the_original_intact() {
        let original = Error::new(ErrorKind::Timeout, "slow");
        let copy = original.clone();
        let sourced = copy.with_source(std::io::Error::other("inner"));
        assert!(original.source().is_none());
        assert!(sourced.source().is_some());
        assert_eq!(sourced.kind(), ErrorKind::Timeout);
    }

    #[test]
    fn only_unavailable_and_timeout_are_transient() {
        for (kind, transient) in [
            (ErrorKind::Unavailable, true),
            (ErrorKind::Timeout, true),
            (ErrorKind::Codec, false),
            (ErrorKind::Integrity, false),
            (ErrorKind::Rejected, false),
            (ErrorKind::Loader, false),
            (ErrorKind::Config, false),
            (ErrorKind::Other, false),
        ] {
            assert_eq!(Error::new(kind, "x").is_transient(), transient, "{kind}");
        }
    }

    #[test]
    fn error_is_one_pointer_wide() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }
}
