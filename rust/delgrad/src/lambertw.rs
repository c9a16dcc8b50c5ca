//! Principal branch `W0` of the Lambert W function in `f64`.
//!
//! `W0(z)` is the real solution `w >= -1` of
//!
//! ```text
//! w · e^w = z,        z ∈ [-1/e, +∞).
//! ```
//!
//! It appears in the closed-form spike time of a LIF neuron with `tau_m == tau_s`,
//! `t = B/A - tau · W0(z)` with `z = -(c/A) · e^{B/(A tau)} ∈ [-1/e, 0)`. Near-tangential
//! threshold crossings put `z` within a few ulp of the branch point `-1/e`, where `W0` has a
//! square-root singularity, so the implementation takes care to stay accurate there:
//!
//! * **Branch region** (`z < -0.26`): with `q = e·z + 1` computed as `e · (z - (-1/e))` using a
//!   double-double `-1/e` (the subtraction is exact by Sterbenz' lemma), `p = sqrt(2q)` and
//!   `u = 1 + w`, the equation becomes
//!   `g(u) := 1 + (u - 1) e^u = Σ_{n≥2} (n-1) uⁿ / n! = q`.
//!   `u` starts from a [4/4] Padé approximant in `p` of the series
//!   `u = p - p²/3 + 11/72 p³ - 43/540 p⁴ + …` (relative error < 4e-9 here) and is refined by
//!   a Halley step on `g(u) - q` (one suffices), with `g` evaluated by its power series (no
//!   cancellation), so the answer is accurate to a few ulp even when `q` is a few ulp.
//! * **Elsewhere**: an initial guess, then Halley steps on the scaled residual `w - z e^{-w}`,
//!   which cannot overflow even for `z = f64::MAX`. For `-0.26 <= z < 0`, where the other half
//!   of the spike-time arguments falls, the guess is accurate to < 4e-7 relative, so one Halley
//!   step suffices: the branch-point Padé approximant below `z = -0.2`, a [4/4] Padé
//!   approximant of `W0(z)/z` at `0` above. For `0 < z <= 1` a [3/2] Padé approximant at `0`,
//!   Winitzki's guess for moderate `z` and the asymptotic expansion
//!   `W ≈ L1 - L2 + L2/L1 + L2(L2 - 2)/(2 L1²)` (`L1 = ln z`, `L2 = ln L1`) for large `z`.
//! * **Tiny `|z|`**: the Taylor series `W(z) = Σ (-n)^{n-1} zⁿ / n!` (so subnormal `z` gives
//!   `W = z`).

/// `-1/e` as a double-double `NEG_INV_E_HI + NEG_INV_E_LO` (the high part is the `f64` nearest
/// to `-1/e`, which lies slightly *below* `-1/e`), so `e·z + 1 = e·(z - NEG_INV_E_HI - NEG_INV_E_LO)`
/// is computed accurately near the branch point.
const NEG_INV_E_HI: f64 = -0.367_879_441_171_442_33;
/// Low part of `-1/e`; see [`NEG_INV_E_HI`].
const NEG_INV_E_LO: f64 = 1.242_875_367_278_836_3e-17;
/// `e` as a double-double `E_HI + E_LO`.
const E_HI: f64 = std::f64::consts::E;
/// Low part of `e`; see [`E_HI`].
const E_LO: f64 = 1.445_646_891_729_250_2e-16;

/// Values of `z` at most this far below `-1/e` (8 ulp of `1/e`) are treated as rounding noise
/// of a computation whose exact result is `-1/e`, and give `W0 = -1`.
const BRANCH_TOLERANCE: f64 = 4.440_892_098_500_626e-16;

/// Below this `z` the branch-region solver (in `u = 1 + w`) is used; it corresponds to
/// `w ≈ -0.38`, where the error amplification of both solvers is the same (≈ 1.6).
const Z_BRANCH: f64 = -0.26;
/// Below this `p = sqrt(2(e z + 1))` the Padé guess alone is accurate to < 1e-18 relative.
const P_SERIES_ONLY: f64 = 0.01;
/// Below this `|z|` the Taylor series at `0` alone is accurate to full precision.
const Z_TINY: f64 = 1e-3;
/// Below this `z` (and at or above [`Z_BRANCH`]) the branch-point Padé approximant is the
/// initial guess (relative error < 5e-8, mpmath), above it the Padé approximant at `0` of
/// [`ZERO_PADE_P`] (< 4e-7).
const Z_MID_BRANCH_GUESS: f64 = -0.2;
/// Above this `z` the asymptotic expansion is the initial guess.
const Z_ASYMPTOTIC: f64 = 10.0;

