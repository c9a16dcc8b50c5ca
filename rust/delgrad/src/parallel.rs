//! Parallel execution over samples: the caller chooses the number of threads.

use std::ops::Range;

use rayon::prelude::*;

use crate::error::{Error, Result};

/// Samples per unit of parallel work (fixed, for results independent of the thread count).
pub const CHUNK: usize = 16;

/// Runs per-sample work on a fixed number of threads (1 = on the caller's thread).
#[derive(Debug)]
pub struct Executor {
    pool: Option<rayon::ThreadPool>,
    threads: usize,
}

impl Default for Executor {
    fn default() -> Self {
        Executor { pool: None, threads: 1 }
    }
}

impl Executor {
    /// An executor with `threads` worker threads; 0 means one per available core.
    pub fn new(threads: usize) -> Result<Self> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        if threads == 1 {
            return Ok(Self::default());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("delgrad-{i}"))
            .build()
            .map_err(|e| Error::option("threads", format!("could not start {threads} threads: {e}")))?;
        Ok(Executor {
            pool: Some(pool),
            threads,
        })
    }

    /// Number of threads work is spread over.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Splits `0..n` into contiguous ranges of `CHUNK` samples, applies `f` to each and returns the
    /// results in range order. The split does not depend on the number of threads, so sums that
    /// callers fold over the results in order are bit-identical for every thread count.
    pub fn map_ranges<T, F>(&self, n: usize, f: F) -> Vec<T>
    where
        T: Send,
        F: Fn(Range<usize>) -> T + Sync + Send,
    {
        let ranges: Vec<Range<usize>> = (0..n.div_ceil(CHUNK))
            .map(|c| c * CHUNK..((c + 1) * CHUNK).min(n))
            .collect();
        match &self.pool {
            Some(pool) if ranges.len() > 1 => pool.install(|| ranges.into_par_iter().map(&f).collect()),
            _ => ranges.into_iter().map(f).collect(),
        }
    }
}
