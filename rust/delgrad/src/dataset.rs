//! The Yin-Yang data set (Kriener, Göltz & Petrovici 2021, "The Yin-Yang dataset"), generated
//! bit for bit like the published Python generator (`YinYangDataset`, numpy `RandomState`),
//! and the encoding of its coordinates as input spike times.
//!
//! Points are drawn uniformly in the yin-yang disk of radius `r_big` centred at
//! `(r_big, r_big)`; each sample first picks its class uniformly (so classes stay balanced)
//! and then rejection-samples a point of that class. A sample is `[x, y, 1 - x, 1 - y]`: the
//! mirrored coordinates keep the total input activity independent of the position.

use crate::alloc;
use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::random::RandomState;

/// Earliest input spike time (value 0 maps here) used with the Yin-Yang data set.
pub const T_EARLY: f64 = 0.15;
/// Latest input spike time (value 1 maps here) used with the Yin-Yang data set.
pub const T_LATE: f64 = 2.0;

/// Number of input features of a sample: `[x, y, 1 - x, 1 - y]`.
const FEATURES: usize = 4;
/// Names accepted by [`Split::from_name`], in declaration order.
const SPLIT_NAMES: [&str; 3] = ["train", "validation", "test"];

/// One of the three published splits of the Yin-Yang data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training set: 5000 samples, seed 42.
    Train,
    /// Validation set: 1000 samples, seed 41.
    Validation,
    /// Test set: 1000 samples, seed 40.
    Test,
}

impl Split {
    /// Parses `"train"`, `"validation"` or `"test"`; other names are an error naming `split`.
    pub fn from_name(name: &str) -> Result<Split> {
        match name {
            "train" => Ok(Split::Train),
            "validation" => Ok(Split::Validation),
            "test" => Ok(Split::Test),
            _ => Err(Error::value(
                "split",
                format!(
                    "unknown split {name:?}, expected one of {}",
                    SPLIT_NAMES.map(|n| format!("{n:?}")).join(", ")
                ),
            )),
        }
    }

    /// The name accepted by [`Split::from_name`].
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => SPLIT_NAMES[0],
            Split::Validation => SPLIT_NAMES[1],
            Split::Test => SPLIT_NAMES[2],
        }
    }

    /// Seed of the published split: train 42, validation 41, test 40.
    pub fn seed(self) -> u32 {
        match self {
            Split::Train => 42,
            Split::Validation => 41,
            Split::Test => 40,
        }
    }

    /// Number of samples of the published split: train 5000, validation 1000, test 1000.
    pub fn size(self) -> usize {
        match self {
            Split::Train => 5000,
            Split::Validation | Split::Test => 1000,
        }
    }
}

/// A labelled data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Inputs `[n, 4]`: rows `[x, y, 1 - x, 1 - y]`.
    pub x: Matrix,
    /// Class labels, one per row of `x`: 0 = yang, 1 = yin, 2 = dots.
    pub y: Vec<usize>,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether the data set has no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// Radii of the yin-yang figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YinYangParams {
    /// Radius of the two dots (class 2); default 0.1.
    pub r_small: f64,
    /// Radius of the whole figure, centred at `(r_big, r_big)`; default 0.5.
    pub r_big: f64,
}

impl Default for YinYangParams {
    /// The published radii `r_small = 0.1`, `r_big = 0.5`.
    fn default() -> Self {
        YinYangParams {
            r_small: 0.1,
            r_big: 0.5,
        }
    }
}

