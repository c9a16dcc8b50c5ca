//! Transmission delays of one layer and how they stay positive during training.
//!
//! `d_ki = d_syn[k, g(i)] + d_axo[g(i)] + d_den[k]` (model time units, all >= 0), where
//! g(i) = i / group maps an input to its delay group: `group` consecutive inputs share one
//! trainable delay (hardware feeds each input several times and shares its delay).

use crate::error::{Error, Result};
use crate::matrix::Matrix;

/// The delays of a layer; absent kinds are zero and not trained.
#[derive(Debug, Clone, PartialEq)]
pub struct Delays {
    /// Number of consecutive inputs that share one synaptic/axonal delay (>= 1).
    pub group: usize,
    /// Synaptic delays `[n_out, n_in / group]`.
    pub syn: Option<Matrix>,
    /// Axonal (presynaptic) delays `[n_in / group]`.
    pub axo: Option<Vec<f64>>,
    /// Dendritic (postsynaptic) delays `[n_out]`.
    pub den: Option<Vec<f64>>,
}

impl Default for Delays {
    fn default() -> Self {
        Delays {
            group: 1,
            syn: None,
            axo: None,
            den: None,
        }
    }
}

/// The three kinds of delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DelayKind {
    /// One delay per synapse `[n_out, n_in]`.
    Synaptic,
    /// One delay per presynaptic neuron `[n_in]`.
    Axonal,
    /// One delay per postsynaptic neuron `[n_out]`.
    Dendritic,
}

impl DelayKind {
    /// Parses `synaptic`, `axonal` or `dendritic`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "synaptic" | "syn" => Ok(DelayKind::Synaptic),
            "axonal" | "axo" => Ok(DelayKind::Axonal),
            "dendritic" | "den" => Ok(DelayKind::Dendritic),
            _ => Err(Error::option(
                "delay_kinds",
                format!("unknown delay kind {name:?}; expected synaptic, axonal or dendritic"),
            )),
        }
    }
}

/// Checks that every delay is finite and >= 0; `arg` names them (built only on error).
pub(crate) fn check_delays(arg: impl Fn() -> String, values: &[f64]) -> Result<()> {
    match values.iter().position(|d| !(d.is_finite() && *d >= 0.0)) {
        Some(i) => Err(Error::value(
            arg(),
            format!("delays must be finite and >= 0; entry {i} is {}", values[i]),
        )),
        None => Ok(()),
    }
}

impl Delays {
    /// Number of delay groups for `n_in` inputs.
    pub fn groups(&self, n_in: usize) -> usize {
        n_in / self.group.max(1)
    }

    /// Checks shapes against `[n_out, n_in]` and that every delay is finite and >= 0;
    /// `prefix` names the layer in messages (e.g. `layers[1]`).
    pub fn validate(&self, prefix: &str, n_in: usize, n_out: usize) -> Result<()> {
        if self.group == 0 || n_in % self.group != 0 {
            return Err(Error::value(
                format!("{prefix}.delay_group"),
                format!("must divide the number of inputs {n_in}; got {}", self.group),
            ));
        }
        let ng = self.groups(n_in);
        if let Some(m) = &self.syn {
            let arg = || format!("{prefix}.d_syn");
            if m.rows() != n_out || m.cols() != ng {
                m.expect_shape(&arg(), n_out, ng)?;
            }
            check_delays(arg, m.as_slice())?;
        }
        for (name, v, len) in [("d_axo", &self.axo, ng), ("d_den", &self.den, n_out)] {
            if let Some(v) = v {
                let arg = || format!("{prefix}.{name}");
                if v.len() != len {
                    return Err(Error::shape(arg(), format!("[{len}]"), format!("[{}]", v.len())));
                }
                check_delays(arg, v)?;
            }
        }
        Ok(())
    }

    /// The effective delay matrix d_ki `[n_out, n_in]` (of the size of the layer's weights,
    /// which are held already: see [`crate::alloc`]).
    pub fn effective(&self, n_in: usize, n_out: usize) -> Matrix {
        let g = self.group.max(1);
        let mut data = Vec::with_capacity(n_out * n_in);
        for k in 0..n_out {
            let den = self.den.as_ref().map_or(0.0, |v| v[k]);
            // Group by group: the inputs of a group share their synaptic and axonal delays.
            for j in 0..n_in.div_ceil(g) {
                let syn = self.syn.as_ref().map_or(0.0, |m| m.get(k, j));
                let axo = self.axo.as_ref().map_or(0.0, |v| v[j]);
                let len = g.min(n_in - j * g);
                data.extend(std::iter::repeat_n(syn + axo + den, len));
            }
        }
        Matrix::from_vec("delays", n_out, n_in, data).expect("n_in values per neuron")
    }

    /// Whether any delay kind is present.
    pub fn any(&self) -> bool {
        self.syn.is_some() || self.axo.is_some() || self.den.is_some()
    }
}

/// How a trained delay stays non-negative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DelayParam {
    /// d = shift + scale * sigmoid(p); the optimiser trains p.
    Sigmoid {
        /// Smallest delay (model time units, >= 0).
        shift: f64,
        /// Range of the delay above `shift` (> 0).
        scale: f64,
    },
    /// The optimiser trains d directly and clips it at 0 after each step.
    Clip,
}

