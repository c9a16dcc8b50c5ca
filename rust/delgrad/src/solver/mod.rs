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

mod general;
pub(crate) use general::{Kernel, first_spike_general};

/// How crossings are solved on each interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Closed forms where the regime has one (Lambert W0, quadratic); otherwise the current and
    /// potential scan of `general` (two transcendentals per interval, Halley on the crossing one).
    #[default]
    Auto,
    /// Bracketing and safeguarded Newton in every regime (a reference for the closed forms).
    Bracket,
}

/// Rounding can place a crossing a hair before the interval that holds it; tolerate that much.
const START_TOLERANCE: f64 = 1e-12;

/// Relative margin of [`never_reaches`]: far above the rounding of kappa_max and of the sum, so
/// the shortcut only ever skips neurons that are silent in exact arithmetic.
const BOUND_MARGIN: f64 = 1e-9;

/// The peak of the kernel, kappa_max = kappa(s*) at s* = ln(1 + delta tau_m)/delta (s* = tau_m
/// when delta = 0; tau_m ln 2 at tau_m = 2 tau_s), in potential per unit weight.
pub(crate) fn kappa_max(neuron: &Neuron) -> f64 {
    let (tm, d) = (neuron.tau_m(), neuron.delta());
    let s = if d == 0.0 { tm } else { (d * tm).ln_1p() / d };
    neuron.kappa(s)
}

/// Whether u(t) = sum w kappa(t - a) <= kappa_max sum_{w > 0} w stays below theta at every t
/// (with [`BOUND_MARGIN`]): then the neuron is silent and needs no scan. O(n), no exp; it catches
/// the weakly driven neurons that would otherwise pay two transcendentals per interval.
#[inline]
pub(crate) fn never_reaches(theta: f64, kappa_max: f64, arrivals: &[(f64, f64)]) -> bool {
    let excitation: f64 = arrivals.iter().map(|x| x.1.max(0.0)).sum();
    excitation * kappa_max * (1.0 + BOUND_MARGIN) < theta
}

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
    pub fn crossing(&self, neuron: &Neuron, theta: f64, len: f64) -> Option<f64> {
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
    if arrivals.is_empty() {
        return f64::INFINITY;
    }
    match (method, neuron.regime()) {
        (Method::Auto, Regime::Double) => scan_double(neuron.tau_m(), theta, arrivals),
        (Method::Auto, Regime::Equal) => scan_equal(neuron.tau_m(), theta, arrivals),
        (Method::Auto, Regime::General) => first_spike_general(&Kernel::quick(neuron), theta, arrivals),
        (Method::Bracket, _) => scan_general(neuron, theta, arrivals),
    }
}

/// Calls `visit(r, w, len)` for each group of simultaneous arrivals: r is their time, w their summed
/// weight and len the length of the interval they open (+inf for the last); stops at the first
/// `Some` that `visit` returns.
#[inline]
fn scan_intervals(arrivals: &[(f64, f64)], mut visit: impl FnMut(f64, f64, f64) -> Option<f64>) -> f64 {
    let n = arrivals.len();
    let mut i = 0;
    while i < n {
        let r = arrivals[i].0;
        let mut w = 0.0;
        // Simultaneous arrivals open no interval between them (and rounding may put a hair
        // of disorder into equal sums: treat a later-sorted, earlier-valued one as simultaneous).
        while i < n && arrivals[i].0 <= r {
            w += arrivals[i].1;
            i += 1;
        }
        let len = if i < n { arrivals[i].0 - r } else { f64::INFINITY };
        if let Some(t) = visit(r, w, len) {
            return t;
        }
    }
    f64::INFINITY
}

/// Generic scan for any ratio: the interval state of [`IntervalState`], bracketed crossings.
fn scan_general(neuron: &Neuron, theta: f64, arrivals: &[(f64, f64)]) -> f64 {
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

/// tau_m == 2 tau_s in x = e^{-(t - r)/tau_m}: u = a2 x - a1 x^2 (a1 = A tau_m, a2 = A tau_m - B). The
/// interval end is x_L = e^{-L/tau_m}, also the factor that moves the state on (a1 x_L^2, a2 x_L),
/// so each interval costs one exp; the log is taken only for the crossing found.
fn scan_double(tm: f64, theta: f64, arrivals: &[(f64, f64)]) -> f64 {
    let (mut a1, mut a2) = (0.0f64, 0.0f64);
    scan_intervals(arrivals, |r, w, len| {
        a1 += w * tm;
        a2 += w * tm;
        let x_end = if len.is_finite() { (-len / tm).exp() } else { 0.0 };
        if a2 > 0.0 || a1 < 0.0 {
            let disc = a2 * a2 - 4.0 * a1 * theta;
            if disc >= 0.0 {
                let root = disc.sqrt();
                let x = if a1 > 0.0 {
                    (a2 > 0.0).then(|| (a2 + root) / (2.0 * a1))
                } else {
                    let den = a2 + root;
                    (den > 0.0).then(|| 2.0 * theta / den)
                };
                if let Some(x) = x.filter(|&x| x >= x_end && x <= 1.0 + START_TOLERANCE) {
                    return Some(r - tm * x.min(1.0).ln());
                }
            }
        }
        a1 *= x_end * x_end;
        a2 *= x_end;
        None
    })
}

/// tau_m == tau_s = tau: u = e^{-s/tau} (A s - B) peaks at s_p = tau + B/A with u_p = A tau e^{-s_p/tau}.
/// u reaches theta on [0, L] iff its maximum there does: u(L) = x_L (A L - B) when the peak lies
/// beyond L (no exp beyond x_L, which also moves the state on), else u_p. The crossing is then
/// s = s_p - tau (1 + W0(-theta / (e u_p))).
fn scan_equal(tau: f64, theta: f64, arrivals: &[(f64, f64)]) -> f64 {
    let (mut a, mut b) = (0.0f64, 0.0f64);
    scan_intervals(arrivals, |r, w, len| {
        a += w;
        let x_end = if len.is_finite() { (-len / tau).exp() } else { 0.0 };
        if a > 0.0 {
            let s_peak = tau + b / a;
            // A peak at or after the interval end: the maximum on [0, L] is u(L).
            let candidate = s_peak > 0.0 && (s_peak < len || x_end * (a * len - b) >= theta);
            if candidate {
                let u_peak = a * tau * (-s_peak / tau).exp();
                if u_peak >= theta {
                    let z = -(theta / u_peak) * (-1.0f64).exp();
                    if let Some(w0) = lambert_w0_checked(z) {
                        let s = s_peak - tau * (1.0 + w0);
                        if s <= len && s >= -START_TOLERANCE * tau {
                            return Some(r + s.max(0.0));
                        }
                    }
                }
            }
        }
        // After complete decay (x_end = 0) len * a may overflow; the state is simply empty.
        b = if x_end == 0.0 { 0.0 } else { x_end * (b - len * a) };
        a *= x_end;
        None
    })
}
