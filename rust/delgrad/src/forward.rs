//! The event-based forward pass: first-spike times of every layer for a batch.

use std::ops::Range;
use std::sync::Mutex;

use crate::error::Result;
use crate::kernel::Regime;
use crate::matrix::Matrix;
use crate::network::{Layer, Network};
use crate::parallel::{Executor, lock_briefly};
use crate::solver::{
    Arrival, MAX_SPAN, Method, first_spike, first_spike_factored, weight_bound, within_bound,
};

/// Delays beyond this many time constants get no factored decays e^{d/tau_m}.
const DECAY_RANGE: f64 = 300.0;

/// What the forward and backward passes prepare once per layer for a batch (the parameters are
/// fixed during it).
pub(crate) struct LayerPlan<'a> {
    pub(crate) layer: &'a Layer,
    /// Effective delays d_ki `[n_out, n_in]`.
    pub(crate) delays: Matrix,
    /// No synaptic delays: every neuron sees its inputs in the same order, a_i = t_i + d_axo[i],
    /// and its dendritic delay only shifts its spike.
    shared: Option<SharedOrder>,
    /// e^{d_ki/tau_m} `[n_out, n_in]` in the closed-form regimes with delays within
    /// `DECAY_RANGE` time constants: then e^{-(t_k - t_i - d_ki)/tau_m} is a product of per-neuron,
    /// per-input and per-synapse factors. The backward pass always uses them; the forward scans of
    /// synaptic layers with `Method::Auto` (where `solver::weight_bound` bounds the products).
    pub(crate) decays: Option<Matrix>,
    /// Whether the forward pass uses the factored scans (closed-form regime and `Method::Auto`).
    factored: bool,
    /// Largest e^{d_ki/tau_m} (1 without `decays`).
    max_decay: f64,
    /// sum_i |w_ki| per neuron (bounds the factored sums), +inf where the neuron's parameters
    /// rule the factored scan out (`solver::weight_bound`).
    w_bound: Vec<f64>,
}

impl<'a> LayerPlan<'a> {
    pub(crate) fn new(layer: &'a Layer, method: Method) -> Self {
        let (n_in, n_out) = (layer.n_in(), layer.n_out());
        let delays = layer.delays.effective(n_in, n_out);
        let tm = layer.neuron.tau_m();
        let closed = layer.neuron.regime() != Regime::General;
        let factored = method == Method::Auto && closed;
        let g = layer.delays.group.max(1);
        let shared = layer.delays.syn.is_none().then(|| SharedOrder {
            axo: (0..n_in)
                .map(|i| layer.delays.axo.as_ref().map_or(0.0, |v| v[i / g]))
                .collect(),
            den: layer.delays.den.clone().unwrap_or_else(|| vec![0.0; n_out]),
        });
        let in_range = delays.as_slice().iter().all(|d| d / tm <= DECAY_RANGE);
        let decays = (closed && in_range).then(|| decay_factors(&delays, tm));
        let max_decay = decays
            .as_ref()
            .map_or(1.0, |m| m.as_slice().iter().copied().fold(1.0, f64::max));
        let w_bound = (0..n_out)
            .map(|k| {
                let w_abs = layer.w.row(k).iter().map(|w| w.abs()).sum();
                weight_bound(&layer.neuron, layer.theta[k], w_abs)
            })
            .collect();
        LayerPlan {
            layer,
            delays,
            shared,
            decays,
            factored,
            max_decay,
            w_bound,
        }
    }
}

/// The factors e^{d_ki/tau_m} of the delays `[n_out, n_in]` (model units). Without synaptic
/// delays the rows repeat (axonal delays are per input) and shared delays repeat within a row
/// (a group of inputs): each distinct value costs one exp, the same bits as one exp each.
fn decay_factors(delays: &Matrix, tm: f64) -> Matrix {
    let (n_out, n_in) = (delays.rows(), delays.cols());
    let mut data: Vec<f64> = Vec::with_capacity(n_out * n_in);
    for k in 0..n_out {
        let d = delays.row(k);
        if k > 0 && d == delays.row(k - 1) {
            data.extend_from_within((k - 1) * n_in..k * n_in);
            continue;
        }
        // e^{(d - 0)/tau_m} has the bits of e^{d/tau_m} (d - 0 is d, delays are finite).
        let mut factor = RiseFactor::new(0.0, tm);
        data.extend(d.iter().map(|&di| factor.at(di)));
    }
    Matrix::from_vec("decays", n_out, n_in, data).expect("same shape as the delays")
}

