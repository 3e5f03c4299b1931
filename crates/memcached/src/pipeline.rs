//! One multiplexed connection to a memcached server: callers' requests are written back
//! to back on one socket (batched into one write when they queue up) and the replies,
//! which memcached sends in order, are handed back in the same order. Concurrent
//! callers share a few sockets instead of holding one each for a whole round trip.
//!
//! A caller that gives up (its timeout) leaves the stream in step: its reply is read
//! and dropped, or its request not sent at all if it was still queued. A `SERVER_ERROR`
//! is that request's own failure, and so are a value over the request's limit (read
//! past) and `ma`'s "not a number". Anything that may leave the stream out of step (an
//! I/O error, a reply that does not parse, any other `CLIENT_ERROR`) breaks the
//! connection: every caller waiting on it gets the error, and the pool opens a new one.
//! So does the server closing an idle connection (a restart): it is noticed while idle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use stratacache_tier::{Error, ErrorKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::pool::Ends;
use crate::protocol::{self, Reply, io_error};

/// Requests waiting to be written, per connection, before callers wait for room.
const QUEUE: usize = 1024;
/// A batched write stops growing at this size.
const MAX_BATCH: usize = 64 * 1024;

type Answer = oneshot::Sender<Result<Vec<Reply>, Error>>;

/// A request and where its replies go.
struct Job {
    request: Vec<u8>,
    replies: usize,
    max_value: usize,
    answer: Answer,
}

/// Replies the reader expects, in the order the requests were written.
struct Expected {
    replies: usize,
    max_value: usize,
    answer: Answer,
}

/// A handle on one connection; dropping it closes the connection (replies still owed
/// to callers that hold no handle are abandoned).
#[derive(Debug)]
pub(crate) struct Pipeline {
    jobs: mpsc::Sender<Job>,
    health: Arc<Health>,
    _close: oneshot::Sender<()>,
}

/// What the connection's task tells the handles.
#[derive(Debug, Default)]
struct Health {
    /// The connection failed.
    broken: AtomicBool,
    /// Replies read so far: a connection that read none while a caller waited out its
    /// whole timeout is stalled.
    replies: AtomicU64,
}

impl Pipeline {
    /// Connects to `address` within `timeout` and starts the connection's task, which
    /// counts itself in `ends` when it ends.
    pub(crate) async fn connect(
        address: &str,
        timeout: Duration,
        ends: &Arc<Ends>,
    ) -> Result<Self, Error> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(Error::from_source(ErrorKind::Unavailable, error)),
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("connecting to memcached at {address} took over {timeout:?}"),
                ));
            }
        };
        stream.set_nodelay(true).map_err(io_error)?;
        let (jobs, queued) = mpsc::channel(QUEUE);
        let (close, closed) = oneshot::channel();
        let health = Arc::new(Health::default());
        tokio::spawn(run(
            stream,
            queued,
            closed,
            Arc::clone(&health),
            Arc::clone(ends),
        ));
        Ok(Self {
            jobs,
            health,
            _close: close,
        })
    }

    /// Whether the connection failed: the pool replaces it.
    pub(crate) fn is_broken(&self) -> bool {
        // The task also ends without saying so when its runtime shuts down.
        self.health.broken.load(Ordering::Relaxed) || self.jobs.is_closed()
    }

    /// How many replies the connection has read: compared before and after a call
    /// that timed out, it tells a stalled connection from a slow answer.
    pub(crate) fn replies_read(&self) -> u64 {
        self.health.replies.load(Ordering::Relaxed)
    }

    /// Sends `request` (one or more commands) and waits for `replies` replies. No
    /// timeout here: the caller bounds the whole call.
    pub(crate) async fn exchange(
        &self,
        request: Vec<u8>,
        replies: usize,
        max_value: usize,
    ) -> Result<Vec<Reply>, Error> {
        let (answer, answered) = oneshot::channel();
        let job = Job {
            request,
            replies,
            max_value,
            answer,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            // A full queue (over a thousand commands waiting on this connection) waits
            // for room. Boxed, as it is rare: inline, tokio's 248-byte `send` would be
            // part of every command's future.
            Err(TrySendError::Full(job)) => {
                Box::pin(self.jobs.send(job)).await.map_err(|_| lost())?;
            }
            Err(TrySendError::Closed(_)) => return Err(lost()),
        }
        answered.await.map_err(|_| lost())?
    }
}