impl YinYangParams {
    /// Checks that the figure is well formed and that rejection sampling terminates quickly.
    fn validate(&self) -> Result<()> {
        let YinYangParams { r_small, r_big } = *self;
        // Squared distances of order r_big^2 must neither overflow nor underflow.
        const MAG: std::ops::RangeInclusive<f64> = 1e-100..=1e100;
        if !(r_big.is_finite() && r_big > 0.0) {
            return Err(Error::value(
                "params.r_big",
                format!("must be finite and > 0, got {r_big}"),
            ));
        }
        if !MAG.contains(&r_big) {
            return Err(Error::value(
                "params.r_big",
                format!("must be in [1e-100, 1e100], got {r_big}"),
            ));
        }
        if !(r_small.is_finite() && r_small > 0.0) {
            return Err(Error::value(
                "params.r_small",
                format!("must be finite and > 0, got {r_small}"),
            ));
        }
        // The dots must fit inside the small half-circles, otherwise the yin/yang shapes overlap them.
        if 2.0 * r_small >= r_big {
            return Err(Error::value(
                "params.r_small",
                format!("must be < r_big / 2 = {}, got {r_small}", r_big / 2.0),
            ));
        }
        // A point lands in a dot with probability (pi / 2) (r_small / r_big)^2 per draw; below
        // this ratio the rejection sampler for class 2 would need millions of draws per sample.
        if r_small < 1e-3 * r_big {
            return Err(Error::value(
                "params.r_small",
                format!(
                    "must be >= 1e-3 * r_big = {} so that class 2 can be sampled, got {r_small}",
                    1e-3 * r_big
                ),
            ));
        }
        Ok(())
    }
}

/// Class of the point `(x, y)`: 0 = yang, 1 = yin, 2 = dots (as the published generator).
///
/// With `d_r`, `d_l` the distances to the dot centres `(1.5 r_big, r_big)` and
/// `(0.5 r_big, r_big)`: yin is `d_r <= r_small`, or `r_small < d_l <= r_big / 2`, or
/// `y > r_big && d_r > r_big / 2`; points with `d_r < r_small` or `d_l < r_small` are dots.
/// Points outside the disk are not rejected here (the sampler does that).
pub fn which_class(x: f64, y: f64, params: &YinYangParams) -> usize {
    let YinYangParams { r_small, r_big } = *params;
    let d_right = dist(x - 1.5 * r_big, y - r_big);
    let d_left = dist(x - 0.5 * r_big, y - r_big);
    let criterion1 = d_right <= r_small;
    let criterion2 = d_left > r_small && d_left <= 0.5 * r_big;
    let criterion3 = y > r_big && d_right > 0.5 * r_big;
    let is_yin = criterion1 || criterion2 || criterion3;
    if d_right < r_small || d_left < r_small {
        return 2;
    }
    usize::from(is_yin)
}

/// Euclidean length, computed as `sqrt(dx^2 + dy^2)` like the reference (not `hypot`, which rounds differently).
fn dist(dx: f64, dy: f64) -> f64 {
    (dx * dx + dy * dy).sqrt()
}

/// Draws one point of class `goal` (rejection sampling, x drawn before y).
fn sample(rng: &mut RandomState, params: &YinYangParams, goal: usize) -> (f64, f64) {
    let r_big = params.r_big;
    loop {
        // Same operation order as `rng.rand(2) * 2. * r_big` in the reference.
        let x = rng.random_sample() * 2.0 * r_big;
        let y = rng.random_sample() * 2.0 * r_big;
        if dist(x - r_big, y - r_big) > r_big {
            continue;
        }
        if which_class(x, y, params) == goal {
            return (x, y);
        }
    }
}

/// Fills `x` (`[n, 4]`, row-major) and `labels` (`[n]`) from seed `seed`; params are valid.
fn fill(seed: u32, params: &YinYangParams, x: &mut [f64], labels: &mut [usize]) {
    let mut rng = RandomState::new(seed);
    for (row, label) in x.chunks_exact_mut(FEATURES).zip(labels.iter_mut()) {
        let goal = rng.randint(3) as usize;
        let (px, py) = sample(&mut rng, params, goal);
        row.copy_from_slice(&[px, py, 1.0 - px, 1.0 - py]);
        *label = goal;
    }
}

/// A published split of the Yin-Yang data set with the default radii; identical to the
/// reference generator `YinYangDataset(size=split.size(), seed=split.seed())`.
pub fn yin_yang(split: Split) -> Dataset {
    let n = split.size();
    let mut x = Matrix::zeros("split", n, FEATURES).expect("a published split is small");
    let mut y = vec![0; n];
    fill(split.seed(), &YinYangParams::default(), x.as_mut_slice(), &mut y);
    Dataset { x, y }
}

