//! The range of values the model accepts (see `docs/model.md`, "Range of values"): weights,
//! thresholds and time constants of magnitude at most [`MAX`], thresholds and time constants at
//! least [`MIN`], time constants within a factor [`MAX_TAU_RATIO`] of each other. Within it the products the scans form (weights, thresholds and time constants
//! times each other and times the decay factors) stay normal doubles, far from overflow at
//! 1.8e308 and from the subnormals below 2.2e-308, and the closed-form and bracketing methods
//! agree on everything accepted.
//!
//! Nonzero weights below [`MIN`] (down to the subnormals) are accepted: the closed-form scans
//! square their sums, which could underflow, so a neuron that has one is solved by the general
//! scan instead (`solver::weight_bound`), which forms no such products.

/// Largest accepted |weight|, threshold and time constant.
pub const MAX: f64 = 1e100;

/// Smallest accepted threshold and time constant, and the smallest nonzero |weight| the
/// closed-form scans take.
pub const MIN: f64 = 1e-100;

/// Largest tau_m / tau_s and tau_s / tau_m. The kernel's peak and the general scan's critical
/// point need ln(1 + delta tau_m) = ln(min/max of the two), formed from 1 + delta tau_m with an
/// absolute rounding of an ulp of 1: within this ratio its relative error stays below 1e8 eps
/// ~ 2e-8 (and the kernel's two decays stay distinguishable); beyond 1/eps ~ 4.5e15 it is lost.
pub const MAX_TAU_RATIO: f64 = 1e8;

/// `v` lies in [[`MIN`], [`MAX`]] (false for NaN).
#[inline]
pub(crate) fn positive_in_range(v: f64) -> bool {
    (MIN..=MAX).contains(&v)
}
