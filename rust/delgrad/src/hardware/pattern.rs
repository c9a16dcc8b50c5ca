//! The fixed pattern of a chip: per neuron circuit a threshold offset and time-constant
//! factors, per synapse row a gain, drawn once per chip ([`ChipPattern`]) and placed under a
//! network layer by layer ([`LayerPattern`]); docs/hardware.md, "Fixed-pattern noise".

use super::noise::effect;
use crate::alloc;
use crate::error::{Error, Result};
use crate::network::{Layer, Network};
use crate::streams::Stream;

/// Distributions of the fixed-pattern (per-chip) imperfections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatternParams {
    /// Mean of the threshold offset per neuron circuit (BSS-2: +0.13).
    pub theta_offset_mean: f64,
    /// Std of the threshold offset per neuron circuit (BSS-2: 0.08).
    pub theta_offset_std: f64,
    /// Relative std of tau_m per circuit: tau_m = tau (1 + N(0, s)) (default 0, off).
    pub tau_m_mismatch: f64,
    /// Relative std of tau_s per circuit (default 0, off).
    pub tau_s_mismatch: f64,
    /// Relative std of the gain of every synapse row: g = 1 + N(0, s), clamped at 0 (default 0).
    pub gain_mismatch: f64,
}

impl Default for PatternParams {
    fn default() -> Self {
        Self::bss2()
    }
}

impl PatternParams {
    /// The BrainScaleS-2 values of docs/hardware.md: offsets N(0.13, 0.08), the unmeasured
    /// mismatches off.
    pub fn bss2() -> Self {
        PatternParams {
            theta_offset_mean: 0.13,
            theta_offset_std: 0.08,
            tau_m_mismatch: 0.0,
            tau_s_mismatch: 0.0,
            gain_mismatch: 0.0,
        }
    }

    /// Checks that the mean is finite and every std finite and >= 0.
    pub fn validate(&self) -> Result<()> {
        if !self.theta_offset_mean.is_finite() {
            return Err(Error::value(
                "theta_offset_mean",
                format!("expected a finite number, got {}", self.theta_offset_mean),
            ));
        }
        for (name, v) in [
            ("theta_offset_std", self.theta_offset_std),
            ("tau_m_mismatch", self.tau_m_mismatch),
            ("tau_s_mismatch", self.tau_s_mismatch),
            ("gain_mismatch", self.gain_mismatch),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::value(name, format!("expected a finite number >= 0, got {v}")));
            }
        }
        Ok(())
    }
}

/// Most neuron circuits, and most synapse rows, of a chip whose pattern is drawn (2**24; a
/// BrainScaleS-2 hemisphere has 256 of each): bounds a pattern's memory at 512 MiB.
pub const MAX_CIRCUITS: usize = 1 << 24;

/// The fixed pattern of one chip, per neuron circuit and per synapse row (drawn once per chip).
#[derive(Debug, Clone, PartialEq)]
pub struct ChipPattern {
    /// Threshold offset o_c per circuit (model units).
    pub theta_offset: Vec<f64>,
    /// tau_m factor 1 + N(0, tau_m_mismatch) per circuit (clamped to >= 0.05).
    pub tau_m_factor: Vec<f64>,
    /// tau_s factor per circuit (clamped to >= 0.05).
    pub tau_s_factor: Vec<f64>,
    /// Gain per synapse row (>= 0).
    pub row_gain: Vec<f64>,
}

impl ChipPattern {
    /// Draws the pattern of a chip with `circuits` neuron circuits and `rows` synapse rows from the
    /// stream of `seed` (e.g. a hash of the chip id): offsets first, then the tau_m, tau_s factors
    /// and the row gains, each from its own stream so that switching one effect leaves the others.
    ///
    /// `circuits` and `rows` are at most [`MAX_CIRCUITS`] (an error naming the count and the
    /// memory it would need otherwise); the arrays are allocated fallibly ([`crate::alloc`]).
    pub fn draw(circuits: usize, rows: usize, params: &PatternParams, seed: u64) -> Result<Self> {
        params.validate()?;
        for (arg, n, per) in [("circuits", circuits, 3), ("rows", rows, 1)] {
            if n > MAX_CIRCUITS {
                let bytes = n
                    .checked_mul(per * std::mem::size_of::<f64>())
                    .map_or_else(|| "more than an address space holds".into(), alloc::bytes_text);
                return Err(Error::memory(
                    arg,
                    format!("expected at most {MAX_CIRCUITS} (2**24), got {n}; its pattern would need {bytes}"),
                ));
            }
        }
        let per_circuit = |what: &str| alloc::filled("circuits", what, circuits, 0.0);
        let mut pattern = ChipPattern {
            theta_offset: per_circuit("the threshold offsets")?,
            tau_m_factor: per_circuit("the tau_m factors")?,
            tau_s_factor: per_circuit("the tau_s factors")?,
            row_gain: alloc::filled("rows", "the row gains", rows, 0.0)?,
        };
        let draw = |part: u64, out: &mut [f64], f: &dyn Fn(f64) -> f64| {
            let mut s = Stream::new(&[seed, effect::PATTERN, part]);
            out.iter_mut().for_each(|v| *v = f(s.normal()));
        };
        let p = *params;
        draw(0, &mut pattern.theta_offset, &|z| {
            p.theta_offset_mean + p.theta_offset_std * z
        });
        draw(1, &mut pattern.tau_m_factor, &|z| {
            (1.0 + p.tau_m_mismatch * z).max(0.05)
        });
        draw(2, &mut pattern.tau_s_factor, &|z| {
            (1.0 + p.tau_s_mismatch * z).max(0.05)
        });
        draw(3, &mut pattern.row_gain, &|z| (1.0 + p.gain_mismatch * z).max(0.0));
        Ok(pattern)
    }

