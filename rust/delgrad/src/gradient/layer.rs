//! The backward pass of one layer for one sample: kernel values and slopes at
//! s = t_k - a_ki, rho_k = sum_i w_ki kappa'(s), and the gradients of the weights, threshold and
//! every delay kind (see the module `gradient` for the equations).

use super::{BackwardOptions, GradientSlope, LayerGrad};
use crate::forward::{Factors, LayerPlan, Prepared, RiseFactor, Scratch as ForwardScratch, neuron_spike, prepare};
use crate::kernel::{Regime, double_from_decay, equal_from_decay};
use crate::matrix::Matrix;
use crate::network::Layer;
use crate::solver::Method;

/// One neuron's kernel values and slopes per input, and the inputs' rise factors (reused for
/// every neuron and sample a thread takes).
#[derive(Default)]
pub(super) struct KernelScratch {
    kappa: Vec<f64>,
    slope: Vec<f64>,
    /// e^{(t_i - R)/tau_m} per input (R: the earliest input), for the factorised decays.
    rise: Vec<f64>,
}

/// Inputs and outputs spread over more than this many time constants are evaluated directly,
/// not as products of factors.
const FACTOR_RANGE: f64 = 300.0;

/// u_k(t_k) at least theta_k (1 + this) settles that the ideal model spikes: its potential has
/// crossed theta by t_k. The margin keeps rounding in u from deciding a tangential case, which
/// the neuron's scan decides instead.
const SPIKE_MARGIN: f64 = 1e-9;

/// Whether the ideal model (the given input times, the network's parameters) spikes, neuron by
/// neuron: the check of measured times (`check_given_times`). Most measured spikes settle it
/// from the potential at t_k ([`SPIKE_MARGIN`]); the others take their neuron's forward scan, the
/// layer's inputs prepared once, at the first of them.
pub(super) struct IdealCheck<'a> {
    pub(super) plan: &'a LayerPlan<'a>,
    pub(super) t_in: &'a [f64],
    pub(super) s: &'a mut ForwardScratch,
    pub(super) method: Method,
    pub(super) prepared: Option<Prepared>,
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
pub(super) fn layer_backward(
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
                // The product is formed for every input and then selected: loads under a condition
                // would keep the loop from vectorising.
                match neuron.regime() {
                    Regime::Double => {
                        for i in 0..n_in {
                            let live = tk - (t_in[i] + d[i]) > 0.0;
                            let x = fall * rise[i] * dec[i];
                            let x = if live { x } else { 0.0 };
                            (kappa[i], slope[i]) = double_from_decay(tm, x);
                        }
                    }
                    _ => {
                        for i in 0..n_in {
                            let sd = tk - (t_in[i] + d[i]);
                            let live = sd > 0.0;
                            let x = fall * rise[i] * dec[i];
                            let x = if live { x } else { 0.0 };
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
        // u_k(t_k) = sum_i w_ki kappa_ki, when the check or the nominal slope needs it.
        let potential = || w.iter().zip(kappa.iter()).map(|(w, k)| w * k).sum::<f64>();
        if opts.slope == GradientSlope::Nominal {
            // rho = I - u/tau_m with theta_k in place of u (see `GradientSlope::Nominal`).
            rho += (potential() - layer.theta[k]) / tm;
        }
        let mut valid = rho > 0.0 && rho.is_finite();
        if let Some(check) = ideal.as_deref_mut() {
            // A given time the ideal model cannot produce from these inputs (it stays silent):
            // u_k(t_k) >= theta_k, it crosses theta by t_k.
            valid = valid && (potential() >= layer.theta[k] * (1.0 + SPIKE_MARGIN) || check.scan_spikes(k));
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
        // dL/da_ki = scale w_ki kappa'_ki feeds the inputs and every delay kind (present or not):
        // element-wise (a loop that vectorises), then its sum in input order for d_den.
        let (gw, d_syn) = (&mut g.w.row_mut(k)[..n_in], g.d_syn.row_mut(k));
        let delta_in = &mut delta_in[..n_in];
        if keep_w {
            for i in 0..n_in {
                gw[i] -= scale * kappa[i];
            }
        }
        for i in 0..n_in {
            let ga = slope[i] * (scale * w[i]);
            delta_in[i] += ga;
            slope[i] = ga;
        }
        g.d_den[k] += slope.iter().fold(-0.0f64, |sum, ga| sum + ga);
        add_grouped(d_syn, slope, group);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delay::{DelayKind, DelayParam};
    use crate::forward::forward;
    use crate::matrix::Matrix;
    use crate::parallel::Executor;
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