fn lost() -> Error {
    Error::new(
        ErrorKind::Unavailable,
        "the connection to memcached was lost",
    )
}

/// The connection's task: writes and reads until either fails or the handle is dropped.
async fn run(
    stream: TcpStream,
    queued: mpsc::Receiver<Job>,
    closed: oneshot::Receiver<()>,
    health: Arc<Health>,
    ends: Arc<Ends>,
) {
    let (read, write) = stream.into_split();
    let (expect, expected) = mpsc::unbounded_channel();
    let failed = tokio::select! {
        _ = closed => false,
        failed = write_requests(write, queued, expect) => failed,
        failed = read_replies(BufReader::new(read), expected, &health) => failed,
    };
    health.broken.store(true, Ordering::Relaxed);
    // Failed: ended by the server or the network (a restart, say), not closed by this
    // client (a stalled one, the pool dropped).
    if failed {
        ends.failed.fetch_add(1, Ordering::AcqRel);
    }
    ends.all.fetch_add(1, Ordering::AcqRel);
    // Dropping the channels here fails every caller still waiting.
}

/// Writes queued requests, as many as are waiting in one write, and tells the reader
/// what to expect before the bytes leave. Returns whether the connection failed (not
/// closed: the handle dropped, or the reader ended).
async fn write_requests(
    mut write: OwnedWriteHalf,
    mut queued: mpsc::Receiver<Job>,
    expect: mpsc::UnboundedSender<Expected>,
) -> bool {
    let mut batch = Vec::with_capacity(16 * 1024);
    while let Some(mut job) = queued.recv().await {
        loop {
            // A caller that gave up (its timeout) is not written for: its command, a
            // `set` say, could otherwise land after a later one on another connection.
            if job.answer.is_closed() {
                match queued.try_recv() {
                    Ok(next) => {
                        job = next;
                        continue;
                    }
                    Err(_) => break,
                }
            }
            batch.extend_from_slice(&job.request);
            let expected = Expected {
                replies: job.replies,
                max_value: job.max_value,
                answer: job.answer,
            };
            if expect.send(expected).is_err() {
                return false;
            }
            match queued.try_recv() {
                Ok(next) if batch.len() < MAX_BATCH => job = next,
                Ok(next) => {
                    // Full: this batch goes, the next one starts with `next`.
                    if write.write_all(&batch).await.is_err() {
                        return true;
                    }
                    batch.clear();
                    job = next;
                }
                Err(_) => break,
            }
        }
        if !batch.is_empty() && write.write_all(&batch).await.is_err() {
            return true;
        }
        batch.clear();
    }
    false
}

/// Reads replies in order and hands each request its own. While no reply is owed it
/// still watches the socket: the server closing it (a restart) or sending what nobody
/// asked for ends the connection then, not at the next caller's expense. Returns
/// whether the connection failed (not closed: the writer ended).
async fn read_replies(
    mut read: BufReader<OwnedReadHalf>,
    mut expected: mpsc::UnboundedReceiver<Expected>,
    health: &Health,
) -> bool {
    loop {
        // A reply's slot is queued before its request is written: once bytes can arrive,
        // their slot is already here, and is taken first.
        let slot = tokio::select! {
            biased;
            slot = expected.recv() => match slot {
                Some(slot) => slot,
                None => return false,
            },
            _ = read.fill_buf() => return true,
        };
        let mut replies = Vec::with_capacity(slot.replies);
        for _ in 0..slot.replies {
            let reply = protocol::read_reply(&mut read, slot.max_value).await;
            health.replies.fetch_add(1, Ordering::Relaxed);
            match reply {
                // A `SERVER_ERROR` is a reply like any other: the request's own failure.
                Ok(reply) => replies.push(reply),
                // Anything else (I/O, a line that does not parse) may leave the stream
                // out of step: the connection ends.
                Err(error) => {
                    let _ = slot.answer.send(Err(error));
                    return true;
                }
            }
        }
        let _ = slot.answer.send(Ok(replies));
    }
}
