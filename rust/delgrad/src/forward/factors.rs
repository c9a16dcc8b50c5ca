//! Exponential factors e^{(t - R)/tau_m} relative to a reference time R: the factored decays of
//! one layer's scan carried to the next layer and to the backward pass (one exp per time, then
//! products and reciprocals).

use crate::solver::rise;

/// Exponential factors of one layer's scan relative to its reference time R (model units), for
/// what comes after it: the next layer's scan (its rise factors are 1/fall of this one) and the
/// backward pass (which would otherwise compute both again, with an exp each). Filled for
/// synaptic layers with factored scans.
#[derive(Default)]
pub(crate) struct Factors {
    /// Reference time R, no later than any input.
    pub(crate) r: f64,
    /// The layer's tau_m (factors only carry over between equal time constants).
    pub(crate) tau_m: f64,
    /// e^{(t_i - R)/tau_m} per input, 0 for silent inputs; empty when not computed.
    pub(crate) rise: Vec<f64>,
    /// e^{-(t_k - R)/tau_m} per neuron, 0 for silent neurons, NaN where unknown; empty when not
    /// computed.
    pub(crate) fall: Vec<f64>,
    /// Every neuron has its fall: none unknown, and positive and finite for every spike (tracked
    /// as they are written, instead of a pass over them in each user).
    pub(crate) complete: bool,
}

impl Factors {
    pub(super) fn clear(&mut self) {
        self.rise.clear();
        self.fall.clear();
        self.complete = false;
    }

    /// Rise factors of the next layer's inputs (this layer's spikes) from this layer's falls,
    /// e^{(t_k - R)/tau_m} = 1/X_k with the same R, when every spiking neuron has its X_k.
    pub(super) fn carries_over(&self, t: &[f64], tau_m: f64) -> bool {
        self.complete && self.fall.len() == t.len() && self.tau_m == tau_m
    }
}

/// Rise factors e^{(t - R)/tau_m} of a sequence of input times, 0 for silent inputs; equal
/// neighbours (the copies of a duplicated input, which arrive together) share one exp. With
/// R = 0 and delays for times, the decays e^{d/tau_m} of `plan::decay_factors`.
pub(crate) struct RiseFactor {
    r: f64,
    tau_m: f64,
    /// The last time and its factor.
    last: (f64, f64),
}

impl RiseFactor {
    /// Factors relative to the reference time `r` with time constant `tau_m`.
    pub(crate) fn new(r: f64, tau_m: f64) -> Self {
        RiseFactor {
            r,
            tau_m,
            last: (f64::NAN, 0.0),
        }
    }

    /// e^{(t - R)/tau_m} of the next time `t` (0 if `t` is not finite).
    #[inline]
    pub(crate) fn at(&mut self, t: f64) -> f64 {
        if t != self.last.0 {
            let x = if t.is_finite() {
                rise(t, self.r, self.tau_m)
            } else {
                0.0
            };
            self.last = (t, x);
        }
        self.last.1
    }
}

/// A neuron's fall X is known and usable: positive and finite for a spike at `t`, 0 if silent.
#[inline]
pub(super) fn has_factor(t: f64, x: f64) -> bool {
    if t.is_finite() {
        x > 0.0 && x.is_finite()
    } else {
        x == 0.0
    }
}
