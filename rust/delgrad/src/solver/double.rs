//! The scan of the tau_m = 2 tau_s regime on factored decays (see [`factored`](super::factored)).
//!
//! With X = e^{-(t - R)/tau_m} and the sums P = sum w E, Q = sum w E^2 over the arrivals so far
//! (E = e^{(a - R)/tau_m}), the potential is u = tau_m (P X - Q X^2): a quadratic in X, so the
//! crossing u = theta is one of its roots and t = R - tau_m ln X.

use super::factored::{Source, clamped, interval_end};

/// tau_m = 2 tau_s: the largest root X of Q X^2 - P X + theta/tau_m = 0 with
/// 1/E_end <= X <= 1/E_start is the crossing in the interval; t = R - tau_m ln X.
///
/// The crossing lies in the interval iff the maximum of u over it reaches theta (u is below theta
/// at its start): u at its end, or at the vertex X_v = P/(2Q) when that lies inside (then the test
/// is P^2 >= 4 Q theta/tau_m). Multiplied out by E > 0, most intervals cost no sqrt or division.
pub(super) fn scan<S: Source>(tm: f64, theta: f64, mut arrivals: S, r0: f64, exists_only: bool) -> (f64, f64) {
    let th = theta / tm;
    let (mut p, mut q) = (0.0f64, 0.0f64);
    for i in 0..arrivals.len() {
        let x = arrivals.get(i);
        let we = x.w * x.e;
        p += we;
        q += we * x.e;
        let Some((end, e)) = interval_end(&mut arrivals, i, x.a) else {
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
