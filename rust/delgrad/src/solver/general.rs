//! The first-spike scan for any ratio tau_m/tau_s (the general regime) in O(1) per interval.
//!
//! The state at the start r of an interval is the synaptic current I (= sum w e^{-(r-a)/tau_s},
//! C_m = 1) and the potential V = u(r). With s = t - r the membrane ODE du/ds = -u/tau_m + I e^{-s/tau_s}
//! gives
//!
//! u(s) = I kappa(s) + V x(s),  u'(s) = I y(s) - u(s)/tau_m,  u''(s) = -I y(s)/tau_s - u'(s)/tau_m,
//!
//! with x = e^{-s/tau_m}, y = e^{-s/tau_s} and kappa(s) = (x - y)/delta, delta = 1/tau_s - 1/tau_m.
//! The values at the interval end L are also the next state (I <- I y(L), V <- u(L)), so each interval
//! costs one exp and a short series (at most two transcendentals, [`Kernel::at`]), and every exponent
//! is <= 0 (no overflow). u has at most one critical point, so with u(0) < theta the interval holds
//! the crossing iff u(L) >= theta, or u rises at 0, falls at L and its peak at s* reaches theta; s*
//! solves e^{-delta s*} = (1 + delta V/I)/(1 + delta tau_m). Only that interval is handed to the root
//! finder (Halley steps safeguarded by bisection, to machine precision, started at the root of the
//! cubic through u and u' at the interval ends). A neuron whose positive weights times the kernel
//! peak stay below theta is silent without a scan (`never_reaches`).

use super::{never_reaches, scan_intervals};
use crate::kernel::Neuron;

/// Below this |delta| s the fast decay is z (1 - |delta| s phi(|delta| s)) (exact to rounding while
/// that factor is >= 1/2); above it both decays are taken directly and kappa = (x - y)/delta cancels
/// at most one bit.
const EXPM1_RANGE: f64 = std::f64::consts::LN_2;

/// Below this |delta| s, phi is summed as a series instead of calling expm1 (with 3% tau mismatch
/// nearly every interval).
const SERIES_RANGE: f64 = 0.125;

/// phi(x) = (1 - e^{-x})/x for 0 <= x < `SERIES_RANGE`: sum_{n<=9} (-x)^n/(n+1)! by Horner; the
/// remainder is below x^10/11! < 2.3e-17 (relative, phi >= 0.94).
#[inline]
fn phi_series(x: f64) -> f64 {
    const C: [f64; 10] = [
        1.0,
        -1.0 / 2.0,
        1.0 / 6.0,
        -1.0 / 24.0,
        1.0 / 120.0,
        -1.0 / 720.0,
        1.0 / 5040.0,
        -1.0 / 40320.0,
        1.0 / 362880.0,
        -1.0 / 3628800.0,
    ];
    C.iter().rev().fold(0.0, |acc, &c| acc * x + c)
}

/// The per-neuron constants of the general-regime kernel (times in model units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Kernel {
    tau_m: f64,
    inv_tau_m: f64,
    inv_tau_s: f64,
    /// 1 / max(tau_m, tau_s): the slow decay z = e^{-s/tau_max}.
    inv_tau_slow: f64,
    /// 1 / min(tau_m, tau_s).
    inv_tau_fast: f64,
    /// delta = 1/tau_s - 1/tau_m (1/model unit).
    delta: f64,
    /// |delta|.
    abs_delta: f64,
    /// tau_m >= tau_s: x is the slow decay.
    membrane_slow: bool,
    /// ln(1 + delta tau_m), the critical-point term that does not depend on the state.
    ln_peak: f64,
    /// An upper bound on the peak of kappa for [`never_reaches`]: the peak itself from
    /// [`Kernel::new`], min(tau_m, tau_s) from [`Kernel::quick`].
    kappa_max: f64,
}

