//! The backward pass over a batch: per-layer plans shared with the forward pass, per-thread
//! scratch space and per-chunk accumulators merged in sample order.

use super::layer::{IdealCheck, KernelScratch, layer_backward};
use super::{BackwardOptions, Gradients, LayerGrad};
use crate::alloc;
use crate::error::{Error, Result};
use crate::forward::{Factors, LayerPlan, Scratch as ForwardScratch};
use crate::matrix::Matrix;
use crate::network::Network;

/// Most spent chunk accumulators a thread keeps for reuse (the thread that folds a chunk keeps
/// it, so without a bound one thread could gather them over the calls an executor keeps its
/// state for).
pub(crate) const KEEP_SPENT: usize = 4;

/// Per-thread scratch space of the backward pass (reused for every sample a thread takes).
pub(crate) struct Scratch {
    kernel: KernelScratch,
    deltas: Vec<Vec<f64>>,
    forward: ForwardScratch,
}

/// What the backward pass prepares once per layer for a batch: the layer plans it shares with
/// the forward pass (effective delays, factored decays), and whether it checks given times
/// against the ideal model (with those plans' forward scans).
pub(crate) struct BackwardPlan<'a> {
    pub(crate) layers: Vec<LayerPlan<'a>>,
    check: bool,
}

impl<'a> BackwardPlan<'a> {
    pub(crate) fn new(net: &'a Network, opts: &BackwardOptions) -> Self {
        BackwardPlan {
            layers: net.layers.iter().map(|l| LayerPlan::new(l, opts.method)).collect(),
            check: opts.check_given_times,
        }
    }
}

impl Scratch {
    pub(crate) fn new(net: &Network) -> Self {
        Scratch {
            kernel: KernelScratch::default(),
            deltas: net.sizes().into_iter().map(|n| vec![0.0; n]).collect(),
            forward: ForwardScratch::default(),
        }
    }

    /// Whether this was made for a network of the shape of `net`.
    pub(crate) fn fits(&self, net: &Network) -> bool {
        let sizes = net.sizes();
        self.deltas.len() == sizes.len() && self.deltas.iter().zip(&sizes).all(|(d, &n)| d.len() == n)
    }
}

/// Whether every value is finite: sum_i 0 v_i is 0, or NaN if some v_i is not finite; summed in
/// four lanes, a form the compiler vectorises.
#[inline]
fn all_finite(values: &[f64]) -> bool {
    let mut lanes = [0.0f64; 4];
    let chunks = values.chunks_exact(4);
    let rest: f64 = chunks.remainder().iter().map(|v| v * 0.0).sum();
    for c in chunks {
        for (lane, v) in lanes.iter_mut().zip(c) {
            *lane += v * 0.0;
        }
    }
    lanes.iter().sum::<f64>() + rest == 0.0
}

/// Per-chunk accumulators of the backward pass: gradients summed over the chunk's samples,
/// (invalid, clipped) counts per layer and dL/dt of the inputs per sample.
pub(crate) struct Accumulator {
    grads: Vec<LayerGrad>,
    counts: Vec<(usize, usize)>,
    input_rows: Vec<f64>,
    /// Inputs per sample (>= 1).
    n_in: usize,
    /// The first (sample within the accumulator, layer) whose gradients are not finite.
    non_finite: Option<(usize, usize)>,
}

impl Accumulator {
    /// An empty accumulator for `samples` samples (the dL/dt of their inputs, `[samples, n_in]`,
    /// is reserved up front; an error naming `input` when it cannot be).
    pub(crate) fn new(net: &Network, samples: usize) -> Result<Self> {
        let n = alloc::count("input", "the input gradients", &[samples, net.n_in()])?;
        let mut input_rows = Vec::new();
        alloc::reserve(&mut input_rows, "input", "the input gradients", n)?;
        Ok(Accumulator {
            grads: net.layers.iter().map(LayerGrad::zeros).collect::<Result<_>>()?,
            counts: vec![(0, 0); net.layers.len()],
            input_rows,
            n_in: net.n_in().max(1),
            non_finite: None,
        })
    }