impl Default for DelayParam {
    fn default() -> Self {
        DelayParam::Sigmoid {
            shift: Self::SIGMOID_SHIFT,
            scale: Self::SIGMOID_SCALE,
        }
    }
}

impl DelayParam {
    /// The default smallest delay of the sigmoid parametrisation.
    pub const SIGMOID_SHIFT: f64 = 0.0;
    /// The default range of the sigmoid parametrisation.
    pub const SIGMOID_SCALE: f64 = 1.0;

    /// The parametrisation called `name` (`"sigmoid"` with `shift` and `scale`, or `"clip"`); an
    /// unknown name is an error naming `delay_param`. The values are checked by
    /// [`DelayParam::validate`].
    pub fn from_name(name: &str, shift: f64, scale: f64) -> Result<Self> {
        match name {
            "sigmoid" => Ok(DelayParam::Sigmoid { shift, scale }),
            "clip" => Ok(DelayParam::Clip),
            _ => Err(Error::option(
                "delay_param",
                format!("unknown delay parametrisation {name:?}; expected \"sigmoid\" or \"clip\""),
            )),
        }
    }

    /// Validates shift >= 0 and scale > 0 (finite).
    pub fn validate(&self) -> Result<()> {
        if let DelayParam::Sigmoid { shift, scale } = *self {
            if !(shift.is_finite() && shift >= 0.0) {
                return Err(Error::value(
                    "delay_shift",
                    format!("expected a finite number >= 0, got {shift}"),
                ));
            }
            if !(scale.is_finite() && scale > 0.0) {
                return Err(Error::value(
                    "delay_scale",
                    format!("expected a finite number > 0, got {scale}"),
                ));
            }
        }
        Ok(())
    }

    /// The delay d for the trained parameter p.
    pub fn delay(&self, p: f64) -> f64 {
        match *self {
            DelayParam::Sigmoid { shift, scale } => shift + scale * sigmoid(p),
            DelayParam::Clip => p.max(0.0),
        }
    }

    /// dd/dp = scale sigma(p) (1 - sigma(p)) (1 for clipping).
    pub fn slope(&self, p: f64) -> f64 {
        match *self {
            DelayParam::Sigmoid { scale, .. } => {
                let s = sigmoid(p);
                scale * s * (1.0 - s)
            }
            DelayParam::Clip => 1.0,
        }
    }

    /// The parameter p that gives delay d (d clamped into the reachable open range).
    pub fn param(&self, d: f64) -> f64 {
        match *self {
            DelayParam::Sigmoid { shift, scale } => {
                let y = ((d - shift) / scale).clamp(1e-12, 1.0 - 1e-12);
                (y / (1.0 - y)).ln()
            }
            DelayParam::Clip => d.max(0.0),
        }
    }
}

/// The logistic function 1 / (1 + e^{-x}).
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parametrisations_by_name() {
        assert_eq!(
            DelayParam::from_name("sigmoid", 2.0, 1.5).unwrap(),
            DelayParam::Sigmoid { shift: 2.0, scale: 1.5 }
        );
        assert_eq!(DelayParam::from_name("clip", 2.0, 1.5).unwrap(), DelayParam::Clip);
        let e = DelayParam::from_name("tanh", 0.0, 1.0).unwrap_err().to_string();
        assert!(
            e.starts_with("option delay_param: unknown delay parametrisation"),
            "{e}"
        );
    }

    #[test]
    fn effective_delay_sums_kinds_with_sharing() {
        let d = Delays {
            group: 2,
            syn: Some(Matrix::from_rows("s", &[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap()),
            axo: Some(vec![0.1, 0.2]),
            den: Some(vec![10.0, 20.0]),
        };
        d.validate("l", 4, 2).unwrap();
        let e = d.effective(4, 2);
        assert_eq!(e.row(0), &[11.1, 11.1, 12.2, 12.2]);
        assert_eq!(e.row(1), &[23.1, 23.1, 24.2, 24.2]);
    }

    #[test]
    fn invalid_delays_are_named() {
        let d = Delays {
            axo: Some(vec![0.1, -1.0]),
            ..Default::default()
        };
        let e = d.validate("layers[0]", 2, 3).unwrap_err().to_string();
        assert!(e.contains("layers[0].d_axo") && e.contains("-1"), "{e}");
        let d = Delays {
            den: Some(vec![f64::NAN; 3]),
            ..Default::default()
        };
        assert!(d.validate("l", 2, 3).is_err());
        let d = Delays {
            group: 3,
            ..Default::default()
        };
        assert!(d.validate("l", 4, 3).unwrap_err().to_string().contains("delay_group"));
        let d = Delays {
            syn: Some(Matrix::zeros("syn", 2, 2).unwrap()),
            ..Default::default()
        };
        assert!(matches!(d.validate("l", 2, 3), Err(Error::Shape { .. })));
    }

    #[test]
    fn sigmoid_parametrisation_round_trips() {
        let p = DelayParam::Sigmoid { shift: 2.0, scale: 1.5 };
        for x in [-3.0, 0.0, 0.7] {
            assert!((p.param(p.delay(x)) - x).abs() < 1e-9);
            let h = 1e-6;
            assert!(((p.delay(x + h) - p.delay(x - h)) / (2.0 * h) - p.slope(x)).abs() < 1e-8);
        }
        assert!(sigmoid(-800.0) >= 0.0 && sigmoid(800.0) <= 1.0);
    }
}
