//! Parallel execution over samples: the caller chooses the number of threads.
//!
//! The calling thread works too: a pool of `threads - 1` helpers joins it, and everyone takes the
//! next unclaimed chunk of samples until none is left. A training step is a few hundred
//! microseconds, so handing the whole job to a pool and sleeping until it is done (two thread
//! hand-offs per call) would cost a noticeable share of it.
//!
//! For the same reason the helpers linger after a call: for [`LINGER`] they keep looking for the
//! next call's work (yielding their core to any other runnable thread in between) instead of
//! going to sleep, because waking a sleeping thread costs 15-20 us on a virtual machine; each
//! thread's scratch space is kept between calls ([`Executor::fold_ranges_kept`]) instead of being
//! allocated and freed per call, where the threads would wait on the allocator's locks; and the
//! few locks of a call are taken by retrying, not by sleeping (`lock_briefly`).

use std::any::Any;
use std::cell::Cell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};
use std::time::{Duration, Instant};

use crate::cancel::{self, Cancel};
use crate::error::{Error, Result};

/// Most samples per unit of parallel work. The split of a batch depends only on its size (so
/// results are independent of the thread count): `CHUNK` samples while much is left, then
/// shrinking to [`TAIL`] so that the threads finish together.
pub const CHUNK: usize = 16;

/// Longest the calling thread waits awake for the pool's threads to finish a call's last ranges.
const MAX_SPIN: Duration = Duration::from_millis(1);

/// How long the pool's threads keep looking for work after a call before they sleep: longer than
/// the serial part between two parallel calls of a training step (the optimiser update, the
/// chip's configuration, the Python around them: tens of microseconds), so that the next call
/// finds them awake. Chip-in-the-loop training on 2 threads runs ~10 % faster with it.
pub const LINGER: Duration = Duration::from_micros(100);

/// Most threads an executor may have.
pub const MAX_THREADS: usize = 1024;

/// Most states of one type an executor keeps per thread between calls (see
/// [`Executor::fold_ranges_kept`]).
pub const KEEP_PER_TYPE: usize = 4;

/// Fewest samples per unit of parallel work (except a batch's last).
pub const TAIL: usize = 4;

/// How far ahead of the fold, in ranges per thread, a thread may start a range: a thread that
/// lost its core (the machine is loaded) holds up the fold, and the others must not pile up
/// results behind it. At most `WINDOW * threads` results wait to be folded, whatever the
/// scheduling, so a call's peak memory does not depend on the machine's load (nested calls, where a
/// thread may hold an earlier range further down its own stack, do not wait and are not bounded).
const WINDOW: usize = 2;

/// Longest a thread waits for the fold to come within [`WINDOW`] before it goes ahead anyway: a
/// preempted thread is back within milliseconds, so the bound holds in practice, and no unforeseen
/// dependency between threads can turn the wait into a hang.
const MAX_WINDOW_WAIT: Duration = Duration::from_secs(1);

/// The ranges a batch of `n` samples is split into: a quarter of what is left, within
/// [`TAIL`]..=[`CHUNK`] samples.
pub fn split(n: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::with_capacity(n / CHUNK + 12);
    let mut start = 0;
    while start < n {
        let left = n - start;
        let len = (left / 4).clamp(TAIL, CHUNK).min(left);
        ranges.push(start..start + len);
        start += len;
    }
    ranges
}

/// The helper threads of one process.
#[derive(Debug)]
struct Helpers {
    /// `None` only while dropping.
    pool: Option<rayon::ThreadPool>,
    /// How many of the pool's threads are lingering (see [`LINGER`]).
    lingering: Arc<AtomicUsize>,
    /// The process they run in: a child forked from it inherits the pool but not its threads.
    pid: u32,
}

