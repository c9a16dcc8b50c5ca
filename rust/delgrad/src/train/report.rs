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
