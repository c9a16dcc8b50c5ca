//! The postsynaptic potential kernel of the current-based LIF neuron with exponential
//! synapses, and the solver regime its time constants select.
//!
//! kappa(s) = (e^{-s/tau_m} - e^{-s/tau_s}) / (1/tau_s - 1/tau_m) for s > 0, 0 otherwise
//! (kappa(s) = s e^{-s/tau} when tau_m == tau_s). Units: C_m = 1, times in the units of
//! the time constants.

use crate::error::{Error, Result};
use crate::range;

/// Which closed form (if any) solves for the first threshold crossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regime {
    /// tau_m == tau_s: Lambert W0 closed form.
    Equal,
    /// tau_m == 2 tau_s: quadratic in x = e^{-t/tau_m}.
    Double,
    /// Any other ratio: bracketed root finding.
    General,
}

/// Membrane and synaptic time constants of a layer's neurons.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neuron {
    tau_m: f64,
    tau_s: f64,
    /// delta = 1/tau_s - 1/tau_m, the rate difference the kernel is built on.
    delta: f64,
    regime: Regime,
}

impl Neuron {
    /// Validates `tau_m`, `tau_s` (within [`range::MIN`], [`range::MAX`], their ratio within
    /// [`range::MAX_TAU_RATIO`]) and picks the regime by exact ratio.
    pub fn new(tau_m: f64, tau_s: f64) -> Result<Self> {
        for (name, v) in [("tau_m", tau_m), ("tau_s", tau_s)] {
            if !range::positive_in_range(v) {
                return Err(Error::value(
                    name,
                    format!(
                        "expected a finite number in [{:e}, {:e}], got {v}",
                        range::MIN,
                        range::MAX
                    ),
                ));
            }
        }
        if (tau_m / tau_s).max(tau_s / tau_m) > range::MAX_TAU_RATIO {
            return Err(Error::value(
                "tau_s",
                format!(
                    "tau_m / tau_s must lie within [{:e}, {:e}]; got tau_m = {tau_m}, tau_s = {tau_s}",
                    1.0 / range::MAX_TAU_RATIO,
                    range::MAX_TAU_RATIO
                ),
            ));
        }
        let regime = if tau_m == tau_s {
            Regime::Equal
        } else if tau_m == 2.0 * tau_s {
            Regime::Double
        } else {
            Regime::General
        };
        let delta = if regime == Regime::Equal {
            0.0
        } else {
            1.0 / tau_s - 1.0 / tau_m
        };
        Ok(Neuron {
            tau_m,
            tau_s,
            delta,
            regime,
        })
    }

    /// Membrane time constant.
    pub fn tau_m(&self) -> f64 {
        self.tau_m
    }

    /// Synaptic time constant.
    pub fn tau_s(&self) -> f64 {
        self.tau_s
    }

    /// The regime selected by tau_m / tau_s.
    pub fn regime(&self) -> Regime {
        self.regime
    }

    /// delta = 1/tau_s - 1/tau_m (0 in the equal regime).
    pub(crate) fn delta(&self) -> f64 {
        self.delta
    }

    /// kappa(s) for s > 0, written as e^{-s/tau_max} (1 - e^{-|delta| s}) / |delta| so that it
    /// neither cancels for tau_m ~ tau_s nor overflows for large s; s e^{-s/tau} when equal.
    #[inline]
    pub fn kappa(&self, s: f64) -> f64 {
        if s <= 0.0 {
            return 0.0;
        }
        match self.regime {
            Regime::Equal => s * (-s / self.tau_m).exp(),
            _ => {
                let tau_max = self.tau_m.max(self.tau_s);
                let d = self.delta.abs();
                (-s / tau_max).exp() * (-(-d * s).exp_m1()) / d
            }
        }
    }

    /// (kappa(s), kappa'(s)) with kappa'(s) = e^{-s/tau_s} - kappa(s)/tau_m (the membrane ODE
    /// du/dt = -u/tau_m + I with unit synaptic current); (0, 0) for s <= 0.
    #[inline]
    pub fn kappa_and_slope(&self, s: f64) -> (f64, f64) {
        if s <= 0.0 {
            return (0.0, 0.0);
        }
        match self.regime {
            Regime::Equal => equal_from_decay(self.tau_m, s, (-s / self.tau_m).exp()),
            Regime::Double => {
                let x = (-s / self.tau_m).exp();
                let k = self.tau_m * x * (-(-s / self.tau_m).exp_m1());
                (k, x * x - k / self.tau_m)
            }
            Regime::General => {
                let k = self.kappa(s);
                (k, (-s / self.tau_s).exp() - k / self.tau_m)
            }
        }
    }
}

