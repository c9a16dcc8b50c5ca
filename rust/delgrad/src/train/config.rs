//! The hyperparameters of training and their checks.

use crate::delay::DelayParam;
use crate::error::{Error, Result};
use crate::gradient::GradientSlope;
use crate::loss::{Loss, SILENT_LOSS, TieRule};
use crate::optim::{AdamConfig, StepLr};
use crate::solver::Method;

/// Hyperparameters of training (docs/model.md, "Training"); [`TrainConfig::default`] is the
/// reference recipe for a network of two layers.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// The loss.
    pub loss: Loss,
    /// Loss of a silent sample (constant, zero gradient).
    pub silent_loss: f64,
    /// How a tie between the earliest output spikes is classified (accuracy and predictions).
    pub tie_rule: TieRule,
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
    /// Per layer, the largest tolerated fraction of silent (sample, neuron) entries (default:
    /// [`TrainConfig::default_bump_limits`]).
    pub bump_limits: Vec<f64>,
    /// How delays stay non-negative.
    pub delay_param: DelayParam,
    /// Solver method of the forward pass.
    pub method: Method,
    /// The slope the gradients at given (e.g. measured) times divide by.
    pub gradient_slope: GradientSlope,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            loss: Loss::mse(),
            silent_loss: SILENT_LOSS,
            tie_rule: TieRule::Wrong,
            lr_weights: 0.01,
            lr_delays: 0.003,
            schedule: StepLr::default(),
            adam: AdamConfig::default(),
            max_dw_norm: Some(0.2),
            bump: 5e-4,
            bump_limits: Self::default_bump_limits(2),
            delay_param: DelayParam::default(),
            method: Method::Auto,
            gradient_slope: GradientSlope::Measured,
        }
    }
}

impl TrainConfig {
    /// The reference bump limits of a network of `n_layers` layers: 0.3 for every hidden layer,
    /// 0 for the output layer (every output neuron must spike for every sample).
    pub fn default_bump_limits(n_layers: usize) -> Vec<f64> {
        let mut limits = vec![0.3; n_layers.saturating_sub(1)];
        limits.push(0.0);
        limits
    }

    /// Checks every field for a network of `n_layers` layers: the loss, the delay
    /// parametrisation, the schedule and Adam; `silent_loss` finite; learning rates and `bump`
    /// finite and >= 0; `max_dw_norm` finite and > 0 (or none); one bump limit in [0, 1] per layer.
    /// Errors name the field.
    pub fn validate(&self, n_layers: usize) -> Result<()> {
        if !self.silent_loss.is_finite() {
            return Err(Error::value(
                "silent_loss",
                format!("expected a finite number, got {}", self.silent_loss),
            ));
        }
        self.schedule.validate()?;
        self.adam.validate()?;
        // A limit is a fraction of the samples.
        if let Some(i) = self.bump_limits.iter().position(|v| !(0.0..=1.0).contains(v)) {
            return Err(Error::value(
                "bump_limits",
                format!("expected fractions in [0, 1]; entry {i} is {}", self.bump_limits[i]),
            ));
        }
        self.loss.validate()?;
        self.delay_param.validate()?;
        for (name, v) in [
            ("lr_weights", self.lr_weights),
            ("lr_delays", self.lr_delays),
            ("bump", self.bump),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::value(name, format!("expected a finite number >= 0, got {v}")));
            }
        }
        if self.bump_limits.len() != n_layers {
            return Err(Error::shape(
                "bump_limits",
                format!("[{n_layers}] (one per layer)"),
                format!("[{}]", self.bump_limits.len()),
            ));
        }
        if let Some(m) = self.max_dw_norm.filter(|m| !(m.is_finite() && *m > 0.0)) {
            return Err(Error::value(
                "max_dw_norm",
                format!("expected a finite number > 0 or none, got {m}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_checks_name_the_field() {
        TrainConfig::default().validate(2).unwrap();
        assert_eq!(TrainConfig::default_bump_limits(3), vec![0.3, 0.3, 0.0]);
        let bad = |c: TrainConfig| c.validate(2).unwrap_err().to_string();
        assert!(
            bad(TrainConfig {
                silent_loss: f64::NAN,
                ..TrainConfig::default()
            })
            .contains("silent_loss")
        );
        assert!(
            bad(TrainConfig {
                bump: -1.0,
                ..TrainConfig::default()
            })
            .contains("bump")
        );
        assert!(
            bad(TrainConfig {
                bump_limits: vec![0.3],
                ..TrainConfig::default()
            })
            .contains("bump_limits")
        );
        for limit in [1.5, -0.1, f64::NAN] {
            let e = bad(TrainConfig {
                bump_limits: vec![limit, 0.0],
                ..TrainConfig::default()
            });
            assert!(e.starts_with("bump_limits: expected fractions in [0, 1]"), "{e}");
        }
        let schedule = StepLr {
            step_size: 0,
            gamma: 0.95,
        };
        assert!(
            bad(TrainConfig {
                schedule,
                ..TrainConfig::default()
            })
            .contains("step_size")
        );
        let adam = AdamConfig {
            beta2: 1.0,
            ..AdamConfig::default()
        };
        assert!(
            bad(TrainConfig {
                adam,
                ..TrainConfig::default()
            })
            .contains("adam_beta2")
        );
    }
}
