//! The noisy forward pass of one run of an emulated chip ([`noisy_forward`]): the fixed pattern
//! and the run's noise applied to a network, then every sample recorded (the model in the
//! [module docs](super)).

use super::neurons;
use super::noise::{NoiseParams, effect};
use super::pattern::LayerPattern;
use crate::delay::Delays;
use crate::error::{Error, Result};
use crate::forward::{LayerPlan, Scratch as PlanScratch, chunked_times, plan_times};
use crate::kernel::{Neuron, Regime};
use crate::matrix::Matrix;
use crate::network::{Layer, Network};
use crate::parallel::Executor;
use crate::solver::{Kernel, Method, TimeFactors, WeightSum, kappa_max};
use crate::streams::Stream;

/// Smallest threshold a noisy neuron is given (a threshold <= 0 would fire on the first input).
pub(super) const MIN_THETA: f64 = 1e-9;

/// The result of one noisy run.
#[derive(Debug, Clone, PartialEq)]
pub struct HwRun {
    /// Recorded first-spike times of every layer `[batch, n_l]` (+inf: no spike recorded).
    pub times: Vec<Matrix>,
    /// Input and recorded events lost on the link.
    pub dropped_events: u64,
    /// The sample at which the run stalled (samples from it on recorded nothing), if it stalled.
    pub stalled_from: Option<usize>,
}

/// How a layer's delayed arrivals are jittered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Jitter {
    /// No delays or no jitter.
    Off,
    /// One draw per delay group (axonal delays: one delay unit per source).
    PerGroup(usize),
    /// One draw per synapse (synaptic or dendritic delay elements).
    PerSynapse,
}

impl Jitter {
    /// How the arrivals of a layer with delays `d` are jittered under `noise`.
    fn of(noise: &NoiseParams, d: &Delays) -> Self {
        if noise.jitter_std == 0.0 || !d.any() {
            Jitter::Off
        } else if d.syn.is_some() || d.den.is_some() {
            Jitter::PerSynapse
        } else {
            Jitter::PerGroup(d.group.max(1))
        }
    }
}

/// A layer with the run's fixed and per-batch noise applied.
pub(super) struct RunLayer {
    /// The layer as this run's chip realises it: weights times row gains, thresholds with the
    /// fixed-pattern offsets and the batch noise (clamped to >= `MIN_THETA`).
    pub(super) run: Layer,
    /// Effective delays d_ki `[n_out, n_in]`.
    pub(super) delays: Matrix,
    /// Per-neuron time constants (the fixed pattern's tau mismatch).
    pub(super) neurons: Vec<Neuron>,
    /// The general-regime kernel constants of every neuron whose ratio tau_m/tau_s has no closed
    /// form (computed once per run instead of once per sample).
    pub(super) kernels: Vec<Option<Kernel>>,
    /// The peak of every neuron's kernel (a neuron whose excitation times it stays below theta
    /// is silent without a scan).
    pub(super) kappa_max: Vec<f64>,
    /// Every neuron's weights' part of the factored scans' bound, of its whole row: it bounds
    /// every sample's arrivals (a subset of the inputs, copies merged), summed once per run.
    pub(super) weight_sums: Vec<WeightSum>,
    /// The delay d_i of every input when all neurons share it (no synaptic or dendritic delays):
    /// then every neuron sees its inputs in the same order and one sort per sample serves all.
    pub(super) shared_delays: Option<Vec<f64>>,
    /// The tau_m of every neuron of a shared-order layer in a closed-form regime, when they all
    /// have the same: then the factored scans' factors of each sample's arrival times are
    /// computed once for all neurons (one exp per time, not one per time and neuron).
    pub(super) shared_tau: Option<f64>,
    pub(super) jitter: Jitter,
    /// Whether every neuron has the layer's time constants, no per-sample threshold noise is drawn
    /// and jitter is per delay group: then the ideal forward pass's planned scans
    /// (`forward::plan_times`) compute the layer, with the jitter added to the input times
    /// (`a_ki = (t_i + j_g(i)) + d_axo[i]`).
    pub(super) planned: bool,
}

/// The noisy forward pass of one run (one batch) of an emulated chip; see the module docs for
/// the model. `input` is `[batch, n_groups]` with `n_groups * repeat == net.n_in()` (the channels
/// of input j are j*repeat .. (j+1)*repeat); weights are used as given (the caller quantises them);
/// `pattern` is the placed fixed pattern per layer (None: a perfect chip); (`seed`, `counter`)
/// key the run's temporal noise.
#[allow(clippy::too_many_arguments)]
pub fn noisy_forward(
    net: &Network,
    input: &Matrix,
    repeat: usize,
    pattern: Option<&[LayerPattern]>,
    noise: &NoiseParams,
    seed: u64,
    counter: u64,
    exec: &Executor,
) -> Result<HwRun> {
    Run::new(net, input, repeat, pattern, noise, seed, counter)?.forward(exec)
}

