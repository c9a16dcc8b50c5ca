//! First threshold crossing of one neuron: the time t at which the membrane potential
//! u(t) = sum_i w_i kappa(t - a_i) of inputs (arrival a_i, weight w_i) first reaches theta.
//!
//! Between two arrivals u has at most one critical point, so the first interval whose maximum
//! reaches theta holds the spike; every scan walks the intervals in time order and solves only
//! that one. One scan per regime of tau_m / tau_s (see `docs/model.md`, "Regimes"):
//!
//! - `equal`: tau_m = tau_s, Lambert W0 closed form;
//! - `double`: tau_m = 2 tau_s, a quadratic in e^{-t/tau_m};
//! - `general`: any other ratio, current and potential state with a safeguarded Halley solve.
//!
//! The closed-form scans run on factored decays (module `factored`); where those could overflow
//! (huge spans or parameters) the general scan, which holds for every ratio, takes over.
//! [`Method::Bracket`] selects the bracketing reference (module `bracket`) in every regime instead.
//! Times are in the units of the time constants, potentials per unit weight (C_m = 1).

use crate::kernel::{Neuron, Regime};

mod bracket;
mod double;
mod equal;
mod factored;
mod general;

pub(crate) use factored::{Arrival, MAX_SPAN, Source, TimeFactors, WeightSum, rise, weight_bound, within_bound};
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

/// Iteration cap of the safeguarded root finders. Bisection halves the bracket, and from a
/// bracket [0, hi] with hi < 2^1024 it reaches adjacent doubles around any root >= 2^-1074 within
/// 1024 + 1074 + 53 halvings; the cap is above that, so a crossing many orders of magnitude below
/// the bracket (a huge weight against a small threshold) is still found to machine precision.
/// Cases that converge in a few steps (nearly all) never get near it.
pub(super) const MAX_STEPS: usize = 2200;

/// Relative margin of [`never_reaches`]: far above the rounding of kappa_max and of the sum, so
/// the shortcut only ever skips neurons that are silent in exact arithmetic.
const BOUND_MARGIN: f64 = 1e-9;

/// The peak of the kernel, kappa_max = kappa(s*) at s* = ln(1 + delta tau_m)/delta (s* = tau_m
/// when delta = 0; tau_m ln 2 at tau_m = 2 tau_s), in potential per unit weight.
#[cfg(any(feature = "hardware", test))] // the emulated chip's scans
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

/// First-spike time of a neuron with threshold `theta` given its inputs as (arrival time, weight)
/// pairs, sorted by arrival time, all finite; +inf if u never reaches theta.
pub fn first_spike(neuron: &Neuron, theta: f64, arrivals: &[(f64, f64)], method: Method) -> f64 {
    first_spike_within(
        neuron,
        theta,
        arrivals,
        method,
        || WeightSum::of(arrivals.iter().map(|x| x.1)),
        None,
    )
}

/// [`first_spike`] with the weights' part of the factored scans' bound from `weights`: that of the
/// arrivals' weights or of a superset of them, such as the neuron's whole row (summed once for
/// many samples instead of per sample; see [`WeightSum`]). `shared`: the factors of the arrival
/// times that the neurons of a layer share and the index of each arrival's time among them, used
/// where they are relative to this neuron's first arrival and tau_m (the factors its scan would
/// compute, computed once for all of them).
pub(crate) fn first_spike_within(
    neuron: &Neuron,
    theta: f64,
    arrivals: &[(f64, f64)],
    method: Method,
    weights: impl FnOnce() -> WeightSum,
    shared: Option<(&[usize], &mut TimeFactors)>,
) -> f64 {
    if arrivals.is_empty() {
        return f64::INFINITY;
    }
    match (method, neuron.regime()) {
        (Method::Auto, Regime::General) => first_spike_general(&Kernel::quick(neuron), theta, arrivals),
        (Method::Auto, _) => match factored::factored_reference(neuron, theta, arrivals, &weights()) {
            Some(r0) => {
                let tm = neuron.tau_m();
                match shared.and_then(|(times, f)| factored::shared_from(arrivals, times, f, r0, tm)) {
                    Some(source) => first_spike_factored(neuron, theta, source, r0, false).0,
                    None => first_spike_factored(neuron, theta, factored::pairs_from(arrivals, r0, tm), r0, false).0,
                }
            }
            None => first_spike_general(&Kernel::quick(neuron), theta, arrivals),
        },
        (Method::Bracket, _) => bracket::first_spike(neuron, theta, arrivals),
    }
}

