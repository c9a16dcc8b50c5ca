//! First-spike scans on factored decays: the closed-form regimes without an exp per interval.
//!
//! With a reference time R no later than any arrival and E_i = e^{(a_i - R)/tau_m} (computed once per
//! input and delay as a product, see `forward`), the potential after the arrivals a_1..a_n is, with
//! X = e^{-(t - R)/tau_m},
//!
//! - tau_m = 2 tau_s: u = tau_m (P X - Q X^2), P = sum w E, Q = sum w E^2 — a quadratic in X;
//! - tau_m = tau_s = tau: u = X ((t - R) S - T), S = sum w E, T = sum w E (a - R) — Lambert W0.
//!
//! Interval ends are X = 1/E_n, so the scan costs a few multiplications per arrival; exp and log
//! are taken only for the crossing found. These are the same equations as the relative-state scans
//! of `solver` scaled by E_n. Where the sums could overflow (see [`applies`]) the caller uses
//! `solver::first_spike`, which never does.

use crate::kernel::{Neuron, Regime};
use crate::lambertw::lambert_w0_checked;

/// Largest (a - R)/tau_m for which the factors E = e^{(a - R)/tau_m} are used (E <= e^{150}).
pub(crate) const MAX_SPAN: f64 = 150.0;

/// Bound on |sums| and on theta, tau_m that keeps every product of the scans finite (all stay
/// below 1e230), so the scans need no overflow checks.
const SAFE: f64 = 1e100;

/// Rounding can place a crossing a hair before the interval that holds it; tolerate that much.
const START_TOLERANCE: f64 = 1e-12;

/// One input of a neuron: arrival time a (model units), weight w and factor e = e^{(a - R)/tau_m}.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Arrival {
    pub a: f64,
    pub w: f64,
    pub e: f64,
}

/// The factored scan of `neuron` with threshold `theta` is safe for inputs whose weights have
/// absolute sum `w_abs` and whose factors are at most `e_max` when it is a closed-form regime and
/// every sum (<= w_abs e_max^2) and parameter is within [`SAFE`]:
/// `within_bound(weight_bound(neuron, theta, w_abs), e_max)`.
///
/// The per-neuron part (fixed for a batch): `w_abs` where the regime and the parameters allow the
/// factored scan, +inf where they do not.
pub(crate) fn weight_bound(neuron: &Neuron, theta: f64, w_abs: f64) -> f64 {
    let tm = neuron.tau_m();
    let ok =
        neuron.regime() != Regime::General && (1.0 / SAFE..=SAFE).contains(&tm) && theta <= SAFE && theta / tm <= SAFE;
    if ok { w_abs } else { f64::INFINITY }
}

/// The per-sample part of the test of [`weight_bound`]: every sum (<= bound e_max^2) within
/// [`SAFE`].
#[inline]
pub(crate) fn within_bound(bound: f64, e_max: f64) -> bool {
    bound * e_max * e_max <= SAFE
}

/// First-spike time t from arrivals sorted by `a`, all >= `r0`, with factors e = e^{(a - r0)/tau_m},
/// and its own factor X = e^{-(t - r0)/tau_m} (the next layer's and the backward pass's, for
/// free from the scan); (+inf, 0) if u never reaches theta. Only where [`weight_bound`] allows it.
///
/// With `exists_only` the scan stops at the interval whose maximum reaches theta and returns its
/// start (finite: the neuron spikes) and X = NaN, without solving for the crossing.
pub(crate) fn first_spike_factored(
    neuron: &Neuron,
    theta: f64,
    arrivals: &[Arrival],
    r0: f64,
    exists_only: bool,
) -> (f64, f64) {
    match neuron.regime() {
        Regime::Double => scan_double(neuron.tau_m(), theta, arrivals, r0, exists_only),
        _ => scan_equal(neuron.tau_m(), theta, arrivals, r0, exists_only),
    }
}

/// The interval that arrival `i` opens: (end, E_end) of the next arrival, +inf after the last;
/// `None` when the next arrival is simultaneous (sorted, so `end <= a` means equal): then no
/// interval lies between them and the scan adds the next one before testing.
#[inline(always)]
fn interval_end(arrivals: &[Arrival], i: usize) -> Option<(f64, f64)> {
    match arrivals.get(i + 1) {
        Some(next) if next.a <= arrivals[i].a => None,
        Some(next) => Some((next.a, next.e)),
        None => Some((f64::INFINITY, f64::INFINITY)),
    }
}

