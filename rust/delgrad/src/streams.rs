//! Counter-based random streams: a stream is addressed by a key (seed, run counter, sample,
//! layer, effect, ...) instead of being advanced by whoever runs first, so noise drawn in parallel
//! is identical for every thread count and every chunking of the batch.
//!
//! The key words are folded with the SplitMix64 finaliser (Steele, Lea & Flood 2014),
//! z -> (z ^ z >> 30) * 0xbf58476d1ce4e5b9 -> (z ^ z >> 27) * 0x94d049bb133111eb -> z ^ z >> 31,
//! and the stream then advances a Weyl sequence s_n = s_0 + n * 0x9e3779b97f4a7c15 through the same
//! finaliser (the SplitMix64 generator). Uniforms are the top 53 bits scaled by 2^-53; normals use
//! the Box-Muller transform sqrt(-2 ln u1) cos(2 pi u2) with u1 in (0, 1].

/// The golden-ratio increment of the Weyl sequence.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The SplitMix64 output finaliser (a bijection of u64 with good avalanche).
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A random stream addressed by a key of 64-bit words.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    state: u64,
    /// The second deviate of the last Box-Muller pair, if not used yet.
    spare: Option<f64>,
}

impl Stream {
    /// The stream of `key`: different keys give (with overwhelming probability) unrelated streams.
    pub fn new(key: &[u64]) -> Self {
        let mut h = 0x6a09_e667_f3bc_c908u64; // sqrt(2) fraction: any fixed start
        for &k in key {
            h = mix(h.wrapping_add(GAMMA) ^ mix(k.wrapping_add(GAMMA)));
        }
        Stream { state: h, spare: None }
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// Uniform on [0, 1) with 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal deviate (Box-Muller: each pair of uniforms gives r cos(phi), then r sin(phi)).
    #[inline]
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some(r * sin);
        r * cos
    }

    /// `true` with probability `p` (p <= 0: never, p >= 1: always).
    #[inline]
    pub fn bernoulli(&mut self, p: f64) -> bool {
        p > 0.0 && self.uniform() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_stream_different_key_different_stream() {
        let a: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(Stream::new(&[1, 2, 3]), |s, _| Some(s.next_u64()))
            .collect();
        let b: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(Stream::new(&[1, 2, 3]), |s, _| Some(s.next_u64()))
            .collect();
        let c: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(Stream::new(&[1, 2, 4]), |s, _| Some(s.next_u64()))
            .collect();
        let d: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(Stream::new(&[1, 2]), |s, _| Some(s.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn uniform_and_normal_moments() {
        let n = 200_000;
        let mut s = Stream::new(&[7]);
        let u: Vec<f64> = (0..n).map(|_| s.uniform()).collect();
        assert!(u.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = u.iter().sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "{mean}");
        let z: Vec<f64> = (0..n).map(|_| s.normal()).collect();
        let m = z.iter().sum::<f64>() / n as f64;
        let v = z.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        let k4 = z.iter().map(|x| (x - m).powi(4)).sum::<f64>() / n as f64 / (v * v);
        assert!(m.abs() < 0.01, "{m}");
        assert!((v - 1.0).abs() < 0.01, "{v}");
        assert!((k4 - 3.0).abs() < 0.05, "{k4}");
        // P(|z| < 1) of the standard normal is 0.6827
        let inside = z.iter().filter(|x| x.abs() < 1.0).count() as f64 / n as f64;
        assert!((inside - 0.6827).abs() < 0.005, "{inside}");
    }

    #[test]
    fn bernoulli_rate() {
        let mut s = Stream::new(&[9, 9]);
        let n = 100_000;
        let hits = (0..n).filter(|_| s.bernoulli(0.02)).count() as f64 / n as f64;
        assert!((hits - 0.02).abs() < 0.002, "{hits}");
        assert!(!(0..1000).any(|_| s.bernoulli(0.0)));
        assert!((0..1000).all(|_| s.bernoulli(1.0)));
    }
}