/// One run of an emulated chip set up for recording its samples one by one (by
/// [`noisy_forward`], or by a training step that takes each sample's backward pass right after
/// it): the network as this run's chip realises it, and where the run stalls.
pub(crate) struct Run<'a> {
    /// The chip's inputs `[batch, n_groups]`.
    input: &'a Matrix,
    layers: Vec<RunLayer>,
    /// How many times each input is fed to the first run layer.
    repeat: usize,
    noise: &'a NoiseParams,
    seed: u64,
    counter: u64,
    /// The sample from which the run records nothing, if it stalls.
    pub(crate) stalled_from: Option<usize>,
}

impl<'a> Run<'a> {
    /// Checks the arguments of [`noisy_forward`], applies the fixed pattern, draws the run's
    /// threshold noise and whether (and where) it stalls.
    pub(crate) fn new(
        net: &Network,
        input: &'a Matrix,
        repeat: usize,
        pattern: Option<&[LayerPattern]>,
        noise: &'a NoiseParams,
        seed: u64,
        counter: u64,
    ) -> Result<Self> {
        net.validate()?;
        noise.validate()?;
        if repeat == 0 || net.n_in() % repeat != 0 {
            return Err(Error::value(
                "repeat",
                format!(
                    "expected an integer >= 1 that divides the {} inputs of the first layer, got {repeat}",
                    net.n_in()
                ),
            ));
        }
        let n_groups = net.n_in() / repeat;
        net.validate_times("input", input, n_groups)?;
        if let Some(p) = pattern {
            if p.len() != net.layers.len() {
                return Err(Error::shape(
                    "pattern",
                    format!("[{}] (one per layer)", net.layers.len()),
                    format!("[{}]", p.len()),
                ));
            }
            for (l, (lp, layer)) in p.iter().zip(&net.layers).enumerate() {
                lp.validate(&format!("pattern[{l}]"), layer.n_in(), layer.n_out())?;
            }
        }
        let layers = prepare(net, pattern, noise, repeat, seed, counter)?;
        // Each input is fed once per input the run's first layer has for it (1 where its copies
        // were merged, see `merge_copies`).
        let repeat = layers
            .first()
            .and_then(|rl| rl.run.n_in().checked_div(n_groups))
            .unwrap_or(repeat);
        let batch = input.rows();
        let stalled_from = {
            let mut s = Stream::new(&[seed, counter, effect::STALL]);
            (s.bernoulli(noise.stall_prob) && batch > 0).then(|| ((s.uniform() * batch as f64) as usize).min(batch - 1))
        };
        Ok(Run {
            input,
            layers,
            repeat,
            noise,
            seed,
            counter,
            stalled_from,
        })
    }

    /// Records every sample of the run's input, on `exec`.
    pub(crate) fn forward(&self, exec: &Executor) -> Result<HwRun> {
        let plans = self.plans();
        let batch = self.input.rows();
        let sizes: Vec<usize> = self.layers.iter().map(|rl| rl.run.n_out()).collect();
        let width: usize = sizes.iter().sum();
        let (times, dropped) = chunked_times(
            &sizes,
            batch,
            exec,
            f64::INFINITY,
            Scratch::default,
            |scratch, range, rows| {
                let mut dropped = 0u64;
                for (b, row) in range.zip(rows.chunks_exact_mut(width)) {
                    if self.stalled_from.is_some_and(|s| b >= s) {
                        continue; // nothing recorded after the stall
                    }
                    dropped += self.record(&plans, b, row, scratch);
                }
                dropped
            },
        )?;
        let dropped_events = dropped.iter().sum();
        Ok(HwRun {
            times,
            dropped_events,
            stalled_from: self.stalled_from,
        })
    }

    /// The ideal forward pass's plans of the layers it can compute (see `RunLayer::planned`).
    pub(crate) fn plans(&self) -> Vec<Option<LayerPlan<'_>>> {
        self.layers
            .iter()
            .map(|rl| rl.planned.then(|| LayerPlan::new(&rl.run, Method::Auto)))
            .collect()
    }

    /// Records sample `b` into `row` (every layer's times, one after the other); returns the
    /// number of events lost.
    pub(crate) fn record(&self, plans: &[Option<LayerPlan<'_>>], b: usize, row: &mut [f64], sc: &mut Scratch) -> u64 {
        let key = [self.seed, self.counter, b as u64];
        sample(
            &self.layers,
            plans,
            self.input.row(b),
            self.repeat,
            self.noise,
            key,
            row,
            sc,
        )
    }
}

