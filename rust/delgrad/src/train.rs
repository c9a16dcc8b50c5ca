//! Network initialisation and the training step: forward, loss, exact backward, the two
//! stabilisers of the reference (max_dw_norm, weight bumping) and Adam with StepLR.

use crate::delay::{DelayKind, DelayParam, Delays};
use crate::error::{Error, Result};
use crate::forward::{Scratch as ForwardScratch, forward};
use crate::gradient::{BackwardOptions, BackwardPlan, Gradients, backward};
use crate::hardware::{HwRun, LayerPattern, NoiseParams, Run, Scratch as RunScratch};
use crate::kernel::Neuron;
use crate::loss::{Loss, LossReport, evaluate, validate_labels};
use crate::matrix::Matrix;
use crate::network::{Layer, Network};
use crate::optim::{Adam, AdamConfig, StepLr};
use crate::parallel::Executor;
use crate::random::RandomState;
use crate::solver::Method;
use crate::step::{Pass, forward_backward, pass};

/// How one layer is built and initialised.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// Number of neurons.
    pub size: usize,
    /// Membrane time constant.
    pub tau_m: f64,
    /// Synaptic time constant.
    pub tau_s: f64,
    /// Threshold of every neuron.
    pub theta: f64,
    /// Mean of the initial weights w ~ N(mean, std).
    pub weight_mean: f64,
    /// Standard deviation of the initial weights.
    pub weight_std: f64,
    /// Trained delay kinds of the layer's incoming projection.
    pub delay_kinds: Vec<DelayKind>,
    /// Consecutive inputs sharing one synaptic/axonal delay.
    pub delay_group: usize,
    /// Initial delay parameters p ~ N(mean, std) (d = param(p)).
    pub delay_init_mean: f64,
    /// Standard deviation of the initial delay parameters.
    pub delay_init_std: f64,
}

impl LayerSpec {
    /// A layer of `size` neurons with the reference neuron (tau_m = 2, tau_s = 1, theta = 1),
    /// weights N(mean, std), no delays.
    pub fn new(size: usize, weight_mean: f64, weight_std: f64) -> Self {
        LayerSpec {
            size,
            tau_m: 2.0,
            tau_s: 1.0,
            theta: 1.0,
            weight_mean,
            weight_std,
            delay_kinds: Vec::new(),
            delay_group: 1,
            delay_init_mean: 0.0,
            delay_init_std: 0.25,
        }
    }
}

/// Builds a network with random parameters. Draws, per layer in order: weights row by row,
/// then synaptic, axonal and dendritic delay parameters (numpy `RandomState.normal` semantics).
pub fn init_network(
    n_in: usize,
    specs: &[LayerSpec],
    delay_param: DelayParam,
    rng: &mut RandomState,
) -> Result<Network> {
    delay_param.validate()?;
    let mut layers = Vec::with_capacity(specs.len());
    let mut fan_in = n_in;
    for (l, s) in specs.iter().enumerate() {
        for (name, v) in [("weight_std", s.weight_std), ("delay_init_std", s.delay_init_std)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::value(
                    format!("layers[{l}].{name}"),
                    format!("expected a finite number >= 0, got {v}"),
                ));
            }
        }
        let neuron = Neuron::new(s.tau_m, s.tau_s)?;
        let mut draw = |n: usize, mean: f64, std: f64| -> Vec<f64> { (0..n).map(|_| rng.normal(mean, std)).collect() };
        let w = Matrix::from_vec("w", s.size, fan_in, draw(s.size * fan_in, s.weight_mean, s.weight_std))?;
        let group = s.delay_group.max(1);
        let ng = fan_in / group;
        let mut delays = Delays {
            group,
            ..Delays::default()
        };
        let mut delay_draw = |n: usize| -> Vec<f64> {
            draw(n, s.delay_init_mean, s.delay_init_std)
                .into_iter()
                .map(|p| delay_param.delay(p))
                .collect()
        };
        if s.delay_kinds.contains(&DelayKind::Synaptic) {
            delays.syn = Some(Matrix::from_vec("d_syn", s.size, ng, delay_draw(s.size * ng))?);
        }
        if s.delay_kinds.contains(&DelayKind::Axonal) {
            delays.axo = Some(delay_draw(ng));
        }
        if s.delay_kinds.contains(&DelayKind::Dendritic) {
            delays.den = Some(delay_draw(s.size));
        }
        layers.push(Layer {
            neuron,
            theta: vec![s.theta; s.size],
            w,
            delays,
        });
        fan_in = s.size;
    }
    Network::new(layers)
}