impl Helpers {
    fn new(n: usize) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("delgrad-{i}"))
            .build()
            .map_err(|e| Error::option("threads", format!("could not start {} threads: {e}", n + 1)))?;
        Ok(Helpers {
            pool: Some(pool),
            lingering: Arc::default(),
            pid: std::process::id(),
        })
    }

    /// Keeps the pool's threads awake for [`LINGER`] after the last work they ran (unless they
    /// are already): each runs whatever work arrives meanwhile and otherwise yields its core.
    fn linger(&self, pool: &rayon::ThreadPool) {
        let (idle, all) = (0, pool.current_num_threads());
        if self
            .lingering
            .compare_exchange(idle, all, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return; // they still are
        }
        let lingering = Arc::clone(&self.lingering);
        pool.spawn_broadcast(move |_| {
            let mut until = Instant::now() + LINGER;
            loop {
                match rayon::yield_now() {
                    Some(rayon::Yield::Executed) => until = Instant::now() + LINGER,
                    _ if Instant::now() >= until => break,
                    _ => std::thread::yield_now(),
                }
            }
            lingering.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            if self.pid == std::process::id() {
                drop(pool);
            } else {
                // In a forked child the pool's threads do not exist, and a lock one of them held
                // at the fork stays locked: shutting the pool down could block forever.
                std::mem::forget(pool);
            }
        }
    }
}

/// Runs per-sample work on a fixed number of threads (1 = on the caller's thread).
///
/// Safe to use in a child process forked after the executor was made (Python's
/// `multiprocessing` on Linux): the child gets helpers of its own on its first parallel call.
pub struct Executor {
    /// `threads - 1` helpers of the calling thread (none for one thread).
    helpers: Option<Arc<Helpers>>,
    /// Helpers made for a forked child of the process that made `helpers`.
    forked: Mutex<Option<Arc<Helpers>>>,
    threads: usize,
    /// Per-thread state kept between calls of [`fold_ranges_kept`](Self::fold_ranges_kept), at
    /// most [`KEEP_PER_TYPE`] of each type per slot (most recent last): slot 0 for the calling
    /// thread, i + 1 for helper i.
    kept: Vec<Mutex<Vec<Box<dyn Any + Send>>>>,
}

impl Default for Executor {
    fn default() -> Self {
        Executor {
            helpers: None,
            forked: Mutex::default(),
            threads: 1,
            kept: vec![Mutex::default()],
        }
    }
}

