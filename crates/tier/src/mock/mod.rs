//! Test doubles with fault injection: a tier that records calls and fails or stalls on
//! demand, an in-process backplane whose subscriptions can be cut, an in-process lock,
//! an in-memory byte store whose bytes can be read and tampered with; the sizes of a
//! byte store's command futures.

mod backplane;
mod lock;
mod sizes;
mod store;
mod switched;
mod tier;

pub use backplane::MockBackplane;
pub use lock::MockLock;
pub use sizes::command_future_sizes;
pub use store::MemoryStore;
pub use switched::SwitchedStore;
pub use tier::{MockTier, TierCall, TierOp};
