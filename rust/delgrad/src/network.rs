//! Layers and networks: the parameters of the model (docs/model.md, "Neuron model").

use crate::delay::Delays;
use crate::error::{Error, Result};
use crate::kernel::Neuron;
use crate::matrix::Matrix;
use crate::range;

/// One feed-forward layer mapping `n_in` presynaptic to `n_out` postsynaptic first-spike times.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Time constants (shared by the layer's neurons).
    pub neuron: Neuron,
    /// Threshold theta_k > 0 per neuron `[n_out]`.
    pub theta: Vec<f64>,
    /// Weights w_ki `[n_out, n_in]` (one row per postsynaptic neuron).
    pub w: Matrix,
    /// Transmission delays.
    pub delays: Delays,
}

impl Layer {
    /// Membrane time constant of the reference neuron (model time units).
    pub const TAU_M: f64 = 2.0;
    /// Synaptic time constant of the reference neuron (model time units).
    pub const TAU_S: f64 = 1.0;
    /// Threshold of the reference neuron.
    pub const THETA: f64 = 1.0;

    /// A layer with one threshold for every neuron and no delays.
    pub fn new(neuron: Neuron, theta: f64, w: Matrix) -> Self {
        Layer {
            neuron,
            theta: vec![theta; w.rows()],
            w,
            delays: Delays::default(),
        }
    }

    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.w.cols()
    }

    /// Number of neurons.
    pub fn n_out(&self) -> usize {
        self.w.rows()
    }

    /// Checks every parameter; `prefix` names the layer in messages.
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let (n_out, n_in) = (self.n_out(), self.n_in());
        if n_out == 0 || n_in == 0 {
            return Err(Error::shape(
                format!("{prefix}.w"),
                "[n_out >= 1, n_in >= 1]",
                format!("[{n_out}, {n_in}]"),
            ));
        }
        if let Some(i) = self
            .w
            .as_slice()
            .iter()
            .position(|v| !(v.is_finite() && v.abs() <= range::MAX))
        {
            return Err(Error::value(
                format!("{prefix}.w"),
                format!(
                    "weights must be finite with |w| <= {:e}; entry [{}, {}] is {}",
                    range::MAX,
                    i / n_in,
                    i % n_in,
                    self.w.as_slice()[i]
                ),
            ));
        }
        if self.theta.len() != n_out {
            return Err(Error::shape(
                format!("{prefix}.theta"),
                format!("[{n_out}]"),
                format!("[{}]", self.theta.len()),
            ));
        }
        if let Some(k) = self.theta.iter().position(|t| !range::positive_in_range(*t)) {
            return Err(Error::value(
                format!("{prefix}.theta"),
                format!(
                    "thresholds must be finite, in [{:e}, {:e}]; entry {k} is {}",
                    range::MIN,
                    range::MAX,
                    self.theta[k]
                ),
            ));
        }
        self.delays.validate(prefix, n_in, n_out)
    }
}

/// A feed-forward network of layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// The layers, input side first.
    pub layers: Vec<Layer>,
}

impl Network {
    /// Builds and validates a network.
    pub fn new(layers: Vec<Layer>) -> Result<Self> {
        let net = Network { layers };
        net.validate()?;
        Ok(net)
    }

    /// Number of network inputs.
    pub fn n_in(&self) -> usize {
        self.layers.first().map_or(0, Layer::n_in)
    }

    /// Number of outputs.
    pub fn n_out(&self) -> usize {
        self.layers.last().map_or(0, Layer::n_out)
    }

    /// Layer sizes `[n_in, n_1, ..., n_L]`.
    pub fn sizes(&self) -> Vec<usize> {
        std::iter::once(self.n_in())
            .chain(self.layers.iter().map(Layer::n_out))
            .collect()
    }

    /// Checks each layer and that consecutive layers fit together.
    pub fn validate(&self) -> Result<()> {
        if self.layers.is_empty() {
            return Err(Error::value("layers", "a network needs at least one layer"));
        }
        for (l, layer) in self.layers.iter().enumerate() {
            let prefix = format!("layers[{l}]");
            layer.validate(&prefix)?;
            if l > 0 && layer.n_in() != self.layers[l - 1].n_out() {
                return Err(Error::shape(
                    format!("{prefix}.w"),
                    format!(
                        "[{}, {}] (n_in = outputs of layers[{}])",
                        layer.n_out(),
                        self.layers[l - 1].n_out(),
                        l - 1
                    ),
                    format!("[{}, {}]", layer.n_out(), layer.n_in()),
                ));
            }
        }
        Ok(())
    }

    /// Checks a batch of input spike times `[batch, n_in]`: +inf (silent) is allowed,
    /// NaN and -inf are not.
    pub fn validate_times(&self, arg: &str, times: &Matrix, n: usize) -> Result<()> {
        if times.cols() != n {
            return Err(Error::shape(
                arg,
                format!("[batch, {n}]"),
                format!("[{}, {}]", times.rows(), times.cols()),
            ));
        }
        if let Some(i) = times
            .as_slice()
            .iter()
            .position(|t| t.is_nan() || *t == f64::NEG_INFINITY)
        {
            return Err(Error::value(
                arg,
                format!(
                    "spike times must be numbers or +inf (silent); entry [{}, {}] is {}",
                    i / n,
                    i % n,
                    times.as_slice()[i]
                ),
            ));
        }
        Ok(())
    }
}
