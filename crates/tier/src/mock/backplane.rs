//! An in-process backplane: every cache that shares one delivers to every subscription,
//! and the test can cut the subscriptions (as a dropped connection would).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::backplane::{Backplane, BoxFuture, Subscription};
use crate::error::{Error, ErrorKind};

/// A [`Backplane`] within one process, for tests: clones share one channel.
///
/// ```
/// use bytes::Bytes;
/// use stratacache_tier::Backplane;
/// use stratacache_tier::mock::MockBackplane;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), stratacache_tier::Error> {
/// let backplane = MockBackplane::new();
/// let mut subscription = backplane.subscribe().await?;
/// backplane.publish(Bytes::from_static(b"hello")).await?;
/// assert_eq!(subscription.next().await, Some(Bytes::from_static(b"hello")));
/// backplane.cut();
/// assert_eq!(subscription.next().await, None, "a cut subscription ends");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MockBackplane {
    shared: Arc<Mutex<Shared>>,
}

struct Shared {
    sender: broadcast::Sender<Bytes>,
    down: bool,
    /// One flag per subscription made so far: set, it is stalled.
    stalls: Vec<Weak<AtomicBool>>,
}

impl Default for MockBackplane {
    fn default() -> Self {
        Self::new()
    }
}

impl MockBackplane {
    /// A channel with no subscriber yet.
    #[must_use]
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(1_024);
        Self {
            shared: Arc::new(Mutex::new(Shared {
                sender,
                down: false,
                stalls: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends every subscription (they answer `None`), as a lost connection would.
    pub fn cut(&self) {
        let mut shared = self.lock();
        let (sender, _) = broadcast::channel(1_024);
        shared.sender = sender;
    }

    /// Stalls every subscription made so far, as a connection that hangs without
    /// closing would: they deliver nothing more (what is published meanwhile is lost to
    /// them) and their [`check`](Subscription::check) never answers. Publishing and new
    /// subscriptions still work.
    pub fn stall(&self) {
        let mut shared = self.lock();
        shared.stalls.retain(|stall| match stall.upgrade() {
            Some(stall) => {
                stall.store(true, Ordering::Release);
                true
            }
            None => false,
        });
    }

    /// Makes every publish and subscribe fail (`true`) or work again (`false`).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }
}

impl Backplane for MockBackplane {
    fn publish(&self, message: Bytes) -> BoxFuture<'_, Result<(), Error>> {
        let sent = {
            let shared = self.lock();
            if shared.down {
                Err(Error::new(ErrorKind::Unavailable, "backplane down"))
            } else {
                // No subscriber is not an error: a lone instance hears nothing.
                let _ = shared.sender.send(message);
                Ok(())
            }
        };
        Box::pin(std::future::ready(sent))
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<Box<dyn Subscription>, Error>> {
        let subscribed = {
            let mut shared = self.lock();
            if shared.down {
                Err(Error::new(ErrorKind::Unavailable, "backplane down"))
            } else {
                let stalled = Arc::new(AtomicBool::new(false));
                shared.stalls.push(Arc::downgrade(&stalled));
                let subscription = MockSubscription {
                    receiver: shared.sender.subscribe(),
                    stalled,
                };
                Ok(Box::new(subscription) as Box<dyn Subscription>)
            }
        };
        Box::pin(std::future::ready(subscribed))
    }
}

struct MockSubscription {
    receiver: broadcast::Receiver<Bytes>,
    stalled: Arc<AtomicBool>,
}

impl Subscription for MockSubscription {
    fn next(&mut self) -> BoxFuture<'_, Option<Bytes>> {
        Box::pin(async move {
            loop {
                // Lagging behind means messages were missed: the subscription ends.
                let message = self.receiver.recv().await.ok()?;
                if !self.stalled.load(Ordering::Acquire) {
                    return Some(message);
                }
            }
        })
    }

    fn check(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        if self.stalled.load(Ordering::Acquire) {
            Box::pin(std::future::pending())
        } else {
            Box::pin(std::future::ready(Ok(())))
        }
    }
}