    /// Adds the backward pass of one sample: its `input` times, `times(l)` its spike times of
    /// layer l and `dl_dout` dL/dt of its outputs. `factors` may hold the forward pass's factors
    /// of each layer for these times (`forward::Scratch::factors`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_sample<'t>(
        &mut self,
        s: &mut Scratch,
        net: &Network,
        plan: &BackwardPlan,
        input: &'t [f64],
        times: impl Fn(usize) -> &'t [f64],
        dl_dout: &[f64],
        factors: &[Factors],
        opts: &BackwardOptions,
    ) {
        let n_layers = net.layers.len();
        // deltas[l] holds dL/dt of the inputs of layer l; deltas[L] the output errors.
        s.deltas[n_layers].copy_from_slice(dl_dout);
        for l in (0..n_layers).rev() {
            let t_in = if l == 0 { input } else { times(l - 1) };
            let (below, above) = s.deltas.split_at_mut(l + 1);
            let delta_in = &mut below[l];
            delta_in.fill(0.0);
            let lp = &plan.layers[l];
            let mut ideal = plan.check.then_some(IdealCheck {
                plan: lp,
                t_in,
                s: &mut s.forward,
                method: opts.method,
                prepared: None,
            });
            let (inv, clip) = layer_backward(
                &net.layers[l],
                &lp.delays,
                lp.decays.as_ref(),
                t_in,
                times(l),
                &above[0],
                delta_in,
                &mut self.grads[l],
                opts,
                ideal.as_mut(),
                factors.get(l),
                &mut s.kernel,
            );
            self.counts[l].0 += inv;
            self.counts[l].1 += clip;
            // With finite inputs a non-finite gradient starts in a layer's dL/dt_k / rho_k (a
            // slope rho_k that rounds to almost 0, or products of huge times and parameters that
            // overflow), which then reaches every dL/da_ki of the neuron (rho_k > 0 has a term
            // w_ki kappa'_ki != 0) and so dL/dt_in. Layers run from the output down: the first
            // flagged is where it starts. (What escapes this, a product scale kappa_ki or a sum
            // over the batch that overflows, the pass over the sums catches.)
            if !all_finite(delta_in) && self.non_finite.is_none() {
                self.non_finite = Some((self.samples(), l));
            }
        }
        self.input_rows.extend_from_slice(&s.deltas[0]);
    }

    /// Whether this was made for a network of the shape of `net`.
    pub(crate) fn fits(&self, net: &Network) -> bool {
        self.counts.len() == net.layers.len()
            && self.grads.len() == net.layers.len()
            && self.grads.iter().zip(&net.layers).all(|(g, l)| g.fits(l))
    }

    /// Number of samples added.
    fn samples(&self) -> usize {
        self.input_rows.len() / self.n_in
    }

    /// Adds the next chunk's accumulator (chunks are merged in sample order).
    pub(crate) fn merge(&mut self, next: &Accumulator) {
        if self.non_finite.is_none() {
            let before = self.samples();
            self.non_finite = next.non_finite.map(|(b, l)| (before + b, l));
        }
        for (acc, g) in self.grads.iter_mut().zip(&next.grads) {
            acc.add(g);
        }
        for (acc, c) in self.counts.iter_mut().zip(&next.counts) {
            acc.0 += c.0;
            acc.1 += c.1;
        }
        self.input_rows.extend_from_slice(&next.input_rows);
    }

    /// Empties the accumulator for reuse (no samples added).
    pub(crate) fn clear(&mut self) {
        self.grads.iter_mut().for_each(LayerGrad::clear);
        self.counts.fill((0, 0));
        self.input_rows.clear();
        self.non_finite = None;
    }

    /// The batch's gradients, once every sample is added; an error naming the sample and layer
    /// where a gradient stops being finite (or the layer and tensor whose sum over the batch
    /// overflows). The one finiteness check of the backward pass: [`add_sample`](Self::add_sample)
    /// notes the first sample and layer whose dL/dt_in is not finite, this a pass over the sums
    /// (O(parameters)).
    pub(crate) fn into_gradients(self, net: &Network, batch: usize) -> Result<Gradients> {
        let range = "(see docs/model.md, \"Range of values\")";
        if let Some((b, l)) = self.non_finite {
            return Err(Error::value(
                format!("sample {b}"),
                format!(
                    "the gradients of layers[{l}] are not finite: its spike times, the parameters \
                     or the loss gradients are too large for exact gradients {range}"
                ),
            ));
        }
        if let Some(i) = self.input_rows.iter().position(|v| !v.is_finite()) {
            let (b, n) = (i / self.n_in, i % self.n_in);
            return Err(Error::value(
                format!("sample {b}"),
                format!("the gradient of input {n} overflows {range}"),
            ));
        }
        for (l, g) in self.grads.iter().enumerate() {
            let tensors = [
                ("w", g.w.as_slice()),
                ("theta", &g.theta[..]),
                ("d_syn", g.d_syn.as_slice()),
                ("d_axo", &g.d_axo[..]),
                ("d_den", &g.d_den[..]),
            ];
            for (name, v) in tensors {
                if let Some(i) = v.iter().position(|v| !v.is_finite()) {
                    return Err(Error::value(
                        format!("layers[{l}].{name}"),
                        format!("the gradient summed over the batch overflows at entry {i} {range}"),
                    ));
                }
            }
        }
        let input = Matrix::from_vec("input_grad", batch, net.n_in(), self.input_rows)?;
        let (invalid, clipped) = self.counts.into_iter().unzip();
        Ok(Gradients {
            layers: self.grads,
            input,
            invalid,
            clipped,
        })
    }
}
