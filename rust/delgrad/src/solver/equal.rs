//! The scan of the tau_m = tau_s = tau regime on factored decays (see
//! [`factored`](super::factored)).
//!
//! With X = e^{-(t - R)/tau}, y = t - R and the sums S = sum w E, T = sum w E (a - R) over the
//! arrivals so far (E = e^{(a - R)/tau}), the potential is u = X (y S - T), whose crossing
//! u = theta is a Lambert W0 closed form.

use super::factored::{Source, clamped, interval_end};
use crate::lambertw::lambert_w0_checked;

/// Rounding can place a crossing a hair before the interval that holds it; tolerate that much.
const START_TOLERANCE: f64 = 1e-12;

/// tau_m = tau_s = tau: u = X (y S - T) with y = t - R peaks at y_p = tau + T/S with
/// u_p = S tau e^{-y_p/tau}. The interval holds the crossing iff the maximum of u over it reaches
/// theta: u_p when the peak lies inside, else u(end) = ((end - R) S - T)/E_end. Then
/// y = y_p - tau (1 + W0(-theta/(e u_p))) and X = e^{-y/tau} = -theta/(S tau W0) (from
/// e^{W0} = z/W0). The tests are multiplied out by S > 0 and E_end.
pub(super) fn scan<S: Source>(tau: f64, theta: f64, mut arrivals: S, r0: f64, exists_only: bool) -> (f64, f64) {
    let (mut s, mut tt) = (0.0f64, 0.0f64);
    for i in 0..arrivals.len() {
        let x = arrivals.get(i);
        let we = x.w * x.e;
        s += we;
        tt += we * (x.a - r0);
        let Some((end, e)) = interval_end(&mut arrivals, i, x.a) else {
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
        if let Some(w0) = w0_out_of_line(-(theta / u_peak) * (-1.0f64).exp()) {
            let y = y_peak - tau * (1.0 + w0);
            if y <= y_end && y >= y_start - START_TOLERANCE * tau {
                return clamped(r0 + y, -theta / (s * tau * w0), start, end, r0, tau);
            }
        }
    }
    (f64::INFINITY, 0.0)
}

/// W0(z) out of line: it runs once per spike, and inlined it would crowd the scan's loop.
#[inline(never)]
fn w0_out_of_line(z: f64) -> Option<f64> {
    lambert_w0_checked(z)
}
