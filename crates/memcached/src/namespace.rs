//! Which prefix a key has on its server: each server's namespace generation, read,
//! moved (by `clear`, or before a distrusted server is used again) and fallen back on
//! while the server does not answer. See `generation` for what this client knows of it.

use std::fmt;
use std::time::{Duration, SystemTime};

use stratacache_tier::{Error, ErrorKind};

use crate::protocol::{self, Reply};
use crate::store::{MemcachedStore, all_down};

/// How long after a failed read of a server's generation it is asked again.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(1);

impl MemcachedStore {
    /// The server that owns `key` now, and the key as stored there.
    pub(crate) async fn locate<'a>(&'a self, key: &'a str) -> Result<(usize, FullKey<'a>), Error> {
        let index = self.route(key.as_bytes()).ok_or_else(all_down)?;
        let generation = self.generation(index, false).await?;
        Ok((index, self.full_key(generation, key)?))
    }

    /// `key` as stored under `generation`: `namespace:generation:key`.
    pub(crate) fn full_key<'a>(
        &'a self,
        generation: u64,
        key: &'a str,
    ) -> Result<FullKey<'a>, Error> {
        FullKey {
            namespace: &self.config.namespace,
            generation,
            key,
        }
        .checked()
    }

    /// The namespace generation to use on server `index`: the known one while it is
    /// fresh and the server trusted, otherwise asked of the server, which moves it when
    /// `moving` (a `clear`) or when the server is distrusted.
    pub(crate) async fn generation(&self, index: usize, moving: bool) -> Result<u64, Error> {
        if !moving && let Some(known) = self.fresh_generation(index) {
            return Ok(known);
        }
        // Boxed: asking is a whole exchange with the server, which inline would be part of
        // every command's future (and the cache boxes that future on each call: past
        // glibc's 1 KiB thread cache, the box takes the allocator's shared lock).
        Box::pin(self.ask_generation(index, moving)).await
    }

    /// [`generation`](Self::generation) when the known one will not do: asks the server
    /// (one caller at a time), or falls back to the last known one.
    async fn ask_generation(&self, index: usize, moving: bool) -> Result<u64, Error> {
        let generation = &self.generations[index];
        let ended = || self.pools[index].connections_ended();
        // A server that failed the last question is not asked again for a while: its
        // callers use the last known generation (and spend one timeout, not two).
        if !moving && let Some(failure) = generation.failed_within(ASK_AGAIN_AFTER, ended().1) {
            return self.fall_back(index, moving, failure);
        }
        let answers = generation.answers();
        // One caller asks, the others wait for its answer; the asking caller's command
        // timeout bounds the wait, so this one is bounded by it too.
        let Ok(_asking) =
            tokio::time::timeout(self.config.command_timeout, generation.asking.lock()).await
        else {
            let error = Error::new(
                ErrorKind::Timeout,
                format!(
                    "memcached at {}: the namespace generation was not read within {:?}",
                    self.pools[index].address, self.config.command_timeout
                ),
            );
            return self.fall_back(index, moving, error);
        };
        if !moving {
            if let Some(known) = self.fresh_generation(index) {
                return Ok(known);
            }
            if generation.answers() != answers {
                // The server answered someone while this caller waited: share that
                // answer rather than ask again (and, when it failed, spend another
                // timeout on a server that is not answering).
                if let Some(failure) = generation.last_failure() {
                    return self.fall_back(index, moving, failure);
                }
                if let Some(known) = generation.last_known() {
                    return Ok(known);
                }
            }
        }
        let question = generation.question(moving);
        // Counted before asking: a connection that ends while the answer comes (a
        // restart) leaves the answer already out of date.
        let ended_before = ended();
        let answer = self.add_to_generation(index, question.delta).await;
        generation.answered(question, &answer, ended_before);
        answer.or_else(|error| self.fall_back(index, moving, error))
    }

    /// Server `index`'s known generation while it is fresh and no connection to the
    /// server ended since it was read.
    fn fresh_generation(&self, index: usize) -> Option<u64> {
        self.generations[index].fresh(
            self.config.generation_refresh,
            self.pools[index].connections_ended().0,
        )
    }

    /// What to use when server `index`'s generation could not be asked: the last known
    /// one, unless the server is distrusted or this was a move; otherwise `error`.
    pub(crate) fn fall_back(&self, index: usize, moving: bool, error: Error) -> Result<u64, Error> {
        match self.generations[index].last_known() {
            // Keep serving on the last known generation while the server does not answer
            // for it: a command that does reach the server still finds its entries.
            Some(known) if !moving => Ok(known),
            _ => Err(error),
        }
    }

    /// Adds `delta` to server `index`'s generation and returns it; a missing one is
    /// created at the current time in ms (with no delta), so that a generation key lost
    /// to eviction or a restart never brings back an old prefix.
    pub(crate) async fn add_to_generation(&self, index: usize, delta: u64) -> Result<u64, Error> {
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let key = self.generation_key();
        // Twice at most: the second after the key was found holding no number.
        for _ in 0..2 {
            let mut request = Vec::new();
            protocol::add(&mut request, &key, now_ms, delta);
            match self.one(index, request).await? {
                Reply::Value(bytes) => {
                    if let Some(generation) = parse_generation(&bytes) {
                        return Ok(generation);
                    }
                }
                Reply::NotANumber => {
                    self.renew_generation(index, &key, now_ms).await?;
                    continue;
                }
                _ => {}
            }
            break;
        }
        Err(Error::new(
            ErrorKind::Other,
            "memcached answered the generation with no number",
        ))
    }

    /// Replaces what server `index` holds under the generation `key`, which is not a
    /// number (someone else's bytes), with `now_ms`, as if it had been lost: a new prefix
    /// that no entry has. Only if nobody changed it meanwhile, so that clients renewing it
    /// at once agree on one generation: the others find the winner's number.
    async fn renew_generation(&self, index: usize, key: &str, now_ms: u128) -> Result<(), Error> {
        let mut request = Vec::new();
        protocol::get_with_cas(&mut request, key);
        let cas = match self.one_reply(index, request).await? {
            // Still not a number: replaced if nobody changes it first.
            Reply::ValueAndCas(bytes, cas) if parse_generation(&bytes).is_none() => cas,
            // Over this client's limit, so no number either: its token alone is asked.
            Reply::TooLarge(_) => {
                let mut request = Vec::new();
                protocol::get_cas(&mut request, key);
                let token = match self.one(index, request).await? {
                    Reply::Done(flags) => protocol::flag(flags.split(' '), 'c'),
                    _ => None,
                };
                let Some(cas) = token else {
                    return Ok(());
                };
                cas
            }
            // Gone, or already renewed by another client: asked again.
            _ => return Ok(()),
        };
        let mut request = Vec::new();
        let generation = now_ms.to_string();
        protocol::set_if_unchanged(&mut request, key, generation.as_bytes(), 0, cas);
        self.one(index, request).await.map(drop)
    }

    /// Clears this namespace on server `index`: moves its generation, or runs
    /// `flush_all` when allowed.
    pub(crate) async fn clear_server(&self, index: usize) -> Result<(), Error> {
        if self.config.flush_all {
            let mut request = Vec::new();
            protocol::flush_all(&mut request);
            self.one(index, request).await?;
        } else {
            // memcached has no namespace delete: moving the generation orphans every key
            // of the old one (they age out or are evicted).
            self.generation(index, true).await?;
        }
        Ok(())
    }
}

