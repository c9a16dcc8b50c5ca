//! The bracketing reference scan ([`Method::Bracket`](super::Method::Bracket)), for any ratio
//! tau_m / tau_s: a relative interval state and, on the interval that holds the crossing, monotone
//! brackets solved by safeguarded Newton. Slower than the per-regime scans and independent of
//! their closed forms, so it checks them.
//!
//! On the interval starting at the n-th arrival r (inputs sorted by arrival a), with s = t - r,
//! the potential has the closed form
//!
//! u(s) = A kappa(s) - B e^{-s/tau_m},  A = sum w e^{(a-r)/tau_s},  B = sum w e^{(a-r)/tau_m} h(a-r),
//!
//! with h(x) = (e^{delta x} - 1)/delta, delta = 1/tau_s - 1/tau_m (h(x) = x when delta = 0). Moving the
//! reference from r to r + D gives A <- e^{-D/tau_s} A and B <- e^{-D/tau_m} B - kappa(D) A, so the scan
//! is O(1) per arrival and every exponent stays <= 0 (no overflow for huge delays).

use super::scan_intervals;
use crate::kernel::{Neuron, Regime};

/// The potential on one interval: u(s) = a kappa(s) - b e^{-s/tau_m}.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct IntervalState {
    /// A = sum w e^{(a - r)/tau_s}.
    a: f64,
    /// B = sum w e^{(a - r)/tau_m} h(a - r).
    b: f64,
}

impl IntervalState {
    /// Moves the reference time forward by `d` >= 0.
    #[inline]
    fn advance(&mut self, neuron: &Neuron, d: f64) {
        let tm = neuron.tau_m();
        match neuron.regime() {
            Regime::Equal => {
                let x = (-d / tm).exp();
                // After complete decay (x = 0) d * a may overflow; the state is simply empty.
                self.b = if x == 0.0 { 0.0 } else { x * (self.b - d * self.a) };
                self.a *= x;
            }
            Regime::Double => {
                let x = (-d / tm).exp();
                self.b = x * self.b - tm * x * (-(-d / tm).exp_m1()) * self.a;
                self.a *= x * x;
            }
            Regime::General => {
                self.b = (-d / tm).exp() * self.b - neuron.kappa(d) * self.a;
                self.a *= (-d / neuron.tau_s()).exp();
            }
        }
    }

    /// u(s) relative to the interval start.
    #[inline]
    fn potential(&self, neuron: &Neuron, s: f64) -> f64 {
        self.a * neuron.kappa(s) - self.b * (-s / neuron.tau_m()).exp()
    }

    /// du/ds.
    #[inline]
    fn slope(&self, neuron: &Neuron, s: f64) -> f64 {
        let (_, dk) = neuron.kappa_and_slope(s);
        let dk = if s <= 0.0 { 1.0 } else { dk };
        self.a * dk + self.b * (-s / neuron.tau_m()).exp() / neuron.tau_m()
    }

    /// The single critical point of u in s > 0 (if any), where u'(s) = 0:
    /// e^{delta s} = (1 + delta tau_m) / (1 - delta B/A), written with ln_1p so that delta -> 0
    /// gives tau_m + B/A.
    fn critical_point(&self, neuron: &Neuron) -> Option<f64> {
        if self.a == 0.0 {
            return None;
        }
        let q = self.b / self.a;
        let s = if neuron.delta() == 0.0 {
            neuron.tau_m() + q
        } else {
            let dl = neuron.delta();
            let ratio = -dl * q;
            if ratio <= -1.0 {
                return None;
            }
            ((dl * neuron.tau_m()).ln_1p() - ratio.ln_1p()) / dl
        };
        (s.is_finite() && s > 0.0).then_some(s)
    }

    /// The first s in [0, len] with u(s) = theta, if any (u(0) < theta is assumed).
    fn crossing(&self, neuron: &Neuron, theta: f64, len: f64) -> Option<f64> {
        if self.a <= 0.0 && self.b >= 0.0 {
            return None; // u <= 0 on the whole interval
        }
        self.crossing_bracket(neuron, theta, len)
    }

    /// Any ratio: u has at most one critical point s*, so [0, s*] and [s*, len] are monotone
    /// brackets; the first one whose end reaches theta holds the crossing.
    fn crossing_bracket(&self, neuron: &Neuron, theta: f64, len: f64) -> Option<f64> {
        let f = |s: f64| self.potential(neuron, s) - theta;
        if f(0.0) >= 0.0 {
            return Some(0.0);
        }
        let mut lo = 0.0;
        let ends = [
            self.critical_point(neuron).filter(|&c| c < len),
            len.is_finite().then_some(len),
        ];
        for hi in ends.into_iter().flatten() {
            if f(hi) >= 0.0 {
                return Some(self.solve_monotone(neuron, theta, lo, hi));
            }
            lo = hi;
        }
        None
    }

    /// Safeguarded Newton on [lo, hi] with f(lo) < 0 <= f(hi) and f increasing: Newton steps that
    /// leave the bracket become bisections; stops at machine precision.
    fn solve_monotone(&self, neuron: &Neuron, theta: f64, mut lo: f64, mut hi: f64) -> f64 {
        let mut x = 0.5 * (lo + hi);
        for _ in 0..super::MAX_STEPS {
            let fx = self.potential(neuron, x) - theta;
            if fx == 0.0 {
                return x;
            }
            if fx < 0.0 {
                lo = x;
            } else {
                hi = x;
            }
            let df = self.slope(neuron, x);
            let newton = x - fx / df;
            let next = if df > 0.0 && newton > lo && newton < hi {
                newton
            } else {
                0.5 * (lo + hi)
            };
            if (next - x).abs() <= 4.0 * f64::EPSILON * x.abs().max(f64::MIN_POSITIVE) || next <= lo || next >= hi {
                return if fx < 0.0 { next.clamp(lo, hi) } else { x };
            }
            x = next;
        }
        x
    }
}

/// First-spike time by the bracketing reference: arrivals sorted by time, all finite; +inf if
/// u never reaches theta.
pub(super) fn first_spike(neuron: &Neuron, theta: f64, arrivals: &[(f64, f64)]) -> f64 {
    let mut st = IntervalState::default();
    scan_intervals(arrivals, |r, w, len| {
        st.a += w;
        let hit = st.crossing(neuron, theta, len).map(|s| r + s);
        if hit.is_none() && len.is_finite() {
            st.advance(neuron, len);
        }
        hit
    })
}
