//! How large the futures of a byte store's commands are.

use std::mem::size_of_val;

use bytes::Bytes;

use crate::ByteStore;

/// The size in bytes of the future of each of `store`'s single-key commands, by name:
/// `get`, `set`, `delete`, `set_if_greater`, `set_unless_within`.
///
/// For a store's own tests, to hold them under a budget: the cache boxes one such
/// future (inside its own) for every call to a remote tier, and glibc serves an
/// allocation of up to 1,032 bytes from the calling thread's cache, a larger one from
/// a shared arena behind a lock.
///
/// ```
/// use stratacache_tier::mock::{MemoryStore, command_future_sizes};
///
/// for (command, size) in command_future_sizes(&MemoryStore::new()) {
///     assert!(size <= 800, "{command} holds {size} bytes");
/// }
/// ```
pub fn command_future_sizes<S: ByteStore>(store: &S) -> [(&'static str, usize); 5] {
    let value = || Bytes::from_static(b"value");
    [
        ("get", size_of_val(&store.get("key"))),
        ("set", size_of_val(&store.set("key", value(), None))),
        ("delete", size_of_val(&store.delete("key"))),
        (
            "set_if_greater",
            size_of_val(&store.set_if_greater("key", value(), None)),
        ),
        (
            "set_unless_within",
            size_of_val(&store.set_unless_within("key", value(), None, b"a", b"b")),
        ),
    ]
}
