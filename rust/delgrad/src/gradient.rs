//! Exact gradients from spike times alone (the backward pass), given the times of every layer:
//! computed by `forward` or measured on a chip.
//!
//! Implicit differentiation of u_k(t_k) = theta_k with slope rho_k = sum_i w_ki kappa'(t_k - a_ki) > 0:
//!
//! dt_k/dw_ki = -kappa(t_k - a_ki) / rho_k,   dt_k/da_ki = w_ki kappa'(t_k - a_ki) / rho_k,
//! dt_k/dtheta_k = 1 / rho_k.  Since `a_ki = t_i + d_syn[k,i] + d_axo[i] + d_den[k]`, every delay
//! gradient is a sum of dt_k/da_ki, and delta_i = dL/dt_i = sum_k delta_k dt_k/da_ki.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::forward::{Factors, LayerPlan, Prepared, RiseFactor, Scratch as ForwardScratch, neuron_spike, prepare};
use crate::kernel::{Regime, double_from_decay, equal_from_decay};
use crate::matrix::Matrix;
use crate::network::{Layer, Network};
use crate::parallel::Executor;
use crate::solver::Method;

/// Gradients of one layer's parameters (sums over the batch). Delay gradients are given for
/// every kind, present or not, in the shared (grouped) shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerGrad {
    /// dL/dw `[n_out, n_in]`.
    pub w: Matrix,
    /// dL/dtheta `[n_out]`.
    pub theta: Vec<f64>,
    /// dL/dd_syn `[n_out, n_in / group]`.
    pub d_syn: Matrix,
    /// dL/dd_axo `[n_in / group]`.
    pub d_axo: Vec<f64>,
    /// dL/dd_den `[n_out]`.
    pub d_den: Vec<f64>,
}

impl LayerGrad {
    fn zeros(layer: &Layer) -> Self {
        let (n_out, n_in) = (layer.n_out(), layer.n_in());
        let ng = layer.delays.groups(n_in);
        LayerGrad {
            w: Matrix::zeros(n_out, n_in),
            theta: vec![0.0; n_out],
            d_syn: Matrix::zeros(n_out, ng),
            d_axo: vec![0.0; ng],
            d_den: vec![0.0; n_out],
        }
    }

    /// Whether this has the shapes of the gradients of `layer`.
    fn fits(&self, layer: &Layer) -> bool {
        let (n_out, n_in) = (layer.n_out(), layer.n_in());
        let ng = layer.delays.groups(n_in);
        (self.w.rows(), self.w.cols()) == (n_out, n_in)
            && (self.d_syn.rows(), self.d_syn.cols()) == (n_out, ng)
            && self.theta.len() == n_out
            && self.d_axo.len() == ng
            && self.d_den.len() == n_out
    }

    fn clear(&mut self) {
        self.w.as_mut_slice().fill(0.0);
        self.theta.fill(0.0);
        self.d_syn.as_mut_slice().fill(0.0);
        self.d_axo.fill(0.0);
        self.d_den.fill(0.0);
    }

    fn add(&mut self, other: &LayerGrad) {
        let pairs = [
            (self.w.as_mut_slice(), other.w.as_slice()),
            (&mut self.theta[..], &other.theta[..]),
            (self.d_syn.as_mut_slice(), other.d_syn.as_slice()),
            (&mut self.d_axo[..], &other.d_axo[..]),
            (&mut self.d_den[..], &other.d_den[..]),
        ];
        for (a, b) in pairs {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
    }
}

/// Result of the backward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// Per-layer parameter gradients, summed over the batch.
    pub layers: Vec<LayerGrad>,
    /// dL/dt of the network inputs `[batch, n_in]` (0 for silent inputs).
    pub input: Matrix,
    /// Per layer: (sample, neuron) pairs with a finite given time that the ideal model cannot
    /// produce (slope <= 0 there, or, with `check_given_times`, no crossing at all): zero gradient.
    pub invalid: Vec<usize>,
    /// Per layer: (sample, neuron) pairs whose weight gradient `max_dw_norm` zeroed.
    pub clipped: Vec<usize>,
}