/// x = e^{-s/tau_m}, y = e^{-s/tau_s} and kappa(s) at one s >= 0.
#[derive(Debug, Clone, Copy)]
struct Decays {
    x: f64,
    y: f64,
    k: f64,
}

impl Kernel {
    /// The constants of `neuron` with the exact kernel peak (three transcendentals; for kernels
    /// used for many scans).
    #[cfg(any(feature = "hardware", test))] // the emulated chip's scans
    pub(crate) fn new(neuron: &Neuron) -> Self {
        Kernel {
            kappa_max: super::kappa_max(neuron),
            ..Self::quick(neuron)
        }
    }

    /// The constants with the cheap bound kappa <= min(tau_m, tau_s), for a single scan: kappa(s)
    /// is the integral over r in [0, s] of e^{-(s-r)/tau_m} e^{-r/tau_s}, and dropping either
    /// factor (<= 1) leaves an integral below tau_s or tau_m.
    pub(crate) fn quick(neuron: &Neuron) -> Self {
        let (tm, ts) = (neuron.tau_m(), neuron.tau_s());
        let delta = 1.0 / ts - 1.0 / tm;
        Kernel {
            tau_m: tm,
            inv_tau_m: 1.0 / tm,
            inv_tau_s: 1.0 / ts,
            inv_tau_slow: 1.0 / tm.max(ts),
            inv_tau_fast: 1.0 / tm.min(ts),
            delta,
            abs_delta: delta.abs(),
            membrane_slow: tm >= ts,
            ln_peak: (delta * tm).ln_1p(),
            kappa_max: tm.min(ts),
        }
    }

    /// The decays at s >= 0 (finite). kappa = z s phi(|delta| s) with the slow decay z and
    /// phi(x) = (1 - e^{-x})/x, which neither cancels for tau_m ~ tau_s nor overflows (phi(0) = 1).
    #[inline]
    fn at(&self, s: f64) -> Decays {
        let z = (-s * self.inv_tau_slow).exp();
        let ds = self.abs_delta * s;
        let (fast, k) = if ds < EXPM1_RANGE {
            let phi = if ds < SERIES_RANGE {
                phi_series(ds)
            } else {
                -(-ds).exp_m1() / ds
            };
            (z * (1.0 - ds * phi), z * s * phi)
        } else {
            let f = (-s * self.inv_tau_fast).exp();
            (f, (z - f) / self.abs_delta)
        };
        let (x, y) = if self.membrane_slow { (z, fast) } else { (fast, z) };
        Decays { x, y, k }
    }

    /// The critical point s* > 0 of u with current `i` > 0 and potential `v` at s = 0, if any.
    #[inline]
    fn critical_point(&self, i: f64, v: f64) -> Option<f64> {
        let s = if self.delta == 0.0 {
            // 1/tau_s and 1/tau_m round to the same number: the tau_m = tau_s limit
            self.tau_m - v / i
        } else {
            let q = self.delta * v / i;
            if q <= -1.0 {
                return None;
            }
            (self.ln_peak - q.ln_1p()) / self.delta
        };
        (s.is_finite() && s > 0.0).then_some(s)
    }
}

/// The state of one interval: current `i` and potential `v` at its start.
#[derive(Debug, Clone, Copy)]
struct State {
    i: f64,
    v: f64,
}

/// u and its first three derivatives at one s.
#[derive(Debug, Clone, Copy)]
struct Derivatives {
    u: f64,
    du: f64,
    d2u: f64,
    d3u: f64,
}

impl State {
    /// u, u', u'', u''' at s (u^(n+1) = (-1/tau_s)^n I y - u^(n)/tau_m).
    #[inline]
    fn eval(&self, kn: &Kernel, s: f64) -> Derivatives {
        let d = kn.at(s);
        let u = self.i * d.k + self.v * d.x;
        let iy = self.i * d.y;
        let du = iy - u * kn.inv_tau_m;
        let d2u = -iy * kn.inv_tau_s - du * kn.inv_tau_m;
        let d3u = iy * kn.inv_tau_s * kn.inv_tau_s - d2u * kn.inv_tau_m;
        Derivatives { u, du, d2u, d3u }
    }