/// tau_m = tau_s = tau: (kappa(s), kappa'(s)) for s >= 0 from the decay x = e^{-s/tau}, with no
/// further exp: kappa = s x, kappa' = x (1 - s/tau) (potential per unit weight, and per unit time).
#[inline(always)]
pub(crate) fn equal_from_decay(tau: f64, s: f64, x: f64) -> (f64, f64) {
    (s * x, x * (1.0 - s / tau))
}

/// tau_m = 2 tau_s: (kappa(s), kappa'(s)) for s >= 0 from the decay x = e^{-s/tau_m}, with no
/// further exp: kappa = tau_m x (1 - x), kappa' = x (2x - 1).
#[inline(always)]
pub(crate) fn double_from_decay(tau_m: f64, x: f64) -> (f64, f64) {
    (tau_m * x * (1.0 - x), x * (2.0 * x - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kappa_direct(tm: f64, ts: f64, s: f64) -> f64 {
        ((-s / tm).exp() - (-s / ts).exp()) / (1.0 / ts - 1.0 / tm)
    }

    #[test]
    fn regimes_are_chosen_by_exact_ratio() {
        assert_eq!(Neuron::new(1.0, 1.0).unwrap().regime(), Regime::Equal);
        assert_eq!(Neuron::new(2.0, 1.0).unwrap().regime(), Regime::Double);
        assert_eq!(Neuron::new(1.7, 0.6).unwrap().regime(), Regime::General);
        assert_eq!(Neuron::new(1.0, 1.02).unwrap().regime(), Regime::General);
    }

    #[test]
    fn bad_time_constants_are_errors() {
        for (tm, ts) in [(0.0, 1.0), (1.0, -1.0), (f64::NAN, 1.0), (1.0, f64::INFINITY)] {
            assert!(Neuron::new(tm, ts).is_err());
        }
    }

    #[test]
    fn kappa_matches_definition_in_all_regimes() {
        for (tm, ts) in [(2.0, 1.0), (1.7, 0.6), (0.6, 1.7), (1.0, 1.03)] {
            let n = Neuron::new(tm, ts).unwrap();
            // Taylor series for tiny s, where the definition itself cancels.
            let s = 1e-6;
            let series = s - 0.5 * s * s * (1.0 / tm + 1.0 / ts);
            assert!((n.kappa(s) - series).abs() <= 1e-12 * s);
            for s in [0.1, 1.0, 3.0, 10.0] {
                let want = kappa_direct(tm, ts, s);
                let (k, _) = n.kappa_and_slope(s);
                assert!(
                    (n.kappa(s) - want).abs() <= 1e-12 * want.abs().max(1e-300),
                    "{tm} {ts} {s}"
                );
                assert!((k - want).abs() <= 1e-12 * want.abs().max(1e-300));
            }
        }
        let n = Neuron::new(1.5, 1.5).unwrap();
        assert!((n.kappa(2.0) - 2.0 * (-2.0f64 / 1.5).exp()).abs() < 1e-15);
    }

    #[test]
    fn slope_matches_finite_difference() {
        for (tm, ts) in [(1.0, 1.0), (2.0, 1.0), (1.7, 0.6), (0.6, 1.7)] {
            let n = Neuron::new(tm, ts).unwrap();
            for s in [0.05, 0.7, 2.5] {
                let h = 1e-6;
                let fd = (n.kappa(s + h) - n.kappa(s - h)) / (2.0 * h);
                assert!((n.kappa_and_slope(s).1 - fd).abs() < 1e-8);
            }
        }
    }

    #[test]
    fn decay_forms_match_the_kernel() {
        let (equal, double) = (Neuron::new(1.3, 1.3).unwrap(), Neuron::new(2.6, 1.3).unwrap());
        // (1 - x in the double form cancels for tiny s: the backward pass's s are not tiny.)
        for s in [1e-3, 0.3, 1.0, 4.0, 30.0] {
            let pairs = [
                (equal.kappa_and_slope(s), equal_from_decay(1.3, s, (-s / 1.3f64).exp())),
                (double.kappa_and_slope(s), double_from_decay(2.6, (-s / 2.6f64).exp())),
            ];
            for ((k, d), (kx, dx)) in pairs {
                assert!(
                    (k - kx).abs() <= 1e-12 * k && (d - dx).abs() <= 1e-12 * d.abs().max(1e-9),
                    "{s}"
                );
            }
        }
    }

    #[test]
    fn near_equal_time_constants_approach_the_equal_kernel() {
        let n = Neuron::new(1.0, 1.0 + 1e-12).unwrap();
        let e = Neuron::new(1.0, 1.0).unwrap();
        for s in [0.1, 1.0, 5.0, 800.0] {
            assert!((n.kappa(s) - e.kappa(s)).abs() <= 1e-10 * e.kappa(s).max(1e-300));
        }
        assert_eq!(n.kappa(0.0), 0.0);
        assert_eq!(n.kappa(-1.0), 0.0);
        assert!(n.kappa(1e6).is_finite());
    }
}