/// Options of the backward pass.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BackwardOptions {
    /// Zero a neuron's weight gradient for a sample when max_i |delta_k dt_k/dw_ki| exceeds this
    /// (near-tangential crossings make dt/dw explode); `None` keeps every gradient.
    pub max_dw_norm: Option<f64>,
    /// Re-solve each neuron from the given input times and treat a neuron the ideal model leaves
    /// silent as invalid (for measured times; unnecessary for times from `forward`).
    pub check_given_times: bool,
    /// Solver used by `check_given_times`.
    pub method: Method,
}

#[derive(Default)]
struct KernelScratch {
    kappa: Vec<f64>,
    slope: Vec<f64>,
    /// e^{(t_i - R)/tau_m} per input (R: the earliest input), for the factorised decays.
    rise: Vec<f64>,
}

/// Inputs and outputs spread over more than this many time constants are evaluated directly,
/// not as products of factors.
const FACTOR_RANGE: f64 = 300.0;

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

/// u_k(t_k) at least theta_k (1 + this) settles that the ideal model spikes: its potential has
/// crossed theta by t_k. The margin keeps rounding in u from deciding a tangential case, which
/// the neuron's scan decides instead.
const SPIKE_MARGIN: f64 = 1e-9;

/// Whether the ideal model (the given input times, the network's parameters) spikes, neuron by
/// neuron: the check of measured times (`check_given_times`). Most measured spikes settle it
/// from the potential at t_k ([`SPIKE_MARGIN`]); the others take their neuron's forward scan, the
/// layer's inputs prepared once, at the first of them.
struct IdealCheck<'a> {
    plan: &'a LayerPlan<'a>,
    t_in: &'a [f64],
    s: &'a mut ForwardScratch,
    method: Method,
    prepared: Option<Prepared>,
}

impl IdealCheck<'_> {
    /// Whether neuron `k`'s scan finds a crossing.
    fn scan_spikes(&mut self, k: usize) -> bool {
        let prepared = *self
            .prepared
            .get_or_insert_with(|| prepare(self.plan, self.t_in, None, self.s));
        neuron_spike(self.plan, k, prepared, self.s, self.method, true)
            .0
            .is_finite()
    }
}