/// tau_m = 2 tau_s: the largest root X of Q X^2 - P X + theta/tau_m = 0 with
/// 1/E_end <= X <= 1/E_start is the crossing in the interval; t = R - tau_m ln X.
///
/// The crossing lies in the interval iff the maximum of u over it reaches theta (u is below theta
/// at its start): u at its end, or at the vertex X_v = P/(2Q) when that lies inside (then the test
/// is P^2 >= 4 Q theta/tau_m). Multiplied out by E > 0, most intervals cost no sqrt or division.
fn scan_double(tm: f64, theta: f64, arrivals: &[Arrival], r0: f64, exists_only: bool) -> (f64, f64) {
    let th = theta / tm;
    let (mut p, mut q) = (0.0f64, 0.0f64);
    for (i, x) in arrivals.iter().enumerate() {
        let we = x.w * x.e;
        p += we;
        q += we * x.e;
        let Some((end, e)) = interval_end(arrivals, i) else {
            continue;
        };
        let (start, e_start) = (x.a, x.e);
        let last = end == f64::INFINITY;
        let pe = if last { 0.0 } else { p * e };
        let end_reaches = !last && pe - q >= th * e * e;
        // The vertex X_v = P/(2Q) must be a time in the interval: 0 < X_v <= 1/E_start (and
        // >= 1/E_end before the last arrival).
        let vertex_reaches =
            q > 0.0 && p > 0.0 && (last || pe > 2.0 * q) && p * e_start < 2.0 * q && p * p >= 4.0 * q * th;
        if (end_reaches || vertex_reaches) && exists_only {
            return (start, f64::NAN);
        }
        if end_reaches || vertex_reaches {
            let root = (p * p - 4.0 * q * th).max(0.0).sqrt();
            let x = if q > 0.0 {
                (p + root) / (2.0 * q)
            } else {
                2.0 * th / (p + root)
            };
            // Rounding aside X lies in [1/E_end, 1/E_start]; the clamp keeps t inside the interval.
            if x > 0.0 && x.is_finite() {
                return clamped(r0 - tm * x.ln(), x, start, end, r0, tm);
            }
        }
    }
    (f64::INFINITY, 0.0)
}

/// (t, X) with t clamped to [start, end]; X recomputed from t where the clamp moved it.
#[inline]
fn clamped(t: f64, x: f64, start: f64, end: f64, r0: f64, tm: f64) -> (f64, f64) {
    let tc = t.clamp(start, end);
    if tc == t { (t, x) } else { (tc, (-(tc - r0) / tm).exp()) }
}

