//! Chip-in-the-loop training on an emulated chip in the core: [`Trainer::emulated_step`] (one run
//! and the step at its recorded times, in one sweep over the samples) and
//! [`Trainer::emulated_epoch`] (the loop over an epoch's batches: write the quantised network,
//! run, repeat a stalled run, step); docs/hardware.md, "Chip-in-the-loop training".

use super::grid::{Grid, changed_entries};
use super::noise::NoiseParams;
use super::pattern::LayerPattern;
use super::run::{HwRun, Run, Scratch as RunScratch};
use crate::cancel;
use crate::error::{Error, Result};
use crate::forward::Scratch as ForwardScratch;
use crate::gradient::BackwardPlan;
use crate::loss::validate_labels;
use crate::matrix::Matrix;
use crate::network::Network;
use crate::parallel::Executor;
use crate::step::pass;
use crate::train::{StepReport, Trainer};

/// One run of an emulated chip (the arguments of [`noisy_forward`](super::noisy_forward) besides
/// the network, the inputs and the executor).
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

/// At which weights the host takes the gradient of a chip-in-the-loop step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GradientWeights {
    /// The quantised weights and delays the chip ran (straight-through to the float ones).
    #[default]
    Quantised,
    /// The trainer's float shadow weights and delays (the reference code's choice).
    Float,
}

impl GradientWeights {
    /// The names [`GradientWeights::from_name`] accepts, in the order of the variants.
    pub const NAMES: [&'static str; 2] = ["quantised", "float"];

    /// The choice's name: `"quantised"` or `"float"`.
    pub fn name(self) -> &'static str {
        match self {
            GradientWeights::Quantised => "quantised",
            GradientWeights::Float => "float",
        }
    }

    /// The choice called `name`; another name is an error naming `gradient_weights`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "quantised" => Ok(GradientWeights::Quantised),
            "float" => Ok(GradientWeights::Float),
            _ => Err(Error::option(
                "gradient_weights",
                format!("unknown gradient weights {name:?}; expected \"quantised\" or \"float\""),
            )),
        }
    }
}

/// The host side of [`Trainer::emulated_epoch`] besides the trainer's own configuration (whose
/// `gradient_slope` sets the slope): where the gradient is taken and whether the float shadow
/// weights are clamped after every step. The default is the project's recipe; docs/hardware.md,
/// "Chip-in-the-loop training", gives the reference code's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostRecipe {
    /// The weights of the gradient.
    pub gradient_weights: GradientWeights,
    /// Clamp the float shadow weights to the grid's range, [-`Grid::weight_limit`,
    /// `Grid::weight_limit`], after every step (update or bump).
    pub clamp_float_weights: bool,
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

impl Trainer {
    /// Chip-in-the-loop step on an emulated chip in one call: one run of
    /// [`noisy_forward`](super::noisy_forward) of `chip` (the network the chip holds: quantised
    /// weights and delays, nominal neurons) on the input groups `groups` (`[batch, n_groups]`, fed
    /// `repeat` times), then, unless the run stalled, [`Trainer::step_from_times_at`] at `at` with the
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
                format!("[{}, {}] (one row per input row)", groups.rows(), self.network().n_in()),
                format!("[{}, {}]", x.rows(), x.cols()),
            ));
        }
        // All input is checked before the run: a stalled run takes no step that would check it.
        self.check_x(x)?;
        validate_labels(&self.config().loss, labels, x.rows(), self.network().n_out())?;
        self.check_at(at)?;
        let e = emulation;
        let run = Run::new(chip, groups, e.repeat, e.pattern, e.noise, e.seed, e.counter)?;
        if run.stalled_from.is_some() {
            // No step: the caller repeats the run. Record what it has (its lost events).
            let mut run = run.forward(chip_exec)?;
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
        let cfg = self.config();
        let (pass, dropped_events) = pass(
            at,
            &bplan,
            x,
            labels,
            &cfg.loss,
            cfg.silent_loss,
            cfg.tie_rule,
            &opts,
            exec,
            record,
        )?;
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
    /// network on the chip (or, with [`GradientWeights::Float`], at the trainer's network),
    /// repeating a stalled run up to `max_retries` times with the next run counter, then, with
    /// `recipe.clamp_float_weights`, [`Trainer::clamp_weights`] to the grid's weight limit. `chip`
    /// is the network on the chip before the first batch (the layout and neurons of the trainer's
    /// network); `emulation.counter` is the counter of the first run. The same
    /// results as those calls one by one; stops after a batch whose runs all stalled. A cancelled
    /// epoch ([`cancel`](crate::cancel)) leaves the trainer as it was before the call.
    #[allow(clippy::too_many_arguments)]
    pub fn emulated_epoch(
        &mut self,
        chip: &Network,
        grid: &Grid,
        emulation: &Emulation<'_>,
        recipe: &HostRecipe,
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
        self.network().validate_times("x", x, self.network().n_in())?;
        validate_labels(&self.config().loss, labels, labels.len(), self.network().n_out())?;
        if groups.rows() != x.rows() || labels.len() != x.rows() {
            return Err(Error::shape(
                "groups/x/labels",
                "the same number of rows".to_string(),
                format!("{}/{}/{}", groups.rows(), x.rows(), labels.len()),
            ));
        }
        self.undone_if_cancelled(|tr| {
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
                cancel::check()?;
                let end = (start + batch).min(x.rows());
                let q = grid.quantise(tr.network());
                out.written = changed_entries(&out.chip, &q)?;
                out.chip = q;
                let (gb, xb, yb) = (rows(groups, start, end)?, rows(x, start, end)?, &labels[start..end]);
                let at = match recipe.gradient_weights {
                    GradientWeights::Quantised => None,
                    GradientWeights::Float => Some(tr.network().clone()),
                };
                let mut report = None;
                for attempt in 0..=max_retries {
                    let at = at.as_ref().unwrap_or(&out.chip);
                    let (run, step) = tr.emulated_step(&out.chip, &e, &gb, at, &xb, yb, epoch, chip_exec, exec)?;
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
                if recipe.clamp_float_weights {
                    tr.clamp_weights(grid.weight_limit())?;
                }
                out.steps.push(r);
            }
            Ok(out)
        })
    }
}
