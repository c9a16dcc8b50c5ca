//! A Mersenne Twister (MT19937) random number generator that reproduces the streams of
//! numpy's legacy `numpy.random.RandomState` bit for bit, so that data sets, weight
//! initialisations and shuffles generated here match the published Python experiments.
//!
//! MT19937 is implemented from its definition (Matsumoto & Nishimura 1998); the derived
//! draws (`random_sample`, `randint`, `standard_normal`, `shuffle`) follow numpy's legacy
//! algorithms, which are kept frozen by numpy for reproducibility.

use crate::error::{Error, Result};

/// Number of 32-bit words in the MT19937 state.
pub const STATE_LEN: usize = 624;
/// Offset of the word combined with the twisted pair.
const SHIFT: usize = 397;
/// Coefficients of the rational normal form twist matrix.
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// A complete snapshot of a [`RandomState`], laid out like numpy's
/// `RandomState.get_state()` tuple `('MT19937', key, pos, has_gauss, cached_gaussian)`.
#[derive(Debug, Clone, PartialEq)]
pub struct RngState {
    /// The 624-word MT19937 key.
    pub key: Vec<u32>,
    /// Index of the next key word to temper; 624 means the key is regenerated first.
    pub pos: usize,
    /// Whether a second normal deviate of the polar method is cached.
    pub has_gauss: bool,
    /// The cached normal deviate (0.0 when `has_gauss` is false, as in numpy).
    pub gauss: f64,
}

/// MT19937 generator bit-exact with `numpy.random.RandomState` (legacy seeding and draws).
#[derive(Debug, Clone, PartialEq)]
pub struct RandomState {
    key: [u32; STATE_LEN],
    pos: usize,
    has_gauss: bool,
    gauss: f64,
}