/// Numerator of the [4/4] Padé approximant of `u / p = (1 + W0(z)) / p` in
/// `p = sqrt(2(e z + 1))` at the branch point (from the series `u = p - p²/3 + 11/72 p³ - …`),
/// ascending powers; see [`branch_guess`].
const BRANCH_PADE_P: [f64; 5] = [
    1.0,
    1.221_738_242_294_249_8,
    0.448_131_638_430_659_23,
    0.048_124_968_936_911_84,
    0.000_438_092_735_313_294_15,
];

/// Denominator of the Padé approximant of [`BRANCH_PADE_P`] (positive for `p >= 0`).
const BRANCH_PADE_Q: [f64; 5] = [
    1.0,
    1.555_071_575_627_583,
    0.813_711_052_528_742_5,
    0.161_411_236_466_352_66,
    0.009_252_330_665_513_842,
];

/// Numerator of the [4/4] Padé approximant of `W0(z)/z` at `z = 0` (from the Taylor series
/// `Σ (-n)^{n-1} z^{n-1} / n!`, mpmath), ascending powers: relative error < 4e-7 for
/// `-0.2 <= z < 0`, < 2e-14 for `-0.04 <= z < 0`.
const ZERO_PADE_P: [f64; 5] = [
    1.0,
    4.649_846_742_671_621,
    6.503_423_363_430_353,
    2.683_248_837_312_324_7,
    0.103_753_095_208_167_74,
];

/// Denominator of the Padé approximant of [`ZERO_PADE_P`].
const ZERO_PADE_Q: [f64; 5] = [
    1.0,
    5.649_846_742_671_621,
    10.653_270_106_101_974,
    7.528_415_496_073_533,
    1.510_188_079_253_063_3,
];

/// Coefficients `(n-1)/n!` for `n = 2 … 18` of `g(u) = 1 + (u - 1) e^u = u² Σ a_k u^k`.
const G_SERIES: [f64; 17] = [
    1.0 / 2.0,
    2.0 / 6.0,
    3.0 / 24.0,
    4.0 / 120.0,
    5.0 / 720.0,
    6.0 / 5_040.0,
    7.0 / 40_320.0,
    8.0 / 362_880.0,
    9.0 / 3_628_800.0,
    10.0 / 39_916_800.0,
    11.0 / 479_001_600.0,
    12.0 / 6_227_020_800.0,
    13.0 / 87_178_291_200.0,
    14.0 / 1_307_674_368_000.0,
    15.0 / 20_922_789_888_000.0,
    16.0 / 355_687_428_096_000.0,
    17.0 / 6_402_373_705_728_000.0,
];

/// Taylor coefficients `(-n)^{n-1}/n!`, `n = 1 … 8`, of `W0` at `0`.
const TAYLOR_0: [f64; 8] = [
    1.0,
    -1.0,
    3.0 / 2.0,
    -8.0 / 3.0,
    125.0 / 24.0,
    -54.0 / 5.0,
    16_807.0 / 720.0,
    -16_384.0 / 315.0,
];

/// Evaluates `Σ coef[k] x^k` by Horner's scheme (plain multiply-add: `f64::mul_add` is a slow
/// library call unless the target has FMA enabled).
#[inline(always)]
fn horner(x: f64, coef: &[f64]) -> f64 {
    coef.iter().rev().fold(0.0, |acc, &c| acc * x + c)
}

/// Principal branch `W0(z)` of the Lambert W function: the real `w >= -1` with `w e^w = z`.
///
/// Accurate to a few ulp on the whole domain `[-1/e, +∞)`, including arguments within a few
/// ulp of the branch point `-1/e` (where `W0(z) ≈ -1 + sqrt(2(e z + 1))`).
///
/// * `z` in `[-1/e - 8 ulp, -1/e]` (rounding noise around the branch point) gives `-1`;
/// * `z < -1/e` beyond that, `z = -∞` and `NaN` give `NaN`;
/// * `W0(0) = 0`, `W0(+∞) = +∞`, and tiny or subnormal `z` give `W0(z) ≈ z`.
#[inline]
pub fn lambert_w0(z: f64) -> f64 {
    lambert_w0_checked(z).unwrap_or(f64::NAN)
}