/// Hyperparameters of training (DESIGN section 3).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// The loss.
    pub loss: Loss,
    /// Loss of a silent sample (constant, zero gradient).
    pub silent_loss: f64,
    /// Adam learning rate of the weights.
    pub lr_weights: f64,
    /// Adam learning rate of the delay parameters.
    pub lr_delays: f64,
    /// Learning-rate schedule.
    pub schedule: StepLr,
    /// Adam hyperparameters.
    pub adam: AdamConfig,
    /// Per-sample, per-neuron weight-gradient limit (0.2); `None` disables it.
    pub max_dw_norm: Option<f64>,
    /// Initial weight bump (5e-4); 0 disables bumping.
    pub bump: f64,
    /// Per layer, the largest tolerated fraction of silent (sample, neuron) entries.
    pub bump_limits: Vec<f64>,
    /// How delays stay non-negative.
    pub delay_param: DelayParam,
    /// Solver method of the forward pass.
    pub method: Method,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            loss: Loss::mse(),
            silent_loss: 100.0,
            lr_weights: 0.01,
            lr_delays: 0.003,
            schedule: StepLr::default(),
            adam: AdamConfig::default(),
            max_dw_norm: Some(0.2),
            bump: 5e-4,
            bump_limits: vec![0.3, 0.0],
            delay_param: DelayParam::default(),
            method: Method::Auto,
        }
    }
}

/// What a trainable tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorKind {
    /// Weights `[n_out, n_in]`.
    Weights,
    /// A delay kind (its trained parameter p, d = param(p)).
    Delay(DelayKind),
}

/// One trainable tensor and its optimiser state.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Layer index.
    pub layer: usize,
    /// What it holds.
    pub kind: TensorKind,
    /// The trained values (weights, or delay parameters p).
    pub values: Vec<f64>,
    /// Adam state.
    pub adam: Adam,
}

/// Summary of one training step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// Mean loss over the batch.
    pub loss: f64,
    /// Correctly classified samples.
    pub correct: usize,
    /// Batch size.
    pub batch: usize,
    /// Samples with the constant silent loss.
    pub silent_samples: usize,
    /// Per layer, fraction of silent (sample, neuron) entries.
    pub silent_fraction: Vec<f64>,
    /// The layer whose weights were bumped instead of a gradient step.
    pub bumped: Option<usize>,
    /// Per layer, (sample, neuron) pairs with invalid given times (zero gradient).
    pub invalid: Vec<usize>,
    /// Per layer, (sample, neuron) weight gradients zeroed by max_dw_norm.
    pub clipped: Vec<usize>,
}

/// Evaluation of a data set.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// Mean loss.
    pub loss: f64,
    /// Fraction correctly classified.
    pub accuracy: f64,
    /// Correctly classified samples.
    pub correct: usize,
    /// Number of samples.
    pub samples: usize,
    /// Samples with the constant silent loss.
    pub silent_samples: usize,
    /// Per layer, fraction of silent (sample, neuron) entries.
    pub silent_fraction: Vec<f64>,
    /// Output spike times `[samples, n_out]`.
    pub output_times: Matrix,
}

/// Trains a network with Adam, StepLR and the reference stabilisers.
#[derive(Debug, Clone)]
pub struct Trainer {
    net: Network,
    config: TrainConfig,
    /// The trainable tensors, layer by layer: weights, then present delay kinds.
    pub tensors: Vec<Tensor>,
    /// The bump to apply next (doubles on consecutive bumps of one layer).
    pub bump: f64,
    /// The layer bumped by the previous step, if it bumped.
    pub last_bumped: Option<usize>,
}

/// A step needs at least one sample.
fn check_batch(x: &Matrix) -> Result<()> {
    if x.rows() == 0 {
        return Err(Error::shape("x", "[batch >= 1, n_in]", format!("[0, {}]", x.cols())));
    }
    Ok(())
}

fn silent_fraction(times: &[Matrix]) -> Vec<f64> {
    times
        .iter()
        .map(|t| {
            let n = t.as_slice().len();
            if n == 0 {
                0.0
            } else {
                t.as_slice().iter().filter(|x| x.is_infinite()).count() as f64 / n as f64
            }
        })
        .collect()
}