    /// The crossing u(s) = theta in [lo, hi], where u - theta changes sign exactly once from < 0
    /// (at lo) to >= 0 (at hi), starting at `x0`: Halley steps, bisection when a step leaves the
    /// bracket or the slope is not positive. Stops when a step is below 4 ulp, or after a Halley
    /// step h (|h| <= |root|) whose predicted error K h^3, K = (f''/2f')^2 - f'''/6f', is below an
    /// ulp of the root (saves the evaluation that would only confirm convergence).
    fn solve(&self, kn: &Kernel, theta: f64, mut lo: f64, mut hi: f64, x0: f64) -> f64 {
        let mut x = if x0 > lo && x0 < hi { x0 } else { 0.5 * (lo + hi) };
        for _ in 0..super::MAX_STEPS {
            let Derivatives { u, du, d2u, d3u } = self.eval(kn, x);
            let f = u - theta;
            if f == 0.0 {
                return x;
            }
            if f < 0.0 {
                lo = x;
            } else {
                hi = x;
            }
            // Halley: x - 2 f f' / (2 f'^2 - f f''); plain Newton where that denominator is not
            // safely positive.
            let den = 2.0 * du * du - f * d2u;
            let halley = du > 0.0 && den > du * du;
            let step = if halley { 2.0 * f * du / den } else { f / du };
            let newton = x - step;
            let inside = du > 0.0 && newton > lo && newton < hi;
            let next = if inside { newton } else { 0.5 * (lo + hi) };
            if (next - x).abs() <= 4.0 * f64::EPSILON * x.abs().max(f64::MIN_POSITIVE) || next <= lo || next >= hi {
                return if f < 0.0 { next.clamp(lo, hi) } else { x };
            }
            if inside && halley {
                let r = d2u / (2.0 * du);
                let k = (r * r - d3u / (6.0 * du)).abs();
                // |step| small against the curvature scale keeps the cubic error model valid, and
                // |step| <= |next| bounds the rounding of x - step by an ulp of the root (a step
                // from far away, after a bisection of a huge bracket, cancels digits the model
                // does not see).
                let model = (step * r).abs() <= 1e-3;
                if model
                    && 4.0 * k * (step * step * step).abs() <= f64::EPSILON * next.abs()
                    && step.abs() <= next.abs()
                {
                    return next;
                }
            }
            x = next;
        }
        x
    }
}

/// First-spike time of a general-regime neuron (threshold `theta` > 0) from (arrival, weight)
/// pairs sorted by arrival; +inf if u never reaches theta.
pub(crate) fn first_spike_general(kn: &Kernel, theta: f64, arrivals: &[(f64, f64)]) -> f64 {
    if never_reaches(theta, kn.kappa_max, arrivals) {
        return f64::INFINITY;
    }
    let tm = kn.tau_m;
    let mut st = State { i: 0.0, v: 0.0 };
    scan_intervals(arrivals, |r, w, len| {
        st.i += w;
        if st.v >= theta {
            return Some(r); // only when theta <= 0 (or rounding) puts u(0) at threshold
        }
        if len.is_finite() {
            let d = kn.at(len);
            let (i_end, v_end) = (st.i * d.y, st.i * d.k + st.v * d.x);
            let hit = if v_end >= theta {
                let (d0, d1) = (st.i - st.v * kn.inv_tau_m, i_end - v_end * kn.inv_tau_m);
                let x0 = hermite_root(len, st.v - theta, d0, v_end - theta, d1);
                Some(r + st.solve(kn, theta, 0.0, len, x0))
            } else if st.i * tm > st.v && i_end * tm <= v_end {
                // (<=: after a long interval both ends underflow to 0 with the peak inside.)
                peak_crossing(kn, &st, theta, len).map(|s| r + s)
            } else {
                None
            };
            st = State { i: i_end, v: v_end };
            hit
        } else if st.i * tm > st.v {
            peak_crossing(kn, &st, theta, f64::INFINITY).map(|s| r + s)
        } else {
            None
        }
    })
}