impl RandomState {
    /// Seeds like `numpy.random.RandomState(seed)` for an integer seed (MT19937 `init_genrand`).
    pub fn new(seed: u32) -> Self {
        let mut key = [0u32; STATE_LEN];
        key[0] = seed;
        for i in 1..STATE_LEN {
            let prev = key[i - 1];
            // `i < 624` fits in u32; arithmetic is modulo 2^32 by definition.
            key[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        RandomState {
            key,
            pos: STATE_LEN,
            has_gauss: false,
            gauss: 0.0,
        }
    }

    /// Regenerates the whole key (the MT19937 "twist").
    fn twist(&mut self) {
        for i in 0..STATE_LEN {
            let y = (self.key[i] & UPPER_MASK) | (self.key[(i + 1) % STATE_LEN] & LOWER_MASK);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            self.key[i] = self.key[(i + SHIFT) % STATE_LEN] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// Next raw 32-bit output (tempered key word).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= STATE_LEN {
            self.twist();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Next 64-bit output: numpy combines two 32-bit draws, the first in the high word.
    pub fn next_u64(&mut self) -> u64 {
        let high = u64::from(self.next_u32());
        (high << 32) | u64::from(self.next_u32())
    }

    /// Uniform double in `[0, 1)` with 53 random bits, like `RandomState.random_sample()` / `rand()`.
    pub fn random_sample(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// Uniform integer in `[0, high)`, like `RandomState.randint(high)`.
    ///
    /// Legacy masked rejection: draw `u32 & mask` (mask = smallest `2^k - 1 >= high - 1`)
    /// until it is `<= high - 1`. `high <= 1` returns 0 without consuming a draw (numpy does
    /// the same for `high == 1`; it raises for `high == 0`, which here also yields 0).
    pub fn randint(&mut self, high: u32) -> u32 {
        self.bounded_u32(high.saturating_sub(1))
    }

    /// Uniform integer in `[0, max]` by masked rejection on 32-bit draws; `max == 0` draws nothing.
    fn bounded_u32(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mask = u32::MAX >> max.leading_zeros();
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// numpy's `random_interval(max)`: uniform in `[0, max]`, 32-bit draws while `max` fits in u32.
    fn interval(&mut self, max: usize) -> usize {
        // usize -> u64 is lossless on all supported targets; the fallback only guards exotic ones.
        let max64 = u64::try_from(max).unwrap_or(u64::MAX);
        match u32::try_from(max64) {
            Ok(m) => self.bounded_u32(m) as usize,
            Err(_) => {
                let mask = u64::MAX >> max64.leading_zeros();
                loop {
                    let v = self.next_u64() & mask;
                    if v <= max64 {
                        // v <= max, which came from a usize.
                        return v as usize;
                    }
                }
            }
        }
    }

    /// Standard normal deviate, like `RandomState.standard_normal()` (legacy polar Box-Muller).
    ///
    /// Each accepted pair yields two deviates: `f * x2` is returned and `f * x1` is cached
    /// for the next call, exactly as numpy's `legacy_gauss`.
    pub fn standard_normal(&mut self) -> f64 {
        if self.has_gauss {
            let g = self.gauss;
            self.has_gauss = false;
            self.gauss = 0.0;
            return g;
        }
        loop {
            let x1 = 2.0 * self.random_sample() - 1.0;
            let x2 = 2.0 * self.random_sample() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.gauss = f * x1;
                self.has_gauss = true;
                return f * x2;
            }
        }
    }

    /// Normal deviate `loc + scale * standard_normal()`, like `RandomState.normal(loc, scale)`.
    ///
    /// Not validated (numpy raises for `scale < 0`); callers check their parameters.
    pub fn normal(&mut self, loc: f64, scale: f64) -> f64 {
        loc + scale * self.standard_normal()
    }

    /// Shuffles `items` in place like `RandomState.shuffle` on a 1-D array: Fisher-Yates from
    /// the end, swapping `i` with a uniform `j` in `[0, i]` (legacy `random_interval`).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.interval(i);
            items.swap(i, j);
        }
    }

    /// A random permutation of `0..n`, like `RandomState.permutation(n)`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        self.shuffle(&mut p);
        p
    }

    /// Snapshot of the full generator state, like `RandomState.get_state()`.
    pub fn state(&self) -> RngState {
        RngState {
            key: self.key.to_vec(),
            pos: self.pos,
            has_gauss: self.has_gauss,
            gauss: self.gauss,
        }
    }

    /// Restores a generator from a snapshot, like `RandomState.set_state()`.
    ///
    /// Requires `key` of 624 words, `pos <= 624` and a finite `gauss` when `has_gauss`.
    pub fn from_state(state: &RngState) -> Result<Self> {
        let key: [u32; STATE_LEN] = state
            .key
            .as_slice()
            .try_into()
            .map_err(|_| Error::shape("state.key", format!("[{STATE_LEN}]"), format!("[{}]", state.key.len())))?;
        if state.pos > STATE_LEN {
            return Err(Error::value(
                "state.pos",
                format!("must be in [0, {STATE_LEN}], got {}", state.pos),
            ));
        }
        if state.has_gauss && !state.gauss.is_finite() {
            return Err(Error::value(
                "state.gauss",
                format!("cached normal deviate must be finite, got {}", state.gauss),
            ));
        }
        // numpy keeps 0.0 when nothing is cached; normalise so snapshots compare equal.
        let gauss = if state.has_gauss { state.gauss } else { 0.0 };
        Ok(RandomState {
            key,
            pos: state.pos,
            has_gauss: state.has_gauss,
            gauss,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Golden values below were generated with numpy 2.4.6, `numpy.random.RandomState(seed)`:
    // raw words via `randint(0, 2**32, dtype=np.uint64)`, then `random_sample`, `randint`,
    // `standard_normal`, `normal`, `shuffle` and `permutation` on fresh generators.
    const SEEDS: [u32; 3] = [0, 42, u32::MAX];

    #[test]
    fn next_u32_matches_numpy() {
        let expected: [[u32; 5]; 3] = [
            [2357136044, 2546248239, 3071714933, 3626093760, 2588848963],
            [1608637542, 3421126067, 4083286876, 787846414, 3143890026],
            [419326371, 479346978, 3918654476, 2416749639, 3388880820],
        ];
        for (seed, exp) in SEEDS.iter().zip(expected) {
            let mut rng = RandomState::new(*seed);
            let got: Vec<u32> = (0..5).map(|_| rng.next_u32()).collect();
            assert_eq!(got, exp, "seed {seed}");
        }
    }

    #[test]
    fn reference_mt19937_outputs() {
        // MT19937 reference values (also required of C++ std::mt19937): seed 5489,
        // first output and the 10000th output.
        let mut rng = RandomState::new(5489);
        assert_eq!(rng.next_u32(), 3499211612);
        let last = (1..10000).map(|_| rng.next_u32()).last();
        assert_eq!(last, Some(4123659995));
        // Across the first regeneration of the key (numpy, seed 7).
        let mut rng = RandomState::new(7);
        let words: Vec<u32> = (0..1000).map(|_| rng.next_u32()).collect();
        assert_eq!(
            (words[623], words[624], words[999]),
            (3222554838, 3732577367, 3925535521)
        );
    }

    #[test]
    fn next_u64_puts_first_draw_in_high_word() {
        // numpy: RandomState(0).randint(0, 2**64 - 1, dtype=np.uint64) == 0x8c7f0aac97c4aa2f.
        assert_eq!(RandomState::new(0).next_u64(), 0x8c7f_0aac_97c4_aa2f);
    }

    #[test]
    fn random_sample_matches_numpy() {
        let expected: [[f64; 5]; 3] = [
            [
                0.5488135039273248,
                0.7151893663724195,
                0.6027633760716439,
                0.5448831829968969,
                0.4236547993389047,
            ],
            [
                0.3745401188473625,
                0.9507143064099162,
                0.7319939418114051,
                0.5986584841970366,
                0.15601864044243652,
            ],
            [
                0.0976320289940138,
                0.9123828453026218,
                0.78903530185164,
                0.7800035981134678,
                0.01793967398674523,
            ],
        ];
        for (seed, exp) in SEEDS.iter().zip(expected) {
            let mut rng = RandomState::new(*seed);
            for e in exp {
                assert_eq!(rng.random_sample().to_bits(), e.to_bits(), "seed {seed}");
            }
        }
    }

    #[test]
    fn randint_matches_numpy() {
        let exp3: [[u32; 10]; 3] = [
            [0, 1, 0, 1, 1, 2, 0, 2, 0, 0],
            [2, 0, 2, 2, 0, 0, 2, 1, 2, 2],
            [2, 0, 0, 0, 2, 2, 1, 0, 2, 2],
        ];
        let exp1000: [[u32; 5]; 3] = [
            [684, 559, 629, 192, 835],
            [102, 435, 860, 270, 106],
            [419, 290, 12, 71, 948],
        ];
        // high = 2^31 + 1: mask 2^31 rejects about half of the draws.
        let exp_big: [[u32; 5]; 3] = [
            [1819583497, 1650906866, 1879422756, 1277901399, 243580376],
            [1608637542, 787846414, 670094950, 1914837113, 669991378],
            [419326371, 479346978, 77050329, 1217888032, 627568395],
        ];
        for (i, seed) in SEEDS.iter().enumerate() {
            let mut rng = RandomState::new(*seed);
            assert_eq!(
                (0..10).map(|_| rng.randint(3)).collect::<Vec<_>>(),
                exp3[i],
                "seed {seed}"
            );
            let mut rng = RandomState::new(*seed);
            assert_eq!(
                (0..5).map(|_| rng.randint(1000)).collect::<Vec<_>>(),
                exp1000[i],
                "seed {seed}"
            );
            let mut rng = RandomState::new(*seed);
            assert_eq!(
                (0..5).map(|_| rng.randint((1 << 31) + 1)).collect::<Vec<_>>(),
                exp_big[i],
                "seed {seed}"
            );
        }
    }

    #[test]
    fn randint_of_one_or_zero_draws_nothing() {
        let mut a = RandomState::new(0);
        let mut b = RandomState::new(0);
        assert_eq!(a.randint(1), 0);
        assert_eq!(a.randint(0), 0);
        assert_eq!(a, b);
        assert_eq!(a.next_u32(), b.next_u32());
    }

    #[test]
    fn standard_normal_matches_numpy_including_cache() {
        // Five normals (odd: the fifth leaves a cached deviate) then one uniform, which must
        // come from the stream after the fifth pair's draws, not from the cache.
        let expected: [([f64; 5], f64); 3] = [
            (
                [
                    1.764052345967664,
                    0.4001572083672233,
                    0.9787379841057392,
                    2.240893199201458,
                    1.8675579901499675,
                ],
                0.4375872112626925,
            ),
            (
                [
                    0.4967141530112327,
                    -0.13826430117118466,
                    0.6476885381006925,
                    1.5230298564080254,
                    -0.23415337472333597,
                ],
                0.05808361216819946,
            ),
            (
                [
                    0.6484086742306527,
                    0.6693235306338161,
                    -1.0805437227474493,
                    0.2845010447986309,
                    0.11388773652167104,
                ],
                0.9845555560357949,
            ),
        ];
        for (seed, (normals, uniform)) in SEEDS.iter().zip(expected) {
            let mut rng = RandomState::new(*seed);
            for e in normals {
                assert_eq!(rng.standard_normal().to_bits(), e.to_bits(), "seed {seed}");
            }
            assert!(rng.state().has_gauss);
            assert_eq!(rng.random_sample().to_bits(), uniform.to_bits(), "seed {seed}");
        }
    }

    #[test]
    fn normal_matches_numpy() {
        let expected: [[f64; 3]; 3] = [
            [5.028104691935328, 2.3003144167344467, 3.4574759682114786],
            [2.4934283060224653, 1.2234713976576308, 2.795377076201385],
            [2.7968173484613055, 2.838647061267632, -0.6610874454948985],
        ];
        for (seed, exp) in SEEDS.iter().zip(expected) {
            let mut rng = RandomState::new(*seed);
            for e in exp {
                assert_eq!(rng.normal(1.5, 2.0).to_bits(), e.to_bits(), "seed {seed}");
            }
        }
    }

    #[test]
    fn shuffle_and_permutation_match_numpy() {
        // Shuffle of arange(10), then permutation(10) from the same generator.
        let expected: [([usize; 10], [usize; 10]); 3] = [
            ([2, 8, 4, 9, 1, 6, 7, 3, 0, 5], [3, 5, 1, 2, 9, 8, 0, 6, 7, 4]),
            ([8, 1, 5, 0, 7, 2, 9, 4, 3, 6], [0, 1, 8, 5, 3, 4, 7, 9, 6, 2]),
            ([6, 9, 5, 1, 8, 0, 7, 4, 2, 3], [9, 0, 3, 4, 1, 5, 8, 7, 6, 2]),
        ];
        let head1000: [[usize; 10]; 3] = [
            [993, 859, 298, 553, 672, 971, 27, 231, 306, 706],
            [521, 737, 740, 660, 411, 678, 626, 513, 859, 136],
            [94, 405, 819, 632, 217, 169, 449, 275, 165, 828],
        ];
        for (i, seed) in SEEDS.iter().enumerate() {
            let mut rng = RandomState::new(*seed);
            let mut items: Vec<usize> = (0..10).collect();
            rng.shuffle(&mut items);
            assert_eq!(items, expected[i].0, "seed {seed}");
            assert_eq!(rng.permutation(10), expected[i].1, "seed {seed}");
            assert_eq!(
                RandomState::new(*seed).permutation(1000)[..10],
                head1000[i],
                "seed {seed}"
            );
        }
        // Empty and single-element permutations draw nothing.
        let mut rng = RandomState::new(1);
        assert_eq!(rng.permutation(0), Vec::<usize>::new());
        assert_eq!(rng.permutation(1), vec![0]);
        assert_eq!(rng, RandomState::new(1));
    }

    #[test]
    fn state_matches_numpy_get_state() {
        // numpy: RandomState(42), three standard normals, then get_state().
        let mut rng = RandomState::new(42);
        for _ in 0..3 {
            rng.standard_normal();
        }
        let st = rng.state();
        assert_eq!((st.key.len(), st.key[0], st.key[623]), (624, 723970371, 4088152671));
        assert_eq!((st.pos, st.has_gauss), (8, true));
        assert_eq!(st.gauss.to_bits(), 1.5230298564080254f64.to_bits());
        // Consuming the cache resets it to 0.0, as numpy does.
        rng.standard_normal();
        let st = rng.state();
        assert_eq!((st.has_gauss, st.gauss.to_bits()), (false, 0));
    }

    #[test]
    fn resume_from_state_continues_the_stream() {
        // numpy: RandomState(9), random_sample(700), standard_normal(), get_state/set_state,
        // then standard_normal() (the cached deviate) and random_sample().
        let mut rng = RandomState::new(9);
        for _ in 0..700 {
            rng.random_sample();
        }
        rng.standard_normal();
        let restored = RandomState::from_state(&rng.state());
        assert_eq!(restored.as_ref(), Ok(&rng));
        let mut resumed = match restored {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(resumed.standard_normal().to_bits(), 0.6176981599627815f64.to_bits());
        assert_eq!(resumed.random_sample().to_bits(), 0.7177369703902705f64.to_bits());
    }

    #[test]
    fn from_state_rejects_invalid_snapshots() {
        let good = RandomState::new(3).state();
        let mut short = good.clone();
        short.key.pop();
        assert!(matches!(RandomState::from_state(&short), Err(Error::Shape { arg, .. }) if arg == "state.key"));
        let bad_pos = RngState {
            pos: 625,
            ..good.clone()
        };
        assert!(matches!(RandomState::from_state(&bad_pos), Err(Error::Value { arg, .. }) if arg == "state.pos"));
        let bad_gauss = RngState {
            has_gauss: true,
            gauss: f64::NAN,
            ..good.clone()
        };
        assert!(matches!(RandomState::from_state(&bad_gauss), Err(Error::Value { arg, .. }) if arg == "state.gauss"));
        // pos = 624 (fresh seed) and pos = 0 are both valid.
        assert!(RandomState::from_state(&good).is_ok());
        assert!(RandomState::from_state(&RngState { pos: 0, ..good }).is_ok());
    }

    proptest! {
        #[test]
        fn snapshot_resumes_identically(seed in any::<u32>(), skip in 0usize..1500, normals in 0usize..3) {
            let mut rng = RandomState::new(seed);
            for _ in 0..skip {
                rng.next_u32();
            }
            for _ in 0..normals {
                rng.standard_normal();
            }
            let mut resumed = RandomState::from_state(&rng.state()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for _ in 0..700 {
                prop_assert_eq!(resumed.standard_normal().to_bits(), rng.standard_normal().to_bits());
                prop_assert_eq!(resumed.next_u32(), rng.next_u32());
            }
        }

        #[test]
        fn randint_and_shuffle_stay_in_range(seed in any::<u32>(), high in 1u32..u32::MAX, n in 0usize..200) {
            let mut rng = RandomState::new(seed);
            prop_assert!(rng.randint(high) < high);
            let u = rng.random_sample();
            prop_assert!((0.0..1.0).contains(&u));
            let mut p = rng.permutation(n);
            p.sort_unstable();
            prop_assert_eq!(p, (0..n).collect::<Vec<_>>());
        }
    }
}
