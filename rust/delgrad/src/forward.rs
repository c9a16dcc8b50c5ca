//! The event-based forward pass: first-spike times of every layer for a batch.

use crate::error::Result;
use crate::matrix::Matrix;
use crate::network::{Layer, Network};
use crate::parallel::Executor;
use crate::solver::{Method, first_spike};

/// First-spike times of one layer for one sample: per neuron, sort the finite arrivals
/// a_ki = t_i + d_ki and scan them (`solver::first_spike`). `arrivals` is scratch space.
pub fn layer_times(
    layer: &Layer,
    delays: &Matrix,
    t_in: &[f64],
    t_out: &mut [f64],
    arrivals: &mut Vec<(f64, f64)>,
    method: Method,
) {
    for (k, out) in t_out.iter_mut().enumerate() {
        *out = neuron_time(layer, k, delays.row(k), t_in, arrivals, method);
    }
}

/// First-spike time of neuron `k` of `layer` from input times `t_in` and its delay row `d`.
pub(crate) fn neuron_time(
    layer: &Layer,
    k: usize,
    d: &[f64],
    t_in: &[f64],
    arrivals: &mut Vec<(f64, f64)>,
    method: Method,
) -> f64 {
    arrivals.clear();
    // Silent inputs and zero weights leave u unchanged: they open no interval.
    arrivals.extend(
        t_in.iter()
            .zip(d)
            .zip(layer.w.row(k))
            .filter(|((t, _), w)| t.is_finite() && **w != 0.0)
            .map(|((t, d), w)| (t + d, *w)),
    );
    arrivals.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    first_spike(&layer.neuron, layer.theta[k], arrivals, method)
}

/// Forward pass of a batch `input` `[batch, n_in]` (+inf = silent input): returns the spike
/// times of every layer, `[batch, n_l]` each, +inf where a neuron stays silent.
pub fn forward(net: &Network, input: &Matrix, method: Method, exec: &Executor) -> Result<Vec<Matrix>> {
    net.validate()?;
    net.validate_times("input", input, net.n_in())?;
    let delays: Vec<Matrix> = net
        .layers
        .iter()
        .map(|l| l.delays.effective(l.n_in(), l.n_out()))
        .collect();
    let sizes = net.sizes();
    let width: usize = sizes[1..].iter().sum();
    let batch = input.rows();
    let parts = exec.map_ranges(batch, |range| {
        let mut rows = vec![0.0; range.len() * width];
        let mut arrivals = Vec::new();
        for (b, row) in range.zip(rows.chunks_exact_mut(width)) {
            let mut t_in = input.row(b);
            let mut rest = row;
            for (layer, d) in net.layers.iter().zip(&delays) {
                let (t_out, tail) = rest.split_at_mut(layer.n_out());
                layer_times(layer, d, t_in, t_out, &mut arrivals, method);
                t_in = t_out;
                rest = tail;
            }
        }
        rows
    });
    let mut out: Vec<Matrix> = sizes[1..].iter().map(|&n| Matrix::zeros(batch, n)).collect();
    let mut b = 0;
    for rows in parts {
        for row in rows.chunks_exact(width) {
            let mut off = 0;
            for m in out.iter_mut() {
                let n = m.cols();
                m.row_mut(b).copy_from_slice(&row[off..off + n]);
                off += n;
            }
            b += 1;
        }
    }
    Ok(out)
}
