//! The noisy forward pass of an emulated BrainScaleS-2 (BSS-2) chip: the ideal model of DESIGN
//! section 2 plus the imperfections of `shared/HARDWARE.md`, each a switchable parameter.
//!
//! Per run (one batch = one spike train on the chip) with key (seed, counter), sample b, layer l,
//! neuron k and input channel i, all in model time units (1 unit = tau = 6 us on BSS-2):
//!
//! - input channels: the network input j is fed `repeat` times (channels j*repeat .. (j+1)*repeat);
//!   each input event is played at the FPGA clock, t_i = dt round(t_i / dt), and lost with
//!   probability `event_loss` (then +inf);
//! - thresholds: theta_k = theta_k^nominal + o_k + n_k + m_bk with the fixed-pattern offset o_k
//!   (from a [`LayerPattern`], drawn once per chip), n_k ~ N(0, theta_batch_std) redrawn per run
//!   and m_bk ~ N(0, theta_sample_std) per sample (clamped to >= 1e-9);
//! - arrivals: a_ki = t_i + d_ki + j, j ~ N(0, jitter_std) drawn once per delayed spike: per
//!   (sample, delay group) for axonal delays (one delay unit drives all copies of its source), per
//!   (sample, synapse) when the layer has synaptic or dendritic delays (one delay element each);
//!   undelayed arrivals are not jittered;
//! - weights: w_ki g_i^+ for w_ki > 0 and w_ki g_i^- for w_ki < 0 with the gains of the excitatory
//!   and inhibitory synapse rows of input i (fixed pattern; the caller quantises w);
//! - the neuron: time constants tau_m,k and tau_s,k of the pattern (mismatch leaves the closed-form
//!   regimes: the general-ratio scan of `solver` tests each interval in O(1) and solves only the
//!   crossing one to machine precision);
//! - output: t_k + N(0, output_jitter_std); a spike at or after the end of the sample slot
//!   (t_k >= slot) is not part of this sample (+inf). Later layers see these on-chip times;
//! - recording: the host reads t_k quantised down to the clock, dt floor(t_k / dt); each recorded
//!   event is lost with probability `event_loss`;
//! - stalls: with probability `stall_prob` per run the FPGA stalls at a uniform sample s: samples
//!   s.. of the run record nothing (the run's `stalled_from` is s).
//!
//! Every random number comes from a [`Stream`] keyed by (seed, counter, sample, layer, effect), so
//! results do not depend on the thread count. With [`NoiseParams::ideal`] and no pattern the result
//! equals `forward::forward`: bit for bit for layers without synaptic delays (the hardware's), to
//! rounding after a synaptic layer (where `forward` takes the next layer's factors from the scan).

use crate::error::{Error, Result};
use crate::forward::{LayerPlan, Scratch as PlanScratch, chunked_times, plan_times};
use crate::kernel::{Neuron, Regime};
use crate::matrix::Matrix;
use crate::network::{Layer, Network};
use crate::parallel::Executor;
use crate::solver::{Kernel, Method, kappa_max};
use crate::streams::Stream;

/// One FPGA clock cycle (8 ns at 125 MHz) in model time units of 6 us.
pub const BSS2_TIME_STEP: f64 = 8e-3 / 6.0;
/// Length of one sample slot in model time units (30 tau = 180 us).
pub const BSS2_SLOT: f64 = 30.0;
/// Smallest threshold a noisy neuron is given (a threshold <= 0 would fire on the first input).
const MIN_THETA: f64 = 1e-9;

mod neurons;

/// Stream ids of the noise effects (part of every stream key).
mod effect {
    pub const THETA_BATCH: u64 = 1;
    pub const THETA_SAMPLE: u64 = 2;
    pub const JITTER: u64 = 3;
    pub const OUTPUT_JITTER: u64 = 4;
    pub const INPUT_LOSS: u64 = 5;
    pub const RECORD_LOSS: u64 = 6;
    pub const STALL: u64 = 7;
    pub const PATTERN: u64 = 8;
}

