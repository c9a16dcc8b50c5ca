//! Factored decays: the representation the closed-form scans ([`equal`](super::equal),
//! [`double`](super::double)) run on, which needs no exp per interval.
//!
//! With a reference time R no later than any arrival and E_i = e^{(a_i - R)/tau_m} (computed once per
//! input and delay as a product, see `forward`), the potential after the arrivals a_1..a_n is, with
//! X = e^{-(t - R)/tau_m},
//!
//! - tau_m = 2 tau_s: u = tau_m (P X - Q X^2), P = sum w E, Q = sum w E^2 — a quadratic in X;
//! - tau_m = tau_s = tau: u = X ((t - R) S - T), S = sum w E, T = sum w E (a - R) — Lambert W0.
//!
//! Interval ends are X = 1/E_n, so a scan costs a few multiplications per arrival; exp and log
//! are taken only for the crossing found. The factors grow with the span of the arrivals, so the
//! scans are used only where [`weight_bound`] and [`within_bound`] keep every sum finite; beyond
//! that the general scan takes over (see [`first_spike`](super::first_spike)).

use crate::kernel::{Neuron, Regime};
use crate::range;

/// Largest (a - R)/tau_m for which the factors E = e^{(a - R)/tau_m} are used (E <= e^{150}).
pub(crate) const MAX_SPAN: f64 = 150.0;

/// Bound on |sums| and on theta, tau_m that keeps every product of the scans finite (all stay
/// below 1e230), so the scans need no overflow checks.
const SAFE: f64 = 1e100;

/// The factor E = e^{(a - R)/tau_m} of arrival time `a` relative to the reference time `r`: the
/// one expression of it, so that every source of factors (a neuron's own, shared by a layer, the
/// forward pass's rise factors) gives the same bits for the same a, R and tau_m.
#[inline(always)]
pub(crate) fn rise(a: f64, r: f64, tm: f64) -> f64 {
    ((a - r) / tm).exp()
}

/// One input of a neuron: arrival time a (model units), weight w and factor e = e^{(a - R)/tau_m}.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Arrival {
    pub a: f64,
    pub w: f64,
    pub e: f64,
}

/// Largest sum |w| tau_m / theta for which the factored scans are used. They resolve time to a
/// few ulp of tau_m (they work on X = e^{-(t - R)/tau_m}: arrivals closer than that share one X),
/// and u rises by at most sum |w| per unit time; with this bound the rise over such a span stays
/// below 1e8 eps theta ~ 2e-8 theta, so no crossing hides in it and the crossing time's error of
/// a few ulp of tau_m is within 1e-8 of its distance from the arrival before it. Beyond it (huge
/// weights or tau_m against theta: crossings within a tiny fraction of tau_m of an arrival) the
/// general scan, which solves for t - r itself, takes over.
const MAX_RISE: f64 = 1e8;

/// The factored scan of `neuron` with threshold `theta` is safe for inputs with weights `w`
/// whose factors are at most `e_max` when it is a closed-form regime, every sum
/// (<= sum |w| e_max^2) and parameter is within [`SAFE`], no product of two sums or of a sum
/// and theta/tau_m underflows, and the crossings are resolved ([`MAX_RISE`]):
/// `within_bound(weight_bound(neuron, theta, w), e_max)`.
///
/// The per-neuron part (fixed for a batch): sum |w| where the regime and the parameters allow the
/// factored scan, +inf where they do not (theta/tau_m below 1/[`SAFE`], sum |w| tau_m / theta
/// above [`MAX_RISE`], or a nonzero |w| below [`range::MIN`], whose sums could square to
/// subnormals).
pub(crate) fn weight_bound(neuron: &Neuron, theta: f64, w: impl IntoIterator<Item = f64>) -> f64 {
    WeightSum::of(w).bound(neuron, theta)
}

/// The weights' part of [`weight_bound`]: sum |w| and whether any nonzero |w| is below
/// [`range::MIN`]. That of a neuron's whole row bounds the part of any subset of its inputs (the
/// arrivals of one sample), so a caller may sum the row once instead of the arrivals per sample.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WeightSum {
    abs: f64,
    tiny: bool,
}

impl WeightSum {
    /// The part of the weights `w`, summed in their order.
    pub(crate) fn of(w: impl IntoIterator<Item = f64>) -> Self {
        let mut sum = WeightSum::default();
        w.into_iter().for_each(|w| sum.add(w));
        sum
    }

    #[inline]
    fn add(&mut self, w: f64) {
        self.abs += w.abs();
        self.tiny |= w != 0.0 && w.abs() < range::MIN;
    }

