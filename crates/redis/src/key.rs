//! A store key as Redis sees it: the namespace's prefix, then the cache's key, written
//! into the command in place rather than joined into a `String` first.

use std::io::Write;

use redis::{Cmd, RedisWrite, ToRedisArgs};

/// `prefix` followed by `key`, as one command argument.
#[derive(Clone, Copy)]
pub(crate) struct FullKey<'a> {
    pub(crate) prefix: &'a str,
    pub(crate) key: &'a str,
}

impl FullKey<'_> {
    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.prefix.len() + self.key.len()
    }
}

/// The command `name key`, its buffers sized up front: `redis::cmd(name).arg(key)`
/// allocates for the name, then grows (and copies) for the key.
pub(crate) fn keyed(name: &str, key: FullKey<'_>) -> Cmd {
    let mut command = Cmd::with_capacity(2, name.len() + key.len());
    command.arg(name).arg(key);
    command
}

impl ToRedisArgs for FullKey<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        // Copied straight into the command's buffer: no formatting machinery, no `String`.
        let mut arg = out.writer_for_next_arg();
        // The writer appends to a `Vec`, which never fails (a key cut short would name
        // another key).
        let written = arg
            .write_all(self.prefix.as_bytes())
            .and_then(|()| arg.write_all(self.key.as_bytes()));
        debug_assert!(written.is_ok(), "a command's buffer refused bytes");
    }
}

#[cfg(test)]
mod tests {
    use super::FullKey;

    #[test]
    fn a_full_key_is_one_argument_of_prefix_and_key() {
        let mut command = redis::cmd("GET");
        command.arg(FullKey {
            prefix: "ns:",
            key: "AQ",
        });
        let packed = String::from_utf8(command.get_packed_command()).unwrap();
        assert_eq!(packed, "*2\r\n$3\r\nGET\r\n$5\r\nns:AQ\r\n");
    }

    #[test]
    fn a_keyed_command_is_the_same_command_sized_up_front() {
        let key = FullKey {
            prefix: "ns:",
            key: "AQ",
        };
        let keyed = super::keyed("GET", key);
        assert_eq!(
            keyed.get_packed_command(),
            redis::cmd("GET").arg(key).get_packed_command()
        );
    }
}