/// tau_m = tau_s = tau: u = X (y S - T) with y = t - R peaks at y_p = tau + T/S with
/// u_p = S tau e^{-y_p/tau}. The interval holds the crossing iff the maximum of u over it reaches
/// theta: u_p when the peak lies inside, else u(end) = ((end - R) S - T)/E_end. Then
/// y = y_p - tau (1 + W0(-theta/(e u_p))) and X = e^{-y/tau} = -theta/(S tau W0) (from
/// e^{W0} = z/W0). The tests are multiplied out by S > 0 and E_end.
fn scan_equal(tau: f64, theta: f64, arrivals: &[Arrival], r0: f64, exists_only: bool) -> (f64, f64) {
    let (mut s, mut tt) = (0.0f64, 0.0f64);
    for (i, x) in arrivals.iter().enumerate() {
        let we = x.w * x.e;
        s += we;
        tt += we * (x.a - r0);
        let Some((end, e)) = interval_end(arrivals, i) else {
            continue;
        };
        let start = x.a;
        if s <= 0.0 {
            continue;
        }
        let (y_start, y_end) = (start - r0, end - r0);
        let peak_s = tau * s + tt;
        if peak_s <= y_start * s {
            continue; // u falls over the whole interval
        }
        if peak_s >= y_end * s && y_end * s - tt < theta * e {
            continue; // u rises over the interval but stays below theta at its end
        }
        let y_peak = peak_s / s;
        let u_peak = s * tau * (-y_peak / tau).exp();
        if u_peak < theta {
            continue;
        }
        if exists_only {
            return (start, f64::NAN);
        }
        if let Some(w0) = lambert_w0_checked(-(theta / u_peak) * (-1.0f64).exp()) {
            let y = y_peak - tau * (1.0 + w0);
            if y <= y_end && y >= y_start - START_TOLERANCE * tau {
                return clamped(r0 + y, -theta / (s * tau * w0), start, end, r0, tau);
            }
        }
    }
    (f64::INFINITY, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::{Method, first_spike};

    fn applies(neuron: &Neuron, theta: f64, w_abs: f64, e_max: f64) -> bool {
        within_bound(weight_bound(neuron, theta, w_abs), e_max)
    }

    fn factored(neuron: &Neuron, theta: f64, pairs: &[(f64, f64)]) -> Option<f64> {
        let w_abs: f64 = pairs.iter().map(|p| p.1.abs()).sum();
        let span = pairs.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max)
            - pairs.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
        if !applies(neuron, theta, w_abs, (span / neuron.tau_m()).exp()) {
            return None;
        }
        let r0 = pairs.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let arr: Vec<Arrival> = pairs
            .iter()
            .map(|&(a, w)| Arrival {
                a,
                w,
                e: ((a - r0) / neuron.tau_m()).exp(),
            })
            .collect();
        let (t, x) = first_spike_factored(neuron, theta, &arr, r0, false);
        // The existence test agrees with the solve.
        let exists = first_spike_factored(neuron, theta, &arr, r0, true).0.is_finite();
        assert_eq!(exists, t.is_finite(), "existence at theta {theta}: {pairs:?}");
        // The returned factor belongs to the returned time.
        let want = if t.is_finite() {
            (-(t - r0) / neuron.tau_m()).exp()
        } else {
            0.0
        };
        assert!((x - want).abs() <= 1e-12 * want, "factor {x} vs {want} at t = {t}");
        Some(t)
    }

    #[test]
    fn agrees_with_the_relative_scans() {
        let cases: &[&[(f64, f64)]] = &[
            &[(0.1, 1.5)],
            &[(0.1, 0.7), (0.3, 0.7), (0.3, -0.2), (1.2, 2.0)],
            &[(0.0, -1.0), (0.5, 3.0), (0.6, 0.1)],
            &[(0.2, 0.4), (0.9, 0.4), (1.7, 0.4), (2.5, 0.4)],
            &[(0.0, 5.0), (0.01, -4.9), (3.0, 0.1)],
        ];
        for (tm, ts) in [(2.0, 1.0), (1.0, 1.0), (1.5, 1.5)] {
            let n = Neuron::new(tm, ts).unwrap();
            for pairs in cases {
                for theta in [0.05, 0.3, 1.0, 2.6] {
                    let want = first_spike(&n, theta, pairs, Method::Bracket);
                    let got = factored(&n, theta, pairs).unwrap();
                    assert!(
                        got == want || (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                        "{tm} {ts} {theta} {pairs:?}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn existence_agrees_with_the_solve_on_random_rows() {
        let mut rng = crate::random::RandomState::new(11);
        for (tm, ts) in [(2.0, 1.0), (1.0, 1.0)] {
            let n = Neuron::new(tm, ts).unwrap();
            for case in 0..4000 {
                let len = 1 + case % 9;
                let mut pairs: Vec<(f64, f64)> = (0..len)
                    .map(|_| (3.0 * rng.random_sample(), 2.0 * rng.random_sample() - 0.6))
                    .collect();
                if case % 5 == 0 {
                    pairs[0].0 = pairs[len - 1].0; // equal arrival times
                }
                pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
                for theta in [0.02, 0.3, 1.0] {
                    // asserts existence == solve inside
                    factored(&n, theta, &pairs).unwrap();
                }
            }
        }
    }

    #[test]
    fn general_regime_is_left_to_the_solver() {
        let n = Neuron::new(1.7, 0.6).unwrap();
        assert_eq!(factored(&n, 1.0, &[(0.0, 2.0)]), None);
    }

    #[test]
    fn extreme_parameters_are_left_to_the_solver() {
        let n = Neuron::new(2.0, 1.0).unwrap();
        assert!(applies(&n, 1.0, 10.0, 3.0));
        assert!(!applies(&n, 1.0, 1e99, 4.0));
        assert!(!applies(&n, 1e300, 1.0, 1.0));
        assert!(!applies(&Neuron::new(2e200, 1e200).unwrap(), 1.0, 1.0, 1.0));
    }
}
