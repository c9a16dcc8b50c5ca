//! The noisy pass's per-neuron scans, for layers the ideal forward pass's plans cannot compute:
//! per-neuron time constants (tau mismatch), per-sample threshold noise or per-synapse jitter.
//!
//! Without synaptic and dendritic delays every neuron sees the inputs in one order,
//! a_i = t_i + d_i (+ the jitter of i's delay unit), so the inputs are sorted once per sample, the
//! copies of an input that arrive together enter each neuron as one summed arrival, and the
//! factored scans' factors e^{(a - R)/tau_m} of the arrival times are computed once for all
//! neurons. Otherwise each neuron sorts its own arrivals a_ki = t_i + d_ki (+ its synapse's
//! jitter).

use super::noise::NoiseParams;
use super::run::{Jitter, MIN_THETA, RunLayer, Scratch};
use crate::forward::sorted_arrivals;
use crate::solver::{Method, first_spike_general, first_spike_within, never_reaches};
use crate::streams::Stream;

/// Spike times of every neuron of `rl` from the input times `sc.t_in` into `sc.t_out` (model
/// units, +inf: silent). `jit` draws per-synapse jitter, `theta_noise` the per-sample threshold
/// noise (one draw per neuron, in neuron order).
pub(super) fn layer_times(
    rl: &RunLayer,
    noise: &NoiseParams,
    jit: &mut Stream,
    theta_noise: &mut Stream,
    sc: &mut Scratch,
) {
    if let Some(d) = &rl.shared_delays {
        shared_order(rl, d, sc);
    }
    for k in 0..rl.run.n_out() {
        sc.arrivals.clear();
        sc.arrival_runs.clear();
        if rl.shared_delays.is_some() {
            shared_arrivals(rl.run.w.row(k), rl.shared_tau.is_some(), sc);
        } else {
            own_arrivals(rl, k, noise, jit, sc);
        }
        let mut theta = rl.run.theta[k];
        if noise.theta_sample_std > 0.0 {
            theta += noise.theta_sample_std * theta_noise.normal();
        }
        let theta = theta.max(MIN_THETA);
        let t = match &rl.kernels[k] {
            Some(kn) => first_spike_general(kn, theta, &sc.arrivals),
            None if never_reaches(theta, rl.kappa_max[k], &sc.arrivals) => f64::INFINITY,
            None => {
                let shared = rl.shared_tau.map(|_| (&sc.arrival_runs[..], &mut sc.run_factors));
                first_spike_within(
                    &rl.neurons[k],
                    theta,
                    &sc.arrivals,
                    Method::Auto,
                    || rl.weight_sums[k],
                    shared,
                )
            }
        };
        sc.t_out.push(t);
    }
}

/// Sorts the finite inputs by a_i = t_i + d_i (+ group jitter) into `sc.order`, records the
/// runs of equal arrival times in `sc.runs` and, where the neurons share tau_m, prepares the
/// runs' factors relative to the first (`sc.run_factors`, computed as the scans ask for them).
fn shared_order(rl: &RunLayer, d: &[f64], sc: &mut Scratch) {
    let (t_in, gj) = (&sc.t_in, &sc.group_jitter);
    let arrival = |i: usize| match rl.jitter {
        Jitter::PerGroup(g) => t_in[i] + d[i] + gj[i / g],
        _ => t_in[i] + d[i],
    };
    sorted_arrivals(t_in, arrival, &mut sc.keys, &mut sc.order);
    sc.runs.clear();
    for (j, &(a, _, _)) in sc.order.iter().enumerate() {
        match sc.runs.last_mut() {
            Some(run) if run.0 == a => run.1 = j + 1,
            _ => sc.runs.push((a, j + 1)),
        }
    }
    if let (Some(&(r, _)), Some(tm)) = (sc.runs.first(), rl.shared_tau) {
        sc.run_factors.reset(r, tm, sc.runs.len());
    }
}

/// One arrival per run of simultaneous inputs, weighted by the neuron's summed weights `w` (in
/// the order the scan would merge them), and with `runs` the index of its run. A zero sum adds
/// no current: leaving it out only saves an interval boundary.
fn shared_arrivals(w: &[f64], runs: bool, sc: &mut Scratch) {
    let mut start = 0;
    for (j, &(a, end)) in sc.runs.iter().enumerate() {
        let sum: f64 = sc.order[start..end].iter().map(|&(_, _, i)| w[i]).sum();
        if sum != 0.0 {
            sc.arrivals.push((a, sum));
            if runs {
                sc.arrival_runs.push(j);
            }
        }
        start = end;
    }
}

/// The arrivals a_ki = t_i + d_ki (+ jitter) of neuron `k` with nonzero weight, sorted by time.
fn own_arrivals(rl: &RunLayer, k: usize, noise: &NoiseParams, jit: &mut Stream, sc: &mut Scratch) {
    let (d, w) = (rl.delays.row(k), rl.run.w.row(k));
    for (i, &t) in sc.t_in.iter().enumerate() {
        if !t.is_finite() || w[i] == 0.0 {
            continue;
        }
        let a = match rl.jitter {
            Jitter::Off => t + d[i],
            Jitter::PerGroup(g) => t + d[i] + sc.group_jitter[i / g],
            Jitter::PerSynapse => t + d[i] + noise.jitter_std * jit.normal(),
        };
        sc.arrivals.push((a, w[i]));
    }
    sc.arrivals.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
}