/// The number of threads `threads = 0` selects: one per available core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Executor {
    /// An executor with `threads` threads including the caller's; 0 means one per available core.
    /// More than [`MAX_THREADS`] is an error (a typo such as 10**6 would otherwise try to start
    /// that many threads).
    pub fn new(threads: usize) -> Result<Self> {
        if threads > MAX_THREADS {
            return Err(Error::option(
                "threads",
                format!("expected an integer from 0 (one per core) to {MAX_THREADS}, got {threads}"),
            ));
        }
        let threads = if threads == 0 { default_threads() } else { threads };
        if threads == 1 {
            return Ok(Self::default());
        }
        Ok(Executor {
            helpers: Some(Arc::new(Helpers::new(threads - 1)?)),
            forked: Mutex::default(),
            threads,
            kept: (0..threads).map(|_| Mutex::default()).collect(),
        })
    }

    /// An executor with `threads` threads (0: one per core) shared with every other caller of
    /// `shared` with the same `threads` while any of them holds it. Objects that each made their
    /// own executor would each start a pool (63 threads per object on a 64-core machine); shared,
    /// a process has one pool per thread count. Concurrent calls on one executor are safe.
    pub fn shared(threads: usize) -> Result<Arc<Executor>> {
        static SHARED: Mutex<Vec<(usize, Weak<Executor>)>> = Mutex::new(Vec::new());
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        shared.retain(|(_, e)| e.strong_count() > 0);
        if let Some(exec) = shared
            .iter()
            .filter(|(n, _)| *n == threads)
            .find_map(|(_, e)| e.upgrade())
        {
            return Ok(exec);
        }
        let exec = Arc::new(Executor::new(threads)?);
        shared.push((threads, Arc::downgrade(&exec)));
        Ok(exec)
    }

    /// The helpers of this process: those made with the executor, or in a forked child (where
    /// those have no threads) new ones, made once per process. `None`: one thread, or the
    /// child could not start threads (the work then runs on the caller's thread).
    fn helpers(&self) -> Option<Arc<Helpers>> {
        let made = self.helpers.as_ref()?;
        let pid = std::process::id();
        if made.pid == pid {
            return Some(Arc::clone(made));
        }
        let mut forked = self.forked.lock().unwrap_or_else(|e| e.into_inner());
        match forked.as_ref() {
            Some(h) if h.pid == pid => Some(Arc::clone(h)),
            _ => {
                // None yet, or those of the process this one was forked from.
                *forked = Helpers::new(self.threads - 1).ok().map(Arc::new);
                forked.clone()
            }
        }
    }

    /// Number of threads work is spread over.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Splits `0..n` into the contiguous ranges of [`split`], applies `f` to each and returns the
    /// results in range order. The split does not depend on the number of threads, so sums that
    /// callers fold over the results in order are bit-identical for every thread count.
    ///
    /// Inside a [`Cancel::scope`], every thread checks the token before each range it takes and
    /// the call returns [`Error::Cancelled`] once it is raised (the same for every method here).
    pub fn map_ranges<T, F>(&self, n: usize, f: F) -> Result<Vec<T>>
    where
        T: Send,
        F: Fn(Range<usize>) -> T + Sync + Send,
    {
        self.map_ranges_with(n, || (), |_, range| f(range))
    }

    /// [`map_ranges`](Self::map_ranges) with per-thread state: each thread that takes part builds
    /// one `init()` (scratch space) and passes it to `f` for every range it takes.
    pub fn map_ranges_with<S, T, I, F>(&self, n: usize, init: I, f: F) -> Result<Vec<T>>
    where
        T: Send,
        I: Fn() -> S + Sync + Send,
        F: Fn(&mut S, Range<usize>) -> T + Sync + Send,
    {
        self.fold_ranges_with(n, init, f, Vec::new(), |all, t, _| all.push(t))
    }

    /// Applies `f` (with per-thread state from `init`, as [`map_ranges_with`](Self::map_ranges_with))
    /// to the ranges of [`split`] and folds the results into `acc` in range order, each as soon as
    /// those before it are folded, on whichever thread finished it last: the reduction overlaps
    /// the work instead of following it, and its order (so every rounding) is the same for every
    /// thread count. `fold` also gets the folding thread's state (to keep spent buffers for its
    /// next range, say).
    pub fn fold_ranges_with<S, T, A, I, F, G>(&self, n: usize, init: I, f: F, acc: A, fold: G) -> Result<A>
    where
        T: Send,
        A: Send,
        I: Fn() -> S + Sync + Send,
        F: Fn(&mut S, Range<usize>) -> T + Sync + Send,
        G: Fn(&mut A, T, &mut S) + Sync + Send,
    {
        self.fold(n, &Fresh(init), f, acc, fold)
    }

    /// [`fold_ranges_with`](Self::fold_ranges_with) with the per-thread state kept by the
    /// executor between calls: a thread takes the state it kept last time if `fits(&state)`
    /// (made for work of the same shape), else `init()`, and keeps it again afterwards. A
    /// training step's scratch space and chunk buffers are then allocated once, not per call
    /// (allocating them per call cost ~140 allocations and frees per call, some across threads,
    /// where the allocator's locks made the threads wait for each other).
    pub fn fold_ranges_kept<S, T, A, P, I, F, G>(&self, n: usize, fits: P, init: I, f: F, acc: A, fold: G) -> Result<A>
    where
        S: Any + Send,
        T: Send,
        A: Send,
        P: Fn(&S) -> bool + Sync + Send,
        I: Fn() -> S + Sync + Send,
        F: Fn(&mut S, Range<usize>) -> T + Sync + Send,
        G: Fn(&mut A, T, &mut S) + Sync + Send,
    {
        self.fold(n, &Kept { exec: self, fits, init }, f, acc, fold)
    }

    /// The slot of [`Executor::kept`] of the current thread: its helper's, or the caller's for any
    /// other thread (also one of another rayon pool, such as a caller's own).
    fn slot(&self) -> usize {
        let helper = self.helpers().and_then(|h| h.pool.as_ref()?.current_thread_index());
        helper.map_or(0, |i| i + 1)
    }

    fn fold<S, T, A, M, F, G>(&self, n: usize, make: &M, f: F, acc: A, fold: G) -> Result<A>
    where
        T: Send,
        A: Send,
        M: MakeState<S>,
        F: Fn(&mut S, Range<usize>) -> T + Sync + Send,
        G: Fn(&mut A, T, &mut S) + Sync + Send,
    {
        let ranges = split(n);
        // One atomic load per range: the token of the caller's scope, if any.
        let token = Cancel::current();
        let cancelled = || token.as_ref().is_some_and(Cancel::is_cancelled);
        let helpers = if ranges.len() > 1 { self.helpers() } else { None };
        let Some((helpers, pool)) = helpers.as_ref().and_then(|h| Some((h, h.pool.as_ref()?))) else {
            let (mut state, mut acc) = (make.take(), acc);
            for range in ranges {
                if cancelled() {
                    make.keep(state);
                    return Err(Error::Cancelled);
                }
                let t = f(&mut state, range);
                fold(&mut acc, t, &mut state);
            }
            make.keep(state);
            return Ok(acc);
        };
        let claimed = AtomicUsize::new(0);
        let folded = AtomicUsize::new(0);
        let window = WINDOW * self.threads;
        let ordered = Mutex::new(Ordered {
            next: 0,
            waiting: (0..ranges.len()).map(|_| None).collect(),
            acc,
        });
        // Claims ranges until none is left; folds every result whose predecessors are folded.
        let failed = AtomicBool::new(false);
        let work = || {
            let _flag = RaiseOnPanic(&failed);
            // The pool's threads take the caller's token for nested calls made by `f`.
            let _token = cancel::Current::set(token.clone());
            // A pool thread that waits inside another call's work (a nested call) may steal this
            // call's ranges; it must not wait for the fold of a range it holds further down its own
            // stack, so only a thread's outermost work waits for the window.
            let _frame = WorkFrame::enter();
            let may_wait = WorkFrame::outermost();
            let mut state = None;
            'claims: loop {
                if cancelled() {
                    break;
                }
                let i = claimed.fetch_add(1, Ordering::Relaxed);
                let Some(range) = ranges.get(i) else { break };
                // Every range before i is claimed and being worked on, so the fold catches up,
                // unless a thread panicked: then its range is never folded and the call is over.
                if may_wait && i >= folded.load(Ordering::Acquire) + window {
                    // The clock is read only when a thread has to wait, not for every range.
                    let since = Instant::now();
                    while i >= folded.load(Ordering::Acquire) + window {
                        if failed.load(Ordering::Acquire) || cancelled() {
                            break 'claims;
                        }
                        if since.elapsed() > MAX_WINDOW_WAIT {
                            break; // a safety valve, not the rule: never wait for the fold forever
                        }
                        // A pool thread runs other queued work meanwhile: the thread holding the
                        // fold back may be waiting for it (a nested call made from the calling thread).
                        if rayon::yield_now() != Some(rayon::Yield::Executed) {
                            std::thread::yield_now();
                        }
                    }
                }
                let state = state.get_or_insert_with(|| make.take());
                let t = f(state, range.clone());
                let mut guard = lock_briefly(&ordered);
                let o = &mut *guard;
                o.waiting[i] = Some(t);
                while let Some(t) = o.waiting.get_mut(o.next).and_then(Option::take) {
                    fold(&mut o.acc, t, state);
                    o.next += 1;
                }
                folded.store(o.next, Ordering::Release);
            }
            if let Some(state) = state {
                make.keep(state);
            }
        };
        let spawned = self.threads.min(ranges.len()) - 1;
        let finished = AtomicUsize::new(0);
        pool.in_place_scope(|s| {
            for _ in 0..spawned {
                s.spawn(|_| {
                    work();
                    finished.fetch_add(1, Ordering::Release);
                });
            }
            work();
            // The helpers are on their last range: wait for them awake. Leaving the scope now
            // would put this thread to sleep until they are done, and waking it costs more than
            // the wait (tens of microseconds per call, a fifth of a 150-sample step). Bounded,
            // and only where this thread is not one of the pool's (which must help instead).
            // Yielding, not spinning: when more threads want the cores than there are (two
            // trainings of 2 threads on 2 cores), a helper that lost its core gets this one.
            if pool.current_thread_index().is_none() {
                let start = Instant::now();
                while finished.load(Ordering::Acquire) < spawned && start.elapsed() < MAX_SPIN {
                    std::thread::yield_now();
                }
            }
        });
        helpers.linger(pool);
        let ordered = ordered.into_inner().unwrap_or_else(|e| e.into_inner());
        // Ranges are left unfolded only when the call was cancelled (a panic has unwound).
        if ordered.next < ranges.len() {
            return Err(Error::Cancelled);
        }
        Ok(ordered.acc)
    }
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// Where a thread's state for a call comes from and goes to.
trait MakeState<S>: Sync {
    fn take(&self) -> S;
    fn keep(&self, state: S);
}

