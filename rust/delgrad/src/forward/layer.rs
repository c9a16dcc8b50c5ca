//! One layer for one sample: its inputs prepared once (sorted, with their factors), then each
//! neuron's first spike by the factored scan where it applies, else `solver::first_spike`.

use super::factors::{Factors, RiseFactor, has_factor};
use super::plan::LayerPlan;
use super::sort::{INSERTION_MAX, sorted_arrivals, synaptic_arrivals};
use crate::solver::{Arrival, MAX_SPAN, Method, first_spike, first_spike_factored, within_bound};

/// Per-thread scratch space of the forward pass.
#[derive(Default)]
pub(crate) struct Scratch {
    arrivals: Vec<Arrival>,
    /// Inputs sorted by arrival (shared order): (arrival, factor, input index).
    order: Vec<(f64, f64, usize)>,
    /// Sort keys of `order`.
    keys: Vec<u64>,
    pairs: Vec<(f64, f64)>,
    /// The last `plan_times` call's factors.
    current: Factors,
    /// The factors of every layer of the last `sample_times` call.
    pub(crate) factors: Vec<Factors>,
}

/// Spike time of neuron `k` from its arrivals sorted by time and its factor
/// X = e^{-(t - R)/tau_m}: the factored scan where it applies (`factors` = (R, bound on the
/// arrivals' factors); `None`: no factors), else `solver::first_spike` (X = NaN: unknown).
#[inline(always)]
fn spike(
    plan: &LayerPlan,
    k: usize,
    arrivals: &[Arrival],
    factors: Option<(f64, f64)>,
    method: Method,
    pairs: &mut Vec<(f64, f64)>,
    exists_only: bool,
) -> (f64, f64) {
    let layer = plan.layer;
    let theta = layer.theta[k];
    if let Some((r0, e_max)) = factors {
        if within_bound(plan.w_bound[k], e_max) {
            return first_spike_factored(&layer.neuron, theta, arrivals, r0, exists_only);
        }
    }
    pairs.clear();
    pairs.extend(arrivals.iter().map(|x| (x.a, x.w)));
    (first_spike(&layer.neuron, theta, pairs, method), f64::NAN)
}

/// Spike times of one layer for one sample: per neuron, the first crossing of its arrivals
/// a_ki = t_i + d_ki in time order, using the plan's shortcuts.
///
/// The inputs are sorted once per sample, by a_i = t_i + d_axo_i for shared-order layers (then
/// every neuron scans them in that order) and by t_i for synaptic ones (then each neuron's
/// arrivals t_i + d_ki are nearly sorted and an insertion sort finishes the job).
#[cfg(feature = "hardware")] // the emulated chip's scans
pub(crate) fn plan_times(plan: &LayerPlan, t_in: &[f64], t_out: &mut [f64], s: &mut Scratch, method: Method) {
    plan_times_after(plan, t_in, None, t_out, s, method);
}

/// [`plan_times`] for inputs that are the spikes of a layer whose factors are `prev`: their rise
/// factors are then the reciprocals of its falls (one division instead of an exp each).
fn plan_times_after(
    plan: &LayerPlan,
    t_in: &[f64],
    prev: Option<&Factors>,
    t_out: &mut [f64],
    s: &mut Scratch,
    method: Method,
) {
    let prepared = prepare(plan, t_in, prev, s);
    for (k, out) in t_out.iter_mut().enumerate() {
        let (t, x) = neuron_spike(plan, k, prepared, s, method, false);
        *out = t;
        if plan.shared.is_none() {
            if let Some(fall) = s.current.fall.get_mut(k) {
                *fall = x;
                s.current.complete &= has_factor(t, x);
            }
        }
    }
}

/// What [`prepare`] worked out for a layer's neuron scans: the factored scans' (R, largest
/// factor), and R for the synaptic layers' decays (None: no factored scans).
#[derive(Clone, Copy)]
pub(crate) struct Prepared {
    factors: Option<(f64, f64)>,
    r0: Option<f64>,
}