    /// The pattern `net` sees when its layers are placed one after the other from circuit 0 and
    /// row 0: layer l's neurons on the next n_out circuits (offsets; time constants = the layer's
    /// times the circuits' factors), its inputs on the next 2 n_in rows, alternately excitatory
    /// and inhibitory. An error if the chip has too few circuits or rows.
    pub fn place(&self, net: &Network) -> Result<Vec<LayerPattern>> {
        let (mut circuit, mut row) = (0, 0);
        let mut out = Vec::with_capacity(net.layers.len());
        for (l, layer) in net.layers.iter().enumerate() {
            let (n_out, n_in) = (layer.n_out(), layer.n_in());
            let (c, r) = (circuit..circuit + n_out, row..row + 2 * n_in);
            if c.end > self.theta_offset.len() || r.end > self.row_gain.len() {
                return Err(Error::shape(
                    "net",
                    format!("{} circuits and {} rows", self.theta_offset.len(), self.row_gain.len()),
                    format!("{} circuits and {} rows up to layer {l}", c.end, r.end),
                ));
            }
            let rows = &self.row_gain[r];
            out.push(LayerPattern {
                theta_offset: self.theta_offset[c.clone()].to_vec(),
                tau_m: self.tau_m_factor[c.clone()]
                    .iter()
                    .map(|f| f * layer.neuron.tau_m())
                    .collect(),
                tau_s: self.tau_s_factor[c].iter().map(|f| f * layer.neuron.tau_s()).collect(),
                gain_exc: rows.iter().step_by(2).copied().collect(),
                gain_inh: rows.iter().skip(1).step_by(2).copied().collect(),
            });
            (circuit, row) = (circuit + n_out, row + 2 * n_in);
        }
        Ok(out)
    }
}

/// The fixed pattern of one placed layer: per neuron the threshold offset and the time constants,
/// per input the gains of its excitatory and inhibitory synapse rows.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPattern {
    /// Threshold offset per neuron `[n_out]`.
    pub theta_offset: Vec<f64>,
    /// Membrane time constant per neuron `[n_out]` (> 0).
    pub tau_m: Vec<f64>,
    /// Synaptic time constant per neuron `[n_out]` (> 0).
    pub tau_s: Vec<f64>,
    /// Gain of the excitatory row of every input `[n_in]` (>= 0).
    pub gain_exc: Vec<f64>,
    /// Gain of the inhibitory row of every input `[n_in]` (>= 0).
    pub gain_inh: Vec<f64>,
}

impl LayerPattern {
    /// The pattern of a perfect chip for `layer`: no offsets, the layer's time constants, unit gains.
    pub fn ideal(layer: &Layer) -> Self {
        let (n_out, n_in) = (layer.n_out(), layer.n_in());
        LayerPattern {
            theta_offset: vec![0.0; n_out],
            tau_m: vec![layer.neuron.tau_m(); n_out],
            tau_s: vec![layer.neuron.tau_s(); n_out],
            gain_exc: vec![1.0; n_in],
            gain_inh: vec![1.0; n_in],
        }
    }

    pub(super) fn validate(&self, prefix: &str, n_in: usize, n_out: usize) -> Result<()> {
        /// What the entries of a field must be.
        #[derive(Clone, Copy)]
        enum Domain {
            Finite,
            Positive,
            NonNegative,
        }
        let fields = [
            ("theta_offset", &self.theta_offset, n_out, Domain::Finite),
            ("tau_m", &self.tau_m, n_out, Domain::Positive),
            ("tau_s", &self.tau_s, n_out, Domain::Positive),
            ("gain_exc", &self.gain_exc, n_in, Domain::NonNegative),
            ("gain_inh", &self.gain_inh, n_in, Domain::NonNegative),
        ];
        for (name, v, len, domain) in fields {
            let arg = || format!("{prefix}.{name}");
            if v.len() != len {
                return Err(Error::shape(arg(), format!("[{len}]"), format!("[{}]", v.len())));
            }
            let ok = |x: f64| match domain {
                Domain::Finite => x.is_finite(),
                Domain::Positive => x.is_finite() && x > 0.0,
                Domain::NonNegative => x.is_finite() && x >= 0.0,
            };
            if let Some(i) = v.iter().position(|&x| !ok(x)) {
                let want = match domain {
                    Domain::Finite => "finite",
                    Domain::Positive => "finite and > 0",
                    Domain::NonNegative => "finite and >= 0",
                };
                return Err(Error::value(
                    arg(),
                    format!("entries must be {want}; entry {i} is {}", v[i]),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_validate_names_the_field() {
        PatternParams::bss2().validate().unwrap();
        let mut p = PatternParams::bss2();
        p.gain_mismatch = f64::NAN;
        assert!(p.validate().unwrap_err().to_string().contains("gain_mismatch"));
    }

    #[test]
    fn pattern_is_a_function_of_the_seed() {
        let p = PatternParams {
            tau_m_mismatch: 0.02,
            ..PatternParams::bss2()
        };
        let a = ChipPattern::draw(512, 512, &p, 11).unwrap();
        assert_eq!(a, ChipPattern::draw(512, 512, &p, 11).unwrap());
        assert_ne!(
            a.theta_offset,
            ChipPattern::draw(512, 512, &p, 12).unwrap().theta_offset
        );
        // switching one effect on leaves the others' draws unchanged
        let b = ChipPattern::draw(512, 512, &PatternParams::bss2(), 11).unwrap();
        assert_eq!(a.theta_offset, b.theta_offset);
        assert!(b.tau_m_factor.iter().all(|&f| f == 1.0));
    }
}
