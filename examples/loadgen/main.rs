//! The load generator: `cargo run --release -p stratacache-examples --features loadgen --bin loadgen -- [OPTIONS]`.
//!
//! Drives the reference service at a given concurrency with Zipf-distributed reads and
//! a share of writes, shows progress, prints the hit ratio (reads served without a
//! database query), p50/p99/p999 latency and the queries saved, and plots latency and
//! hit ratio over time as SVG.
//!
//! Without `--url` it starts the service in this process over a fresh SQLite file
//! filled with `--keys` users and a `redis-server` of its own (or `REDIS_URL`);
//! `--outage` kills that Redis a third of the way in and restarts it at two thirds.
//!
//! ```text
//! --url URL          a running service instead (its table should hold users 1..=keys)
//! --bare             call the in-process service's cache, not its HTTP API
//! --concurrency N    concurrent callers (32)
//! --seconds S        how long to run (30)
//! --keys N           users 1..=N (20000)
//! --writes P         percent of requests that are writes (1)
//! --outage           kill and restart Redis during the run
//! --svg PATH         where to write the plot (loadgen.svg)
//! ```

mod report;
mod workload;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use stratacache_examples::service::{Config, ScratchDatabase, Service};
use stratacache_testkit::RedisServer;

use report::{Report, STEP_MS};
use workload::{Target, Zipf};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Options {
    url: Option<String>,
    bare: bool,
    concurrency: usize,
    seconds: u64,
    keys: u64,
    write_percent: f64,
    outage: bool,
    svg: PathBuf,
}

impl Options {
    fn parse() -> Result<Self, BoxError> {
        let mut options = Self {
            url: None,
            bare: false,
            concurrency: 32,
            seconds: 30,
            keys: 20_000,
            write_percent: 1.0,
            outage: false,
            svg: "loadgen.svg".into(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--url" => options.url = Some(value()?),
                "--bare" => options.bare = true,
                "--concurrency" => options.concurrency = value()?.parse()?,
                "--seconds" => options.seconds = value()?.parse()?,
                "--keys" => options.keys = value()?.parse()?,
                "--writes" => options.write_percent = value()?.parse()?,
                "--outage" => options.outage = true,
                "--svg" => options.svg = value()?.into(),
                other => return Err(format!("unknown option {other} (see the file's docs)").into()),
            }
        }
        if options.url.is_some() && (options.bare || options.outage) {
            return Err("--bare and --outage need the service in this process (no --url)".into());
        }
        Ok(options)
    }
}

/// The Redis and the service this process started, if it started them.
struct Started {
    redis: Option<Arc<Mutex<RedisServer>>>,
    service: Arc<Service>,
    /// Kept until the run ends: dropping it removes the file.
    _database: ScratchDatabase,
}

async fn start_service(options: &Options) -> Result<Started, BoxError> {
    let (redis, url) = match std::env::var("REDIS_URL") {
        Ok(url) if !options.outage => (None, url),
        _ => {
            let server = RedisServer::start()?;
            let url = server.url();
            (Some(Arc::new(Mutex::new(server))), url)
        }
    };
    let database = ScratchDatabase::new("loadgen");
    let mut config = Config::new(database.url()).redis(url);
    // A short L1 life: instances read Redis often, so its outage shows.
    config.l1_ttl = Some(Duration::from_secs(2));
    let service = Service::start(config).await?;
    service
        .users()
        .upsert_many(&workload::users(options.keys))
        .await?;
    Ok(Started {
        redis,
        service: Arc::new(service),
        _database: database,
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = Options::parse()?;
    let started = match options.url {
        Some(_) => None,
        None => Some(start_service(&options).await?),
    };
    let target = match (&options.url, &started) {
        (Some(url), _) => Target::Http {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            base: url.trim_end_matches('/').to_owned(),
        },
        (None, Some(started)) if options.bare => Target::Bare(Arc::clone(&started.service)),
        (None, Some(started)) => Target::Http {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            base: started.service.url(),
        },
        (None, None) => unreachable!("a service is started when no URL is given"),
    };

    let run = Duration::from_secs(options.seconds.max(1));
    let progress = ProgressBar::new(run.as_millis() as u64);
    progress.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {msg}",
    )?);
    let zipf = Arc::new(Zipf::new(options.keys));
    let start = Instant::now();
    let until = start + run;
    let workers: Vec<_> = (0..options.concurrency.max(1))
        .map(|n| {
            tokio::spawn(workload::worker(
                target.clone(),
                Arc::clone(&zipf),
                options.write_percent / 100.0,
                start,
                until,
                n as u64 + 1,
            ))
        })
        .collect();

    // Kill Redis at a third, restart it at two thirds.
    let outage_task = match started.as_ref().and_then(|started| started.redis.clone()) {
        Some(redis) if options.outage => Some(tokio::spawn(async move {
            tokio::time::sleep_until((start + run / 3).into()).await;
            let redis_down = Arc::clone(&redis);
            tokio::task::spawn_blocking(move || {
                if let Ok(mut redis) = redis_down.lock() {
                    redis.stop();
                }
            })
            .await
            .ok();
            let down = start.elapsed().as_secs_f64();
            tokio::time::sleep_until((start + run * 2 / 3).into()).await;
            let restarted = tokio::task::spawn_blocking(move || {
                redis
                    .lock()
                    .map_err(|_| "lock poisoned".to_string())?
                    .restart()
                    .map_err(|error| error.to_string())
            })
            .await;
            let up = start.elapsed().as_secs_f64();
            if let Ok(Err(error)) = restarted {
                eprintln!("redis-server did not restart: {error}");
            }
            down..up
        })),
        _ => None,
    };

    // Every step: the database's query count, and the progress bar.
    let mut queries = Vec::new();
    let mut step = tokio::time::interval(Duration::from_millis(u64::from(STEP_MS)));
    // A slow answer delays the next sample; it does not bunch them up.
    step.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < until {
        step.tick().await;
        let at = u32::try_from(start.elapsed().as_millis()).unwrap_or(u32::MAX);
        if let Some(count) = target.queries().await {
            queries.push((at, count));
        }
        progress.set_position(u64::from(at));
        let last = queries.len().saturating_sub(5);
        if let [(first_at, first), .., (last_at, last)] = &queries[last..] {
            let per_second = last.saturating_sub(*first) as f64 * 1000.0
                / f64::from(last_at.saturating_sub(*first_at).max(1));
            progress.set_message(format!("{per_second:.0} queries/s"));
        }
    }
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await?);
    }
    if let Some(count) = target.queries().await {
        queries.push((u32::try_from(run.as_millis()).unwrap_or(u32::MAX), count));
    }
    progress.finish_and_clear();
    let outage: Option<Range<f64>> = match outage_task {
        Some(task) => Some(task.await?),
        None => None,
    };

    let report = Report::new(&samples, &queries, run.as_secs_f64());
    print!("{}", report.summary());
    if let Some(outage) = &outage {
        println!(
            "redis     killed at {:.1} s, back at {:.1} s",
            outage.start, outage.end
        );
    }
    let title = format!(
        "{} callers, {} users (Zipf){}",
        options.concurrency,
        options.keys,
        if outage.is_some() {
            ", Redis killed and restarted (shaded)"
        } else {
            ""
        }
    );
    report
        .plot(&options.svg, &title, outage)
        .map_err(|error| error.to_string())?;
    println!("plot      {}", options.svg.display());
    Ok(())
}