/// Prepares one layer's inputs for its neurons' scans: sorts them into `s.order` (by
/// a_i = t_i + d_axo_i for shared-order layers, by t_i for synaptic ones, whose neurons then
/// finish the order themselves), with their factors e_i = e^{(a_i - R)/tau_m} where the factored
/// scans apply, and starts `s.current` (the layer's factors for what comes after it).
pub(crate) fn prepare(plan: &LayerPlan, t_in: &[f64], prev: Option<&Factors>, s: &mut Scratch) -> Prepared {
    let layer = plan.layer;
    let tm = layer.neuron.tau_m();
    match &plan.shared {
        Some(sh) => sorted_arrivals(t_in, |i| t_in[i] + sh.axo[i], &mut s.keys, &mut s.order),
        None => sorted_arrivals(t_in, |i| t_in[i], &mut s.keys, &mut s.order),
    }
    // Factored decays e_i = e^{(a_i - R)/tau_m} relative to the earliest input R; synaptic layers
    // multiply in e^{d_ki/tau_m}, so each part gets half of the span.
    let (limit, usable, max_decay) = match &plan.shared {
        Some(_) => (MAX_SPAN, plan.factored, 1.0),
        None => {
            let half = (0.5 * MAX_SPAN).exp();
            let usable = plan.factored && plan.decays.is_some() && plan.max_decay <= half;
            (0.5 * MAX_SPAN, usable, plan.max_decay)
        }
    };
    // A synaptic layer after one with known falls keeps that layer's R (no later than any of its
    // spikes) and takes e_i = 1/X_i.
    let prev = prev.filter(|p| plan.shared.is_none() && p.carries_over(t_in, tm));
    let r0 = match (s.order.first(), s.order.last()) {
        (Some(first), Some(last)) if usable => {
            let r = prev.map_or(first.0, |p| p.r);
            ((last.0 - r) / tm <= limit).then_some(r)
        }
        _ => None,
    };
    let mut factors = None;
    s.current.clear();
    if let Some(r) = r0 {
        match prev {
            Some(p) => s.order.iter_mut().for_each(|x| x.1 = 1.0 / p.fall[x.2]),
            None => {
                let mut rise = RiseFactor::new(r, tm);
                s.order.iter_mut().for_each(|x| x.1 = rise.at(x.0));
            }
        }
        let e_last = s.order.last().map_or(1.0, |x| x.1);
        factors = Some((r, e_last * max_decay));
        if plan.shared.is_none() {
            // Here a_i = t_i: these are the backward pass's rise factors.
            let c = &mut s.current;
            (c.r, c.tau_m) = (r, tm);
            c.rise.resize(t_in.len(), 0.0);
            s.order.iter().for_each(|x| c.rise[x.2] = x.1);
            c.fall.resize(layer.n_out(), f64::NAN);
            c.complete = true;
        }
    }
    // Every neuron's arrivals are written to the front of one buffer, sized once per layer.
    if s.arrivals.len() < s.order.len() {
        s.arrivals.resize(s.order.len(), Arrival::default());
    }
    Prepared { factors, r0 }
}

/// Spike time t_k of neuron `k` of a layer [`prepare`]d in `s` (+inf: silent), and its fall
/// factor X_k where a factored scan of a synaptic layer found it (NaN otherwise): the first
/// crossing of its arrivals a_ki = t_i + d_ki in time order. With `exists_only`, only whether
/// it spikes (see [`first_spike_factored`]).
pub(crate) fn neuron_spike(
    plan: &LayerPlan,
    k: usize,
    prepared: Prepared,
    s: &mut Scratch,
    method: Method,
    exists_only: bool,
) -> (f64, f64) {
    let w = plan.layer.w.row(k);
    let factors = prepared.factors;
    match &plan.shared {
        Some(shared) => {
            let mut n = 0;
            for &(a, e, i) in s.order.iter().filter(|x| w[x.2] != 0.0) {
                s.arrivals[n] = Arrival { a, w: w[i], e };
                n += 1;
            }
            let arrivals = &s.arrivals[..n];
            let (t, _) = spike(plan, k, arrivals, factors, method, &mut s.pairs, exists_only);
            (t + shared.den[k], f64::NAN)
        }
        None => {
            let d = plan.delays.row(k);
            let dec = plan.decays.as_ref().filter(|_| prepared.r0.is_some()).map(|m| m.row(k));
            let n = if s.order.len() <= INSERTION_MAX {
                synaptic_arrivals::<true>(&mut s.arrivals, &s.order, w, d, dec)
            } else {
                let n = synaptic_arrivals::<false>(&mut s.arrivals, &s.order, w, d, dec);
                s.arrivals[..n].sort_unstable_by(|x, y| x.a.total_cmp(&y.a));
                n
            };
            spike(plan, k, &s.arrivals[..n], factors, method, &mut s.pairs, exists_only)
        }
    }
}

/// Spike times of every layer for one sample, written one layer after the other into `row`
/// (the layers' sizes summed); `s.factors` keeps each layer's factors.
pub(crate) fn sample_times(plans: &[LayerPlan], input: &[f64], row: &mut [f64], s: &mut Scratch, method: Method) {
    let mut t_in = input;
    let mut rest = row;
    s.factors.resize_with(plans.len(), Factors::default);
    for (l, plan) in plans.iter().enumerate() {
        let (t_out, tail) = rest.split_at_mut(plan.layer.n_out());
        // Borrow the previous layer's factors out of the scratch while this layer fills it.
        let prev = l.checked_sub(1).map(|p| std::mem::take(&mut s.factors[p]));
        plan_times_after(plan, t_in, prev.as_ref(), t_out, s, method);
        if let Some(p) = prev {
            s.factors[l - 1] = p;
        }
        std::mem::swap(&mut s.current, &mut s.factors[l]);
        t_in = t_out;
        rest = tail;
    }
}