    /// [`weight_bound`] of the weights added.
    #[inline]
    fn bound(&self, neuron: &Neuron, theta: f64) -> f64 {
        let tm = neuron.tau_m();
        let ok = neuron.regime() != Regime::General
            && !self.tiny
            && (1.0 / SAFE..=SAFE).contains(&tm)
            && theta <= SAFE
            && (1.0 / SAFE..=SAFE).contains(&(theta / tm))
            && self.abs * tm <= MAX_RISE * theta;
        if ok { self.abs } else { f64::INFINITY }
    }
}

/// The per-sample part of the test of [`weight_bound`]: every sum (<= bound e_max^2) within
/// [`SAFE`].
#[inline]
pub(crate) fn within_bound(bound: f64, e_max: f64) -> bool {
    bound * e_max * e_max <= SAFE
}

/// The interval that arrival `i` (at time `a`) opens: (end, E_end) of the next arrival, +inf
/// after the last; `None` when the next arrival is simultaneous (sorted, so `end <= a` means
/// equal): then no interval lies between them and the scan adds the next one before testing.
#[inline(always)]
pub(super) fn interval_end<S: Source>(arrivals: &mut S, i: usize, a: f64) -> Option<(f64, f64)> {
    if i + 1 >= arrivals.len() {
        return Some((f64::INFINITY, f64::INFINITY));
    }
    let next = arrivals.get(i + 1);
    (next.a > a).then_some((next.a, next.e))
}

/// (t, X) with t clamped to [start, end]; X recomputed from t where the clamp moved it.
#[inline]
pub(super) fn clamped(t: f64, x: f64, start: f64, end: f64, r0: f64, tm: f64) -> (f64, f64) {
    let tc = t.clamp(start, end);
    if tc == t { (t, x) } else { (tc, (-(tc - r0) / tm).exp()) }
}

/// The arrivals of the factored scans, read in time order: the scans ask for arrival i, and for
/// i + 1 where an interval ends, so a source may compute each factor when first asked.
pub(crate) trait Source {
    /// The number of arrivals.
    fn len(&self) -> usize;
    /// Arrival i.
    fn get(&mut self, i: usize) -> Arrival;
}

impl Source for &[Arrival] {
    #[inline(always)]
    fn len(&self) -> usize {
        <[Arrival]>::len(self)
    }

    #[inline(always)]
    fn get(&mut self, i: usize) -> Arrival {
        self[i]
    }
}

/// (arrival, weight) pairs, sorted by arrival, whose factors e = e^{(a - R)/tau_m} are computed as
/// the scan reaches them (one exp per arrival time, none after the crossing).
#[derive(Clone, Copy)]
pub(super) struct Pairs<'a> {
    pairs: &'a [(f64, f64)],
    r0: f64,
    tm: f64,
    /// The last arrival time asked for and its factor.
    last: (f64, f64),
}

impl Source for Pairs<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.pairs.len()
    }

    #[inline(always)]
    fn get(&mut self, i: usize) -> Arrival {
        let (a, w) = self.pairs[i];
        if a != self.last.0 {
            self.last = (a, rise(a, self.r0, self.tm));
        }
        Arrival { a, w, e: self.last.1 }
    }
}

/// The factors e^{(a_j - R)/tau_m} of the distinct arrival times a_j (sorted, R = a_0) that the
/// neurons of a layer share, each computed when a scan first asks for it: one exp per time for
/// the whole layer instead of one per time and neuron, and none after the last crossing. The
/// values are those a neuron's own [`Pairs`] would compute from R.
#[derive(Debug, Default)]
pub(crate) struct TimeFactors {
    r: f64,
    tm: f64,
    /// Per time: its factor, NaN until asked for.
    e: Vec<f64>,
}

impl TimeFactors {
    /// Forgets the factors and prepares for `n` times, the first at `r`, with time constant `tm`.
    #[cfg(any(feature = "hardware", test))] // the emulated chip's scans
    pub(crate) fn reset(&mut self, r: f64, tm: f64, n: usize) {
        (self.r, self.tm) = (r, tm);
        self.e.clear();
        self.e.resize(n, f64::NAN);
    }
}

/// (arrival, weight) pairs of one neuron whose arrival times are times of a [`TimeFactors`]:
/// pair i arrives at time `times[i]` of it.
pub(super) struct SharedPairs<'a> {
    pairs: &'a [(f64, f64)],
    times: &'a [usize],
    factors: &'a mut TimeFactors,
}

impl Source for SharedPairs<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.pairs.len()
    }

    #[inline(always)]
    fn get(&mut self, i: usize) -> Arrival {
        let (a, w) = self.pairs[i];
        let (r, tm) = (self.factors.r, self.factors.tm);
        let e = &mut self.factors.e[self.times[i]];
        if e.is_nan() {
            *e = rise(a, r, tm);
        }
        Arrival { a, w, e: *e }
    }
}