impl Trainer {
    /// A trainer for `net`; delay parameters are recovered from the network's delays.
    pub fn new(net: Network, config: TrainConfig) -> Result<Self> {
        net.validate()?;
        config.loss.validate()?;
        config.delay_param.validate()?;
        for (name, v) in [
            ("lr_weights", config.lr_weights),
            ("lr_delays", config.lr_delays),
            ("bump", config.bump),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::value(name, format!("expected a finite number >= 0, got {v}")));
            }
        }
        if config.bump_limits.len() != net.layers.len() {
            return Err(Error::shape(
                "bump_limits",
                format!("[{}] (one per layer)", net.layers.len()),
                format!("[{}]", config.bump_limits.len()),
            ));
        }
        if let Some(m) = config.max_dw_norm.filter(|m| !(m.is_finite() && *m > 0.0)) {
            return Err(Error::value(
                "max_dw_norm",
                format!("expected a finite number > 0 or none, got {m}"),
            ));
        }
        let p = config.delay_param;
        let to_params = |v: &[f64]| -> Vec<f64> { v.iter().map(|&d| p.param(d)).collect() };
        let mut tensors = Vec::new();
        let mut push = |layer: usize, kind: TensorKind, values: Vec<f64>| {
            let adam = Adam::new(values.len());
            tensors.push(Tensor {
                layer,
                kind,
                values,
                adam,
            });
        };
        for (l, layer) in net.layers.iter().enumerate() {
            push(l, TensorKind::Weights, layer.w.as_slice().to_vec());
            if let Some(m) = &layer.delays.syn {
                push(l, TensorKind::Delay(DelayKind::Synaptic), to_params(m.as_slice()));
            }
            if let Some(v) = &layer.delays.axo {
                push(l, TensorKind::Delay(DelayKind::Axonal), to_params(v));
            }
            if let Some(v) = &layer.delays.den {
                push(l, TensorKind::Delay(DelayKind::Dendritic), to_params(v));
            }
        }
        let bump = config.bump;
        let mut trainer = Trainer {
            net,
            config,
            tensors,
            bump,
            last_bumped: None,
        };
        trainer.sync();
        Ok(trainer)
    }

    /// The network with the current parameters.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Writes the trained tensors into the network (delays through the parametrisation).
    fn sync(&mut self) {
        let p = self.config.delay_param;
        for t in &self.tensors {
            let layer = &mut self.net.layers[t.layer];
            let delays = |dst: &mut [f64]| dst.iter_mut().zip(&t.values).for_each(|(d, &x)| *d = p.delay(x));
            let dst: Option<&mut [f64]> = match t.kind {
                TensorKind::Weights => {
                    layer.w.as_mut_slice().copy_from_slice(&t.values);
                    None
                }
                TensorKind::Delay(DelayKind::Synaptic) => layer.delays.syn.as_mut().map(Matrix::as_mut_slice),
                TensorKind::Delay(DelayKind::Axonal) => layer.delays.axo.as_deref_mut(),
                TensorKind::Delay(DelayKind::Dendritic) => layer.delays.den.as_deref_mut(),
            };
            if let Some(dst) = dst {
                delays(dst);
            }
        }
    }

    /// Replaces the trained tensors (e.g. from a checkpoint); shapes must match.
    pub fn set_tensors(&mut self, tensors: Vec<Tensor>, bump: f64, last_bumped: Option<usize>) -> Result<()> {
        if tensors.len() != self.tensors.len() {
            return Err(Error::shape(
                "tensors",
                format!("{} tensors", self.tensors.len()),
                format!("{}", tensors.len()),
            ));
        }
        for (i, (new, old)) in tensors.iter().zip(&self.tensors).enumerate() {
            let ok = new.layer == old.layer
                && new.kind == old.kind
                && new.values.len() == old.values.len()
                && new.adam.m.len() == old.values.len()
                && new.adam.v.len() == old.values.len();
            if !ok {
                return Err(Error::shape(
                    format!("tensors[{i}]"),
                    format!("{:?} of layer {}", old.kind, old.layer),
                    "a different tensor",
                ));
            }
            if new
                .values
                .iter()
                .chain(&new.adam.m)
                .chain(&new.adam.v)
                .any(|x| !x.is_finite())
            {
                return Err(Error::value(format!("tensors[{i}]"), "values must be finite"));
            }
        }
        self.tensors = tensors;
        self.bump = bump;
        self.last_bumped = last_bumped;
        self.sync();
        Ok(())
    }

    /// Learning rates (weights, delays) in `epoch`.
    pub fn learning_rates(&self, epoch: usize) -> (f64, f64) {
        let s = self.config.schedule;
        (s.lr(self.config.lr_weights, epoch), s.lr(self.config.lr_delays, epoch))
    }

    /// One step on a batch: forward, loss, backward, stabilisers, update (forward, loss and
    /// backward in one sweep, `step::forward_backward`).
    pub fn step(&mut self, x: &Matrix, labels: &[usize], epoch: usize, exec: &Executor) -> Result<StepReport> {
        check_batch(x)?;
        let opts = self.backward_options(false);
        let cfg = &self.config;
        let pass = forward_backward(&self.net, x, labels, &cfg.loss, cfg.silent_loss, &opts, exec)?;
        self.conclude(pass, epoch)
    }

    /// Ends a step whose gradients a fused pass computed ahead of the stabilisers: they are
    /// applied unless the stabilisers end the step (weight bumping), as after
    /// [`stabilise`](Self::stabilise) in a separate backward pass.
    fn conclude(&mut self, pass: Pass, epoch: usize) -> Result<StepReport> {
        let Pass { times, loss, grads } = pass;
        match self.stabilise(&times, loss, epoch)? {
            (step, Some(_)) => self.update(step, &grads, epoch),
            (step, None) => Ok(step),
        }
    }

    /// One step from **given** spike times of every layer (e.g. measured on a chip): the loss
    /// and the exact gradients of the ideal model are evaluated at those times; neurons the ideal
    /// model would leave silent get zero gradient.
    pub fn step_from_times(
        &mut self,
        x: &Matrix,
        times: &[Matrix],
        labels: &[usize],
        epoch: usize,
        exec: &Executor,
    ) -> Result<StepReport> {
        self.given_times_step(None, x, times, labels, epoch, exec)
    }

    /// Chip-in-the-loop step: like [`Trainer::step_from_times`], but the gradients are those of the
    /// ideal model with the parameters of `at` (e.g. the quantised weights and delays the chip ran),
    /// applied to the trainer's float shadow parameters (straight-through estimator: dL/dw_float :=
    /// dL/dw_q, dL/dp := dL/dd_q dd/dp). `at` must have the trainer's layer sizes and delay kinds.
    pub fn step_from_times_at(
        &mut self,
        at: &Network,
        x: &Matrix,
        times: &[Matrix],
        labels: &[usize],
        epoch: usize,
        exec: &Executor,
    ) -> Result<StepReport> {
        self.check_at(at)?;
        self.given_times_step(Some(at), x, times, labels, epoch, exec)
    }

    /// Checks that `at` (the network whose gradients a chip-in-the-loop step takes) is valid and
    /// has the trained network's layer sizes and delay kinds.
    fn check_at(&self, at: &Network) -> Result<()> {
        at.validate()?;
        if at.sizes() != self.net.sizes() {
            return Err(Error::shape(
                "at",
                format!("a network of sizes {:?}", self.net.sizes()),
                format!("{:?}", at.sizes()),
            ));
        }
        for (l, (a, b)) in at.layers.iter().zip(&self.net.layers).enumerate() {
            let kinds = |d: &Delays| (d.group, d.syn.is_some(), d.axo.is_some(), d.den.is_some());
            if kinds(&a.delays) != kinds(&b.delays) {
                return Err(Error::value(
                    format!("at.layers[{l}]"),
                    "must have the trained network's delay kinds and delay group",
                ));
            }
        }
        Ok(())
    }

    /// Chip-in-the-loop step on an emulated chip in one call: one run of
    /// [`noisy_forward`](crate::hardware::noisy_forward) of `chip` (the network the chip holds: quantised weights and
    /// delays, nominal neurons) on the input groups `groups` (`[batch, n_groups]`, fed `repeat`
    /// times), then, unless the run stalled, [`Trainer::step_from_times_at`] at `at` with the
    /// recorded times, the trainer's inputs `x` (`[batch, n_in]`) and `labels`: the same results,
    /// computed in one sweep over the samples on `exec` (each sample's backward pass follows its
    /// run); `chip_exec` records a stalled run. Returns the run without its times (a stalled run
    /// takes no step: the caller repeats it with the next `counter`) and the step report.
    #[allow(clippy::too_many_arguments)]
    pub fn emulated_step(
        &mut self,
        chip: &Network,
        emulation: &Emulation<'_>,
        groups: &Matrix,
        at: &Network,
        x: &Matrix,
        labels: &[usize],
        epoch: usize,
        chip_exec: &Executor,
        exec: &Executor,
    ) -> Result<(HwRun, Option<StepReport>)> {
        if groups.rows() != x.rows() {
            return Err(Error::shape(
                "x",
                format!("[{}, {}] (one row per input row)", groups.rows(), self.net.n_in()),
                format!("[{}, {}]", x.rows(), x.cols()),
            ));
        }
        // All input is checked before the run: a stalled run takes no step that would check it.
        self.net.validate_times("x", x, self.net.n_in())?;
        check_batch(x)?;
        validate_labels(&self.config.loss, labels, x.rows(), self.net.n_out())?;
        self.check_at(at)?;
        let e = emulation;
        let run = Run::new(chip, groups, e.repeat, e.pattern, e.noise, e.seed, e.counter)?;
        if run.stalled_from.is_some() {
            // No step: the caller repeats the run. Record what it has (its lost events).
            let mut run = run.forward(chip_exec);
            run.times.clear();
            return Ok((run, None));
        }
        // One parallel sweep: each sample is recorded, then its loss and backward pass at `at`
        // follow on the same thread (the same results as the run, then the step at its times).
        let plans = run.plans();
        let opts = self.backward_options(true);
        let bplan = BackwardPlan::new(at, &opts);
        let record = |sc: &mut RunScratch, _: &mut ForwardScratch, b: usize, row: &mut [f64]| {
            (false, run.record(&plans, b, row, sc))
        };
        let cfg = &self.config;
        let (pass, dropped_events) = pass(at, &bplan, x, labels, &cfg.loss, cfg.silent_loss, &opts, exec, record)?;
        let step = self.conclude(pass, epoch)?;
        let run = HwRun {
            times: Vec::new(),
            dropped_events,
            stalled_from: None,
        };
        Ok((run, Some(step)))
    }

    /// The steps of one epoch on an emulated chip in one call: for each mini-batch of `batch`
    /// consecutive rows of `groups` / `x` / `labels` (the epoch's samples in training order),
    /// write the trainer's network on `grid` to the chip, then [`Trainer::emulated_step`] at the
    /// network on the chip, repeating a stalled run up to `max_retries` times with the next run
    /// counter. `chip` is the network on the chip before the first batch (the layout and neurons
    /// of the trainer's network); `emulation.counter` is the counter of the first run. The same
    /// results as those calls one by one; stops after a batch whose runs all stalled.
    #[allow(clippy::too_many_arguments)]
    pub fn emulated_epoch(
        &mut self,
        chip: &Network,
        grid: &Grid,
        emulation: &Emulation<'_>,
        groups: &Matrix,
        x: &Matrix,
        labels: &[usize],
        batch: usize,
        epoch: usize,
        max_retries: usize,
        chip_exec: &Executor,
        exec: &Executor,
    ) -> Result<EmulatedEpoch> {
        if batch == 0 {
            return Err(Error::value("batch_size", "expected an integer >= 1"));
        }
        // The whole epoch's input up front, so that a bad row stops it before its first step
        // (each step checks its batch again).
        self.net.validate_times("x", x, self.net.n_in())?;
        validate_labels(&self.config.loss, labels, labels.len(), self.net.n_out())?;
        if groups.rows() != x.rows() || labels.len() != x.rows() {
            return Err(Error::shape(
                "groups/x/labels",
                "the same number of rows".to_string(),
                format!("{}/{}/{}", groups.rows(), x.rows(), labels.len()),
            ));
        }
        let rows = |m: &Matrix, start: usize, end: usize| {
            Matrix::from_vec(
                "x",
                end - start,
                m.cols(),
                m.as_slice()[start * m.cols()..end * m.cols()].to_vec(),
            )
        };
        let mut e = *emulation;
        let mut out = EmulatedEpoch {
            steps: Vec::with_capacity(x.rows().div_ceil(batch)),
            retries: 0,
            dropped_events: 0,
            written: 0,
            chip: chip.clone(),
            stalled: false,
        };
        for start in (0..x.rows()).step_by(batch) {
            let end = (start + batch).min(x.rows());
            let q = grid.quantise(&self.net);
            out.written = changed_entries(&out.chip, &q)?;
            out.chip = q;
            let (gb, xb, yb) = (rows(groups, start, end)?, rows(x, start, end)?, &labels[start..end]);
            let mut report = None;
            for attempt in 0..=max_retries {
                let (run, step) = self.emulated_step(&out.chip, &e, &gb, &out.chip, &xb, yb, epoch, chip_exec, exec)?;
                e.counter += 1;
                out.dropped_events += run.dropped_events;
                if step.is_some() {
                    report = step;
                    break;
                }
                if attempt < max_retries {
                    out.retries += 1;
                }
            }
            let Some(r) = report else {
                out.stalled = true;
                break;
            };
            out.steps.push(r);
        }
        Ok(out)
    }

    /// Loss and stabilisers at given times; the backward pass at `at` (default: the trainer's network).
    fn given_times_step(
        &mut self,
        at: Option<&Network>,
        x: &Matrix,
        times: &[Matrix],
        labels: &[usize],
        epoch: usize,
        exec: &Executor,
    ) -> Result<StepReport> {
        check_batch(x)?;
        let out = times
            .last()
            .ok_or_else(|| Error::shape("times", "one matrix per layer", "none"))?;
        let report = evaluate(&self.config.loss, out, labels, self.config.silent_loss, false)?;
        match self.stabilise(times, report, epoch)? {
            (step, Some(dl_dt)) => {
                let net = at.unwrap_or(&self.net);
                let grads = backward(net, x, times, &dl_dt, &self.backward_options(true), exec)?;
                self.update(step, &grads, epoch)
            }
            (step, None) => Ok(step),
        }
    }

    fn backward_options(&self, given: bool) -> BackwardOptions {
        BackwardOptions {
            max_dw_norm: self.config.max_dw_norm,
            check_given_times: given,
            method: self.config.method,
        }
    }

    /// The checks after the loss: divergence is an error; weight bumping ends the step (no
    /// update, `None`); otherwise returns dL/dt of the batch-mean loss for the backward pass.
    fn stabilise(
        &mut self,
        times: &[Matrix],
        report: LossReport,
        epoch: usize,
    ) -> Result<(StepReport, Option<Matrix>)> {
        let batch = report.per_sample.len();
        let fractions = silent_fraction(times);
        let mut step = StepReport {
            loss: report.mean,
            correct: report.correct,
            batch,
            silent_samples: report.silent,
            silent_fraction: fractions.clone(),
            bumped: None,
            invalid: vec![0; times.len()],
            clipped: vec![0; times.len()],
        };
        if !report.mean.is_finite() {
            return Err(Error::Diverged(format!("loss is {} at epoch {epoch}", report.mean)));
        }
        if self.config.bump > 0.0 {
            let offending = fractions
                .iter()
                .zip(&self.config.bump_limits)
                .position(|(f, lim)| f > lim);
            if let Some(l) = offending {
                self.bump_layer(l, &times[l]);
                step.bumped = Some(l);
                return Ok((step, None));
            }
        }
        self.last_bumped = None;
        self.bump = self.config.bump;
        // The loss is the batch mean, so each sample's dL/dt carries 1/batch (as autograd's would).
        let mut dl_dt = report.dl_dt;
        dl_dt.as_mut_slice().iter_mut().for_each(|g| *g /= batch as f64);
        Ok((step, Some(dl_dt)))
    }

    /// Records the gradients' counts in the report and takes the Adam step.
    fn update(&mut self, mut step: StepReport, grads: &Gradients, epoch: usize) -> Result<StepReport> {
        step.invalid = grads.invalid.clone();
        step.clipped = grads.clipped.clone();
        self.apply(grads, epoch)?;
        Ok(step)
    }

    /// Adds the bump to every incoming weight of each neuron of layer `l` that was silent for
    /// some sample; doubles the bump when the same layer was bumped by the previous step.
    fn bump_layer(&mut self, l: usize, times: &Matrix) {
        if self.last_bumped == Some(l) {
            self.bump *= 2.0;
        } else {
            self.bump = self.config.bump;
        }
        self.last_bumped = Some(l);
        let n_out = times.cols();
        let silent: Vec<bool> = (0..n_out)
            .map(|k| (0..times.rows()).any(|b| times.get(b, k).is_infinite()))
            .collect();
        let n_in = self.net.layers[l].n_in();
        let bump = self.bump;
        if let Some(t) = self
            .tensors
            .iter_mut()
            .find(|t| t.layer == l && t.kind == TensorKind::Weights)
        {
            for (k, _) in silent.iter().enumerate().filter(|(_, s)| **s) {
                t.values[k * n_in..(k + 1) * n_in].iter_mut().for_each(|w| *w += bump);
            }
        }
        self.sync();
    }

    fn apply(&mut self, grads: &Gradients, epoch: usize) -> Result<()> {
        let (lr_w, lr_d) = self.learning_rates(epoch);
        let p = self.config.delay_param;
        let mut updates = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let g = &grads.layers[t.layer];
            let grad: Vec<f64> = match t.kind {
                TensorKind::Weights => g.w.as_slice().to_vec(),
                TensorKind::Delay(kind) => {
                    let dd = match kind {
                        DelayKind::Synaptic => g.d_syn.as_slice(),
                        DelayKind::Axonal => &g.d_axo,
                        DelayKind::Dendritic => &g.d_den,
                    };
                    dd.iter().zip(&t.values).map(|(g, &x)| g * p.slope(x)).collect()
                }
            };
            if let Some(i) = grad.iter().position(|x| !x.is_finite()) {
                return Err(Error::Diverged(format!(
                    "non-finite gradient ({}) for {:?} of layer {} at epoch {epoch}",
                    grad[i], t.kind, t.layer
                )));
            }
            updates.push(grad);
        }
        for (t, grad) in self.tensors.iter_mut().zip(&updates) {
            let lr = if t.kind == TensorKind::Weights { lr_w } else { lr_d };
            t.adam.step(&mut t.values, grad, lr, &self.config.adam);
            if p == DelayParam::Clip && t.kind != TensorKind::Weights {
                t.values.iter_mut().for_each(|d| *d = d.max(0.0));
            }
        }
        self.sync();
        Ok(())
    }

    /// Loss, accuracy and silent fractions on a data set, in batches of `batch`.
    pub fn evaluate(&self, x: &Matrix, labels: &[usize], exec: &Executor) -> Result<EvalReport> {
        let times = forward(&self.net, x, self.config.method, exec)?;
        let out = times.last().ok_or_else(|| Error::value("network", "no layers"))?;
        let r = evaluate(&self.config.loss, out, labels, self.config.silent_loss, false)?;
        let n = labels.len();
        Ok(EvalReport {
            loss: r.mean,
            accuracy: if n == 0 { 0.0 } else { r.correct as f64 / n as f64 },
            correct: r.correct,
            samples: n,
            silent_samples: r.silent,
            silent_fraction: silent_fraction(&times),
            output_times: out.clone(),
        })
    }

    /// One epoch over `x` in mini-batches of `batch` in the order `order` (a permutation of the
    /// rows, e.g. `RandomState::permutation`); returns the mean of the step reports.
    pub fn train_epoch(
        &mut self,
        x: &Matrix,
        labels: &[usize],
        order: &[usize],
        batch: usize,
        epoch: usize,
        exec: &Executor,
    ) -> Result<EpochReport> {
        if batch == 0 {
            return Err(Error::value("batch_size", "expected an integer >= 1"));
        }
        if labels.len() != x.rows() || order.len() != x.rows() {
            return Err(Error::shape(
                "labels/order",
                format!("[{}]", x.rows()),
                format!("[{}]/[{}]", labels.len(), order.len()),
            ));
        }
        if order.iter().any(|&i| i >= x.rows()) {
            return Err(Error::value("order", "indices must be < the number of samples"));
        }
        let mut acc = EpochReport::default();
        for chunk in order.chunks(batch) {
            let mut xb = Vec::with_capacity(chunk.len() * x.cols());
            chunk.iter().for_each(|&i| xb.extend_from_slice(x.row(i)));
            let xb = Matrix::from_vec("x", chunk.len(), x.cols(), xb)?;
            let yb: Vec<usize> = chunk.iter().map(|&i| labels[i]).collect();
            let r = self.step(&xb, &yb, epoch, exec)?;
            acc.add(&r);
        }
        Ok(acc)
    }
}

