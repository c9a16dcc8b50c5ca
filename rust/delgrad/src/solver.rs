//! First threshold crossing of one neuron, scanning its inter-arrival intervals in time order.
//!
//! On the interval starting at the n-th arrival r (inputs sorted by arrival a), with s = t - r,
//! the potential has the closed form
//!
//! u(s) = A kappa(s) - B e^{-s/tau_m},  A = sum w e^{(a-r)/tau_s},  B = sum w e^{(a-r)/tau_m} h(a-r),
//!
//! with h(x) = (e^{delta x} - 1)/delta, delta = 1/tau_s - 1/tau_m (h(x) = x when delta = 0). Moving the
//! reference from r to r + D gives A <- e^{-D/tau_s} A and B <- e^{-D/tau_m} B - kappa(D) A, so the scan
//! is O(1) per arrival and every exponent stays <= 0 (no overflow for huge delays). The first interval
//! whose crossing lies inside it holds the spike: a later interval can only give a later time.

use crate::kernel::{Neuron, Regime};
use crate::lambertw::lambert_w0_checked;

/// How crossings are solved on each interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Closed forms where the regime has one (Lambert W0, quadratic), bracketing otherwise.
    #[default]
    Auto,
    /// Bracketing and safeguarded Newton in every regime (a reference for the closed forms).
    Bracket,
}

/// Rounding can place a crossing a hair before the interval that holds it; tolerate that much.
const START_TOLERANCE: f64 = 1e-12;

/// The potential on one interval: u(s) = a kappa(s) - b e^{-s/tau_m}.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IntervalState {
    /// A = sum w e^{(a - r)/tau_s}.
    pub a: f64,
    /// B = sum w e^{(a - r)/tau_m} h(a - r).
    pub b: f64,
}

impl IntervalState {
    /// Moves the reference time forward by `d` >= 0.
    #[inline]
    pub fn advance(&mut self, neuron: &Neuron, d: f64) {
        let tm = neuron.tau_m();
        match neuron.regime() {
            Regime::Equal => {
                let x = (-d / tm).exp();
                self.b = x * (self.b - d * self.a);
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
    pub fn potential(&self, neuron: &Neuron, s: f64) -> f64 {
        self.a * neuron.kappa(s) - self.b * (-s / neuron.tau_m()).exp()
    }

    /// du/ds.
    #[inline]
    pub fn slope(&self, neuron: &Neuron, s: f64) -> f64 {
        let (_, dk) = neuron.kappa_and_slope(s);
        let dk = if s <= 0.0 { 1.0 } else { dk };
        self.a * dk + self.b * (-s / neuron.tau_m()).exp() / neuron.tau_m()
    }

    /// The single critical point of u in s > 0 (if any): solves A tau_m e^{-s/tau_s}... i.e.
    /// e^{delta s} = (tau_m/tau_s) / (1 - delta B/A), written with ln_1p so that delta -> 0 gives tau_m + B/A.
    pub fn critical_point(&self, neuron: &Neuron) -> Option<f64> {
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
    pub fn crossing(&self, neuron: &Neuron, theta: f64, len: f64, method: Method) -> Option<f64> {
        if self.a <= 0.0 && self.b >= 0.0 {
            return None; // u <= 0 on the whole interval
        }
        let s = match (method, neuron.regime()) {
            (Method::Auto, Regime::Equal) => self.crossing_lambert(neuron, theta),
            (Method::Auto, Regime::Double) => self.crossing_quadratic(neuron, theta),
            _ => return self.crossing_bracket(neuron, theta, len),
        }?;
        if s < 0.0 {
            return (s >= -START_TOLERANCE * neuron.tau_m()).then_some(0.0);
        }
        (s <= len).then_some(s)
    }

    /// tau_m == tau_s = tau: u = A e^{-s/tau} (s - q), q = B/A. With v = s - q,
    /// (-v/tau) e^{-v/tau} = -(theta/(A tau)) e^{q/tau} =: z, so s = q - tau W0(z) (the rising root).
    fn crossing_lambert(&self, neuron: &Neuron, theta: f64) -> Option<f64> {
        let tau = neuron.tau_m();
        if self.a <= 0.0 {
            return None;
        }
        let q = self.b / self.a;
        if q + tau < 0.0 {
            return None; // peak before the interval: u falls throughout
        }
        let z = -(theta / (self.a * tau)) * (q / tau).exp();
        let w = lambert_w0_checked(z)?;
        Some(q - tau * w)
    }

    /// tau_m == 2 tau_s: with x = e^{-s/tau_m}, kappa = tau_m (x - x^2), so u = A2 x - A1 x^2 with
    /// A1 = A tau_m, A2 = A tau_m - B; the earliest crossing is the largest root x of
    /// A1 x^2 - A2 x + theta = 0, taken in the form that does not cancel.
    fn crossing_quadratic(&self, neuron: &Neuron, theta: f64) -> Option<f64> {
        let tm = neuron.tau_m();
        let a1 = self.a * tm;
        let a2 = a1 - self.b;
        let disc = a2 * a2 - 4.0 * a1 * theta;
        if disc < 0.0 {
            return None;
        }
        let root = disc.sqrt();
        let x = if a1 > 0.0 {
            if a2 <= 0.0 {
                return None;
            }
            (a2 + root) / (2.0 * a1)
        } else {
            let den = a2 + root;
            if den <= 0.0 {
                return None;
            }
            2.0 * theta / den
        };
        Some(-tm * x.ln())
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
        for _ in 0..200 {
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

/// First-spike time of a neuron with threshold `theta` given its inputs as (arrival time, weight)
/// pairs, sorted by arrival time, all finite; +inf if u never reaches theta.
pub fn first_spike(neuron: &Neuron, theta: f64, arrivals: &[(f64, f64)], method: Method) -> f64 {
    let Some(&(mut r, _)) = arrivals.first() else {
        return f64::INFINITY;
    };
    let mut st = IntervalState::default();
    let n = arrivals.len();
    let mut i = 0;
    while i < n {
        let (a, w) = arrivals[i];
        if a > r {
            st.advance(neuron, a - r);
            r = a;
        }
        st.a += w;
        i += 1;
        if i < n && arrivals[i].0 == r {
            continue; // simultaneous arrivals open no interval between them
        }
        let len = if i < n { arrivals[i].0 - r } else { f64::INFINITY };
        if let Some(s) = st.crossing(neuron, theta, len, method) {
            return r + s;
        }
    }
    f64::INFINITY
}
