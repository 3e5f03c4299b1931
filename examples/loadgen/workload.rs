//! What the load generator sends, and to what: Zipf-distributed user ids, a share of
//! writes, over HTTP to a service or straight to its cache.

use std::sync::Arc;
use std::time::Instant;

use stratacache_examples::service::{Service, User, UserFields};

/// User ids `1..=keys`, id `k` drawn with weight `1/k` (Zipf, s = 1): a few hot users,
/// a long tail.
pub(crate) struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    pub(crate) fn new(keys: u64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=keys.max(1))
            .map(|k| {
                total += 1.0 / k as f64;
                total
            })
            .collect();
        Self { cumulative }
    }

    pub(crate) fn sample(&self, rng: &mut fastrand::Rng) -> u64 {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let point = rng.f64() * total;
        self.cumulative.partition_point(|weight| *weight < point) as u64 + 1
    }
}

/// Where requests go.
#[derive(Clone)]
pub(crate) enum Target {
    /// A service's HTTP API at this base URL.
    Http {
        client: reqwest::Client,
        base: String,
    },
    /// A service in this process, through its cache and table: no HTTP.
    Bare(Arc<Service>),
}

/// One request's record: when it started (ms into the run), how long it took (µs),
/// whether it was a write and whether it succeeded.
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) at_ms: u32,
    pub(crate) micros: u32,
    pub(crate) write: bool,
    pub(crate) ok: bool,
}

pub(crate) fn fields(id: u64, version: u64) -> UserFields {
    UserFields {
        name: format!("user {id} v{version}"),
        email: format!("user{id}@example.com"),
    }
}

impl Target {
    /// Reads (or, when `write`, replaces) user `id`; whether the service answered as it
    /// should (a missing user is an answer).
    pub(crate) async fn request(&self, id: u64, write: bool, version: u64) -> bool {
        match self {
            Self::Http { client, base } => {
                let url = format!("{base}/users/{id}");
                let sent = if write {
                    client.put(url).json(&fields(id, version)).send().await
                } else {
                    client.get(url).send().await
                };
                sent.is_ok_and(|response| {
                    response.status().is_success() || response.status().as_u16() == 404
                })
            }
            Self::Bare(service) if write => {
                let Ok(user) = service.users().upsert(id, fields(id, version)).await else {
                    return false;
                };
                service.cache().insert(id, user).await.is_ok()
            }
            Self::Bare(service) => service.cache().get(&id).await.is_ok(),
        }
    }

    /// How many queries the database has run: the service's `db_queries` figure.
    pub(crate) async fn queries(&self) -> Option<u64> {
        match self {
            Self::Bare(service) => Some(service.users().queries()),
            Self::Http { client, base } => {
                let text = client
                    .get(format!("{base}/metrics"))
                    .send()
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                text.lines()
                    .find(|line| line.starts_with("db_queries"))?
                    .rsplit(' ')
                    .next()?
                    .parse::<f64>()
                    .ok()
                    .map(|figure| figure as u64)
            }
        }
    }
}

/// One worker: requests back to back until `until`, its own records kept locally.
pub(crate) async fn worker(
    target: Target,
    zipf: Arc<Zipf>,
    write_share: f64,
    start: Instant,
    until: Instant,
    seed: u64,
) -> Vec<Sample> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut samples = Vec::new();
    let mut version = 0;
    while Instant::now() < until {
        let id = zipf.sample(&mut rng);
        let write = rng.f64() < write_share;
        version += 1;
        let began = Instant::now();
        let ok = target.request(id, write, version).await;
        samples.push(Sample {
            at_ms: u32::try_from(began.duration_since(start).as_millis()).unwrap_or(u32::MAX),
            micros: u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX),
            write,
            ok,
        });
    }
    samples
}

/// The users `1..=keys`, as the table is filled before a run.
pub(crate) fn users(keys: u64) -> Vec<User> {
    (1..=keys)
        .map(|id| {
            let fields = fields(id, 0);
            User {
                id,
                name: fields.name,
                email: fields.email,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Zipf;

    #[test]
    fn zipf_draws_every_id_in_range_the_first_most_often() {
        let zipf = Zipf::new(100);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0_u32; 101];
        for _ in 0..100_000 {
            let id = zipf.sample(&mut rng);
            assert!((1..=100).contains(&id), "{id}");
            counts[id as usize] += 1;
        }
        // Weight 1/k over H(100) ≈ 5.187: id 1 about 19.3%, id 2 about 9.6%.
        assert!((18_000..20_500).contains(&counts[1]), "{}", counts[1]);
        assert!((8_800..10_500).contains(&counts[2]), "{}", counts[2]);
        assert!(counts[1] > counts[10] && counts[10] > counts[100]);
    }
}
