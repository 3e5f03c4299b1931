//! An in-process backplane: every cache that shares one delivers to every subscription,
//! and the test can cut the subscriptions (as a dropped connection would).

use std::sync::{Arc, Mutex, PoisonError};

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
            let shared = self.lock();
            if shared.down {
                Err(Error::new(ErrorKind::Unavailable, "backplane down"))
            } else {
                Ok(Box::new(MockSubscription(shared.sender.subscribe())) as Box<dyn Subscription>)
            }
        };
        Box::pin(std::future::ready(subscribed))
    }
}

struct MockSubscription(broadcast::Receiver<Bytes>);

impl Subscription for MockSubscription {
    fn next(&mut self) -> BoxFuture<'_, Option<Bytes>> {
        Box::pin(async move {
            // Lagging behind means messages were missed: the subscription ends.
            self.0.recv().await.ok()
        })
    }
}