/// Applies the fixed pattern and draws the per-run threshold noise; merges the first layer's
/// copies of an input where they always arrive together (`merge_copies`).
fn prepare(
    net: &Network,
    pattern: Option<&[LayerPattern]>,
    noise: &NoiseParams,
    repeat: usize,
    seed: u64,
    counter: u64,
) -> Result<Vec<RunLayer>> {
    net.layers
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            let n_out = layer.n_out();
            let mut run = layer.clone();
            let neurons = match pattern.map(|p| &p[l]) {
                Some(p) => {
                    for (k, th) in run.theta.iter_mut().enumerate() {
                        for (i, w) in run.w.row_mut(k).iter_mut().enumerate() {
                            *w *= if *w > 0.0 { p.gain_exc[i] } else { p.gain_inh[i] };
                        }
                        *th += p.theta_offset[k];
                    }
                    (0..n_out)
                        .map(|k| Neuron::new(p.tau_m[k], p.tau_s[k]).map_err(|e| e.within(&format!("pattern[{l}]"))))
                        .collect::<Result<Vec<_>>>()?
                }
                None => vec![layer.neuron; n_out],
            };
            if noise.theta_batch_std > 0.0 {
                let mut s = Stream::new(&[seed, counter, effect::THETA_BATCH, l as u64]);
                run.theta
                    .iter_mut()
                    .for_each(|t| *t += noise.theta_batch_std * s.normal());
            }
            if noise.theta_sample_std == 0.0 {
                run.theta.iter_mut().for_each(|t| *t = t.max(MIN_THETA));
            }
            // The copies of an input arrive together unless events are lost or every synapse
            // jitters on its own (merging keeps the delay kinds, so the jitter's kind too).
            let copies_together = Jitter::of(noise, &run.delays) != Jitter::PerSynapse && noise.event_loss == 0.0;
            if l == 0 && copies_together {
                if let Some(merged) = merge_copies(&run, repeat) {
                    run = merged;
                }
            }
            let d = &run.delays;
            let delays = d.effective(run.n_in(), n_out);
            let jitter = Jitter::of(noise, d);
            let planned = noise.theta_sample_std == 0.0
                && jitter != Jitter::PerSynapse
                && neurons.iter().all(|n| *n == layer.neuron);
            let kernels = neurons
                .iter()
                .map(|n| (n.regime() == Regime::General).then(|| Kernel::new(n)))
                .collect();
            let kappa_max = neurons.iter().map(kappa_max).collect();
            let weight_sums = (0..n_out)
                .map(|k| WeightSum::of(run.w.row(k).iter().copied()))
                .collect();
            let shared_delays = (d.syn.is_none() && d.den.is_none() && jitter != Jitter::PerSynapse && n_out > 0)
                .then(|| delays.row(0).to_vec());
            let shared_tau = shared_delays
                .as_ref()
                .and(neurons.first())
                .filter(|f| f.regime() != Regime::General && neurons.iter().all(|n| n.tau_m() == f.tau_m()))
                .map(Neuron::tau_m);
            Ok(RunLayer {
                run,
                delays,
                neurons,
                kernels,
                kappa_max,
                weight_sums,
                shared_delays,
                shared_tau,
                jitter,
                planned,
            })
        })
        .collect()
}

/// The first layer `layer` (its `repeat` copies of input j are inputs j*repeat .. (j+1)*repeat)
/// with each input's copies merged into one input whose weights are the copies' sums, when the
/// copies share every delay (no delays, or delay groups of whole copies): then, with no event lost
/// and no per-synapse jitter, the copies arrive together and u_k = sum_i w_ki kappa(t - a_i) sums
/// their currents. One arrival instead of `repeat` per input; None when nothing merges.
fn merge_copies(layer: &Layer, repeat: usize) -> Option<Layer> {
    let d = &layer.delays;
    let g = d.group.max(1);
    if repeat < 2 || (d.any() && g % repeat != 0) {
        return None;
    }
    let n_groups = layer.n_in() / repeat;
    let mut w = Vec::with_capacity(layer.n_out() * n_groups);
    for k in 0..layer.n_out() {
        // Summed in input order, copy by copy.
        w.extend(
            layer
                .w
                .row(k)
                .chunks_exact(repeat)
                .map(|c| c.iter().fold(0.0, |acc, &x| acc + x)),
        );
    }
    Some(Layer {
        w: Matrix::from_vec("w", layer.n_out(), n_groups, w).ok()?,
        delays: Delays {
            group: if d.any() { g / repeat } else { 1 },
            ..d.clone()
        },
        ..layer.clone()
    })
}

