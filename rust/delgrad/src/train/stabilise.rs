//! The two stabilisers of the reference recipe that act after the loss (docs/model.md,
//! "Stabilisers"): a non-finite loss ends training; when a layer is silent for more than its
//! bump limit, the step adds `bump` to the incoming weights of its silent neurons instead of
//! updating (doubling on consecutive bumps of one layer). The third, `max_dw_norm`, acts in the
//! backward pass.

use super::report::{StepReport, silent_fraction};
use super::trainer::{TensorKind, Trainer};
use crate::error::{Error, Result};
use crate::loss::LossReport;
use crate::matrix::Matrix;

impl Trainer {
    /// The checks after the loss: divergence is an error; weight bumping ends the step (no
    /// update, `None`); otherwise returns dL/dt of the batch-mean loss for the backward pass.
    pub(super) fn stabilise(
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
}