/// Per-input axonal and per-neuron dendritic delays of a layer without synaptic delays.
struct SharedOrder {
    axo: Vec<f64>,
    den: Vec<f64>,
}

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

/// Exponential factors of one layer's scan relative to its reference time R (model units), for
/// what comes after it: the next layer's scan (its rise factors are 1/fall of this one) and the
/// backward pass (which would otherwise compute both again, with an exp each). Filled for
/// synaptic layers with factored scans.
#[derive(Default)]
pub(crate) struct Factors {
    /// Reference time R, no later than any input.
    pub(crate) r: f64,
    /// The layer's tau_m (factors only carry over between equal time constants).
    pub(crate) tau_m: f64,
    /// e^{(t_i - R)/tau_m} per input, 0 for silent inputs; empty when not computed.
    pub(crate) rise: Vec<f64>,
    /// e^{-(t_k - R)/tau_m} per neuron, 0 for silent neurons, NaN where unknown; empty when not
    /// computed.
    pub(crate) fall: Vec<f64>,
    /// Every neuron has its fall: none unknown, and positive and finite for every spike (tracked
    /// as they are written, instead of a pass over them in each user).
    pub(crate) complete: bool,
}

impl Factors {
    fn clear(&mut self) {
        self.rise.clear();
        self.fall.clear();
        self.complete = false;
    }

    /// Rise factors of the next layer's inputs (this layer's spikes) from this layer's falls,
    /// e^{(t_k - R)/tau_m} = 1/X_k with the same R, when every spiking neuron has its X_k.
    fn carries_over(&self, t: &[f64], tau_m: f64) -> bool {
        self.complete && self.fall.len() == t.len() && self.tau_m == tau_m
    }
}

/// Rise factors e^{(t - R)/tau_m} of a sequence of input times, 0 for silent inputs; equal
/// neighbours (the copies of a duplicated input, which arrive together) share one exp. With
/// R = 0 and delays for times, the decays e^{d/tau_m} of [`decay_factors`].
pub(crate) struct RiseFactor {
    r: f64,
    tau_m: f64,
    /// The last time and its factor.
    last: (f64, f64),
}

impl RiseFactor {
    /// Factors relative to the reference time `r` with time constant `tau_m`.
    pub(crate) fn new(r: f64, tau_m: f64) -> Self {
        RiseFactor {
            r,
            tau_m,
            last: (f64::NAN, 0.0),
        }
    }

    /// e^{(t - R)/tau_m} of the next time `t` (0 if `t` is not finite).
    #[inline]
    pub(crate) fn at(&mut self, t: f64) -> f64 {
        if t != self.last.0 {
            let x = if t.is_finite() {
                ((t - self.r) / self.tau_m).exp()
            } else {
                0.0
            };
            self.last = (t, x);
        }
        self.last.1
    }
}

