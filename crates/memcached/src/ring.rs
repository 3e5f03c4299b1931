//! A ketama-style consistent-hash ring: each server owns many points on a circle of
//! `u32`s, and a key belongs to the first point at or after its own hash. Adding or
//! removing one of N servers moves about 1/N of the keys.

use xxhash_rust::xxh3::xxh3_64;

/// Points per server: enough for an even spread over a handful of servers.
pub(crate) const POINTS_PER_SERVER: usize = 160;

#[derive(Debug)]
pub(crate) struct Ring {
    /// (point, server index), sorted by point.
    points: Vec<(u32, usize)>,
    /// One server: every key is its own, nothing to hash.
    single: bool,
}

/// A key's place on the circle: XXH3, fast and stable (the same in every process and
/// every release, unlike `std`'s hasher); routing needs spread, not secrecy.
fn point(bytes: &[u8]) -> u32 {
    (xxh3_64(bytes) >> 32) as u32
}

impl Ring {
    /// A ring of `servers`, named by their addresses (the names decide the points).
    pub(crate) fn new<S: AsRef<str>>(servers: &[S]) -> Self {
        let mut points = Vec::with_capacity(servers.len() * POINTS_PER_SERVER);
        for (index, server) in servers.iter().enumerate() {
            for replica in 0..POINTS_PER_SERVER {
                let name = format!("{}-{replica}", server.as_ref());
                points.push((point(name.as_bytes()), index));
            }
        }
        points.sort_unstable();
        Self {
            points,
            single: servers.len() == 1,
        }
    }

    /// The server that owns `key`, skipping servers for which `skip` is true (down
    /// ones); `None` when every server is skipped or the ring is empty.
    pub(crate) fn server_for(&self, key: &[u8], skip: impl Fn(usize) -> bool) -> Option<usize> {
        if self.single {
            return (!skip(0)).then_some(0);
        }
        let at = point(key);
        let start = self.points.partition_point(|(point, _)| *point < at);
        let (after, before) = self.points.split_at(start);
        before
            .iter()
            .chain(after)
            .map(|(_, server)| *server)
            .find(|server| !skip(*server))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(ring: &Ring, keys: usize) -> Vec<usize> {
        (0..keys)
            .map(|key| {
                ring.server_for(format!("key-{key}").as_bytes(), |_| false)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn one_server_owns_every_key_unless_skipped() {
        let ring = Ring::new(&["a:1"]);
        assert_eq!(ring.server_for(b"anything", |_| false), Some(0));
        assert_eq!(ring.server_for(b"", |_| false), Some(0));
        assert_eq!(ring.server_for(b"anything", |_| true), None);
        assert_eq!(Ring::new::<&str>(&[]).server_for(b"k", |_| false), None);
    }

    #[test]
    fn keys_spread_evenly_over_three_servers() {
        let ring = Ring::new(&["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"]);
        let owners = owners(&ring, 10_000);
        for server in 0..3 {
            let share = owners.iter().filter(|owner| **owner == server).count();
            assert!(
                (2_500..=4_200).contains(&share),
                "server {server} owns {share} of 10000"
            );
        }
    }

    #[test]
    fn adding_a_fourth_server_moves_about_a_quarter_of_the_keys() {
        let three = Ring::new(&["a:1", "b:1", "c:1"]);
        let four = Ring::new(&["a:1", "b:1", "c:1", "d:1"]);
        let (before, after) = (owners(&three, 10_000), owners(&four, 10_000));
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        assert!(
            (1_500..=3_500).contains(&moved),
            "{moved} of 10000 keys moved"
        );
        // Every moved key moved to the new server: nothing shuffles between old ones.
        assert!(before.iter().zip(&after).all(|(b, a)| b == a || *a == 3));
    }

    #[test]
    fn a_skipped_server_hands_its_keys_to_the_next_on_the_ring_only() {
        let ring = Ring::new(&["a:1", "b:1", "c:1"]);
        let before = owners(&ring, 10_000);
        let after: Vec<_> = (0..10_000)
            .map(|key| {
                ring.server_for(format!("key-{key}").as_bytes(), |server| server == 1)
                    .unwrap()
            })
            .collect();
        assert!(
            before
                .iter()
                .zip(&after)
                .all(|(b, a)| if *b == 1 { *a != 1 } else { a == b })
        );
        assert_eq!(ring.server_for(b"k", |_| true), None);
    }
}
