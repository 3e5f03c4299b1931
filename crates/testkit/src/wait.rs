//! Waiting, bounded, for what a test cannot await directly: a message to cross, a
//! server to notice, a counter to move.

use std::time::Duration;

/// Waits until `done` holds, checking every `every` (on tokio's clock, so a paused
/// clock moves on by itself), for at most `within`.
///
/// # Panics
///
/// Past `within`, naming `what`: a hang fails the test instead of blocking CI.
pub async fn until(what: &str, every: Duration, within: Duration, mut done: impl FnMut() -> bool) {
    let wait = async {
        while !done() {
            tokio::time::sleep(every).await;
        }
    };
    if tokio::time::timeout(within, wait).await.is_err() {
        panic!("timed out after {within:?} waiting until {what}");
    }
}
