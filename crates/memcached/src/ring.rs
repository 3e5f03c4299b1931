//! A ketama-style consistent-hash ring: each server owns many points on a circle of
//! `u32`s, and a key belongs to the first point at or after its own hash. Adding or
//! removing one of N servers moves about 1/N of the keys.

use sha2::{Digest, Sha256};

/// Points per server: enough for an even spread over a handful of servers.
pub(crate) const POINTS_PER_SERVER: usize = 160;

#[derive(Debug)]
pub(crate) struct Ring {
    /// (point, server index), sorted by point.
    points: Vec<(u32, usize)>,
}

/// A stable hash: the same in every process and every release, unlike `std`'s.
fn hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn point(digest: &[u8; 32], at: usize) -> u32 {
    u32::from_le_bytes([digest[at], digest[at + 1], digest[at + 2], digest[at + 3]])
}

impl Ring {
    /// A ring of `servers`, named by their addresses (the names decide the points).
    pub(crate) fn new<S: AsRef<str>>(servers: &[S]) -> Self {
        let mut points = Vec::with_capacity(servers.len() * POINTS_PER_SERVER);
        for (index, server) in servers.iter().enumerate() {
            // Each digest yields eight points, as ketama's MD5 yields four.
            for replica in 0..POINTS_PER_SERVER / 8 {
                let digest = hash(format!("{}-{replica}", server.as_ref()).as_bytes());
                points.extend((0..8).map(|slot| (point(&digest, slot * 4), index)));
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// The server that owns `key`, skipping servers for which `skip` is true (down
    /// ones); `None` when every server is skipped or the ring is empty.
    pub(crate) fn server_for(&self, key: &[u8], skip: impl Fn(usize) -> bool) -> Option<usize> {
        let at = point(&hash(key), 0);
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
