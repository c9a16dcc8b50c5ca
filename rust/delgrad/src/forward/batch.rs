//! A batch's spike times: per-thread ranges of samples written into one `[batch, n_l]` matrix per
//! layer as each range is done.

use std::ops::Range;
use std::sync::Mutex;

use crate::error::Result;
use crate::matrix::Matrix;
use crate::parallel::{Executor, lock_briefly};

/// Spike times of a batch of `batch` samples, one `[batch, n_l]` matrix per layer of `sizes`,
/// computed in the ranges of `exec`: `chunk(state, range, rows)` writes the samples' rows of
/// every layer's times (one layer after the other; `rows` comes filled with `fill`) and returns
/// what else it has to say, which comes back in range order. Each range's rows go into the
/// matrices as soon as it is done, so the batch's times are held once, not twice. The matrices
/// are allocated first: an error naming `input` when they cannot be.
pub(crate) fn chunked_times<S, T, I, F>(
    sizes: &[usize],
    batch: usize,
    exec: &Executor,
    fill: f64,
    init: I,
    chunk: F,
) -> Result<(Vec<Matrix>, Vec<T>)>
where
    S: Send + 'static,
    T: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, Range<usize>, &mut [f64]) -> T + Sync + Send,
{
    let width: usize = sizes.iter().sum();
    let times = Mutex::new(layer_matrices(sizes, batch)?);
    // The scratch space grows to what the samples need: any kept one fits.
    let parts = exec.fold_ranges_kept(
        batch,
        |_: &(S, Vec<f64>)| true,
        || (init(), Vec::new()),
        |(state, rows), range| {
            rows.clear();
            rows.resize(range.len() * width, fill);
            let said = chunk(state, range.clone(), rows);
            write_rows(&mut lock_briefly(&times), range, rows);
            said
        },
        Vec::new(),
        |all, said, _| all.push(said),
    )?;
    Ok((times.into_inner().unwrap_or_else(|e| e.into_inner()), parts))
}

/// One `[batch, n_l]` matrix per layer of `sizes`, for the spike times of a batch; an error
/// naming `input` (whose rows set `batch`) when they cannot be allocated.
pub(crate) fn layer_matrices(sizes: &[usize], batch: usize) -> Result<Vec<Matrix>> {
    sizes.iter().map(|&n| Matrix::zeros("input", batch, n)).collect()
}

/// Writes per-sample rows of concatenated layer times, those of `samples`, into the layers'
/// matrices `out`.
pub(crate) fn write_rows(out: &mut [Matrix], samples: Range<usize>, rows: &[f64]) {
    let width: usize = out.iter().map(Matrix::cols).sum();
    for (b, row) in samples.zip(rows.chunks_exact(width)) {
        let mut off = 0;
        for m in out.iter_mut() {
            let n = m.cols();
            m.row_mut(b).copy_from_slice(&row[off..off + n]);
            off += n;
        }
    }
}