/// Principal branch `W0(z)` of the Lambert W function (`w e^w = z`, `w >= -1`), returning
/// `None` where no real `W0` exists.
///
/// Same as [`lambert_w0`], but returns `None` instead of `NaN` for `z < -1/e` (beyond a
/// tolerance of 8 ulp of `1/e` for rounding noise, inside which the result is `Some(-1.0)`),
/// for `z = -∞` and for `NaN`.
#[inline]
pub fn lambert_w0_checked(z: f64) -> Option<f64> {
    if z.is_nan() {
        return None;
    }
    if z < Z_BRANCH {
        // d = z - (-1/e): `z - NEG_INV_E_HI` is exact (Sterbenz), the low part adds < 1 ulp of d.
        let d = (z - NEG_INV_E_HI) - NEG_INV_E_LO;
        if d <= 0.0 {
            return if d >= -BRANCH_TOLERANCE { Some(-1.0) } else { None };
        }
        // q = e·d = e z + 1 to about 1 ulp relative.
        let q = E_HI * d + E_LO * d;
        return Some(branch_solve(q) - 1.0);
    }
    if z.abs() < Z_TINY {
        return Some(z * horner(z, &TAYLOR_0));
    }
    if z == f64::INFINITY {
        return Some(f64::INFINITY);
    }
    Some(halley_solve(z, initial_guess(z)))
}

/// Solves `g(u) = 1 + (u - 1) e^u = q` for `u = 1 + W0(z) ∈ (0, 0.62]`, given `q = e z + 1 > 0`.
#[inline]
fn branch_solve(q: f64) -> f64 {
    let p = (2.0 * q).sqrt();
    let mut u = branch_guess(p);
    if p < P_SERIES_ONLY {
        return u;
    }
    for _ in 0..4 {
        let g = u * u * horner(u, &G_SERIES) - q;
        let eu = u.exp();
        let g1 = u * eu; // g'(u)
        let g2 = eu + g1; // g''(u) = (1 + u) e^u
        let delta = 2.0 * g * g1 / (2.0 * g1 * g1 - g * g2); // Halley, one division
        u -= delta;
        // The error after a Halley step is O(delta³): done once delta is below ~1e-6 u.
        if delta.abs() <= 1e-6 * u {
            break;
        }
    }
    u
}

/// `u = 1 + W0(z)` from `p = sqrt(2(e z + 1))` by the Padé approximant of [`BRANCH_PADE_P`] /
/// [`BRANCH_PADE_Q`]: relative error < 4e-9 for `p <= 0.77` (`z <= -0.26`, mpmath), far less
/// near the branch point, so that one Halley step gives full precision.
#[inline]
fn branch_guess(p: f64) -> f64 {
    p * horner(p, &BRANCH_PADE_P) / horner(p, &BRANCH_PADE_Q)
}

/// Initial guess for `W0(z)`, `z >= Z_BRANCH`, `|z| >= Z_TINY`, finite.
#[inline]
fn initial_guess(z: f64) -> f64 {
    if z < Z_MID_BRANCH_GUESS {
        // Still close enough to the branch point for its approximant (z >= Z_BRANCH > -1/e).
        let p = (2.0 * (E_HI * z + 1.0)).sqrt();
        branch_guess(p) - 1.0
    } else if z < 0.0 {
        z * horner(z, &ZERO_PADE_P) / horner(z, &ZERO_PADE_Q)
    } else if z <= 1.0 {
        // Padé [3/2] approximant of W0 at 0.
        z * (1.0 + z * (1.9 + z * (17.0 / 60.0))) / (1.0 + z * (2.9 + z * (101.0 / 60.0)))
    } else if z <= Z_ASYMPTOTIC {
        // Winitzki's approximation.
        let l = z.ln_1p();
        l * (1.0 - l.ln_1p() / (2.0 + l))
    } else {
        let l1 = z.ln();
        let l2 = l1.ln();
        l1 - l2 + l2 / l1 + l2 * (l2 - 2.0) / (2.0 * l1 * l1)
    }
}