/// Temporal noise and read-out of a run (model time units). [`NoiseParams::bss2`] gives the
/// reference values of HARDWARE.md, [`NoiseParams::ideal`] switches everything off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseParams {
    /// Std of the threshold noise redrawn per run (batch) and neuron (BSS-2: 0.04).
    pub theta_batch_std: f64,
    /// Std of the threshold noise redrawn per sample and neuron (BSS-2: 0, exists but off).
    pub theta_sample_std: f64,
    /// Std of the jitter of every delayed spike arrival (BSS-2: 0.01 = 60 ns).
    pub jitter_std: f64,
    /// Std of the jitter of every output spike (BSS-2: 0).
    pub output_jitter_std: f64,
    /// Clock period of input playback and timestamps; 0 = continuous (BSS-2: 8 ns = 1/750).
    pub time_step: f64,
    /// Sample slot length: spikes at t >= slot are lost to the sample; +inf = unlimited (BSS-2: 30).
    pub slot: f64,
    /// Probability that an input or recorded spike event is lost on the link (default 0).
    pub event_loss: f64,
    /// Probability that a run stalls (default 0).
    pub stall_prob: f64,
}

impl Default for NoiseParams {
    fn default() -> Self {
        Self::bss2()
    }
}

impl NoiseParams {
    /// The reference hardware-aware values of HARDWARE.md (event loss and stalls off).
    pub fn bss2() -> Self {
        NoiseParams {
            theta_batch_std: 0.04,
            theta_sample_std: 0.0,
            jitter_std: 0.01,
            output_jitter_std: 0.0,
            time_step: BSS2_TIME_STEP,
            slot: BSS2_SLOT,
            event_loss: 0.0,
            stall_prob: 0.0,
        }
    }

    /// No noise, continuous time, no slot limit: the ideal model.
    pub fn ideal() -> Self {
        NoiseParams {
            theta_batch_std: 0.0,
            theta_sample_std: 0.0,
            jitter_std: 0.0,
            output_jitter_std: 0.0,
            time_step: 0.0,
            slot: f64::INFINITY,
            event_loss: 0.0,
            stall_prob: 0.0,
        }
    }

    /// Checks every field (stds and the time step finite and >= 0, slot > 0, probabilities in
    /// [0, 1]); errors name the field.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("theta_batch_std", self.theta_batch_std),
            ("theta_sample_std", self.theta_sample_std),
            ("jitter_std", self.jitter_std),
            ("output_jitter_std", self.output_jitter_std),
            ("time_step", self.time_step),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::value(name, format!("expected a finite number >= 0, got {v}")));
            }
        }
        if self.slot.is_nan() || self.slot <= 0.0 {
            return Err(Error::value(
                "slot",
                format!("expected a number > 0 (inf = unlimited), got {}", self.slot),
            ));
        }
        for (name, v) in [("event_loss", self.event_loss), ("stall_prob", self.stall_prob)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::value(name, format!("expected a probability in [0, 1], got {v}")));
            }
        }
        Ok(())
    }
}

/// Distributions of the fixed-pattern (per-chip) imperfections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatternParams {
    /// Mean of the threshold offset per neuron circuit (BSS-2: +0.13).
    pub theta_offset_mean: f64,
    /// Std of the threshold offset per neuron circuit (BSS-2: 0.08).
    pub theta_offset_std: f64,
    /// Relative std of tau_m per circuit: tau_m = tau (1 + N(0, s)) (default 0, off).
    pub tau_m_mismatch: f64,
    /// Relative std of tau_s per circuit (default 0, off).
    pub tau_s_mismatch: f64,
    /// Relative std of the gain of every synapse row: g = 1 + N(0, s), clamped at 0 (default 0).
    pub gain_mismatch: f64,
}

impl Default for PatternParams {
    fn default() -> Self {
        Self::bss2()
    }
}

impl PatternParams {
    /// HARDWARE.md: offsets N(0.13, 0.08), the unmeasured mismatches off.
    pub fn bss2() -> Self {
        PatternParams {
            theta_offset_mean: 0.13,
            theta_offset_std: 0.08,
            tau_m_mismatch: 0.0,
            tau_s_mismatch: 0.0,
            gain_mismatch: 0.0,
        }
    }

    /// Checks that the mean is finite and every std finite and >= 0.
    pub fn validate(&self) -> Result<()> {
        if !self.theta_offset_mean.is_finite() {
            return Err(Error::value(
                "theta_offset_mean",
                format!("expected a finite number, got {}", self.theta_offset_mean),
            ));
        }
        for (name, v) in [
            ("theta_offset_std", self.theta_offset_std),
            ("tau_m_mismatch", self.tau_m_mismatch),
            ("tau_s_mismatch", self.tau_s_mismatch),
            ("gain_mismatch", self.gain_mismatch),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::value(name, format!("expected a finite number >= 0, got {v}")));
            }
        }
        Ok(())
    }
}