/// New state for every call.
struct Fresh<I>(I);

impl<S, I: Fn() -> S + Sync> MakeState<S> for Fresh<I> {
    fn take(&self) -> S {
        (self.0)()
    }

    fn keep(&self, _: S) {}
}

/// State kept in the executor's slot of the thread between calls.
struct Kept<'e, P, I> {
    exec: &'e Executor,
    fits: P,
    init: I,
}

impl<S: Any + Send, P: Fn(&S) -> bool + Sync, I: Fn() -> S + Sync> MakeState<S> for Kept<'_, P, I> {
    fn take(&self) -> S {
        // A slot another call is using (a second caller thread, or a nested call) is left alone.
        let kept = self
            .exec
            .kept
            .get(self.exec.slot())
            .and_then(|m| m.try_lock().ok())
            .and_then(|mut kept| {
                let i = kept
                    .iter()
                    .rposition(|b| b.downcast_ref::<S>().is_some_and(|s| (self.fits)(s)))?;
                kept.remove(i).downcast::<S>().ok()
            });
        kept.map_or_else(|| (self.init)(), |state| *state)
    }

    fn keep(&self, state: S) {
        if let Some(mut kept) = self.exec.kept.get(self.exec.slot()).and_then(|m| m.try_lock().ok()) {
            // Several networks (say a trainer's and an evaluation's of another shape) may take
            // turns on one executor: keep a few states of each type, dropping the oldest.
            if kept.iter().filter(|b| b.is::<S>()).count() >= KEEP_PER_TYPE {
                if let Some(i) = kept.iter().position(|b| b.is::<S>()) {
                    kept.remove(i);
                }
            }
            kept.push(Box::new(state));
        }
    }
}