/// Per-thread scratch space of the noisy pass.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(super) t_in: Vec<f64>,
    pub(super) t_out: Vec<f64>,
    pub(super) shifted: Vec<f64>,
    pub(super) group_jitter: Vec<f64>,
    /// Arrival time, 0 and input index of the finite inputs, sorted by time (shared-order layers).
    pub(super) order: Vec<(f64, f64, usize)>,
    /// Sort keys of `order`.
    pub(super) keys: Vec<u64>,
    /// Runs of equal arrival times in `order`: (time, end of the run in `order`).
    pub(super) runs: Vec<(f64, usize)>,
    pub(super) arrivals: Vec<(f64, f64)>,
    /// Shared-order layers with a shared tau_m: the run in `runs` of each of `arrivals`, and the
    /// factors e^{(a - R)/tau_m} of the runs' times (R: the first), shared by the neurons.
    pub(super) arrival_runs: Vec<usize>,
    pub(super) run_factors: TimeFactors,
    pub(super) plan: PlanScratch,
}

/// One sample through every layer; writes the recorded times into `row` and returns the number of
/// lost events. `key` = (seed, counter, sample).
#[allow(clippy::too_many_arguments)]
fn sample(
    layers: &[RunLayer],
    plans: &[Option<LayerPlan<'_>>],
    x: &[f64],
    repeat: usize,
    noise: &NoiseParams,
    key: [u64; 3],
    row: &mut [f64],
    sc: &mut Scratch,
) -> u64 {
    let [seed, counter, b] = key;
    let dt = noise.time_step;
    let mut dropped = 0;
    sc.t_in.clear();
    let mut loss = Stream::new(&[seed, counter, b, effect::INPUT_LOSS]);
    for &t in x {
        for _ in 0..repeat {
            let mut t = if dt > 0.0 && t.is_finite() {
                dt * (t / dt).round()
            } else {
                t
            };
            if t >= noise.slot {
                t = f64::INFINITY;
            }
            if t.is_finite() && loss.bernoulli(noise.event_loss) {
                t = f64::INFINITY;
                dropped += 1;
            }
            sc.t_in.push(t);
        }
    }
    let mut off = 0;
    for (l, (rl, plan)) in layers.iter().zip(plans).enumerate() {
        let lkey = |eff: u64| Stream::new(&[seed, counter, b, l as u64, eff]);
        let mut jit = lkey(effect::JITTER);
        if let Jitter::PerGroup(g) = rl.jitter {
            sc.group_jitter.clear();
            sc.group_jitter
                .extend((0..rl.run.n_in() / g).map(|_| noise.jitter_std * jit.normal()));
        }
        let n_out = rl.run.n_out();
        sc.t_out.clear();
        match plan {
            Some(plan) => {
                // axonal delays only: the jitter of a delay unit shifts its source's spike
                let t_in: &[f64] = match rl.jitter {
                    Jitter::PerGroup(g) => {
                        sc.shifted.clear();
                        let gj = &sc.group_jitter;
                        sc.shifted
                            .extend(sc.t_in.iter().enumerate().map(|(i, &t)| t + gj[i / g]));
                        &sc.shifted
                    }
                    _ => &sc.t_in,
                };
                sc.t_out.resize(n_out, 0.0);
                plan_times(plan, t_in, &mut sc.t_out, &mut sc.plan, Method::Auto);
            }
            None => {
                let mut theta_noise = lkey(effect::THETA_SAMPLE);
                neurons::layer_times(rl, noise, &mut jit, &mut theta_noise, sc);
            }
        }
        let mut out_jitter = lkey(effect::OUTPUT_JITTER);
        for t in sc.t_out.iter_mut() {
            if noise.output_jitter_std > 0.0 && t.is_finite() {
                *t += noise.output_jitter_std * out_jitter.normal();
            }
            if *t >= noise.slot {
                *t = f64::INFINITY;
            }
        }
        let mut rec_loss = lkey(effect::RECORD_LOSS);
        for (r, &t) in row[off..off + n_out].iter_mut().zip(&sc.t_out) {
            *r = if !t.is_finite() {
                f64::INFINITY
            } else if rec_loss.bernoulli(noise.event_loss) {
                dropped += 1;
                f64::INFINITY
            } else if dt > 0.0 {
                dt * (t / dt).floor()
            } else {
                t
            };
        }
        off += n_out;
        std::mem::swap(&mut sc.t_in, &mut sc.t_out);
    }
    dropped
}
