//! The trainer: its tensors and their Adam state, the steps (fused forward + backward, or at
//! given times, e.g. recorded on a chip), epochs and evaluation.

use super::config::TrainConfig;
use super::report::{EpochReport, EpochSums, EvalReport, StepReport, silent_fraction};
use crate::cancel;
use crate::delay::{DelayKind, DelayParam, Delays};
use crate::error::{Error, Result};
use crate::forward::forward;
use crate::gradient::{BackwardOptions, GradientSlope, Gradients, backward};
use crate::loss::evaluate;
use crate::matrix::Matrix;
use crate::network::Network;
use crate::optim::Adam;
use crate::parallel::Executor;
use crate::step::{Pass, forward_backward};

/// What a trainable tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorKind {
    /// Weights `[n_out, n_in]`.
    Weights,
    /// A delay kind (its trained parameter p, d = param(p)).
    Delay(DelayKind),
}

impl TensorKind {
    /// The kind's name: `w`, `d_syn`, `d_axo` or `d_den`.
    pub fn name(self) -> &'static str {
        match self {
            TensorKind::Weights => "w",
            TensorKind::Delay(DelayKind::Synaptic) => "d_syn",
            TensorKind::Delay(DelayKind::Axonal) => "d_axo",
            TensorKind::Delay(DelayKind::Dendritic) => "d_den",
        }
    }

    /// The kind called `name` (see [`TensorKind::name`]); other names are an error naming `kind`.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "w" => TensorKind::Weights,
            "d_syn" => TensorKind::Delay(DelayKind::Synaptic),
            "d_axo" => TensorKind::Delay(DelayKind::Axonal),
            "d_den" => TensorKind::Delay(DelayKind::Dendritic),
            _ => {
                return Err(Error::option(
                    "kind",
                    format!("unknown tensor kind {name:?}; expected w, d_syn, d_axo or d_den"),
                ));
            }
        })
    }
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

/// Trains a network with Adam, StepLR and the reference stabilisers.
#[derive(Debug, Clone)]
pub struct Trainer {
    pub(super) net: Network,
    pub(super) config: TrainConfig,
    /// The trainable tensors, layer by layer: weights, then present delay kinds.
    pub tensors: Vec<Tensor>,
    /// The bump to apply next (doubles on consecutive bumps of one layer).
    pub bump: f64,
    /// The layer bumped by the previous step, if it bumped.
    pub last_bumped: Option<usize>,
}