/// The pairs as a source whose factors come from `factors` (pair i at its time `times[i]`),
/// where those are relative to this neuron's R = `r0` and `tm`; `None` where they are not.
pub(super) fn shared_from<'a>(
    pairs: &'a [(f64, f64)],
    times: &'a [usize],
    factors: &'a mut TimeFactors,
    r0: f64,
    tm: f64,
) -> Option<SharedPairs<'a>> {
    let fits = factors.r == r0 && factors.tm == tm && times.len() == pairs.len();
    fits.then_some(SharedPairs { pairs, times, factors })
}

/// The first arrival R of the pairs (arrival, weight) of one neuron, sorted by arrival, where
/// [`weight_bound`] (with `weights`, the part of the pairs' weights or of a superset of them) and
/// [`within_bound`] allow the factored scan relative to R for them; `None` where they do not.
pub(super) fn factored_reference(
    neuron: &Neuron,
    theta: f64,
    pairs: &[(f64, f64)],
    weights: &WeightSum,
) -> Option<f64> {
    let tm = neuron.tau_m();
    let (r0, last) = (pairs.first()?.0, pairs.last()?.0);
    // Sorted: the span is the last arrival's distance from the first.
    let span = (last - r0) / tm;
    let bound = weights.bound(neuron, theta);
    (span <= MAX_SPAN && within_span(bound, span)).then_some(r0)
}

/// The pairs as a source of factored arrivals relative to R = `r0` (their first arrival), each
/// factor computed as the scan reaches it.
pub(super) fn pairs_from(pairs: &[(f64, f64)], r0: f64, tm: f64) -> Pairs<'_> {
    Pairs {
        pairs,
        r0,
        tm,
        last: (r0, 1.0), // e^0
    }
}

/// [`within_bound`] for the factors of arrivals spread over `span` time constants, e_max =
/// e^span: settled without the exp for the usual spans and weights (e^{2 span} <= e^40).
#[inline]
fn within_span(bound: f64, span: f64) -> bool {
    const E40: f64 = 2.36e17; // above e^40 = 2.3539e17
    (span <= 20.0 && bound * E40 <= SAFE) || within_bound(bound, span.exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::{Method, first_spike, first_spike_factored};

    fn applies(neuron: &Neuron, theta: f64, w_abs: f64, e_max: f64) -> bool {
        within_bound(weight_bound(neuron, theta, [w_abs]), e_max)
    }

    fn factored(neuron: &Neuron, theta: f64, pairs: &[(f64, f64)]) -> Option<f64> {
        let r0 = factored_reference(neuron, theta, pairs, &WeightSum::of(pairs.iter().map(|x| x.1)))?;
        let src = pairs_from(pairs, r0, neuron.tau_m());
        let arr: Vec<Arrival> = (0..pairs.len())
            .map(|i| {
                let mut s = src;
                s.get(i)
            })
            .collect();
        let (t, x) = first_spike_factored(neuron, theta, &arr[..], r0, false);
        // The existence test agrees with the solve, on the lazy source too.
        let exists = first_spike_factored(neuron, theta, &arr[..], r0, true).0.is_finite();
        let (lazy, _) = first_spike_factored(neuron, theta, src, r0, false);
        assert_eq!(lazy.to_bits(), t.to_bits(), "lazy factors at theta {theta}: {pairs:?}");
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
    fn agrees_with_the_bracketing_reference() {
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
    fn general_regime_is_left_to_the_general_scan() {
        let n = Neuron::new(1.7, 0.6).unwrap();
        assert_eq!(factored(&n, 1.0, &[(0.0, 2.0)]), None);
    }

    #[test]
    fn extreme_parameters_are_left_to_the_general_scan() {
        let n = Neuron::new(2.0, 1.0).unwrap();
        assert!(applies(&n, 1.0, 10.0, 3.0));
        assert!(!applies(&n, 1.0, 1e99, 4.0));
        assert!(!applies(&n, 1e300, 1.0, 1.0));
        assert!(!applies(&Neuron::new(1e100, 5e99).unwrap(), 1.0, 1.0, 1.0));
        // Crossings within a tiny fraction of tau_m of an arrival (MAX_RISE).
        assert!(applies(&n, 1.0, 0.5 * MAX_RISE, 1.0));
        assert!(!applies(&n, 1e-9, 1.0, 1.0));
        // A tiny nonzero weight (sums that could square to subnormals), but not a zero one.
        assert!(!within_bound(weight_bound(&n, 1.0, [1.0, 5e-324]), 1.0));
        assert!(within_bound(weight_bound(&n, 1.0, [1.0, 0.0, -0.0]), 1.0));
    }
}