/// A generation as memcached holds it: a decimal number.
fn parse_generation(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// A key as stored, `namespace:generation:key`, written straight into a request (see
/// [`fmt::Display`]) rather than built as a string first.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FullKey<'a> {
    namespace: &'a str,
    generation: u64,
    key: &'a str,
}

impl FullKey<'_> {
    /// Itself, if memcached accepts it: at most 250 bytes of printable ASCII without
    /// spaces (the namespace was checked when the store was made).
    fn checked(self) -> Result<Self, Error> {
        let digits = self.generation.checked_ilog10().unwrap_or(0) as usize + 1;
        let len = self.namespace.len() + 1 + digits + 1 + self.key.len();
        if len > protocol::MAX_KEY || !self.key.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(protocol::invalid_key(len));
        }
        Ok(self)
    }
}

impl fmt::Display for FullKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.namespace, self.generation, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::FullKey;
    use crate::protocol::check_key;

    #[test]
    fn a_full_key_is_accepted_exactly_when_its_text_is() {
        for (generation, key) in [
            (0, "k"),
            (9, "k"),
            (10, "k"),
            (u64::MAX, "k"),
            (123, "with space"),
            (123, "é"),
            (123, ""),
            (1, &*"x".repeat(250 - 5)),
            (1, &*"x".repeat(250 - 4)),
            (10, &*"x".repeat(250 - 6)),
            (10, &*"x".repeat(250 - 5)),
        ] {
            let full = FullKey {
                namespace: "ns",
                generation,
                key,
            };
            assert_eq!(
                full.checked().is_ok(),
                check_key(&full.to_string()).is_ok(),
                "{full}"
            );
        }
    }
}