/// The fixed pattern of one chip, per neuron circuit and per synapse row (drawn once per chip).
#[derive(Debug, Clone, PartialEq)]
pub struct ChipPattern {
    /// Threshold offset o_c per circuit (model units).
    pub theta_offset: Vec<f64>,
    /// tau_m factor 1 + N(0, tau_m_mismatch) per circuit (clamped to >= 0.05).
    pub tau_m_factor: Vec<f64>,
    /// tau_s factor per circuit (clamped to >= 0.05).
    pub tau_s_factor: Vec<f64>,
    /// Gain per synapse row (>= 0).
    pub row_gain: Vec<f64>,
}

impl ChipPattern {
    /// Draws the pattern of a chip with `circuits` neuron circuits and `rows` synapse rows from the
    /// stream of `seed` (e.g. a hash of the chip id): offsets first, then the tau_m, tau_s factors
    /// and the row gains, each from its own stream so that switching one effect leaves the others.
    pub fn draw(circuits: usize, rows: usize, params: &PatternParams, seed: u64) -> Result<Self> {
        params.validate()?;
        let draw = |part: u64, n: usize, f: &dyn Fn(f64) -> f64| -> Vec<f64> {
            let mut s = Stream::new(&[seed, effect::PATTERN, part]);
            (0..n).map(|_| f(s.normal())).collect()
        };
        let p = *params;
        Ok(ChipPattern {
            theta_offset: draw(0, circuits, &|z| p.theta_offset_mean + p.theta_offset_std * z),
            tau_m_factor: draw(1, circuits, &|z| (1.0 + p.tau_m_mismatch * z).max(0.05)),
            tau_s_factor: draw(2, circuits, &|z| (1.0 + p.tau_s_mismatch * z).max(0.05)),
            row_gain: draw(3, rows, &|z| (1.0 + p.gain_mismatch * z).max(0.0)),
        })
    }

    /// The pattern `net` sees when its layers are placed one after the other from circuit 0 and
    /// row 0: layer l's neurons on the next n_out circuits (offsets; time constants = the layer's
    /// times the circuits' factors), its inputs on the next 2 n_in rows, alternately excitatory
    /// and inhibitory. An error if the chip has too few circuits or rows.
    pub fn place(&self, net: &Network) -> Result<Vec<LayerPattern>> {
        let (mut circuit, mut row) = (0, 0);
        let mut out = Vec::with_capacity(net.layers.len());
        for (l, layer) in net.layers.iter().enumerate() {
            let (n_out, n_in) = (layer.n_out(), layer.n_in());
            let (c, r) = (circuit..circuit + n_out, row..row + 2 * n_in);
            if c.end > self.theta_offset.len() || r.end > self.row_gain.len() {
                return Err(Error::shape(
                    "net",
                    format!("{} circuits and {} rows", self.theta_offset.len(), self.row_gain.len()),
                    format!("{} circuits and {} rows up to layer {l}", c.end, r.end),
                ));
            }
            let rows = &self.row_gain[r];
            out.push(LayerPattern {
                theta_offset: self.theta_offset[c.clone()].to_vec(),
                tau_m: self.tau_m_factor[c.clone()]
                    .iter()
                    .map(|f| f * layer.neuron.tau_m())
                    .collect(),
                tau_s: self.tau_s_factor[c].iter().map(|f| f * layer.neuron.tau_s()).collect(),
                gain_exc: rows.iter().step_by(2).copied().collect(),
                gain_inh: rows.iter().skip(1).step_by(2).copied().collect(),
            });
            (circuit, row) = (circuit + n_out, row + 2 * n_in);
        }
        Ok(out)
    }
}

/// The fixed pattern of one placed layer: per neuron the threshold offset and the time constants,
/// per input the gains of its excitatory and inhibitory synapse rows.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPattern {
    /// Threshold offset per neuron `[n_out]`.
    pub theta_offset: Vec<f64>,
    /// Membrane time constant per neuron `[n_out]` (> 0).
    pub tau_m: Vec<f64>,
    /// Synaptic time constant per neuron `[n_out]` (> 0).
    pub tau_s: Vec<f64>,
    /// Gain of the excitatory row of every input `[n_in]` (>= 0).
    pub gain_exc: Vec<f64>,
    /// Gain of the inhibitory row of every input `[n_in]` (>= 0).
    pub gain_inh: Vec<f64>,
}

