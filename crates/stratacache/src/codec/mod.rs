//! The codec boundary: typed keys and values in front of a bytes-level store (see
//! [`Remote`], where the envelope format is specified).

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
