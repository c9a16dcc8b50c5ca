//! Forward pass, loss and backward pass of a batch in one sweep per sample: the work of one
//! training step, with one parallel region and no intermediate batch tensors.
//!
//! The results equal `forward`, then `loss::evaluate`, then `backward` with dL/dt divided by the
//! batch size (the loss is the batch mean): times and losses bit for bit, gradients to rounding
//! (the backward pass takes its exponential factors from the forward scans instead of computing
//! them again from the times; the same chunked summation order).

use std::ops::Range;
use std::sync::Mutex;

use crate::alloc;
use crate::error::Result;
use crate::forward::{Scratch, layer_matrices, sample_times, write_rows};
use crate::gradient::{Accumulator, BackwardOptions, BackwardPlan, Gradients, KEEP_SPENT, Scratch as BackwardScratch};
use crate::loss::{Loss, LossReport, TieRule, evaluate_sample, report, validate_labels};
use crate::matrix::Matrix;
use crate::network::Network;
use crate::parallel::{Executor, lock_briefly};

/// Everything a training step computes for a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    /// Spike times of every layer, `[batch, n_l]` each.
    pub times: Vec<Matrix>,
    /// The loss at the output times (its `dl_dt` not divided by the batch size).
    pub loss: LossReport,
    /// Exact gradients of the batch-mean loss.
    pub grads: Gradients,
}

/// One chunk's share of a [`Pass`] (its spike times go straight to the pass's matrices), or the
/// shares folded so far.
struct Part {
    losses: Vec<f64>,
    predicted: Vec<Option<usize>>,
    dl_dt: Vec<f64>,
    silent: usize,
    /// What the recorder counted (events an emulated chip lost).
    counted: u64,
    acc: Accumulator,
}

impl Part {
    /// An empty share for `samples` samples.
    /// An error naming `input` (whose rows are the samples) when it cannot be allocated.
    fn new(net: &Network, samples: usize) -> Result<Self> {
        let what = "the per-sample losses";
        let n_dl = alloc::count("input", "dL/dt of the outputs", &[samples, net.n_out()])?;
        let (mut losses, mut predicted, mut dl_dt) = (Vec::new(), Vec::new(), Vec::new());
        alloc::reserve(&mut losses, "input", what, samples)?;
        alloc::reserve(&mut predicted, "input", what, samples)?;
        alloc::reserve(&mut dl_dt, "input", "dL/dt of the outputs", n_dl)?;
        Ok(Part {
            losses,
            predicted,
            dl_dt,
            silent: 0,
            counted: 0,
            acc: Accumulator::new(net, samples)?,
        })
    }

    /// Appends the next chunk's share (gradients summed in chunk order).
    fn append(&mut self, next: &Part) {
        self.losses.extend_from_slice(&next.losses);
        self.predicted.extend_from_slice(&next.predicted);
        self.dl_dt.extend_from_slice(&next.dl_dt);
        self.silent += next.silent;
        self.counted += next.counted;
        self.acc.merge(&next.acc);
    }

    /// Empties the share for reuse.
    fn clear(&mut self) {
        self.losses.clear();
        self.predicted.clear();
        self.dl_dt.clear();
        self.silent = 0;
        self.counted = 0;
        self.acc.clear();
    }
}

/// What each thread keeps for the chunks it takes (`S`: the recorder's own scratch).
struct ThreadState<S> {
    recorder: S,
    forward: Scratch,
    backward: BackwardScratch,
    delta: Vec<f64>,
    /// The spike times of every layer of a chunk's samples, one row of all layers per sample.
    rows: Vec<f64>,
    spent: Vec<Part>,
}

impl<S> ThreadState<S> {
    /// Whether this was made for a network of the shape of `net`.
    fn fits(&self, net: &Network) -> bool {
        self.backward.fits(net) && self.delta.len() == net.n_out() && self.spent.iter().all(|p| p.acc.fits(net))
    }
}

/// Forward pass, loss (mean over the batch; `silent_loss` for silent samples) and exact backward
/// pass of the mean for `input` `[batch, n_in]` with class `labels`; `tie` classifies ties
/// between the earliest outputs (the report's predictions and correct count).
#[allow(clippy::too_many_arguments)]
pub fn forward_backward(
    net: &Network,
    input: &Matrix,
    labels: &[usize],
    loss: &Loss,
    silent_loss: f64,
    tie: TieRule,
    opts: &BackwardOptions,
    exec: &Executor,
) -> Result<Pass> {
    net.validate()?;
    // One plan per layer serves the forward and the backward pass.
    let bplan = BackwardPlan::new(net, opts);
    // The forward scans leave their exponential factors for the backward pass.
    let model = |_: &mut (), scratch: &mut Scratch, b: usize, row: &mut [f64]| {
        sample_times(&bplan.layers, input.row(b), row, scratch, opts.method);
        (true, 0)
    };
    pass(net, &bplan, input, labels, loss, silent_loss, tie, opts, exec, model).map(|(pass, _)| pass)
}

