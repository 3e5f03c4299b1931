//! Test doubles with fault injection: a tier that records calls and fails or stalls on
//! demand, an in-process backplane whose subscriptions can be cut, an in-process lock.

mod backplane;
mod lock;
mod tier;

pub use backplane::MockBackplane;
pub use lock::MockLock;
pub use tier::{MockTier, TierCall, TierOp};
