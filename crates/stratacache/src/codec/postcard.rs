use serde::Serialize;
use serde::de::DeserializeOwned;
use stratacache_tier::{Error, ErrorKind};

use super::Codec;

/// The default codec: [postcard](https://docs.rs/postcard), compact and serde-based.
#[derive(Clone, Copy, Debug, Default)]
pub struct Postcard;

impl<T: Serialize + DeserializeOwned> Codec<T> for Postcard {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
        let encoded = postcard::to_extend(value, std::mem::take(out))
            .map_err(|error| Error::from_source(ErrorKind::Codec, error))?;
        *out = encoded;
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, Error> {
        postcard::from_bytes(bytes).map_err(|error| Error::from_source(ErrorKind::Codec, error))
    }
}