/// The weight and delay grid of a chip: weights `clip(round_half_even(scale w), -max, max) / scale`;
/// delays `(n step + offset) / unit` with the setting `n = clip(round_half_even((d unit - offset) /
/// step), n_min, n_max)` (BrainScaleS-2: scale 30, max 63, offset 2 us, step 0.125 us, n 50..250,
/// unit 6 us). The operations are those of `delgrad_hw.bss2`, in the same order: the same values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    weight_scale: f64,
    weight_max: f64,
    delay_offset: f64,
    delay_step: f64,
    delay_min: f64,
    delay_max: f64,
    time_unit: f64,
}

impl Grid {
    /// A grid; every value must be finite, scales, step and unit > 0, `weight_max` >= 0 and
    /// `delay_min` <= `delay_max`.
    pub fn new(
        weight_scale: f64,
        weight_max: f64,
        delay_offset: f64,
        delay_step: f64,
        delay_min: f64,
        delay_max: f64,
        time_unit: f64,
    ) -> Result<Self> {
        // (name, value, lower bound, whether the bound itself is excluded); the offset may be
        // any finite number.
        for (name, v, low, strict) in [
            ("weight_scale", weight_scale, 0.0, true),
            ("weight_max", weight_max, 0.0, false),
            ("delay_offset", delay_offset, f64::NEG_INFINITY, true),
            ("delay_step", delay_step, 0.0, true),
            ("delay_min", delay_min, 0.0, false),
            ("delay_max", delay_max, 0.0, false),
            ("time_unit", time_unit, 0.0, true),
        ] {
            let ok = v.is_finite() && if strict { v > low } else { v >= low };
            if !ok {
                let want = match (low.is_finite(), strict) {
                    (false, _) => "a finite number".to_string(),
                    (true, true) => format!("a finite number > {low}"),
                    (true, false) => format!("a finite number >= {low}"),
                };
                return Err(Error::value(
                    format!("grid.{name}"),
                    format!("expected {want}, got {v}"),
                ));
            }
        }
        if delay_min > delay_max {
            return Err(Error::value(
                "grid.delay_min",
                format!("must be <= delay_max ({delay_max}), got {delay_min}"),
            ));
        }
        Ok(Grid {
            weight_scale,
            weight_max,
            delay_offset,
            delay_step,
            delay_min,
            delay_max,
            time_unit,
        })
    }