/// [`forward_backward`] with each sample's spike times from `record` instead of the model's
/// forward scans: `record(state, scratch, b, row)` writes sample b's times of every layer into
/// `row` (one layer after the other) and returns whether `scratch.factors` holds the scans'
/// factors for them, and a count that the pass sums (an emulated chip's lost events). `state`
/// is per thread. The backward pass is that of `net` (validated by the caller; plans `bplan`)
/// at the recorded times; returns the pass and the summed count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pass<S, R>(
    net: &Network,
    bplan: &BackwardPlan,
    input: &Matrix,
    labels: &[usize],
    loss: &Loss,
    silent_loss: f64,
    tie: TieRule,
    opts: &BackwardOptions,
    exec: &Executor,
    record: R,
) -> Result<(Pass, u64)>
where
    S: Default + Send + 'static,
    R: Fn(&mut S, &mut Scratch, usize, &mut [f64]) -> (bool, u64) + Sync,
{
    net.validate_times("input", input, net.n_in())?;
    let batch = input.rows();
    let n_out = net.n_out();
    validate_labels(loss, labels, batch, n_out)?;
    let sizes = &net.sizes()[1..];
    let width: usize = sizes.iter().sum();
    // Start of each layer's times in a sample's row.
    let offsets: Vec<usize> = sizes
        .iter()
        .scan(0, |off, &n| {
            *off += n;
            Some(*off - n)
        })
        .collect();
    // Per-thread scratch: the recorder's, forward, backward, dL/dt of a sample's outputs, and
    // spent chunk shares (reused instead of allocated per chunk).
    let init = || ThreadState {
        recorder: S::default(),
        forward: Scratch::default(),
        backward: BackwardScratch::new(net),
        delta: vec![0.0; n_out],
        rows: Vec::new(),
        spent: Vec::new(),
    };
    // Each chunk writes its samples' times into the pass's matrices itself: copied in the fold,
    // they would cross to the folding thread's core and be copied once more at the end. The
    // first chunk done allocates them, while the other threads work on.
    let times = Mutex::new(Vec::new());
    let chunk = |st: &mut ThreadState<S>, range: Range<usize>| {
        let (scratch, back, delta) = (&mut st.forward, &mut st.backward, &mut st.delta);
        let len = range.len();
        let mut part = match st.spent.pop() {
            Some(part) => part,
            None => Part::new(net, len)?,
        };
        st.rows.resize(len * width, 0.0);
        part.dl_dt.resize(len * n_out, 0.0);
        let rows = st.rows.chunks_exact_mut(width);
        let grads = part.dl_dt.chunks_exact_mut(n_out);
        for ((b, row), grad) in range.clone().zip(rows).zip(grads) {
            let (with_factors, count) = record(&mut st.recorder, scratch, b, row);
            part.counted += count;
            let (value, predicted, silent) =
                evaluate_sample(loss, &row[width - n_out..], labels[b], silent_loss, false, tie, b, grad)?;
            part.losses.push(value);
            part.predicted.push(predicted);
            part.silent += usize::from(silent);
            // The loss is the batch mean, so each sample's dL/dt carries 1/batch.
            delta
                .iter_mut()
                .zip(grad.iter())
                .for_each(|(d, g)| *d = g / batch as f64);
            let row = &*row;
            let factors = if with_factors { &scratch.factors[..] } else { &[] };
            part.acc.add_sample(
                back,
                net,
                bplan,
                input.row(b),
                |l| &row[offsets[l]..offsets[l] + sizes[l]],
                delta,
                factors,
                opts,
            );
        }
        let mut times = lock_briefly(&times);
        if times.is_empty() {
            *times = layer_matrices(sizes, batch)?;
        }
        write_rows(&mut times, range, &st.rows);
        Ok(part)
    };
    // Chunks are folded in order while others are still running; the first error (in sample
    // order) wins.
    let fold = |all: &mut Result<Part>, part: Result<Part>, st: &mut ThreadState<S>| match (all.as_mut(), part) {
        (Ok(all), Ok(mut part)) => {
            all.append(&part);
            if st.spent.len() < KEEP_SPENT {
                part.clear();
                st.spent.push(part);
            }
        }
        (Ok(_), Err(e)) => *all = Err(e),
        (Err(_), _) => {}
    };
    let fits = |st: &ThreadState<S>| st.fits(net);
    // The batch's buffers are checked (the spike times) or allocated before any sample is run.
    alloc::ensure::<f64>(
        "input",
        "the spike times",
        alloc::count("input", "the spike times", &[batch, width])?,
    )?;
    let all = Part::new(net, batch)?;
    let all = exec.fold_ranges_kept(batch, fits, init, chunk, Ok(all), fold)??;
    let mut times = times.into_inner().unwrap_or_else(|e| e.into_inner());
    if times.is_empty() {
        times = layer_matrices(sizes, batch)?; // an empty batch
    }
    let counted = all.counted;
    let dl_dt = Matrix::from_vec("dl_dt", batch, n_out, all.dl_dt)?;
    let loss = report(all.losses, all.predicted, labels, dl_dt, all.silent)?;
    let grads = all.acc.into_gradients(net, batch)?;
    Ok((Pass { times, loss, grads }, counted))
}
