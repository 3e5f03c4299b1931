//! Test doubles with fault injection: a tier that records calls and fails or stalls on
//! demand, and an in-process backplane whose subscriptions can be cut.

mod backplane;
mod tier;

pub use backplane::MockBackplane;
pub use tier::{MockTier, TierCall, TierOp};