    /// The weight on the grid.
    pub fn weight(&self, w: f64) -> f64 {
        (w * self.weight_scale)
            .round_ties_even()
            .max(-self.weight_max)
            .min(self.weight_max)
            / self.weight_scale
    }

    /// The delay on the grid (model units).
    pub fn delay(&self, d: f64) -> f64 {
        let n = ((d * self.time_unit - self.delay_offset) / self.delay_step)
            .round_ties_even()
            .max(self.delay_min)
            .min(self.delay_max);
        (n * self.delay_step + self.delay_offset) / self.time_unit
    }

    /// `net` with every weight and delay on the grid (neurons unchanged).
    pub fn quantise(&self, net: &Network) -> Network {
        let mut q = net.clone();
        for layer in &mut q.layers {
            layer.w.as_mut_slice().iter_mut().for_each(|w| *w = self.weight(*w));
            let d = &mut layer.delays;
            let delays = [
                d.syn.as_mut().map(Matrix::as_mut_slice),
                d.axo.as_deref_mut(),
                d.den.as_deref_mut(),
            ];
            for v in delays.into_iter().flatten() {
                v.iter_mut().for_each(|x| *x = self.delay(*x));
            }
        }
        q
    }
}

/// The number of weights and delays in which two networks of the same layout and neuron
/// parameters differ (the entries a chip holding `old` rewrites for `new`); an error when the
/// layouts (sizes, delay kinds and groups) or the neuron parameters differ.
pub fn changed_entries(old: &Network, new: &Network) -> Result<usize> {
    let layout = |n: &Network| -> Vec<(usize, usize, usize, bool, bool, bool)> {
        n.layers
            .iter()
            .map(|l| {
                let d = &l.delays;
                (
                    l.n_out(),
                    l.n_in(),
                    d.group,
                    d.syn.is_some(),
                    d.axo.is_some(),
                    d.den.is_some(),
                )
            })
            .collect()
    };
    if layout(old) != layout(new) {
        return Err(Error::value(
            "network",
            "has another layout (sizes, delay kinds or groups) than the one on the chip",
        ));
    }
    if old
        .layers
        .iter()
        .zip(&new.layers)
        .any(|(a, b)| a.theta != b.theta || a.neuron != b.neuron)
    {
        return Err(Error::value(
            "network",
            "has other neuron parameters (thresholds, time constants) than the one on the chip",
        ));
    }
    let diff = |a: &[f64], b: &[f64]| a.iter().zip(b).filter(|(x, y)| x != y).count();
    let opt = |a: Option<&[f64]>, b: Option<&[f64]>| a.zip(b).map_or(0, |(a, b)| diff(a, b));
    Ok(old
        .layers
        .iter()
        .zip(&new.layers)
        .map(|(a, b)| {
            let (da, db) = (&a.delays, &b.delays);
            diff(a.w.as_slice(), b.w.as_slice())
                + opt(
                    da.syn.as_ref().map(Matrix::as_slice),
                    db.syn.as_ref().map(Matrix::as_slice),
                )
                + opt(da.axo.as_deref(), db.axo.as_deref())
                + opt(da.den.as_deref(), db.den.as_deref())
        })
        .sum())
}