/// `size` Yin-Yang samples from seed `seed` with custom radii, like
/// `YinYangDataset(r_small, r_big, size, seed)`.
///
/// Requires finite `0 < r_small`, `2 r_small < r_big`, `r_small >= 1e-3 r_big` (so that
/// every class has a reasonable acceptance rate) and `r_big` in `[1e-100, 1e100]`.
pub fn yin_yang_custom(seed: u32, size: usize, params: YinYangParams) -> Result<Dataset> {
    params.validate()?;
    let mut x = Matrix::zeros("size", size, FEATURES)?;
    let mut y = alloc::filled("size", "the labels", size, 0)?;
    fill(seed, &params, x.as_mut_slice(), &mut y);
    Ok(Dataset { x, y })
}

/// Encodes values as spike times `t = t_early + v * (t_late - t_early)`, element-wise, so
/// that 0 fires at `t_early` and 1 at `t_late` (defaults [`T_EARLY`] = 0.15, [`T_LATE`] = 2.0).
///
/// Requires finite `t_early <= t_late` and finite values in `x`.
pub fn encode_times(x: &Matrix, t_early: f64, t_late: f64) -> Result<Matrix> {
    if !t_early.is_finite() {
        return Err(Error::value("t_early", format!("must be finite, got {t_early}")));
    }
    if !t_late.is_finite() {
        return Err(Error::value("t_late", format!("must be finite, got {t_late}")));
    }
    if t_late < t_early {
        return Err(Error::value(
            "t_late",
            format!("must be >= t_early = {t_early}, got {t_late}"),
        ));
    }
    let span = t_late - t_early;
    if !span.is_finite() {
        return Err(Error::value(
            "t_late",
            format!("t_late - t_early overflows for [{t_early}, {t_late}]"),
        ));
    }
    let cols = x.cols().max(1);
    let mut out = x.clone();
    for (i, v) in out.as_mut_slice().iter_mut().enumerate() {
        let value = *v;
        if !value.is_finite() {
            return Err(Error::value(
                format!("x[{}, {}]", i / cols, i % cols),
                format!("must be finite, got {value}"),
            ));
        }
        *v = t_early + value * span;
        // Finite but huge values can still overflow the time axis.
        if !v.is_finite() {
            return Err(Error::value(
                format!("x[{}, {}]", i / cols, i % cols),
                format!("{value} maps to a non-finite spike time"),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Golden values from the published generator (`YinYangDataset` with numpy 2.4.6
    // `numpy.random.RandomState`), reimplemented in Python; all 7000 samples of the three splits
    // were compared bit for bit. `fingerprint` is FNV-1a over the f64 bits of every row followed
    // by its label, computed the same way in Python.
    fn fingerprint(d: &Dataset) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |w: u64| h = (h ^ w).wrapping_mul(0x100_0000_01b3);
        for (r, &label) in d.y.iter().enumerate() {
            for v in d.x.row(r) {
                eat(v.to_bits());
            }
            eat(label as u64);
        }
        h
    }

    fn counts(y: &[usize]) -> [usize; 3] {
        let mut c = [0; 3];
        for &label in y {
            c[label] += 1;
        }
        c
    }

    fn assert_row(d: &Dataset, r: usize, expected: [f64; 4], label: usize) {
        let got: Vec<u64> = d.x.row(r).iter().map(|v| v.to_bits()).collect();
        let want: Vec<u64> = expected.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want, "row {r}: {:?} vs {expected:?}", d.x.row(r));
        assert_eq!(d.y[r], label, "label of row {r}");
    }

    #[test]
    fn train_split_matches_published_generator() {
        let d = yin_yang(Split::Train);
        assert_eq!((d.x.rows(), d.x.cols(), d.len()), (5000, 4, 5000));
        assert_eq!(counts(&d.y), [1681, 1702, 1617]);
        assert_row(
            &d,
            0,
            [
                0.6803075385877797,
                0.450499251969543,
                0.3196924614122203,
                0.549500748030457,
            ],
            2,
        );
        assert_row(
            &d,
            4999,
            [
                0.7690797231107925,
                0.5883389337522971,
                0.23092027688920747,
                0.41166106624770293,
            ],
            2,
        );
        assert_eq!(fingerprint(&d), 0xad12_5472_ce2c_e32c);
    }

    #[test]
    fn validation_split_matches_published_generator() {
        let d = yin_yang(Split::Validation);
        assert_eq!(d.len(), 1000);
        assert_eq!(counts(&d.y), [316, 336, 348]);
        assert_row(
            &d,
            0,
            [
                0.6805727261759029,
                0.3209733938933629,
                0.3194272738240971,
                0.6790266061066371,
            ],
            0,
        );
        assert_row(
            &d,
            999,
            [
                0.7107040957004825,
                0.804733352731108,
                0.28929590429951746,
                0.19526664726889198,
            ],
            1,
        );
        assert_eq!(fingerprint(&d), 0xe2e5_b557_4329_d551);
    }

    #[test]
    fn test_split_matches_published_generator() {
        let d = yin_yang(Split::Test);
        assert_eq!(d.len(), 1000);
        assert_eq!(counts(&d.y), [350, 316, 334]);
        assert_row(
            &d,
            0,
            [
                0.23409664559563403,
                0.4017249751828972,
                0.765903354404366,
                0.5982750248171028,
            ],
            2,
        );
        assert_row(
            &d,
            999,
            [
                0.32834060537145815,
                0.3899830419619741,
                0.6716593946285419,
                0.6100169580380259,
            ],
            1,
        );
        assert_eq!(fingerprint(&d), 0x0529_1335_23a3_c933);
    }

    #[test]
    fn custom_radii_match_published_generator() {
        // YinYangDataset(r_small=0.05, r_big=0.8, size=300, seed=7).
        let d = yin_yang_custom(
            7,
            300,
            YinYangParams {
                r_small: 0.05,
                r_big: 0.8,
            },
        );
        let d = d.as_ref().map_err(ToString::to_string);
        let Ok(d) = d else { panic!("{d:?}") };
        assert_eq!(counts(&d.y), [95, 82, 123]);
        assert_row(
            d,
            0,
            [
                1.2478700675841834,
                0.7014547703054297,
                -0.2478700675841834,
                0.2985452296945703,
            ],
            0,
        );
        assert_eq!(fingerprint(d), 0x9a02_d666_6889_4b95);
    }

    #[test]
    fn custom_with_defaults_equals_published_split() {
        for split in [Split::Train, Split::Validation, Split::Test] {
            let custom = yin_yang_custom(split.seed(), split.size(), YinYangParams::default());
            assert_eq!(custom, Ok(yin_yang(split)), "{split:?}");
        }
        let empty = yin_yang_custom(1, 0, YinYangParams::default());
        assert!(matches!(empty, Ok(d) if d.is_empty() && d.x.rows() == 0 && d.x.cols() == 4));
    }

    #[test]
    fn split_names_seeds_and_sizes() {
        for (name, split, seed, size) in [
            ("train", Split::Train, 42, 5000),
            ("validation", Split::Validation, 41, 1000),
            ("test", Split::Test, 40, 1000),
        ] {
            assert_eq!(Split::from_name(name), Ok(split));
            assert_eq!((split.name(), split.seed(), split.size()), (name, seed, size));
        }
        let err = Split::from_name("Train");
        let Err(Error::Value { arg, message }) = err else {
            panic!("expected a value error, got {err:?}")
        };
        assert_eq!(arg, "split");
        assert!(message.contains("\"train\", \"validation\", \"test\""), "{message}");
    }

    #[test]
    fn which_class_regions() {
        let p = YinYangParams::default();
        // Dot centres, yin dot is the right one: both count as class 2.
        assert_eq!(which_class(0.75, 0.5, &p), 2);
        assert_eq!(which_class(0.25, 0.5, &p), 2);
        // Upper half, away from the right half-circle: yin. Lower half away from the left: yang.
        assert_eq!(which_class(0.5, 0.9, &p), 1);
        assert_eq!(which_class(0.5, 0.1, &p), 0);
        // Around the left dot (outside it) is yin, around the right dot is yang.
        assert_eq!(which_class(0.25, 0.35, &p), 1);
        assert_eq!(which_class(0.75, 0.65, &p), 0);
    }

    #[test]
    fn custom_rejects_bad_params() {
        let arg_of = |r_small: f64, r_big: f64| match yin_yang_custom(0, 3, YinYangParams { r_small, r_big }) {
            Err(Error::Value { arg, .. }) => arg,
            other => format!("no error: {other:?}"),
        };
        assert_eq!(arg_of(0.1, f64::NAN), "params.r_big");
        assert_eq!(arg_of(0.1, -0.5), "params.r_big");
        assert_eq!(arg_of(0.1, f64::INFINITY), "params.r_big");
        assert_eq!(arg_of(1e-200, 1e-199), "params.r_big");
        assert_eq!(arg_of(0.0, 0.5), "params.r_small");
        assert_eq!(arg_of(f64::NAN, 0.5), "params.r_small");
        assert_eq!(arg_of(0.25, 0.5), "params.r_small");
        assert_eq!(arg_of(1e-5, 0.5), "params.r_small");
        assert!(matches!(
            yin_yang_custom(0, usize::MAX, YinYangParams::default()),
            Err(Error::Memory { arg, .. }) if arg == "size"
        ));
    }

    #[test]
    fn encode_times_maps_unit_interval() {
        let x = Matrix::from_rows("x", &[vec![0.0, 1.0], vec![0.5, 0.25]]);
        let Ok(x) = x else { panic!("{x:?}") };
        let t = encode_times(&x, T_EARLY, T_LATE);
        let expected = [0.15, 2.0, 0.15 + 0.5 * 1.85, 0.15 + 0.25 * 1.85];
        assert!(
            matches!(&t, Ok(t) if t.as_slice() == expected && t.rows() == 2 && t.cols() == 2),
            "{t:?}"
        );
        // Equal bounds are allowed: every input fires at the same time.
        assert!(matches!(encode_times(&x, 1.0, 1.0), Ok(t) if t.as_slice().iter().all(|&v| v == 1.0)));
    }

    #[test]
    fn encode_times_rejects_bad_input() {
        let arg_of = |x: &Matrix, t0: f64, t1: f64| match encode_times(x, t0, t1) {
            Err(Error::Value { arg, .. }) => arg,
            other => format!("no error: {other:?}"),
        };
        let mut x = Matrix::zeros("x", 2, 3).unwrap();
        assert_eq!(arg_of(&x, f64::NAN, 2.0), "t_early");
        assert_eq!(arg_of(&x, 0.15, f64::INFINITY), "t_late");
        assert_eq!(arg_of(&x, 2.0, 0.15), "t_late");
        assert_eq!(arg_of(&x, -f64::MAX, f64::MAX), "t_late");
        x.row_mut(1)[2] = f64::NAN;
        assert_eq!(arg_of(&x, 0.15, 2.0), "x[1, 2]");
        x.row_mut(1)[2] = f64::NEG_INFINITY;
        assert_eq!(arg_of(&x, 0.15, 2.0), "x[1, 2]");
        x.row_mut(1)[2] = 0.0;
        x.row_mut(0)[1] = f64::MAX;
        assert_eq!(arg_of(&x, 0.15, 2.0), "x[0, 1]");
    }

    proptest! {
        #[test]
        fn samples_lie_in_the_disk_with_consistent_labels(
            seed in any::<u32>(), r_big in 0.1f64..10.0, ratio in 0.01f64..0.49,
        ) {
            let params = YinYangParams { r_small: ratio * r_big, r_big };
            let d = yin_yang_custom(seed, 30, params).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for r in 0..d.len() {
                let [x, y, fx, fy] = [d.x.get(r, 0), d.x.get(r, 1), d.x.get(r, 2), d.x.get(r, 3)];
                prop_assert!(dist(x - r_big, y - r_big) <= r_big);
                prop_assert_eq!((fx, fy), (1.0 - x, 1.0 - y));
                prop_assert_eq!(which_class(x, y, &params), d.y[r]);
            }
        }
    }
}