impl LayerPattern {
    /// The pattern of a perfect chip for `layer`: no offsets, the layer's time constants, unit gains.
    pub fn ideal(layer: &Layer) -> Self {
        let (n_out, n_in) = (layer.n_out(), layer.n_in());
        LayerPattern {
            theta_offset: vec![0.0; n_out],
            tau_m: vec![layer.neuron.tau_m(); n_out],
            tau_s: vec![layer.neuron.tau_s(); n_out],
            gain_exc: vec![1.0; n_in],
            gain_inh: vec![1.0; n_in],
        }
    }

    fn validate(&self, prefix: &str, n_in: usize, n_out: usize) -> Result<()> {
        /// What the entries of a field must be.
        #[derive(Clone, Copy)]
        enum Domain {
            Finite,
            Positive,
            NonNegative,
        }
        let fields = [
            ("theta_offset", &self.theta_offset, n_out, Domain::Finite),
            ("tau_m", &self.tau_m, n_out, Domain::Positive),
            ("tau_s", &self.tau_s, n_out, Domain::Positive),
            ("gain_exc", &self.gain_exc, n_in, Domain::NonNegative),
            ("gain_inh", &self.gain_inh, n_in, Domain::NonNegative),
        ];
        for (name, v, len, domain) in fields {
            let arg = || format!("{prefix}.{name}");
            if v.len() != len {
                return Err(Error::shape(arg(), format!("[{len}]"), format!("[{}]", v.len())));
            }
            let ok = |x: f64| match domain {
                Domain::Finite => x.is_finite(),
                Domain::Positive => x.is_finite() && x > 0.0,
                Domain::NonNegative => x.is_finite() && x >= 0.0,
            };
            if let Some(i) = v.iter().position(|&x| !ok(x)) {
                let want = match domain {
                    Domain::Finite => "finite",
                    Domain::Positive => "finite and > 0",
                    Domain::NonNegative => "finite and >= 0",
                };
                return Err(Error::value(
                    arg(),
                    format!("entries must be {want}; entry {i} is {}", v[i]),
                ));
            }
        }
        Ok(())
    }
}

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
enum Jitter {
    /// No delays or no jitter.
    Off,
    /// One draw per delay group (axonal delays: one delay unit per source).
    PerGroup(usize),
    /// One draw per synapse (synaptic or dendritic delay elements).
    PerSynapse,
}

/// A layer with the run's fixed and per-batch noise applied.
struct RunLayer {
    /// The layer as this run's chip realises it: weights times row gains, thresholds with the
    /// fixed-pattern offsets and the batch noise (clamped to >= `MIN_THETA`).
    run: Layer,
    /// Effective delays d_ki `[n_out, n_in]`.
    delays: Matrix,
    /// Per-neuron time constants (the fixed pattern's tau mismatch).
    neurons: Vec<Neuron>,
    /// The general-regime kernel constants of every neuron whose ratio tau_m/tau_s has no closed
    /// form (computed once per run instead of once per sample).
    kernels: Vec<Option<Kernel>>,
    /// The peak of every neuron's kernel (a neuron whose excitation times it stays below theta
    /// is silent without a scan).
    kappa_max: Vec<f64>,
    /// The delay d_i of every input when all neurons share it (no synaptic or dendritic delays):
    /// then every neuron sees its inputs in the same order and one sort per sample serves all.
    shared_delays: Option<Vec<f64>>,
    jitter: Jitter,
    /// Whether every neuron has the layer's time constants, no per-sample threshold noise is drawn
    /// and jitter is per delay group: then the ideal forward pass's planned scans
    /// (`forward::plan_times`) compute the layer, with the jitter added to the input times
    /// (`a_ki = (t_i + j_g(i)) + d_axo[i]`).
    planned: bool,
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
    Ok(Run::new(net, input, repeat, pattern, noise, seed, counter)?.forward(exec))
}

/// One run of an emulated chip set up for recording its samples one by one (by
/// [`noisy_forward`], or by a training step that takes each sample's backward pass right after
/// it): the network as this run's chip realises it, and where the run stalls.
pub(crate) struct Run<'a> {
    /// The chip's inputs `[batch, n_groups]`.
    input: &'a Matrix,
    layers: Vec<RunLayer>,
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
        let layers = prepare(net, pattern, noise, seed, counter)?;
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
    pub(crate) fn forward(&self, exec: &Executor) -> HwRun {
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
        );
        let dropped_events = dropped.iter().sum();
        HwRun {
            times,
            dropped_events,
            stalled_from: self.stalled_from,
        }
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

