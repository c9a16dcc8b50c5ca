//! Networks with random initial parameters ([`init_network`] from one [`LayerSpec`] per layer).

use crate::delay::{DelayKind, DelayParam, Delays};
use crate::error::{Error, Result};
use crate::kernel::Neuron;
use crate::matrix::Matrix;
use crate::network::{Layer, Network};
use crate::random::RandomState;

/// How one layer is built and initialised.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// Number of neurons.
    pub size: usize,
    /// Membrane time constant.
    pub tau_m: f64,
    /// Synaptic time constant.
    pub tau_s: f64,
    /// Threshold of every neuron.
    pub theta: f64,
    /// Mean of the initial weights w ~ N(mean, std).
    pub weight_mean: f64,
    /// Standard deviation of the initial weights.
    pub weight_std: f64,
    /// Trained delay kinds of the layer's incoming projection.
    pub delay_kinds: Vec<DelayKind>,
    /// Consecutive inputs sharing one synaptic/axonal delay.
    pub delay_group: usize,
    /// Initial delay parameters p ~ N(mean, std) (d = param(p)).
    pub delay_init_mean: f64,
    /// Standard deviation of the initial delay parameters.
    pub delay_init_std: f64,
}

impl LayerSpec {
    /// A layer of `size` neurons with the reference neuron (tau_m = 2, tau_s = 1, theta = 1),
    /// weights N(mean, std), no delays.
    pub fn new(size: usize, weight_mean: f64, weight_std: f64) -> Self {
        LayerSpec {
            size,
            tau_m: Layer::TAU_M,
            tau_s: Layer::TAU_S,
            theta: Layer::THETA,
            weight_mean,
            weight_std,
            delay_kinds: Vec::new(),
            delay_group: 1,
            delay_init_mean: 0.0,
            delay_init_std: 0.25,
        }
    }

    /// Checks that the layer has at least one neuron and that the stds are finite and >= 0
    /// (the neuron and the means are checked where they are used); errors name the field.
    pub fn validate(&self) -> Result<()> {
        if self.size == 0 {
            return Err(Error::value("size", "expected an integer >= 1"));
        }
        for (name, v) in [("weight_std", self.weight_std), ("delay_init_std", self.delay_init_std)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::value(name, format!("expected a finite number >= 0, got {v}")));
            }
        }
        Ok(())
    }
}

/// Builds a network with random parameters. Draws, per layer in order: weights row by row,
/// then synaptic, axonal and dendritic delay parameters (numpy `RandomState.normal` semantics).
pub fn init_network(
    n_in: usize,
    specs: &[LayerSpec],
    delay_param: DelayParam,
    rng: &mut RandomState,
) -> Result<Network> {
    delay_param.validate()?;
    if n_in == 0 {
        return Err(Error::value("n_in", "expected an integer >= 1"));
    }
    let mut layers = Vec::with_capacity(specs.len());
    let mut fan_in = n_in;
    for (l, s) in specs.iter().enumerate() {
        s.validate().map_err(|e| e.within(&format!("layers[{l}]")))?;
        let neuron = Neuron::new(s.tau_m, s.tau_s)?;
        let mut draw = |n: usize, mean: f64, std: f64| -> Vec<f64> { (0..n).map(|_| rng.normal(mean, std)).collect() };
        let w = Matrix::from_vec("w", s.size, fan_in, draw(s.size * fan_in, s.weight_mean, s.weight_std))?;
        let group = s.delay_group.max(1);
        let ng = fan_in / group;
        let mut delays = Delays {
            group,
            ..Delays::default()
        };
        let mut delay_draw = |n: usize| -> Vec<f64> {
            draw(n, s.delay_init_mean, s.delay_init_std)
                .into_iter()
                .map(|p| delay_param.delay(p))
                .collect()
        };
        if s.delay_kinds.contains(&DelayKind::Synaptic) {
            delays.syn = Some(Matrix::from_vec("d_syn", s.size, ng, delay_draw(s.size * ng))?);
        }
        if s.delay_kinds.contains(&DelayKind::Axonal) {
            delays.axo = Some(delay_draw(ng));
        }
        if s.delay_kinds.contains(&DelayKind::Dendritic) {
            delays.den = Some(delay_draw(s.size));
        }
        layers.push(Layer {
            neuron,
            theta: vec![s.theta; s.size],
            w,
            delays,
        });
        fan_in = s.size;
    }
    Network::new(layers)
}