/// Refines `w ≈ W0(z)` by Halley's method on `F(w) = w e^w - z`, with `F`, `F'`, `F''` all
/// scaled by `e^{-w}` (`r = w - z e^{-w}`, `1 + w`, `2 + w`) so nothing overflows:
/// `w ← w - r / ((1 + w) - r (2 + w) / (2 (1 + w)))`.
#[inline]
fn halley_solve(z: f64, mut w: f64) -> f64 {
    for _ in 0..5 {
        let r = w - z * (-w).exp();
        let wp1 = w + 1.0;
        let delta = 2.0 * r * wp1 / (2.0 * wp1 * wp1 - r * (w + 2.0)); // Halley, one division
        w -= delta;
        if delta.abs() <= 1e-6 * w.abs() {
            break;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Distance between `a` and `b` in units of the ulp of `b`.
    fn ulps(a: f64, b: f64) -> f64 {
        let ulp = if b == 0.0 {
            f64::MIN_POSITIVE
        } else {
            f64::EPSILON * 2f64.powi(b.abs().log2().floor() as i32)
        };
        (a - b).abs() / ulp
    }

    /// `(z, W0(z))` with `W0` computed by `mpmath.lambertw` at 50 decimal digits (mpmath 1.3.0)
    /// and rounded to `f64`. `-1/e + k ulp` means `NEG_INV_E_HI + k · 2^-54` (the `f64` nearest to
    /// `-1/e`, which is 0.22 ulp below it, plus `k` ulp).
    const REFERENCE: [(f64, f64); 18] = [
        (-0.3678794411714423, -0.9999999846957459),  // -1/e + 1 ulp
        (-0.3678794411714422, -0.9999999768481082),  // -1/e + 2 ulp
        (-0.36787944117144217, -0.9999999710552251), // -1/e + 3 ulp
        (-0.36787944117144206, -0.9999999620344922), // -1/e + 5 ulp
        (-0.3678794411714418, -0.9999999456830666),  // -1/e + 10 ulp
        (-0.3678794411714368, -0.9999998264735825),  // -1/e + 100 ulp
        (-0.3678794411708872, -0.999998262810313),   // -1/e + 1e4 ulp
        (-0.3678794356203272, -0.999826289044975),   // -1/e + 1e8 ulp
        (-0.3, -0.4894022271802149),
        (-0.1, -0.11183255915896297),
        (-1e-10, -1.0000000001000001e-10),
        (1e-300, 1e-300),
        (0.5, 0.35173371124919584),
        (1.0, 0.5671432904097838),
        (std::f64::consts::E, 1.0),
        (10.0, 1.7455280027406994),
        (1e10, 20.028685413304952),
        (1e300, 684.2472086297608),
    ];

    #[test]
    fn matches_mpmath_reference() {
        for &(z, w) in &REFERENCE {
            let got = lambert_w0(z);
            assert!(
                ulps(got, w) <= 2.0,
                "W0({z:e}) = {got:e}, expected {w:e} ({} ulp)",
                ulps(got, w)
            );
        }
    }

    #[test]
    fn mid_region_guess_needs_one_halley_step() {
        // -0.26 <= z < 0: the guess is within 4e-7 relative, so the first Halley step's change
        // is below the loop's 1e-6 stopping bound and it takes that one step only.
        for k in 0..=2600 {
            let z = Z_BRANCH + f64::from(k) * 1e-4;
            if z >= -Z_TINY {
                break;
            }
            let (guess, w) = (initial_guess(z), lambert_w0(z));
            assert!(
                (guess - w).abs() <= 4e-7 * w.abs(),
                "z = {z}: guess {guess:e}, W0 {w:e}"
            );
        }
    }

    #[test]
    fn near_branch_point_follows_series() {
        // For tiny q = e z + 1: W0 = -1 + p - p²/3 + 11/72 p³ + O(p⁴), p = sqrt(2q).
        for k in 1..2000u32 {
            let z = NEG_INV_E_HI + f64::from(k) * 2f64.powi(-54);
            let d = (z - NEG_INV_E_HI) - NEG_INV_E_LO;
            let q = E_HI * d + E_LO * d;
            let p = (2.0 * q).sqrt();
            let expect = -1.0 + p * (1.0 + p * (-1.0 / 3.0 + p * 11.0 / 72.0));
            let got = lambert_w0(z);
            assert!(ulps(got, expect) <= 2.0, "k={k}: {got:e} vs {expect:e}");
        }
    }

    #[test]
    fn special_values() {
        assert_eq!(lambert_w0(NEG_INV_E_HI), -1.0);
        assert_eq!(lambert_w0(-1.0 / std::f64::consts::E), -1.0);
        assert_eq!(lambert_w0(NEG_INV_E_HI - 2f64.powi(-53)), -1.0);
        assert_eq!(lambert_w0(0.0), 0.0);
        assert_eq!(lambert_w0(-0.0), 0.0);
        assert_eq!(lambert_w0(std::f64::consts::E), 1.0);
        assert_eq!(lambert_w0(f64::INFINITY), f64::INFINITY);
        assert!(lambert_w0(f64::NAN).is_nan());
        assert!(lambert_w0(f64::NEG_INFINITY).is_nan());
        assert!(lambert_w0(NEG_INV_E_HI - 1e-15).is_nan());
        assert!(lambert_w0(-0.5).is_nan());
        assert!(lambert_w0(-1e300).is_nan());
        assert_eq!(lambert_w0_checked(f64::NAN), None);
        assert_eq!(lambert_w0_checked(NEG_INV_E_HI - 1e-15), None);
        assert_eq!(lambert_w0_checked(f64::NEG_INFINITY), None);
        assert_eq!(lambert_w0_checked(NEG_INV_E_HI), Some(-1.0));
        assert_eq!(lambert_w0_checked(1.0), Some(lambert_w0(1.0)));
        // Subnormal and tiny arguments: W0(z) = z (1 - z + …).
        for z in [
            f64::from_bits(1),
            -f64::from_bits(1),
            f64::MIN_POSITIVE,
            -1e-300,
            1e-20,
            -1e-17,
        ] {
            assert_eq!(lambert_w0(z), z);
        }
        // Huge arguments neither overflow nor lose accuracy.
        let w = lambert_w0(f64::MAX);
        assert!(w.is_finite() && (w - 703.227_033_104_770_7).abs() < 1e-12, "{w}");
        let w = lambert_w0(1e308);
        assert!((w + w.ln() - 1e308f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn monotone_on_fine_grid() {
        let mut prev = lambert_w0(NEG_INV_E_HI);
        // Ulp steps away from the branch point, then a fine uniform grid, then a geometric grid.
        let mut z = NEG_INV_E_HI;
        for _ in 0..10_000 {
            z = z.next_up_compat();
            let w = lambert_w0(z);
            assert!(w >= prev, "not monotone at {z:e}");
            prev = w;
        }
        let n = 400_000;
        for i in 0..=n {
            let z = NEG_INV_E_HI + 1e-11 + (20.0 - NEG_INV_E_HI) * f64::from(i) / f64::from(n);
            let w = lambert_w0(z);
            assert!(w >= prev, "not monotone at {z:e}");
            prev = w;
        }
        let mut z = 20.0f64;
        while z < 1e300 {
            z *= 1.001;
            let w = lambert_w0(z);
            assert!(w >= prev, "not monotone at {z:e}");
            prev = w;
        }
    }

    /// `f64::next_up` is stable only since Rust 1.86; the crate supports 1.85.
    trait NextUp {
        fn next_up_compat(self) -> Self;
    }
    impl NextUp for f64 {
        fn next_up_compat(self) -> f64 {
            // Only used for finite negative values here: moving up means a smaller magnitude.
            f64::from_bits(self.to_bits() - 1)
        }
    }

    /// Checks `w e^w = z` to a relative tolerance that accounts for the conditioning of `e^w`
    /// (for `z > 1`, in the overflow-free logarithmic form `w + ln w = ln z`).
    fn check_identity(z: f64) {
        let w = lambert_w0(z);
        assert!(w >= -1.0, "W0({z:e}) = {w:e} < -1");
        if z > 1.0 {
            let (lhs, rhs) = (w + w.ln(), z.ln());
            assert!(
                // Near z = 1 the two terms cancel: scale by their magnitudes, not by ln z.
                (lhs - rhs).abs() <= 4.0 * f64::EPSILON * (w.abs() + w.ln().abs()).max(rhs),
                "W0({z:e}) = {w:e}: w + ln w = {lhs:e}"
            );
        } else {
            let lhs = w * w.exp();
            let tol = 4.0 * f64::EPSILON * z.abs() + f64::from_bits(1);
            assert!((lhs - z).abs() <= tol, "W0({z:e}) = {w:e}: w e^w = {lhs:e}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn identity_positive(exp in -320.0f64..308.0, mant in 1.0f64..10.0) {
            let z = mant * 10f64.powf(exp);
            prop_assume!(z.is_finite());
            check_identity(z);
        }

        #[test]
        fn identity_negative(exp in -320.0f64..-0.44) {
            let z = -(10f64.powf(exp));
            prop_assume!(z >= NEG_INV_E_HI);
            check_identity(z);
        }

        #[test]
        fn identity_near_branch(exp in -17.0f64..-0.5) {
            // z = -1/e + 10^exp, log-uniform distance from the branch point.
            check_identity(NEG_INV_E_HI + 10f64.powf(exp));
        }

        #[test]
        fn checked_agrees(z in -1.0f64..1e3) {
            match lambert_w0_checked(z) {
                Some(w) => prop_assert_eq!(w.to_bits(), lambert_w0(z).to_bits()),
                None => prop_assert!(z < NEG_INV_E_HI && lambert_w0(z).is_nan()),
            }
        }
    }
}