/// Backward pass of one layer for one sample: accumulates parameter gradients into `g` and
/// dL/dt_in into `delta_in`; returns (invalid, clipped) counts.
#[allow(clippy::too_many_arguments)]
fn layer_backward(
    layer: &Layer,
    delays: &Matrix,
    decays: Option<&Matrix>,
    t_in: &[f64],
    t_out: &[f64],
    delta_out: &[f64],
    delta_in: &mut [f64],
    g: &mut LayerGrad,
    opts: &BackwardOptions,
    mut ideal: Option<&mut IdealCheck>,
    given: Option<&Factors>,
    s: &mut KernelScratch,
) -> (usize, usize) {
    let n_in = layer.n_in();
    let group = layer.delays.group.max(1);
    let neuron = &layer.neuron;

    let (mut invalid, mut clipped) = (0, 0);
    let tm = neuron.tau_m();
    s.kappa.resize(n_in, 0.0);
    s.slope.resize(n_in, 0.0);
    // The factorised decays need every exponent within range of a reference R no later than any
    // input: the forward scan's (with its factors) or the earliest input.
    let given = given.filter(|f| f.rise.len() == n_in && f.fall.len() == t_out.len() && f.tau_m == tm);
    let r = given.map_or_else(|| t_in.iter().copied().fold(f64::INFINITY, f64::min), |f| f.r);
    let latest = |t: &[f64]| t.iter().copied().filter(|t| t.is_finite()).fold(r, f64::max);
    // The forward scans' factors are products the scans formed without overflow: in range when
    // every spike's fall came with them.
    let in_range = match given {
        Some(f) if f.complete => true,
        _ => r.is_finite() && latest(t_in).max(latest(t_out)) - r <= FACTOR_RANGE * tm,
    };
    let decays = decays.filter(|_| in_range);
    if decays.is_some() && given.is_none() {
        s.rise.clear();
        let mut rise = RiseFactor::new(r, tm);
        s.rise.extend(t_in.iter().map(|&t| rise.at(t)));
    }
    let (rise, falls) = match given {
        Some(f) => (&f.rise[..], &f.fall[..]),
        None => (&s.rise[..], &[][..]),
    };
    for (k, (&tk, &dk)) in t_out.iter().zip(delta_out).enumerate() {
        if !tk.is_finite() {
            continue; // silent neurons pass no error
        }
        let w = layer.w.row(k);
        let d = delays.row(k);
        let (kappa, slope) = (&mut s.kappa[..n_in], &mut s.slope[..n_in]);
        // Kernel values and slopes at s = t_k - a_ki (zero before the arrival); written as plain
        // element-wise loops so that they vectorise.
        match decays {
            Some(dec) => {
                let fall = match falls.get(k) {
                    Some(&x) if !x.is_nan() => x,
                    _ => (-(tk - r) / tm).exp(),
                };
                // Equal-length slices and index loops: no bounds checks, so the loops vectorise.
                let (t_in, d, rise, dec) = (&t_in[..n_in], &d[..n_in], &rise[..n_in], &dec.row(k)[..n_in]);
                // x = e^{-s/tau_m} = X_k E_i e^{d_ki/tau_m}, 0 before the arrival (kappa = kappa' = 0).
                match neuron.regime() {
                    Regime::Double => {
                        for i in 0..n_in {
                            let live = tk - (t_in[i] + d[i]) > 0.0;
                            let x = if live { fall * rise[i] * dec[i] } else { 0.0 };
                            (kappa[i], slope[i]) = double_from_decay(tm, x);
                        }
                    }
                    _ => {
                        for i in 0..n_in {
                            let sd = tk - (t_in[i] + d[i]);
                            let live = sd > 0.0;
                            let x = if live { fall * rise[i] * dec[i] } else { 0.0 };
                            let sd = if live { sd } else { 0.0 };
                            (kappa[i], slope[i]) = equal_from_decay(tm, sd, x);
                        }
                    }
                }
            }
            None => {
                for i in 0..n_in {
                    (kappa[i], slope[i]) = neuron.kappa_and_slope(tk - (t_in[i] + d[i]));
                }
            }
        }
        // rho = sum_i w_ki kappa'_ki and the largest |kappa| (for max_dw_norm), in one sweep.
        let (mut rho, mut kappa_max) = (-0.0f64, 0.0f64);
        let w = &w[..n_in];
        for i in 0..n_in {
            rho += w[i] * slope[i];
            let a = kappa[i].abs();
            kappa_max = if a > kappa_max { a } else { kappa_max };
        }
        let mut valid = rho > 0.0 && rho.is_finite();
        if let Some(check) = ideal.as_deref_mut() {
            // A given time the ideal model cannot produce from these inputs (it stays silent).
            // u_k(t_k) = sum_i w_ki kappa_ki >= theta_k: it crosses theta by t_k.
            let u: f64 = w.iter().zip(kappa.iter()).map(|(w, k)| w * k).sum();
            valid = valid && (u >= layer.theta[k] * (1.0 + SPIKE_MARGIN) || check.scan_spikes(k));
        }
        if !valid {
            invalid += 1;
            continue;
        }
        if dk == 0.0 {
            continue;
        }
        let scale = dk / rho;
        // |scale kappa_i| <= max for all i  <=>  |scale| max_i |kappa_i| <= max (exact in floats).
        let keep_w = opts.max_dw_norm.is_none_or(|max| scale.abs() * kappa_max <= max);
        clipped += usize::from(!keep_w);
        g.theta[k] += scale;
        // dL/da_ki = scale w_ki kappa'_ki feeds the inputs and every delay kind (present or not);
        // one sweep over the inputs (short rows pay for every extra loop).
        let (gw, d_syn) = (&mut g.w.row_mut(k)[..n_in], g.d_syn.row_mut(k));
        let delta_in = &mut delta_in[..n_in];
        let mut den = -0.0f64;
        for i in 0..n_in {
            if keep_w {
                gw[i] -= scale * kappa[i];
            }
            let ga = slope[i] * (scale * w[i]);
            delta_in[i] += ga;
            den += ga;
            slope[i] = ga;
        }
        add_grouped(d_syn, slope, group);
        g.d_den[k] += den;
    }
    // dL/dd_axo_i = sum_k dL/da_ki: this sample's delta_in (zero on entry).
    add_grouped(&mut g.d_axo, delta_in, group);
    (invalid, clipped)
}

