//! Forward pass, loss and backward pass of a batch in one sweep per sample: the work of one
//! training step, with one parallel region and no intermediate batch tensors.
//!
//! The results equal `forward`, then `loss::evaluate`, then `backward` with dL/dt divided by the
//! batch size (the loss is the batch mean), bit for bit: the same per-sample arithmetic and the
//! same chunked summation order.

use crate::error::Result;
use crate::forward::{Scratch, sample_times, split_layers};
use crate::gradient::{Accumulator, BackwardOptions, BackwardPlan, Gradients, Scratch as BackwardScratch, combine};
use crate::loss::{Loss, LossReport, evaluate_sample, report, validate_labels};
use crate::matrix::Matrix;
use crate::network::Network;
use crate::parallel::Executor;

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

/// One chunk's share of a [`Pass`].
struct Part {
    rows: Vec<f64>,
    losses: Vec<f64>,
    predicted: Vec<Option<usize>>,
    dl_dt: Vec<f64>,
    silent: usize,
    acc: Accumulator,
}

/// Forward pass, loss (mean over the batch; `silent_loss` for silent samples) and exact backward
/// pass of the mean for `input` `[batch, n_in]` with class `labels`.
pub fn forward_backward(
    net: &Network,
    input: &Matrix,
    labels: &[usize],
    loss: &Loss,
    silent_loss: f64,
    opts: &BackwardOptions,
    exec: &Executor,
) -> Result<Pass> {
    net.validate()?;
    net.validate_times("input", input, net.n_in())?;
    let batch = input.rows();
    let n_out = net.n_out();
    validate_labels(loss, labels, batch, n_out)?;
    // One plan per layer serves the forward and the backward pass.
    let bplan = BackwardPlan::new(net, opts);
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
    // Per-thread scratch: forward, backward, and dL/dt of a sample's outputs.
    let init = || (Scratch::default(), BackwardScratch::new(net), vec![0.0; n_out]);
    let parts = exec.map_ranges_with(batch, init, |(scratch, back, delta), range| -> Result<Part> {
        let len = range.len();
        let mut part = Part {
            rows: vec![0.0; len * width],
            losses: Vec::with_capacity(len),
            predicted: Vec::with_capacity(len),
            dl_dt: vec![0.0; len * n_out],
            silent: 0,
            acc: Accumulator::new(net, len),
        };
        let rows = part.rows.chunks_exact_mut(width);
        let grads = part.dl_dt.chunks_exact_mut(n_out);
        for ((b, row), grad) in range.zip(rows).zip(grads) {
            sample_times(&bplan.layers, input.row(b), row, scratch, opts.method);
            let (value, predicted, silent) =
                evaluate_sample(loss, &row[width - n_out..], labels[b], silent_loss, false, b, grad)?;
            part.losses.push(value);
            part.predicted.push(predicted);
            part.silent += usize::from(silent);
            // The loss is the batch mean, so each sample's dL/dt carries 1/batch.
            delta
                .iter_mut()
                .zip(grad.iter())
                .for_each(|(d, g)| *d = g / batch as f64);
            let row = &*row;
            part.acc.add_sample(
                back,
                net,
                &bplan,
                input.row(b),
                |l| &row[offsets[l]..offsets[l] + sizes[l]],
                delta,
                &scratch.factors,
                opts,
            );
        }
        Ok(part)
    });
    let parts = parts.into_iter().collect::<Result<Vec<Part>>>()?;
    let times = split_layers(sizes, batch, parts.iter().map(|p| p.rows.as_slice()));
    let dl_dt = Matrix::from_vec(
        "dl_dt",
        batch,
        n_out,
        parts.iter().flat_map(|p| p.dl_dt.iter().copied()).collect(),
    )?;
    let losses = parts.iter().flat_map(|p| p.losses.iter().copied()).collect();
    let predicted = parts.iter().flat_map(|p| p.predicted.iter().copied()).collect();
    let silent = parts.iter().map(|p| p.silent).sum();
    let loss = report(losses, predicted, labels, dl_dt, silent)?;
    let grads = combine(net, batch, parts.into_iter().map(|p| p.acc))?;
    Ok(Pass { times, loss, grads })
}
