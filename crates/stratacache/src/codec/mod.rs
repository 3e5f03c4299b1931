//! The codec boundary: typed keys and values in front of a bytes-level store (see
//! [`Remote`], where the envelope format is specified).

#[cfg(feature = "compression")]
mod compression;
#[cfg(feature = "encryption")]
mod encryption;
mod envelope;
mod key;
mod markers;
mod postcard;
mod remote;
mod transforms;

#[cfg(feature = "compression")]
pub use compression::Compression;
#[cfg(feature = "encryption")]
pub use encryption::Encryption;

pub use self::postcard::Postcard;
pub(crate) use markers::StoreMarkers;
pub use remote::{Remote, SerializedTier};

use stratacache_tier::Error;

/// Turns values of `T` into bytes and back.
///
/// One codec serves keys and values alike (it implements `Codec<K>` and `Codec<V>`).
/// [`Postcard`] is the default.
///
/// ```
/// use stratacache::{Codec, Error, ErrorKind};
///
/// /// Strings as their raw UTF-8 bytes.
/// struct Utf8;
///
/// impl Codec<String> for Utf8 {
///     fn encode(&self, value: &String, out: &mut Vec<u8>) -> Result<(), Error> {
///         out.extend_from_slice(value.as_bytes());
///         Ok(())
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<String, Error> {
///         String::from_utf8(bytes.to_vec()).map_err(|e| Error::from_source(ErrorKind::Codec, e))
///     }
/// }
///
/// let mut bytes = Vec::new();
/// Utf8.encode(&"héllo".to_string(), &mut bytes)?;
/// assert_eq!(Utf8.decode(&bytes)?, "héllo");
/// assert_eq!(Utf8.decode(&[0xff]).unwrap_err().kind(), ErrorKind::Codec);
/// // Then: `Remote::new(store).codec(Utf8)` for a `Cache<String, String>`.
/// # Ok::<(), stratacache::Error>(())
/// ```
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