impl Trainer {
    /// A trainer for `net`; delay parameters are recovered from the network's delays.
    pub fn new(net: Network, config: TrainConfig) -> Result<Self> {
        net.validate()?;
        config.validate(net.layers.len())?;
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
    pub(super) fn sync(&mut self) {
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

    /// Checks a step's inputs `x` (`[batch >= 1, n_in]`, times not NaN or -inf).
    pub(crate) fn check_x(&self, x: &Matrix) -> Result<()> {
        self.net.validate_times("x", x, self.net.n_in())?;
        if x.rows() == 0 {
            return Err(Error::shape("x", "[batch >= 1, n_in]", format!("[0, {}]", x.cols())));
        }
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
        self.check_x(x)?;
        let opts = self.backward_options(false);
        let cfg = &self.config;
        let pass = forward_backward(
            &self.net,
            x,
            labels,
            &cfg.loss,
            cfg.silent_loss,
            cfg.tie_rule,
            &opts,
            exec,
        )?;
        self.conclude(pass, epoch)
    }

    /// Ends a step whose gradients a fused pass computed ahead of the stabilisers: they are
    /// applied unless the stabilisers end the step (weight bumping), as after
    /// [`stabilise`](Self::stabilise) in a separate backward pass.
    pub(crate) fn conclude(&mut self, pass: Pass, epoch: usize) -> Result<StepReport> {
        // The last point where a cancelled step changes nothing.
        cancel::check()?;
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
    pub(crate) fn check_at(&self, at: &Network) -> Result<()> {
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
        self.check_x(x)?;
        let out = times
            .last()
            .ok_or_else(|| Error::shape("times", "one matrix per layer", "none"))?;
        let cfg = &self.config;
        let report = evaluate(&cfg.loss, out, labels, cfg.silent_loss, false, cfg.tie_rule)?;
        let (bump, last_bumped) = (self.bump, self.last_bumped);
        match self.stabilise(times, report, epoch)? {
            (step, Some(dl_dt)) => {
                let net = at.unwrap_or(&self.net);
                let grads = match backward(net, x, times, &dl_dt, &self.backward_options(true), exec) {
                    Ok(grads) => grads,
                    Err(e) => {
                        // A step that fails (or is cancelled) in the backward pass changes nothing.
                        (self.bump, self.last_bumped) = (bump, last_bumped);
                        return Err(e);
                    }
                };
                self.update(step, &grads, epoch)
            }
            (step, None) => Ok(step),
        }
    }

    /// The backward pass's options (`given`: the times are given, e.g. recorded on a chip; only
    /// then does the configured [`GradientSlope`] apply: at the model's own times u = theta).
    pub(crate) fn backward_options(&self, given: bool) -> BackwardOptions {
        BackwardOptions {
            max_dw_norm: self.config.max_dw_norm,
            check_given_times: given,
            method: self.config.method,
            slope: if given {
                self.config.gradient_slope
            } else {
                GradientSlope::Measured
            },
        }
    }

    /// Clamps every trained weight to [-limit, limit] (e.g. the largest weight a chip's grid
    /// represents, so that the float shadow weights stay where a change still reaches the chip);
    /// delays are left as they are. `limit` must be finite and >= 0.
    pub fn clamp_weights(&mut self, limit: f64) -> Result<()> {
        if !(limit.is_finite() && limit >= 0.0) {
            return Err(Error::value(
                "limit",
                format!("expected a finite number >= 0, got {limit}"),
            ));
        }
        for t in self.tensors.iter_mut().filter(|t| t.kind == TensorKind::Weights) {
            t.values.iter_mut().for_each(|w| *w = w.clamp(-limit, limit));
        }
        self.sync();
        Ok(())
    }

    /// Records the gradients' counts in the report and takes the Adam step.
    fn update(&mut self, mut step: StepReport, grads: &Gradients, epoch: usize) -> Result<StepReport> {
        step.invalid = grads.invalid.clone();
        step.clipped = grads.clipped.clone();
        self.apply(grads, epoch)?;
        Ok(step)
    }

    /// The Adam step of every tensor (delay parameters through the slope of the parametrisation);
    /// a non-finite gradient is an error before any tensor changes.
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
        self.net.validate_times("x", x, self.net.n_in())?;
        let times = forward(&self.net, x, self.config.method, exec)?;
        let out = times.last().ok_or_else(|| Error::value("network", "no layers"))?;
        let cfg = &self.config;
        let r = evaluate(&cfg.loss, out, labels, cfg.silent_loss, false, cfg.tie_rule)?;
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
    /// rows, e.g. `RandomState::permutation`); returns the totals of its steps
    /// ([`EpochReport::from_steps`]).
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
        self.net.validate_times("x", x, self.net.n_in())?;
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
        self.undone_if_cancelled(|tr| {
            let mut sums = EpochSums::default();
            for chunk in order.chunks(batch) {
                cancel::check()?;
                let mut xb = Vec::with_capacity(chunk.len() * x.cols());
                chunk.iter().for_each(|&i| xb.extend_from_slice(x.row(i)));
                let xb = Matrix::from_vec("x", chunk.len(), x.cols(), xb)?;
                let yb: Vec<usize> = chunk.iter().map(|&i| labels[i]).collect();
                sums.add(&tr.step(&xb, &yb, epoch, exec)?);
            }
            Ok(sums.report())
        })
    }

    /// Runs `f` (a loop of steps); if it is cancelled ([`cancel`]), also once it has finished,
    /// the trainer is restored to what it was before (a copy is taken only inside a
    /// [`Cancel::scope`](crate::cancel::Cancel::scope)): a cancelled epoch changes nothing.
    pub(crate) fn undone_if_cancelled<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        let before = cancel::cancellable().then(|| self.clone());
        let r = f(self).and_then(|r| cancel::check().map(|()| r));
        if let (Err(Error::Cancelled), Some(before)) = (&r, before) {
            *self = before;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_kind_names_round_trip() {
        let kinds = [
            TensorKind::Weights,
            TensorKind::Delay(DelayKind::Synaptic),
            TensorKind::Delay(DelayKind::Axonal),
            TensorKind::Delay(DelayKind::Dendritic),
        ];
        for k in kinds {
            assert_eq!(TensorKind::from_name(k.name()).unwrap(), k);
        }
        let e = TensorKind::from_name("bias").unwrap_err().to_string();
        assert!(e.starts_with("option kind: unknown tensor kind"), "{e}");
    }
}