/// One run of an emulated chip (the arguments of [`noisy_forward`](crate::hardware::noisy_forward) besides the network,
/// the inputs and the executor).
#[derive(Debug, Clone, Copy)]
pub struct Emulation<'a> {
    /// Input duplication of the first layer.
    pub repeat: usize,
    /// The placed fixed pattern per layer (None: a perfect chip).
    pub pattern: Option<&'a [LayerPattern]>,
    /// Temporal noise and read-out.
    pub noise: &'a NoiseParams,
    /// Seed of the temporal noise.
    pub seed: u64,
    /// Run counter (with `seed` the key of the run's noise).
    pub counter: u64,
}

/// What [`Trainer::emulated_epoch`] did: its steps and the chip's side of it.
#[derive(Debug, Clone)]
pub struct EmulatedEpoch {
    /// The report of every step, in order.
    pub steps: Vec<StepReport>,
    /// Stalled runs that were repeated.
    pub retries: u64,
    /// Input and recorded events lost on the link.
    pub dropped_events: u64,
    /// Entries the last configuration rewrote.
    pub written: usize,
    /// The network on the chip at the end.
    pub chip: Network,
    /// The last batch stalled on every attempt (the epoch stopped there, without its step).
    pub stalled: bool,
}

impl EmulatedEpoch {
    /// Configurations written: one per batch, that of a batch whose runs all stalled included.
    pub fn writes(&self) -> usize {
        self.steps.len() + usize::from(self.stalled)
    }

