//! Cancelling a running call: a [`Cancel`] token that someone else raises (the Python bindings
//! on Ctrl-C) and the call checks between its units of work.
//!
//! A token is installed for the current thread with [`Cancel::scope`]; the calls made inside
//! check it between chunks of samples (the executor, for every thread of the call: one atomic
//! load per chunk) and between the steps of an epoch, and return [`Error::Cancelled`] once it is
//! raised. A cancelled call leaves the objects it works on as they were before the call (a
//! training epoch restores the trainer from a copy taken when it started). Calls made outside
//! any scope cannot be cancelled and pay nothing for it.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// A request to stop the calls made inside [`Cancel::scope`]; clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

thread_local! {
    /// The token of the call the current thread works on, if any.
    static CURRENT: RefCell<Option<Cancel>> = const { RefCell::new(None) };
}

impl Cancel {
    /// A token that is not raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the token: the calls checking it stop at their next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the token is raised.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Runs `f` with this token as the current thread's (the one before is restored after, also
    /// when `f` panics).
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _current = Current::set(Some(self.clone()));
        f()
    }

    /// The current thread's token, if it runs inside a [`Cancel::scope`].
    pub fn current() -> Option<Cancel> {
        CURRENT.with(|c| c.borrow().clone())
    }
}

/// `Err(Error::Cancelled)` if the current thread's token is raised.
pub fn check() -> Result<()> {
    match CURRENT.with(|c| c.borrow().as_ref().is_some_and(Cancel::is_cancelled)) {
        true => Err(Error::Cancelled),
        false => Ok(()),
    }
}

/// Whether the current thread runs inside a [`Cancel::scope`] (its calls may be cancelled).
pub fn cancellable() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// The current thread's token while this lives; the previous one after.
pub(crate) struct Current(Option<Cancel>);

impl Current {
    pub(crate) fn set(token: Option<Cancel>) -> Self {
        Current(CURRENT.with(|c| c.replace(token)))
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_installs_its_token_and_restores_the_one_before() {
        assert!(!cancellable() && check().is_ok());
        let (outer, inner) = (Cancel::new(), Cancel::new());
        outer.scope(|| {
            inner.scope(|| {
                inner.cancel();
                assert_eq!(check(), Err(Error::Cancelled));
            });
            assert!(cancellable() && check().is_ok(), "the outer token is current again");
        });
        assert!(!cancellable());
        // Also after a panic inside the scope.
        let r = std::panic::catch_unwind(|| inner.scope(|| panic!("boom")));
        assert!(r.is_err() && Cancel::current().is_none());
    }
}
