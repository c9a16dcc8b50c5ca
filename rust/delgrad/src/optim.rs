//! Adam with bias correction (PyTorch semantics) and the StepLR schedule.

use crate::error::{Error, Result};

/// Adam hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Decay of the first-moment average (0.9).
    pub beta1: f64,
    /// Decay of the second-moment average (0.999).
    pub beta2: f64,
    /// Denominator floor (1e-8).
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl AdamConfig {
    /// Checks that the betas are in [0, 1) and eps is finite and > 0; errors name the training
    /// options (`adam_beta1`, `adam_beta2`, `adam_eps`).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("adam_beta1", self.beta1), ("adam_beta2", self.beta2)] {
            if !(v.is_finite() && (0.0..1.0).contains(&v)) {
                return Err(Error::value(name, format!("expected a number in [0, 1), got {v}")));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::value(
                "adam_eps",
                format!("expected a finite number > 0, got {}", self.eps),
            ));
        }
        Ok(())
    }
}

/// Adam state of one parameter tensor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Adam {
    /// First-moment estimate m.
    pub m: Vec<f64>,
    /// Second-moment estimate v.
    pub v: Vec<f64>,
    /// Number of steps taken.
    pub t: u64,
}

impl Adam {
    /// Fresh state for `n` parameters.
    pub fn new(n: usize) -> Self {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// One step: m <- b1 m + (1-b1) g, v <- b2 v + (1-b2) g^2,
    /// p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
    pub fn step(&mut self, params: &mut [f64], grad: &[f64], lr: f64, cfg: &AdamConfig) {
        self.t += 1;
        let t = i32::try_from(self.t).unwrap_or(i32::MAX);
        let c1 = 1.0 - cfg.beta1.powi(t);
        let c2 = (1.0 - cfg.beta2.powi(t)).sqrt();
        for (((p, g), m), v) in params.iter_mut().zip(grad).zip(&mut self.m).zip(&mut self.v) {
            *m = cfg.beta1 * *m + (1.0 - cfg.beta1) * g;
            *v = cfg.beta2 * *v + (1.0 - cfg.beta2) * g * g;
            *p -= (lr / c1) * *m / (v.sqrt() / c2 + cfg.eps);
        }
    }
}

/// StepLR: lr(epoch) = lr0 * gamma^floor(epoch / step_size).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLr {
    /// Epochs between decays (20).
    pub step_size: usize,
    /// Decay factor (0.95).
    pub gamma: f64,
}

impl Default for StepLr {
    fn default() -> Self {
        StepLr {
            step_size: 20,
            gamma: 0.95,
        }
    }
}

impl StepLr {
    /// Checks that `gamma` is finite and > 0 and `step_size` >= 1; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if !(self.gamma.is_finite() && self.gamma > 0.0) {
            return Err(Error::value(
                "gamma",
                format!("expected a finite number > 0, got {}", self.gamma),
            ));
        }
        if self.step_size == 0 {
            return Err(Error::value("step_size", "expected an integer >= 1"));
        }
        Ok(())
    }

    /// The learning rate in `epoch` (0-based) for base rate `lr0`.
    pub fn lr(&self, lr0: f64, epoch: usize) -> f64 {
        let k = epoch / self.step_size.max(1);
        lr0 * self.gamma.powi(i32::try_from(k).unwrap_or(i32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_adam_step_moves_by_lr_against_the_gradient_sign() {
        let mut a = Adam::new(2);
        let mut p = [1.0, 1.0];
        a.step(&mut p, &[0.5, -3.0], 0.1, &AdamConfig::default());
        assert!((p[0] - 0.9).abs() < 1e-6 && (p[1] - 1.1).abs() < 1e-6);
        assert_eq!(a.t, 1);
    }

    #[test]
    fn step_lr_decays_every_step_size_epochs() {
        let s = StepLr::default();
        assert_eq!(s.lr(1.0, 19), 1.0);
        assert!((s.lr(1.0, 20) - 0.95).abs() < 1e-15);
        assert!((s.lr(2.0, 45) - 2.0 * 0.95f64.powi(2)).abs() < 1e-15);
    }
}