/// The crossing before the peak s* < `len` of u when it reaches theta (u rises at 0).
fn peak_crossing(kn: &Kernel, st: &State, theta: f64, len: f64) -> Option<f64> {
    if st.i <= 0.0 {
        return None;
    }
    let peak = kn.critical_point(st.i, st.v)?.min(len);
    let at_peak = st.eval(kn, peak);
    if at_peak.u < theta {
        return None;
    }
    let d0 = st.i - st.v * kn.inv_tau_m;
    let x0 = hermite_root(peak, st.v - theta, d0, at_peak.u - theta, at_peak.du);
    Some(st.solve(kn, theta, 0.0, peak, x0))
}

/// A start for the root finder on [0, len] from f = u - theta at the ends (f0 < 0 <= f1) and the
/// slopes d0, d1 there (free from the scan): the root of the cubic Hermite interpolant, by Newton
/// from the secant point in tau = s/len, p(tau) = f0 + c1 tau + c2 tau^2 + c3 tau^3. Its error is
/// O(len^4 u''''), so the exact iteration starts a few digits from the crossing.
#[inline]
fn hermite_root(len: f64, f0: f64, d0: f64, f1: f64, d1: f64) -> f64 {
    let (a, b) = (len * d0, len * d1);
    let (c1, c2, c3) = (a, 3.0 * (f1 - f0) - 2.0 * a - b, 2.0 * (f0 - f1) + a + b);
    let mut t = f0 / (f0 - f1);
    for _ in 0..2 {
        let p = f0 + t * (c1 + t * (c2 + t * c3));
        let dp = c1 + t * (2.0 * c2 + 3.0 * t * c3);
        let next = t - p / dp;
        if !(dp > 0.0 && next > 0.0 && next < 1.0) {
            break;
        }
        t = next;
    }
    t * len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::{Method, first_spike};

    /// Deterministic cases: single and several inputs, inhibition, equal arrival times.
    const CASES: &[&[(f64, f64)]] = &[
        &[(0.1, 1.5)],
        &[(0.1, 0.7), (0.3, 0.7), (0.3, -0.2), (1.2, 2.0)],
        &[(0.0, -1.0), (0.5, 3.0), (0.6, 0.1)],
        &[(0.2, 0.4), (0.9, 0.4), (1.7, 0.4), (2.5, 0.4)],
        &[(0.0, 5.0), (0.01, -4.9), (3.0, 0.1)],
        &[(0.0, 1.0), (0.0, 1.0), (0.0, -0.5), (2.0, 0.0), (40.0, 3.0)],
    ];

    fn close(got: f64, want: f64, tol: f64) -> bool {
        got == want || (got - want).abs() <= tol * want.abs().max(1.0)
    }

    #[test]
    fn closed_forms_at_ratio_one_and_two() {
        // The general scan run on the exact ratios 2 and 1 (delta = 0) against the closed forms.
        for (tm, ts) in [(2.0, 1.0), (1.0, 0.5), (1.0, 1.0), (1.5, 1.5)] {
            let n = Neuron::new(tm, ts).unwrap();
            let kn = Kernel::new(&n);
            for pairs in CASES {
                for theta in [0.05, 0.3, 1.0, 2.6] {
                    let want = first_spike(&n, theta, pairs, Method::Auto);
                    let got = first_spike_general(&kn, theta, pairs);
                    assert!(close(got, want, 1e-12), "{tm} {ts} {theta} {pairs:?}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn agrees_with_the_bracketed_scan() {
        for (tm, ts) in [
            (1.7, 0.6),
            (0.6, 1.7),
            (1.0, 1.03),
            (1.0, 1.0 + 1e-9),
            (2.0, 1.0 + 1e-7),
            (5.0, 0.2),
        ] {
            let n = Neuron::new(tm, ts).unwrap();
            for pairs in CASES {
                for theta in [0.05, 0.3, 1.0, 2.6] {
                    let want = first_spike(&n, theta, pairs, Method::Bracket);
                    let got = first_spike(&n, theta, pairs, Method::Auto);
                    assert!(close(got, want, 1e-12), "{tm} {ts} {theta} {pairs:?}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn kappa_max_is_the_peak_and_bounds_tightly() {
        for (tm, ts) in [
            (1.7, 0.6),
            (0.6, 1.7),
            (1.0, 1.03),
            (1.0, 1.0 + 1e-12),
            (2.0, 1.0),
            (1.0, 1.0),
        ] {
            let n = Neuron::new(tm, ts).unwrap();
            let km = crate::solver::kappa_max(&n);
            assert!(Kernel::quick(&n).kappa_max >= km && Kernel::new(&n).kappa_max == km);
            let grid = (1..=100_000)
                .map(|j| n.kappa(10.0 * j as f64 / 100_000.0))
                .fold(0.0, f64::max);
            assert!(km >= grid && km <= grid * (1.0 + 1e-8), "{tm} {ts}: {km} vs {grid}");
            // one input: just above the bound it spikes (at the peak), just below it is silent
            for method in [Method::Auto, Method::Bracket] {
                assert!(first_spike(&n, km * (1.0 - 1e-7), &[(0.0, 1.0)], method).is_finite());
                assert!(first_spike(&n, km * (1.0 + 1e-7), &[(0.0, 1.0)], method).is_infinite());
            }
        }
    }

    #[test]
    fn phi_series_matches_expm1() {
        for j in 0..=1000 {
            let x = SERIES_RANGE * j as f64 / 1000.0;
            let want = if x == 0.0 { 1.0 } else { -(-x).exp_m1() / x };
            assert!((phi_series(x) - want).abs() <= 2.0 * f64::EPSILON, "{x}");
        }
    }

    #[test]
    fn decays_match_the_kernel() {
        for (tm, ts) in [(1.7, 0.6), (0.6, 1.7), (1.0, 1.03), (1.0, 1.0 + 1e-12)] {
            let n = Neuron::new(tm, ts).unwrap();
            let kn = Kernel::new(&n);
            for s in [
                0.0, 1e-9, 0.1, 0.69, 0.7, 1.0, 2.0, 3.0, 4.0, 10.0, 17.0, 30.0, 800.0, 1e6,
            ] {
                let d = kn.at(s);
                let (k, _) = n.kappa_and_slope(s);
                assert!(close(d.k, k, 1e-14) || (d.k - k).abs() < 1e-300, "{tm} {ts} {s}");
                assert!(close(d.x, (-s / tm).exp(), 1e-14), "{tm} {ts} {s}");
                assert!(close(d.y, (-s / ts).exp(), 1e-14), "{tm} {ts} {s}");
            }
        }
    }

    #[test]
    fn critical_point_is_where_the_slope_vanishes() {
        for (tm, ts) in [(1.7, 0.6), (0.6, 1.7), (1.0, 1.03), (1.0, 1.0)] {
            let kn = Kernel::new(&Neuron::new(tm, ts).unwrap());
            for (i, v) in [(1.0, 0.0), (2.0, 0.5), (0.5, -0.1)] {
                let st = State { i, v };
                let s = kn.critical_point(i, v).unwrap_or_else(|| panic!("{tm} {ts} {i} {v}"));
                let d = st.eval(&kn, s);
                assert!(d.du.abs() < 1e-14 * i && d.d2u < 0.0, "{tm} {ts} {i} {v}: {}", d.du);
            }
        }
    }
}