/// A neuron's fall X is known and usable: positive and finite for a spike at `t`, 0 if silent.
#[inline]
fn has_factor(t: f64, x: f64) -> bool {
    if t.is_finite() {
        x > 0.0 && x.is_finite()
    } else {
        x == 0.0
    }
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

/// The arrivals a_ki = t_i + d_ki of neuron k of a synaptic layer (weights `w`, delays `d`,
/// decays `dec` = e^{d_ki/tau_m} when factored) from its inputs `order` sorted by t_i, written
/// in time order to the front of `buf` (as long as `order`); returns their number (inputs with
/// w_ki = 0 are left out). `INSERT`: insertion into place, linear overall when the delays barely
/// reorder the presorted inputs, and branch-predictable for the short rows where it is used;
/// else written as they come (for long rows, which the caller sorts).
#[inline]
fn synaptic_arrivals<const INSERT: bool>(
    buf: &mut [Arrival],
    order: &[(f64, f64, usize)],
    w: &[f64],
    d: &[f64],
    dec: Option<&[f64]>,
) -> usize {
    let buf = &mut buf[..order.len()];
    // Rows of one length: one bounds check per input covers all three.
    let d = &d[..w.len()];
    let mut len = 0;
    let mut put = |x: Arrival| {
        let mut j = len;
        if INSERT {
            while j > 0 {
                let before = buf[j - 1];
                if before.a <= x.a {
                    break;
                }
                buf[j] = before;
                j -= 1;
            }
        }
        buf[j] = x;
        len += 1;
    };
    let kept = order.iter().filter(|x| w[x.2] != 0.0);
    let arrival = |t: f64, i: usize, e: f64| Arrival {
        a: t + d[i],
        w: w[i],
        e,
    };
    match dec {
        Some(dec) => {
            let dec = &dec[..w.len()];
            kept.for_each(|&(t, e, i)| put(arrival(t, i, e * dec[i])))
        }
        None => kept.for_each(|&(t, _, i)| put(arrival(t, i, 0.0))),
    }
    len
}

/// Rows longer than this are sorted with the standard library's sort.
const INSERTION_MAX: usize = 32;

/// Most index bits packed into the low bits of a sort key (wider layers use the standard sort).
const MAX_INDEX_BITS: u32 = 20;

/// Order-preserving map of a finite time to an integer: a < b implies key(a) < key(b), except
/// -0 and +0 (keys apart, values equal). Integers sort much faster than floats with payloads.
#[inline]
fn order_key(t: f64) -> u64 {
    let bits = t.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

/// Fills `out` with (a_i, 0, i) for the inputs i with finite `t_in[i]`, in ascending order of
/// their arrival times a_i = `arrival(i)` (finite for those).
///
/// Many inputs are sorted as integers: the order key of a_i with its lowest bits replaced by i
/// (`keys` is scratch). Cutting those bits only ties times within a relative 2^-32 of each other,
/// so the sorted keys leave nothing but such near-ties out of order, and one insertion pass over
/// the exact times (linear, as they are few) finishes the job.
pub(crate) fn sorted_arrivals(
    t_in: &[f64],
    arrival: impl Fn(usize) -> f64,
    keys: &mut Vec<u64>,
    out: &mut Vec<(f64, f64, usize)>,
) {
    let finite = (0..t_in.len()).filter(|&i| t_in[i].is_finite());
    let index_bits = usize::BITS - t_in.len().saturating_sub(1).leading_zeros();
    out.clear();
    if t_in.len() <= 8 || index_bits > MAX_INDEX_BITS {
        out.extend(finite.map(|i| (arrival(i), 0.0, i)));
        if out.len() <= 8 {
            insertion_sort(out);
        } else {
            out.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
        }
        return;
    }
    let mask = (1u64 << index_bits) - 1;
    keys.clear();
    keys.extend(finite.map(|i| (order_key(arrival(i)) & !mask) | i as u64));
    keys.sort_unstable();
    out.extend(keys.iter().map(|&k| {
        let i = (k & mask) as usize;
        (arrival(i), 0.0, i)
    }));
    insertion_sort(out);
}

/// Sorts (time, factor, index) triples by time in place: quadratic in general, linear for
/// nearly sorted ones. The times are finite, so plain comparisons order them.
fn insertion_sort(v: &mut [(f64, f64, usize)]) {
    for i in 1..v.len() {
        let x = v[i];
        let mut j = i;
        while j > 0 && v[j - 1].0 > x.0 {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
    }
}

/// Spike times of one layer for one sample: per neuron, the first crossing of its arrivals
/// a_ki = t_i + d_ki in time order, using the plan's shortcuts.
///
/// The inputs are sorted once per sample, by a_i = t_i + d_axo_i for shared-order layers (then
/// every neuron scans them in that order) and by t_i for synaptic ones (then each neuron's
/// arrivals t_i + d_ki are nearly sorted and an insertion sort finishes the job).
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

/// Spike times of a batch of `batch` samples, one `[batch, n_l]` matrix per layer of `sizes`,
/// computed in the ranges of `exec`: `chunk(state, range, rows)` writes the samples' rows of
/// every layer's times (one layer after the other; `rows` comes filled with `fill`) and returns
/// what else it has to say, which comes back in range order. Each range's rows go into the
/// matrices as soon as it is done, so the batch's times are held once, not twice.
pub(crate) fn chunked_times<S, T, I, F>(
    sizes: &[usize],
    batch: usize,
    exec: &Executor,
    fill: f64,
    init: I,
    chunk: F,
) -> (Vec<Matrix>, Vec<T>)
where
    S: Send + 'static,
    T: Send,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, Range<usize>, &mut [f64]) -> T + Sync + Send,
{
    let width: usize = sizes.iter().sum();
    let times = Mutex::new(layer_matrices(sizes, batch));
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
    );
    (times.into_inner().unwrap_or_else(|e| e.into_inner()), parts)
}

/// One `[batch, n_l]` matrix per layer of `sizes`, for the spike times of a batch.
pub(crate) fn layer_matrices(sizes: &[usize], batch: usize) -> Vec<Matrix> {
    sizes.iter().map(|&n| Matrix::zeros(batch, n)).collect()
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
    );
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decay_factors_are_one_exp_per_synapse_bit_for_bit() {
        let tm = 1.7;
        // Repeated rows (axonal delays), repeats within rows (shared groups), distinct values,
        // signed zeros.
        let rows: [&[f64]; 5] = [
            &[0.5, 0.5, 0.5, 2.25, 2.25, -0.0],
            &[0.5, 0.5, 0.5, 2.25, 2.25, -0.0],
            &[0.0, 1e-300, 3.0, 3.0, 0.1, 0.1],
            &[0.5, 0.5, 0.5, 2.25, 2.25, 0.0],
            &[7.0, 6.0, 5.0, 4.0, 3.0, 2.0],
        ];
        let d = Matrix::from_vec("d", 5, 6, rows.concat()).unwrap();
        let got = decay_factors(&d, tm);
        for (g, x) in got.as_slice().iter().zip(d.as_slice()) {
            assert_eq!(g.to_bits(), (x / tm).exp().to_bits(), "d = {x}");
        }
    }

    /// What `sorted_arrivals` must produce: every finite input once, arrivals non-decreasing.
    fn check(t_in: &[f64], axo: Option<&[f64]>) {
        let (mut keys, mut out) = (Vec::new(), Vec::new());
        let arrival = |i: usize| axo.map_or(t_in[i], |d| t_in[i] + d[i]);
        sorted_arrivals(t_in, arrival, &mut keys, &mut out);
        let mut seen: Vec<usize> = out.iter().map(|x| x.2).collect();
        seen.sort_unstable();
        let finite: Vec<usize> = (0..t_in.len()).filter(|&i| t_in[i].is_finite()).collect();
        assert_eq!(seen, finite);
        for &(a, e, i) in &out {
            let want = axo.map_or(t_in[i], |d| t_in[i] + d[i]);
            assert_eq!(a.to_bits(), want.to_bits(), "input {i}");
            assert_eq!(e, 0.0);
        }
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0), "{out:?}");
    }

    /// Times from a few bases, each nudged by a few ulps either way: near-ties that the packed
    /// integer keys cannot tell apart, exact ties, silent inputs, signed zeros and negative times.
    fn near_ties(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<f64>> {
        let base = prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(1.0),
            Just(-2.5),
            Just(f64::INFINITY),
            -1e3..1e3f64,
            1e-300..1e-290f64,
        ];
        prop::collection::vec((base, -3i64..=3), n).prop_map(|v| {
            v.into_iter()
                .map(|(b, ulps)| {
                    if !b.is_finite() || b == 0.0 {
                        b
                    } else {
                        f64::from_bits((b.to_bits() as i64 + ulps) as u64)
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn sorted_arrivals_orders_exactly(t in near_ties(0..80), shift in -1.0..4.0f64) {
            check(&t, None);
            let axo: Vec<f64> = (0..t.len()).map(|i| if i % 3 == 0 { 0.0 } else { shift.abs() * i as f64 }).collect();
            check(&t, Some(&axo));
        }
    }

    #[test]
    fn order_key_preserves_the_order_of_finite_times() {
        let mut v = vec![
            -1e300,
            -2.0,
            -1.0,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            5e-324,
            1.0,
            1.0 + f64::EPSILON,
            1e300,
        ];
        let keys: Vec<u64> = v.iter().map(|&t| order_key(t)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        v.reverse();
        let mut keys: Vec<u64> = v.iter().map(|&t| order_key(t)).collect();
        keys.sort_unstable();
        assert_eq!(keys[0], order_key(-1e300));
    }
}
