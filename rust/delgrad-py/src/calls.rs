//! How a core call runs: with the GIL released and, on Python's main thread, cancellable by
//! Ctrl-C; and exclusive access to the state of a mutable object shared by Python threads.
//!
//! Python runs signal handlers only on its main thread, between bytecodes: a core call that
//! simply released the GIL would see Ctrl-C only after it returned. So a long call made on the
//! main thread runs on the process's call thread ([`call_thread`]) inside a [`Cancel::scope`]
//! while the main thread waits for it, checking Python's signals every [`POLL`]; when a handler
//! raises (KeyboardInterrupt), the token is raised, the core stops at its next chunk of samples
//! (undoing what the call changed) and the handler's exception is raised. Short calls (less than
//! [`LONG`] of work, tens of milliseconds: the signal is handled as soon as they return) and calls
//! from other threads (which never receive signals) run on the calling thread: handing a call to
//! another thread and back costs tens of microseconds on a virtual machine, a tenth of a small
//! training step.

use std::any::Any;
use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use delgrad::cancel::{self, Cancel};
use pyo3::prelude::*;

/// How often the waiting main thread checks Python's signals.
const POLL: Duration = Duration::from_millis(10);

/// Work (samples x synapses, see [`work`]) from which a call on the main thread can be
/// interrupted: about 30 ms of a forward pass on one core (25-30 ns per sample and synapse), so
/// that Ctrl-C takes effect within ~0.1 s also for the calls below it.
pub const LONG: usize = 1 << 20;

/// The work of a call on `samples` samples of `net` (one unit per sample and synapse).
pub fn work(samples: usize, net: &delgrad::network::Network) -> usize {
    samples.saturating_mul(synapses(net))
}

/// The number of synapses (weights) of `net`.
pub fn synapses(net: &delgrad::network::Network) -> usize {
    net.layers.iter().map(|l| l.w.as_slice().len()).sum()
}

/// Longest pause between two attempts to take a busy object's lock.
const MAX_BACKOFF: Duration = Duration::from_millis(2);

/// What a core call ended with: its value or error, or the payload of its panic.
pub type Outcome<T> = Result<delgrad::Result<T>, Box<dyn Any + Send>>;

thread_local! {
    /// Whether the current thread is Python's main thread, and in which process it was found
    /// (a child forked from another thread has that thread as its main thread).
    static MAIN: Cell<Option<(u32, bool)>> = const { Cell::new(None) };
}

/// Whether the current thread is Python's main thread (the one that runs signal handlers).
fn on_main_thread(py: Python<'_>) -> bool {
    let pid = std::process::id();
    if let Some((p, main)) = MAIN.get()
        && p == pid
    {
        return main;
    }
    let main = (|| -> PyResult<bool> {
        let threading = py.import("threading")?;
        let main = threading.call_method0("main_thread")?;
        Ok(main.is(&threading.call_method0("current_thread")?))
    })()
    .unwrap_or(false);
    MAIN.set(Some((pid, main)));
    main
}

/// Runs `f` (about `work` of work) with the GIL released; a long call on the main thread on
/// [`call_thread`], cancelled when a signal handler raises while it runs. `Err` is that
/// handler's exception: the call was cancelled (or had just finished; its result is dropped).
pub fn run<T, F>(py: Python<'_>, work: usize, f: F) -> Result<Outcome<T>, PyErr>
where
    T: Send,
    F: FnOnce() -> delgrad::Result<T> + Send,
{
    let catch = |f: F| std::panic::catch_unwind(AssertUnwindSafe(f));
    if work < LONG || !on_main_thread(py) {
        return Ok(py.detach(move || catch(f)));
    }
    let token = Cancel::new();
    let (outcome, interrupt) = py.detach(|| {
        let Some(thread) = call_thread() else {
            // No thread to spare: the call runs here and cannot be interrupted.
            return (Some(catch(f)), None);
        };
        let (done, outcome) = sync_channel(1);
        let token = &token;
        thread.in_place_scope(|s| {
            s.spawn(move |_| {
                let _ = done.send(token.scope(|| catch(f)));
            });
            let mut interrupt = None;
            loop {
                match outcome.recv_timeout(POLL) {
                    Ok(o) => return (Some(o), interrupt),
                    Err(RecvTimeoutError::Disconnected) => return (None, interrupt),
                    Err(RecvTimeoutError::Timeout) if interrupt.is_none() => {
                        if let Err(e) = Python::attach(|py| py.check_signals()) {
                            token.cancel();
                            interrupt = Some(e);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
        })
    });
    match (interrupt, outcome) {
        (Some(e), _) => Err(e),
        (None, Some(o)) => Ok(o),
        // The job ended without a result: only if it could not send it (a bug).
        (None, None) => Ok(Err(Box::new("the call's thread ended without a result"))),
    }
}

/// The thread that runs the long calls of Python's main thread: one per process, started on first
/// use and kept (a pool of one). A thread started per call waits for a time slice when the cores
/// are busy (a new thread queues behind the running ones; a woken one does not), which cost
/// ~3 ms per chip-in-the-loop epoch with two trainings on two cores. `None` if it cannot be
/// started.
fn call_thread() -> Option<Arc<rayon::ThreadPool>> {
    static THREAD: Mutex<Option<(u32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut thread = THREAD.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, pool)) = thread.as_ref()
        && *p == pid
    {
        return Some(Arc::clone(pool));
    }
    // One made before this process was forked from its parent: its thread does not exist here
    // and a lock it held stays locked, so shutting the pool down could block forever.
    std::mem::forget(thread.take());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|_| "delgrad-call".into())
        .build()
        .ok()?;
    let pool = Arc::new(pool);
    *thread = Some((pid, Arc::clone(&pool)));
    Some(pool)
}

/// Locks `m` (the state of an object shared by Python threads) for a core call; called with the
/// GIL released. Another thread's call holding it is waited for, checking the call's token
/// between attempts (Ctrl-C stops the wait). A lock poisoned by a panic is taken as it is: the
/// panic has been reported as an error already.
pub fn lock<T>(m: &Mutex<T>) -> delgrad::Result<MutexGuard<'_, T>> {
    let mut pause = Duration::from_micros(20);
    loop {
        match m.try_lock() {
            Ok(guard) => return Ok(guard),
            Err(TryLockError::Poisoned(e)) => return Ok(e.into_inner()),
            Err(TryLockError::WouldBlock) => {
                cancel::check()?;
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
    }
}
