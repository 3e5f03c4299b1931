use serde::Serialize;
use serde::de::DeserializeOwned;
use stratacache_tier::{Error, ErrorKind};

use super::Codec;

/// The default codec: [postcard](https://docs.rs/postcard), compact and serde-based.
///
/// ```
/// use stratacache::{Codec, Postcard};
///
/// let mut bytes = Vec::new();
/// Postcard.encode(&(7_u32, "seven".to_string()), &mut bytes)?;
/// let decoded: (u32, String) = Postcard.decode(&bytes)?;
/// assert_eq!(decoded, (7, "seven".to_string()));
///
/// bytes.push(0); // trailing bytes are an error, never silently ignored
/// assert!(Codec::<(u32, String)>::decode(&Postcard, &bytes).is_err());
/// # Ok::<(), stratacache::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Postcard;

impl<T: Serialize + DeserializeOwned> Codec<T> for Postcard {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
        let encoded = postcard::to_extend(value, std::mem::take(out))
            .map_err(|error| Error::from_source(ErrorKind::Codec, error))?;
        *out = encoded;
        Ok(())
    }

    /// Decodes exactly one value: bytes left over after it (an envelope with trailing
    /// garbage, two values glued together) are a codec error, not silently ignored.
    fn decode(&self, bytes: &[u8]) -> Result<T, Error> {
        let (value, rest) = postcard::take_from_bytes(bytes)
            .map_err(|error| Error::from_source(ErrorKind::Codec, error))?;
        if !rest.is_empty() {
            return Err(Error::new(
                ErrorKind::Codec,
                format!("{} bytes left over after the value", rest.len()),
            ));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = Vec::new();
        Codec::<u32>::encode(&Postcard, &7, &mut bytes).unwrap();
        assert_eq!(Codec::<u32>::decode(&Postcard, &bytes).unwrap(), 7);
        bytes.extend_from_slice(b"garbage");
        let error = Codec::<u32>::decode(&Postcard, &bytes).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Codec);
        assert!(error.message().contains("left over"), "{error}");
    }
}