/// Adds `values` into `acc`, `group` consecutive values per entry.
fn add_grouped(acc: &mut [f64], values: &[f64], group: usize) {
    if group == 1 {
        acc.iter_mut().zip(values).for_each(|(a, v)| *a += v);
    } else {
        for (a, chunk) in acc.iter_mut().zip(values.chunks_exact(group)) {
            *a += chunk.iter().sum::<f64>();
        }
    }
}

/// Checks that the given per-layer times fit the network and the batch.
pub(crate) fn validate_given(net: &Network, input: &Matrix, times: &[Matrix]) -> Result<()> {
    net.validate()?;
    net.validate_times("input", input, net.n_in())?;
    if times.len() != net.layers.len() {
        return Err(Error::shape(
            "times",
            format!("{} layers", net.layers.len()),
            format!("{} layers", times.len()),
        ));
    }
    for (l, (t, layer)) in times.iter().zip(&net.layers).enumerate() {
        let arg = format!("times[{l}]");
        t.expect_shape(&arg, input.rows(), layer.n_out())?;
        net.validate_times(&arg, t, layer.n_out())?;
    }
    Ok(())
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

/// Per-chunk accumulators of the backward pass: gradients summed over the chunk's samples,
/// (invalid, clipped) counts per layer and dL/dt of the inputs per sample.
pub(crate) struct Accumulator {
    grads: Vec<LayerGrad>,
    counts: Vec<(usize, usize)>,
    input_rows: Vec<f64>,
}

impl Accumulator {
    pub(crate) fn new(net: &Network, samples: usize) -> Self {
        Accumulator {
            grads: net.layers.iter().map(LayerGrad::zeros).collect(),
            counts: vec![(0, 0); net.layers.len()],
            input_rows: Vec::with_capacity(samples * net.n_in()),
        }
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
        }
        self.input_rows.extend_from_slice(&s.deltas[0]);
    }

    /// Whether this was made for a network of the shape of `net`.
    pub(crate) fn fits(&self, net: &Network) -> bool {
        self.counts.len() == net.layers.len()
            && self.grads.len() == net.layers.len()
            && self.grads.iter().zip(&net.layers).all(|(g, l)| g.fits(l))
    }

    /// Adds the next chunk's accumulator (chunks are merged in sample order).
    pub(crate) fn merge(&mut self, next: &Accumulator) {
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
    }

    /// The batch's gradients, once every sample is added.
    pub(crate) fn into_gradients(self, net: &Network, batch: usize) -> Result<Gradients> {
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

/// Checks that `dl_dout` is `[batch, n_out]` and finite.
fn validate_dl_dout(net: &Network, batch: usize, dl_dout: &Matrix) -> Result<()> {
    dl_dout.expect_shape("dl_dout", batch, net.n_out())?;
    if let Some(i) = dl_dout.as_slice().iter().position(|v| !v.is_finite()) {
        return Err(Error::value(
            "dl_dout",
            format!("loss gradients must be finite; entry {i} is {}", dl_dout.as_slice()[i]),
        ));
    }
    Ok(())
}

/// Exact backward pass at given spike times.
///
/// `times[l]` `[batch, n_l]` are the first-spike times of layer l (from [`forward`](crate::forward::forward)
/// or measured), `dl_dout` `[batch, n_L]` is dL/dt of the output layer. Returns parameter
/// gradients summed over the batch and dL/dt of the inputs per sample.
pub fn backward(
    net: &Network,
    input: &Matrix,
    times: &[Matrix],
    dl_dout: &Matrix,
    opts: &BackwardOptions,
    exec: &Executor,
) -> Result<Gradients> {
    validate_given(net, input, times)?;
    validate_dl_dout(net, input.rows(), dl_dout)?;
    let plan = BackwardPlan::new(net, opts);
    // Per-thread scratch and spent chunk accumulators (reused instead of allocated per chunk).
    let init = || (Scratch::new(net), Vec::new());
    let chunk = |(s, spent): &mut (Scratch, Vec<Accumulator>), range: Range<usize>| {
        let mut acc = spent.pop().unwrap_or_else(|| Accumulator::new(net, range.len()));
        for b in range {
            acc.add_sample(
                s,
                net,
                &plan,
                input.row(b),
                |l| times[l].row(b),
                dl_dout.row(b),
                &[],
                opts,
            );
        }
        acc
    };
    let fold = |all: &mut Accumulator, mut acc: Accumulator, (_, spent): &mut (Scratch, Vec<Accumulator>)| {
        all.merge(&acc);
        if spent.len() < KEEP_SPENT {
            acc.clear();
            spent.push(acc);
        }
    };
    let all = Accumulator::new(net, input.rows());
    let fits = |(s, spent): &(Scratch, Vec<Accumulator>)| s.fits(net) && spent.iter().all(|a| a.fits(net));
    exec.fold_ranges_kept(input.rows(), fits, init, chunk, all, fold)
        .into_gradients(net, input.rows())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delay::{DelayKind, DelayParam};
    use crate::forward::forward;
    use crate::random::RandomState;
    use crate::train::{LayerSpec, init_network};

    /// The check's shortcut never contradicts the scan: wherever u_k(t_k) >= theta_k (1 + margin)
    /// at a measured-like time t_k (the ideal time moved by up to +-0.3, or a spike where the ideal
    /// model has none), the neuron's scan finds a crossing. Three regimes, every delay kind.
    #[test]
    fn the_potential_test_agrees_with_the_scan() {
        let mut rng = RandomState::new(5);
        let (mut shortcut, mut scanned) = (0, 0);
        for (tau_m, tau_s) in [(1.0, 1.0), (2.0, 1.0), (1.5, 1.0)] {
            for kinds in [
                vec![],
                vec![DelayKind::Synaptic],
                vec![DelayKind::Axonal, DelayKind::Dendritic],
            ] {
                let spec = |size, mean| LayerSpec {
                    tau_m,
                    tau_s,
                    delay_kinds: kinds.clone(),
                    ..LayerSpec::new(size, mean, 1.0)
                };
                let sig = DelayParam::Sigmoid { shift: 0.0, scale: 1.0 };
                let net = init_network(5, &[spec(12, 1.5), spec(4, 1.0)], sig, &mut rng).unwrap();
                let batch = 40;
                let x: Vec<f64> = (0..batch * 5).map(|_| 2.0 * rng.random_sample()).collect();
                let x = Matrix::from_vec("x", batch, 5, x).unwrap();
                let exec = Executor::default();
                let t = forward(&net, &x, Method::Auto, &exec).unwrap();
                let mut fs = ForwardScratch::default();
                for (l, layer) in net.layers.iter().enumerate() {
                    let plan = LayerPlan::new(layer, Method::Auto);
                    let d = layer.delays.effective(layer.n_in(), layer.n_out());
                    for b in 0..batch {
                        let t_in = if l == 0 { x.row(b) } else { t[l - 1].row(b) };
                        let prepared = prepare(&plan, t_in, None, &mut fs);
                        for k in 0..layer.n_out() {
                            let ideal = t[l].row(b)[k];
                            let tk = if ideal.is_finite() {
                                ideal + 0.6 * (rng.random_sample() - 0.5)
                            } else {
                                0.5 + 3.0 * rng.random_sample()
                            };
                            let u: f64 = (0..layer.n_in())
                                .map(|i| layer.w.row(k)[i] * layer.neuron.kappa(tk - (t_in[i] + d.row(k)[i])))
                                .sum();
                            let spikes = neuron_spike(&plan, k, prepared, &mut fs, Method::Auto, true)
                                .0
                                .is_finite();
                            if u >= layer.theta[k] * (1.0 + SPIKE_MARGIN) {
                                assert!(spikes, "layer {l} sample {b} neuron {k}: u(t_k) = {u} but no crossing");
                                shortcut += 1;
                            } else {
                                scanned += 1;
                            }
                        }
                    }
                }
            }
        }
        // Both roads are exercised.
        assert!(
            shortcut > 100 && scanned > 100,
            "{shortcut} by the potential, {scanned} by the scan"
        );
    }
}