/// Applies the fixed pattern and draws the per-run threshold noise.
fn prepare(
    net: &Network,
    pattern: Option<&[LayerPattern]>,
    noise: &NoiseParams,
    seed: u64,
    counter: u64,
) -> Result<Vec<RunLayer>> {
    net.layers
        .iter()
        .enumerate()
        .map(|(l, layer)| {
            let (n_out, n_in) = (layer.n_out(), layer.n_in());
            let delays = layer.delays.effective(n_in, n_out);
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
                        .map(|k| {
                            Neuron::new(p.tau_m[k], p.tau_s[k]).map_err(|e| match e {
                                Error::Value { arg, message } => Error::value(format!("pattern[{l}].{arg}"), message),
                                e => e,
                            })
                        })
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
            let d = &layer.delays;
            let jitter = if noise.jitter_std == 0.0 || !d.any() {
                Jitter::Off
            } else if d.syn.is_some() || d.den.is_some() {
                Jitter::PerSynapse
            } else {
                Jitter::PerGroup(d.group.max(1))
            };
            let planned = noise.theta_sample_std == 0.0
                && jitter != Jitter::PerSynapse
                && neurons.iter().all(|n| *n == layer.neuron);
            let kernels = neurons
                .iter()
                .map(|n| (n.regime() == Regime::General).then(|| Kernel::new(n)))
                .collect();
            let kappa_max = neurons.iter().map(kappa_max).collect();
            let shared_delays = (d.syn.is_none() && d.den.is_none() && jitter != Jitter::PerSynapse && n_out > 0)
                .then(|| delays.row(0).to_vec());
            Ok(RunLayer {
                run,
                delays,
                neurons,
                kernels,
                kappa_max,
                shared_delays,
                jitter,
                planned,
            })
        })
        .collect()
}

/// Per-thread scratch space of the noisy pass.
#[derive(Default)]
pub(crate) struct Scratch {
    t_in: Vec<f64>,
    t_out: Vec<f64>,
    shifted: Vec<f64>,
    group_jitter: Vec<f64>,
    /// Arrival time, 0 and input index of the finite inputs, sorted by time (shared-order layers).
    order: Vec<(f64, f64, usize)>,
    /// Sort keys of `order`.
    keys: Vec<u64>,
    /// Runs of equal arrival times in `order`: (time, end of the run in `order`).
    runs: Vec<(f64, usize)>,
    arrivals: Vec<(f64, f64)>,
    plan: PlanScratch,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_validate_names_the_field() {
        let mut n = NoiseParams::bss2();
        n.validate().unwrap();
        NoiseParams::ideal().validate().unwrap();
        n.jitter_std = -1.0;
        assert!(n.validate().unwrap_err().to_string().contains("jitter_std"));
        let mut n = NoiseParams::bss2();
        n.event_loss = 1.5;
        assert!(n.validate().unwrap_err().to_string().contains("event_loss"));
        let mut n = NoiseParams::bss2();
        n.slot = 0.0;
        assert!(n.validate().unwrap_err().to_string().contains("slot"));
        let mut p = PatternParams::bss2();
        p.gain_mismatch = f64::NAN;
        assert!(p.validate().unwrap_err().to_string().contains("gain_mismatch"));
    }

    #[test]
    fn pattern_is_a_function_of_the_seed() {
        let p = PatternParams {
            tau_m_mismatch: 0.02,
            ..PatternParams::bss2()
        };
        let a = ChipPattern::draw(512, 512, &p, 11).unwrap();
        assert_eq!(a, ChipPattern::draw(512, 512, &p, 11).unwrap());
        assert_ne!(
            a.theta_offset,
            ChipPattern::draw(512, 512, &p, 12).unwrap().theta_offset
        );
        // switching one effect on leaves the others' draws unchanged
        let b = ChipPattern::draw(512, 512, &PatternParams::bss2(), 11).unwrap();
        assert_eq!(a.theta_offset, b.theta_offset);
        assert!(b.tau_m_factor.iter().all(|&f| f == 1.0));
    }
}
