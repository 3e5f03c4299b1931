//! A store key as Redis sees it: the namespace's prefix, then the cache's key, written
//! into the command in place rather than joined into a `String` first.

use std::fmt;

use redis::{RedisWrite, ToRedisArgs};

/// `prefix` followed by `key`, as one command argument.
#[derive(Clone, Copy)]
pub(crate) struct FullKey<'a> {
    pub(crate) prefix: &'a str,
    pub(crate) key: &'a str,
}

impl fmt::Display for FullKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix)?;
        f.write_str(self.key)
    }
}

impl ToRedisArgs for FullKey<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + RedisWrite,
    {
        // A command writes formatted arguments straight into its buffer.
        out.write_arg_fmt(self);
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
}