/// Locks `m` for a short critical section shared by the threads of a call: tries again, yielding
/// the core in between, instead of sleeping in the kernel when another thread holds it (the
/// holder runs on the other core and is done in microseconds; waking a sleeping thread costs
/// 15-20 us on a virtual machine). A poisoned lock is taken as it is: the panic that poisoned
/// it reaches the caller anyway.
pub(crate) fn lock_briefly<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    loop {
        match m.try_lock() {
            Ok(guard) => return guard,
            Err(TryLockError::Poisoned(e)) => return e.into_inner(),
            Err(TryLockError::WouldBlock) => std::thread::yield_now(),
        }
    }
}

thread_local! {
    /// How many calls' work the current thread is inside (more than one only in nested calls).
    static WORK_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// The current thread is inside a call's work while this lives.
struct WorkFrame;

impl WorkFrame {
    fn enter() -> Self {
        WORK_DEPTH.with(|d| d.set(d.get() + 1));
        WorkFrame
    }

    fn outermost() -> bool {
        WORK_DEPTH.with(|d| d.get() == 1)
    }
}

impl Drop for WorkFrame {
    fn drop(&mut self) {
        WORK_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Raises its flag when dropped by a panicking thread: the call's other threads stop waiting for
/// the fold to reach a range that will never be folded, and the panic reaches the caller.
struct RaiseOnPanic<'a>(&'a AtomicBool);

impl Drop for RaiseOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

/// Results of [`Executor::fold_ranges_with`] waiting for their predecessors, and the fold so far.
struct Ordered<T, A> {
    next: usize,
    waiting: Vec<Option<T>>,
    acc: A,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_range_once_in_order_for_any_thread_count() {
        for threads in [1, 2, 3, 5] {
            let exec = Executor::new(threads).unwrap();
            for n in [0, 1, TAIL + 1, CHUNK, CHUNK + 1, 150, 1000] {
                let got = exec.map_ranges(n, |r| r).unwrap();
                let flat: Vec<usize> = got.iter().flat_map(|r| r.clone()).collect();
                assert_eq!(flat, (0..n).collect::<Vec<_>>(), "{threads} threads, n = {n}");
                assert_eq!(got, split(n));
                assert!(got.iter().all(|r| r.len() <= CHUNK && !r.is_empty()));
                // Only the last range may be shorter than TAIL.
                assert!(got.iter().rev().skip(1).all(|r| r.len() >= TAIL));
            }
        }
    }

    #[test]
    fn state_is_per_thread_and_reused() {
        for threads in [1, 2, 3] {
            let exec = Executor::new(threads).unwrap();
            let inits = AtomicUsize::new(0);
            let got = exec
                .map_ranges_with(
                    10 * CHUNK,
                    || {
                        inits.fetch_add(1, Ordering::Relaxed);
                        0usize
                    },
                    |seen, r| {
                        *seen += 1;
                        (r, *seen)
                    },
                )
                .unwrap();
            let flat: Vec<usize> = got.iter().flat_map(|(r, _)| r.clone()).collect();
            assert_eq!(flat, (0..10 * CHUNK).collect::<Vec<_>>());
            // Every thread that took part built its state once and counted its ranges in it.
            let n = inits.load(Ordering::Relaxed);
            assert!((1..=threads).contains(&n), "{n} states for {threads} threads");
            let firsts = got.iter().filter(|(_, seen)| *seen == 1).count();
            assert_eq!(firsts, n);
        }
    }

    #[test]
    fn folds_in_range_order_for_any_thread_count() {
        for threads in [1, 2, 3] {
            let exec = Executor::new(threads).unwrap();
            let order = exec
                .fold_ranges_with(150, || (), |_, r| r.start, Vec::new(), |v, start, _| v.push(start))
                .unwrap();
            let want: Vec<usize> = split(150).iter().map(|r| r.start).collect();
            assert_eq!(order, want, "{threads} threads");
        }
    }

    #[test]
    fn helpers_linger_after_a_call_and_then_sleep() {
        let exec = Executor::new(3).unwrap();
        for n in [150, 40, 1000, 40] {
            assert_eq!(exec.map_ranges(n, |r| r.len()).unwrap().iter().sum::<usize>(), n);
        }
        // At most the two helpers linger, and well after LINGER neither does (generous bound: a
        // loaded machine may not schedule them for a while).
        let lingering = &exec.helpers().unwrap().lingering;
        assert!(lingering.load(Ordering::Acquire) <= 2);
        let start = Instant::now();
        while lingering.load(Ordering::Acquire) > 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "helpers still lingering");
            std::thread::sleep(LINGER);
        }
        // Work submitted to sleeping helpers still gets done, also from inside the pool.
        let nested = exec
            .map_ranges(64, |r| {
                exec.map_ranges(r.len() * 10, |s| s.len())
                    .unwrap()
                    .iter()
                    .sum::<usize>()
            })
            .unwrap();
        assert_eq!(nested.iter().sum::<usize>(), 640);
        drop(exec); // does not wait for lingering helpers
    }

    #[test]
    fn kept_state_is_reused_when_it_fits_and_remade_when_not() {
        for threads in [1, 2] {
            let exec = Executor::new(threads).unwrap();
            let inits = AtomicUsize::new(0);
            // The state remembers the "shape" it was made for and counts the ranges it saw.
            let run = |shape: usize| {
                exec.fold_ranges_kept(
                    200,
                    |st: &(usize, usize)| st.0 == shape,
                    || {
                        inits.fetch_add(1, Ordering::Relaxed);
                        (shape, 0)
                    },
                    |st, r| {
                        assert_eq!(st.0, shape, "a state made for another shape");
                        st.1 += 1;
                        r.len()
                    },
                    0,
                    |sum, len, _| *sum += len,
                )
                .unwrap()
            };
            for _ in 0..5 {
                assert_eq!(run(1), 200);
            }
            // Each thread made its state at most once over the five calls.
            let made = inits.load(Ordering::Relaxed);
            assert!((1..=threads).contains(&made), "{made} states for {threads} threads");
            assert_eq!(run(2), 200);
            let made = inits.load(Ordering::Relaxed);
            assert!(made > 1, "a state of another shape was reused");
            // Both shapes are kept: taking turns makes no new states (but for a thread that
            // took no range of an earlier call).
            for shape in [1, 2, 1, 2] {
                assert_eq!(run(shape), 200);
            }
            assert!(
                inits.load(Ordering::Relaxed) <= made + 2 * (threads - 1),
                "states remade"
            );
            // States of another type do not disturb it.
            assert_eq!(
                exec.fold_ranges_kept(50, |_: &String| true, String::new, |_, r| r.len(), 0, |a, n, _| *a += n)
                    .unwrap(),
                50
            );
            let before = inits.load(Ordering::Relaxed);
            assert_eq!(run(2), 200);
            assert!(inits.load(Ordering::Relaxed) < before + threads);
        }
    }

    #[test]
    fn a_caller_on_another_rayon_pool_keeps_its_state_in_the_callers_slot() {
        // The caller's index in its own pool says nothing about this executor's slots.
        let foreign = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        for threads in [1, 2] {
            let exec = Executor::new(threads).unwrap();
            let inits = AtomicUsize::new(0);
            foreign.install(|| {
                for _ in 0..5 {
                    let n = exec
                        .fold_ranges_kept(
                            TAIL,
                            |_: &u8| true,
                            || {
                                inits.fetch_add(1, Ordering::Relaxed);
                                0u8
                            },
                            |_, r| r.len(),
                            0,
                            |sum, len, _| *sum += len,
                        )
                        .unwrap();
                    assert_eq!(n, TAIL);
                }
            });
            // One range per call, on the calling thread: its state is made once and kept.
            assert_eq!(inits.load(Ordering::Relaxed), 1, "{threads} threads");
        }
    }

    #[test]
    fn absurd_thread_counts_are_an_error_naming_the_argument() {
        for n in [MAX_THREADS + 1, 1_000_000, usize::MAX] {
            let e = Executor::new(n).unwrap_err().to_string();
            assert!(e.contains("threads") && e.contains(&n.to_string()), "{e}");
            assert!(Executor::shared(n).is_err());
        }
    }

    #[test]
    fn shared_executors_are_one_per_thread_count_while_held() {
        let a = Executor::shared(2).unwrap();
        let b = Executor::shared(2).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = Executor::shared(1).unwrap();
        assert_eq!((a.threads(), c.threads()), (2, 1));
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none(), "the cache keeps no executor alive");
        assert_eq!(Executor::shared(2).unwrap().threads(), 2);
    }

    #[test]
    fn concurrent_callers_share_an_executor() {
        let exec = Executor::new(2).unwrap();
        std::thread::scope(|s| {
            for k in 1..=3usize {
                let exec = &exec;
                s.spawn(move || {
                    for _ in 0..50 {
                        let got = exec
                            .fold_ranges_kept(
                                300,
                                |_: &Vec<usize>| true,
                                Vec::new,
                                |buf, r| {
                                    buf.clear();
                                    buf.extend(r.clone().map(|i| i * k));
                                    buf.iter().sum::<usize>()
                                },
                                0,
                                |sum, part, _| *sum += part,
                            )
                            .unwrap();
                        assert_eq!(got, k * 299 * 300 / 2);
                    }
                });
            }
        });
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller() {
        let exec = Executor::new(2).unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            exec.map_ranges(100, |r| assert!(!r.contains(&50), "boom")).unwrap()
        }));
        assert!(r.is_err());
        // The executor still works afterwards.
        assert_eq!(exec.map_ranges(40, |r| r.len()).unwrap().iter().sum::<usize>(), 40);
    }

    #[test]
    fn a_raised_token_stops_the_call_on_every_thread_count() {
        for threads in [1, 2, 3] {
            let exec = Executor::new(threads).unwrap();
            let token = Cancel::new();
            let done = AtomicUsize::new(0);
            // Raised during the call, by its work: the ranges taken after it are not run.
            let r = token.scope(|| {
                exec.map_ranges(1000, |r| {
                    if done.fetch_add(1, Ordering::Relaxed) == 3 {
                        token.cancel();
                    }
                    r.len()
                })
            });
            assert_eq!(r, Err(Error::Cancelled), "{threads} threads");
            // Each thread finishes the range it holds, at most: far fewer than the call's.
            let ran = done.load(Ordering::Relaxed);
            assert!(ran < 4 + threads * (WINDOW + 1), "{ran} ranges ran after cancelling");
            assert!(split(1000).len() > 60);
            // Raised before the call: nothing runs.
            let r = token.scope(|| exec.map_ranges(100, |_| done.fetch_add(1000, Ordering::Relaxed)));
            assert_eq!(r, Err(Error::Cancelled));
            assert_eq!(done.load(Ordering::Relaxed), ran);
            // Outside the scope, and with a token not raised, the executor works as before.
            assert_eq!(exec.map_ranges(100, |r| r.len()).unwrap().iter().sum::<usize>(), 100);
            let fresh = Cancel::new();
            let got = fresh.scope(|| exec.map_ranges(100, |r| r.len()));
            assert_eq!(got.unwrap().iter().sum::<usize>(), 100);
        }
    }

    #[test]
    fn nested_calls_on_the_pool_see_the_callers_token() {
        let exec = Executor::new(3).unwrap();
        let token = Cancel::new();
        let seen = AtomicUsize::new(0);
        let r = token.scope(|| {
            exec.map_ranges(200, |_| {
                // Every thread of the call, helpers included, runs inside the caller's scope.
                if crate::cancel::cancellable() {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                token.cancel();
                exec.map_ranges(100, |r| r.len())
            })
        });
        assert_eq!(r, Err(Error::Cancelled));
        assert!(seen.load(Ordering::Relaxed) >= 1);
        assert!(!crate::cancel::cancellable(), "the scope ended with the call");
    }
}
