//! The event-based forward pass: the first-spike times t_k of every layer for a batch.
//!
//! Neuron k of a layer spikes at the first t with u_k(t) = sum_i w_ki kappa(t - a_ki) = theta_k,
//! where a_ki = t_i + d_syn_ki + d_axo_i + d_den_k are its inputs' arrival times (model
//! units; a silent input, t_i = +inf, never arrives). See `docs/model.md` for the model and the
//! three delay kinds. The layers run one after the other per sample; samples run in parallel.

mod batch;
mod factors;
mod layer;
mod plan;
mod sort;

pub(crate) use batch::{chunked_times, layer_matrices, write_rows};
pub(crate) use factors::{Factors, RiseFactor};
pub(crate) use layer::{Prepared, Scratch, neuron_spike, prepare, sample_times};
pub(crate) use plan::LayerPlan;
// The emulated chip's noisy pass reuses the plans' scans and the arrival sort.
#[cfg(feature = "hardware")]
pub(crate) use {layer::plan_times, sort::sorted_arrivals};

use crate::error::Result;
use crate::matrix::Matrix;
use crate::network::Network;
use crate::parallel::Executor;
use crate::solver::Method;

/// Forward pass of a batch `input` `[batch, n_in]` (+inf = silent input): returns the spike
/// times of every layer, `[batch, n_l]` each, +inf where a neuron stays silent.
pub fn forward(net: &Network, input: &Matrix, method: Method, exec: &Executor) -> Result<Vec<Matrix>> {
    net.validate()?;
    net.validate_times("input", input, net.n_in())?;
    let plans: Vec<LayerPlan> = net.layers.iter().map(|l| LayerPlan::new(l, method)).collect();
    let sizes = &net.sizes()[1..];
    let width: usize = sizes.iter().sum();
    let (times, _) = chunked_times(
        sizes,
        input.rows(),
        exec,
        0.0,
        Scratch::default,
        |scratch, range, rows| {
            for (b, row) in range.zip(rows.chunks_exact_mut(width)) {
                sample_times(&plans, input.row(b), row, scratch, method);
            }
        },
    )?;
    Ok(times)
}