/// First-spike time t of a closed-form neuron from arrivals sorted by `a` (a slice, or a source
/// computing the factors on the way), all >= `r0`, with factors e = e^{(a - r0)/tau_m}, and its
/// own factor X = e^{-(t - r0)/tau_m} (the next layer's and the backward pass's, for free from
/// the scan); (+inf, 0) if u never reaches theta. Only where [`weight_bound`] and
/// [`within_bound`] allow it.
///
/// With `exists_only` the scan stops at the interval whose maximum reaches theta and returns its
/// start (finite: the neuron spikes) and X = NaN, without solving for the crossing.
pub(crate) fn first_spike_factored<S: Source>(
    neuron: &Neuron,
    theta: f64,
    arrivals: S,
    r0: f64,
    exists_only: bool,
) -> (f64, f64) {
    match neuron.regime() {
        Regime::Double => double::scan(neuron.tau_m(), theta, arrivals, r0, exists_only),
        _ => equal::scan(neuron.tau_m(), theta, arrivals, r0, exists_only),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The factored scans' bound from more weights than arrive (a neuron's whole row) gives the
    /// time the arrivals' own bound gives; where it rules the factored scan out (a tiny weight
    /// elsewhere in the row) the general scan gives the same time to rounding.
    #[test]
    fn a_bound_from_a_superset_of_the_weights_keeps_the_time() {
        let pairs = [(0.1, 0.8), (0.3, 0.5), (0.3, -0.2), (0.9, 0.7)];
        for (tm, ts) in [(1.0, 1.0), (2.0, 1.0)] {
            let n = Neuron::new(tm, ts).unwrap();
            let own = first_spike(&n, 0.5, &pairs, Method::Auto);
            assert!(own.is_finite());
            let row = WeightSum::of(pairs.iter().map(|x| x.1).chain([0.4, -1.3]));
            assert_eq!(first_spike_within(&n, 0.5, &pairs, Method::Auto, || row, None), own);
            let tiny = WeightSum::of(pairs.iter().map(|x| x.1).chain([1e-300]));
            assert!(factored::factored_reference(&n, 0.5, &pairs, &tiny).is_none());
            let general = first_spike_within(&n, 0.5, &pairs, Method::Auto, || tiny, None);
            assert!((general - own).abs() <= 1e-12 * own, "{tm} {ts}: {general} vs {own}");
        }
    }

    /// Factors computed once for neurons that share their arrival times give each neuron the bits
    /// of its own scan, however many of them other scans computed before. Factors relative to
    /// another time than the neuron's first arrival (one whose earliest shared input carries no
    /// weight) or to another tau_m are not used: it scans with its own.
    #[test]
    fn shared_factors_give_the_bits_of_the_neurons_own_scan() {
        let mut rng = crate::random::RandomState::new(3);
        let mut spikes = 0;
        for (tm, ts) in [(1.0, 1.0), (2.0, 1.0), (0.7, 0.7)] {
            let n = Neuron::new(tm, ts).unwrap();
            for case in 0..2000 {
                let len = 1 + case % 12;
                let mut pairs: Vec<(f64, f64)> = (0..len)
                    .map(|_| (3.0 * rng.random_sample(), 2.0 * rng.random_sample() - 0.5))
                    .collect();
                pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
                let times: Vec<usize> = (0..len).collect();
                let weights = || WeightSum::of(pairs.iter().map(|x| x.1));
                let mut shared = TimeFactors::default();
                shared.reset(pairs[0].0, tm, len);
                for theta in [0.1, 0.5, 1.5] {
                    let own = first_spike(&n, theta, &pairs, Method::Auto);
                    let got = first_spike_within(&n, theta, &pairs, Method::Auto, weights, Some((&times, &mut shared)));
                    assert_eq!(got.to_bits(), own.to_bits(), "{tm} {theta} {pairs:?}");
                    for (r, t) in [(pairs[0].0 - 0.5, tm), (pairs[0].0, 1.3 * tm)] {
                        let mut other = TimeFactors::default();
                        other.reset(r, t, len);
                        let got =
                            first_spike_within(&n, theta, &pairs, Method::Auto, weights, Some((&times, &mut other)));
                        assert_eq!(got.to_bits(), own.to_bits(), "{tm} {theta} {pairs:?}");
                    }
                    spikes += usize::from(own.is_finite());
                }
            }
        }
        assert!(spikes > 3000, "{spikes} of 18000 cases spike");
    }

    /// Closed-form neurons whose factors would overflow (arrivals spread over thousands of time
    /// constants, extreme time constants) take the general scan: it agrees with the reference,
    /// in every regime, also where the potential underflows to 0 between arrivals.
    #[test]
    fn long_spans_and_extreme_constants_agree_with_the_reference() {
        let cases: &[&[(f64, f64)]] = &[
            &[(0.0, 0.5), (1e3, 0.2), (1e3 + 0.4, 1.1)],
            &[(0.0, 3.0), (0.05, -2.9), (400.0, 0.6), (400.2, 0.6)],
            &[(-5e4, 2.0), (0.0, 0.3), (1e5, 4.0)],
        ];
        for tau in [1.0, 0.7] {
            for (tm, ts) in [(tau, tau), (2.0 * tau, tau), (tau, 1.03 * tau), (1.7 * tau, 0.6 * tau)] {
                let n = Neuron::new(tm, ts).unwrap();
                for pairs in cases {
                    assert!(
                        factored::factored_reference(&n, 1.0, pairs, &WeightSum::of(pairs.iter().map(|x| x.1)))
                            .is_none()
                    );
                    for theta in [0.05, 0.3, 1.0] {
                        let want = first_spike(&n, theta, pairs, Method::Bracket);
                        let got = first_spike(&n, theta, pairs, Method::Auto);
                        let close = got == want || (got - want).abs() <= 1e-12 * want.abs().max(1.0);
                        assert!(close, "{tm} {ts} {theta} {pairs:?}: {got} vs {want}");
                    }
                }
            }
        }
        let huge = Neuron::new(1e100, 5e99).unwrap();
        let pairs = [(0.0, 1.0), (1e99, 2.0)];
        assert!(factored::factored_reference(&huge, 0.1, &pairs, &WeightSum::of(pairs.iter().map(|x| x.1))).is_none());
        let (got, want) = (
            first_spike(&huge, 0.1, &pairs, Method::Auto),
            first_spike(&huge, 0.1, &pairs, Method::Bracket),
        );
        assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
    }
}
