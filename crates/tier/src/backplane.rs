//! The contract of a backplane: the channel the instances of one cache use to tell each
//! other which keys changed, so that each drops its in-memory copy.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::Error;

/// A boxed, sendable future: what the object-safe backplane contract returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A publish/subscribe channel shared by every instance of one cache (a Redis channel,
/// say). Messages are opaque bytes to it; the cache encodes and decodes them.
///
/// It must not lose messages *silently*: a subscription that may have missed some (its
/// connection dropped, it lagged) ends, and the cache then distrusts its memory tier
/// and subscribes again.
pub trait Backplane: Send + Sync + 'static {
    /// Sends `message` to every subscribed instance (this one included).
    ///
    /// # Errors
    ///
    /// When the channel cannot be reached in time.
    fn publish(&self, message: Bytes) -> BoxFuture<'_, Result<(), Error>>;

    /// Subscribes to the channel.
    ///
    /// # Errors
    ///
    /// When the channel cannot be reached in time.
    fn subscribe(&self) -> BoxFuture<'_, Result<Box<dyn Subscription>, Error>>;
}

/// A live subscription to a [`Backplane`].
pub trait Subscription: Send {
    /// The next message; `None` once the subscription is lost, when messages may have
    /// been missed. Cancel-safe: the cache drops this future when the channel stays
    /// quiet for a heartbeat, and a message must not be lost by that.
    fn next(&mut self) -> BoxFuture<'_, Option<Bytes>>;

    /// Proves the subscription still receives (a round trip on its connection, say).
    /// The cache calls it when the channel has been quiet for a while, and bounds it
    /// with a timeout: a subscription whose connection stalled without closing (a
    /// half-open socket, a paused server) fails it, and the cache then treats it as
    /// lost. The default trusts the subscription.
    ///
    /// # Errors
    ///
    /// When the subscription can no longer be trusted to deliver.
    fn check(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(std::future::ready(Ok(())))
    }
}