    /// Runs recorded, stalled ones included (the run counter advanced by this many): each batch's
    /// first run and its repeats.
    pub fn runs(&self) -> u64 {
        self.writes() as u64 + self.retries
    }
}

/// Totals of the steps of one epoch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EpochReport {
    /// Sample-weighted mean training loss.
    pub loss: f64,
    /// Fraction of training samples classified correctly (at the time of their step).
    pub accuracy: f64,
    /// Samples seen.
    pub samples: usize,
    /// Steps that bumped weights instead of updating.
    pub bumps: usize,
    /// Per layer, sample-weighted mean silent fraction.
    pub silent_fraction: Vec<f64>,
}

impl EpochReport {
    /// Folds one step into the totals.
    pub fn add(&mut self, r: &StepReport) {
        let (n0, n) = (self.samples as f64, r.batch as f64);
        let tot = n0 + n;
        self.loss = (self.loss * n0 + r.loss * n) / tot;
        self.accuracy = (self.accuracy * n0 + r.correct as f64) / tot;
        self.silent_fraction.resize(r.silent_fraction.len(), 0.0);
        for (a, f) in self.silent_fraction.iter_mut().zip(&r.silent_fraction) {
            *a = (*a * n0 + f * n) / tot;
        }
        self.samples += r.batch;
        self.bumps += usize::from(r.bumped.is_some());
    }
}
