//! A flag raised while one task runs (a replay, a resend), lowered however the task
//! ends: returned, panicked, or dropped unpolled with its runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A raised flag, lowered when this is dropped. Moved into the task it stands for.
pub(crate) struct Raised(Arc<AtomicBool>);

impl Raised {
    /// Raises `flag`; `None` when it is up already (another task runs).
    pub(crate) fn raise(flag: &Arc<AtomicBool>) -> Option<Self> {
        (!flag.swap(true, Ordering::AcqRel)).then(|| Self(Arc::clone(flag)))
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_is_raised_once_and_lowered_by_whatever_drops_it() {
        let flag = Arc::new(AtomicBool::new(false));
        let raised = Raised::raise(&flag).expect("down");
        assert!(Raised::raise(&flag).is_none(), "up: another runs");
        let task = std::thread::spawn(move || {
            let _raised = raised;
            panic!("the task panicked");
        });
        assert!(task.join().is_err());
        assert!(!flag.load(Ordering::Acquire), "lowered by the unwinding");
        let raised = Raised::raise(&flag).expect("lowered");
        let unpolled = async move {
            let _raised = raised;
        };
        drop(unpolled); // a task its runtime dropped before it ran
        assert!(!flag.load(Ordering::Acquire));
    }
}
