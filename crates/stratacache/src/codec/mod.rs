//! The codec boundary: typed keys and values in front of a bytes-level remote store.
//!
//! [`Remote`] wraps a [`ByteStore`](stratacache_tier::ByteStore) (Redis, memcached, …)
//! so that it serves as a typed fallback tier:
//!
//! - **Keys** are encoded with the codec, then base64url: printable ASCII with no spaces
//!   or control characters, valid for every backend. Keys longer than 200 bytes are
//!   replaced by a SHA-256 digest, and the full key travels in the value so that a
//!   digest collision reads as a miss, never as another key's value.
//! - **Values** travel in a versioned [envelope](self#envelope) carrying the time the
//!   value was produced, its TTL and a schema version of your choosing, so promotion
//!   keeps the remaining TTL and bytes written by another schema or another program are
//!   detected.
//! - **Bad bytes** (corrupt, truncated, foreign, another format or schema version) are a
//!   [`Codec`](stratacache_tier::ErrorKind::Codec) error that the cache counts and reads
//!   as a miss (even when strict); the entry is deleted from the store.
//!
//! # Envelope
//!
//! `b"SC"`, format version (1 byte, now 1), flags (1 byte: bit 0 TTL present, bit 1 key
//! check present), cached-at in ms since the Unix epoch (u64 LE), TTL in ms (u64 LE, if
//! present), schema version (u32 LE), key check (u32 LE length + bytes, if present),
//! then the payload.

mod envelope;
mod key;
mod postcard;
mod remote;

pub use self::postcard::Postcard;
pub use remote::{Remote, SerializedTier};

use stratacache_tier::Error;

/// Turns values of `T` into bytes and back.
///
/// One codec serves keys and values alike (it implements `Codec<K>` and `Codec<V>`).
/// [`Postcard`] is the default.
pub trait Codec<T>: Send + Sync + 'static {
    /// Appends the encoding of `value` to `out`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Codec`](stratacache_tier::ErrorKind::Codec) when `value` cannot be
    /// encoded.
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), Error>;

    /// Decodes a value from `bytes`, all of them: bytes left over after the value must be
    /// an error, so that a payload with trailing garbage never reads as good.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Codec`](stratacache_tier::ErrorKind::Codec) when the bytes are not a
    /// valid encoding.
    fn decode(&self, bytes: &[u8]) -> Result<T, Error>;
}
