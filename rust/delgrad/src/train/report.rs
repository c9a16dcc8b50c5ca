//! What training reports: one step ([`StepReport`]), one epoch's totals ([`EpochReport`]), an
//! evaluation ([`EvalReport`]).

use crate::matrix::Matrix;

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

impl StepReport {
    /// Fraction of the batch classified correctly (0 for an empty batch).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.batch.max(1) as f64
    }
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
    /// The totals of an epoch's steps, in order: loss = Σ_b n_b·loss_b / Σ_b n_b, accuracy =
    /// Σ_b correct_b / Σ_b n_b and each layer's silent fraction weighted like the loss (n_b: the
    /// batch sizes; an epoch without samples reports zeros).
    pub fn from_steps<'a>(steps: impl IntoIterator<Item = &'a StepReport>) -> Self {
        let mut sums = EpochSums::default();
        steps.into_iter().for_each(|r| sums.add(r));
        sums.report()
    }
}

/// The running sums of [`EpochReport::from_steps`]: a training epoch folds its steps in as they
/// come, without keeping them.
#[derive(Debug, Default)]
pub(crate) struct EpochSums {
    loss: f64,
    correct: usize,
    samples: usize,
    bumps: usize,
    silent: Vec<f64>,
}

impl EpochSums {
    /// Folds one step into the sums.
    pub(crate) fn add(&mut self, r: &StepReport) {
        let n = r.batch as f64;
        self.loss += r.loss * n;
        self.correct += r.correct;
        self.samples += r.batch;
        self.bumps += usize::from(r.bumped.is_some());
        self.silent.resize(self.silent.len().max(r.silent_fraction.len()), 0.0);
        for (s, f) in self.silent.iter_mut().zip(&r.silent_fraction) {
            *s += f * n;
        }
    }

    /// The sample-weighted means.
    pub(crate) fn report(self) -> EpochReport {
        let n = self.samples.max(1) as f64;
        EpochReport {
            loss: self.loss / n,
            accuracy: self.correct as f64 / n,
            samples: self.samples,
            bumps: self.bumps,
            silent_fraction: self.silent.into_iter().map(|s| s / n).collect(),
        }
    }
}

/// Per layer, the fraction of silent (sample, neuron) entries (+inf times).
pub(crate) fn silent_fraction(times: &[Matrix]) -> Vec<f64> {
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
