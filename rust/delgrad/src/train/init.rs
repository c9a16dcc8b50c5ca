//! Networks with random initial parameters ([`init_network`] from one [`LayerSpec`] per layer).

use crate::alloc;
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
///
/// Every parameter array is allocated fallibly ([`crate::alloc`]): sizes whose arrays cannot be
/// held are an error naming `layers[l].size` (or `n_in`) and the memory they need.
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
    for (l, s) in specs.iter().enumerate() {
        s.validate().map_err(|e| e.within(&format!("layers[{l}]")))?;
    }
    // All of the network's memory is checked before the first array is drawn.
    alloc::ensure::<f64>("layers", "the network's parameters", parameter_count(n_in, specs)?)?;
    let mut layers = Vec::with_capacity(specs.len());
    let mut fan_in = n_in;
    for (l, s) in specs.iter().enumerate() {
        let neuron = Neuron::new(s.tau_m, s.tau_s)?;
        let arg = format!("layers[{l}].size");
        let n_w = alloc::count(&arg, "the weights", &[s.size, fan_in])?;
        let mut draw = |n: usize, what: &str, mean: f64, std: f64, map: &dyn Fn(f64) -> f64| -> Result<Vec<f64>> {
            alloc::collect(&arg, what, n, (0..n).map(|_| map(rng.normal(mean, std))))
        };
        let w = draw(n_w, "the weights", s.weight_mean, s.weight_std, &|w| w)?;
        let w = Matrix::from_vec("w", s.size, fan_in, w)?;
        let group = s.delay_group.max(1);
        let ng = fan_in / group;
        let mut delays = Delays {
            group,
            ..Delays::default()
        };
        let (mean, std, delay) = (s.delay_init_mean, s.delay_init_std, &|p| delay_param.delay(p));
        if s.delay_kinds.contains(&DelayKind::Synaptic) {
            let n = alloc::count(&arg, "the synaptic delays", &[s.size, ng])?;
            let d = draw(n, "the synaptic delays", mean, std, delay)?;
            delays.syn = Some(Matrix::from_vec("d_syn", s.size, ng, d)?);
        }
        if s.delay_kinds.contains(&DelayKind::Axonal) {
            delays.axo = Some(draw(ng, "the axonal delays", mean, std, delay)?);
        }
        if s.delay_kinds.contains(&DelayKind::Dendritic) {
            delays.den = Some(draw(s.size, "the dendritic delays", mean, std, delay)?);
        }
        layers.push(Layer {
            neuron,
            theta: alloc::filled(&arg, "the thresholds", s.size, s.theta)?,
            w,
            delays,
        });
        fan_in = s.size;
    }
    Network::new(layers)
}

/// The number of parameters (weights, thresholds, delays) of the network of `specs` on `n_in`
/// inputs; an [`Error::Memory`] naming the layer whose arrays overflow the address space.
fn parameter_count(n_in: usize, specs: &[LayerSpec]) -> Result<usize> {
    let mut total = 0usize;
    let mut fan_in = n_in;
    for (l, s) in specs.iter().enumerate() {
        let arg = format!("layers[{l}].size");
        let ng = fan_in / s.delay_group.max(1);
        let has = |kind| usize::from(s.delay_kinds.contains(&kind));
        let parts = [
            alloc::count(&arg, "the weights", &[s.size, fan_in])?,
            alloc::count(&arg, "the synaptic delays", &[s.size, ng, has(DelayKind::Synaptic)])?,
            ng * has(DelayKind::Axonal),
            alloc::count(
                &arg,
                "the thresholds and dendritic delays",
                &[s.size, 1 + has(DelayKind::Dendritic)],
            )?,
        ];
        total = parts.iter().try_fold(total, |t, &p| t.checked_add(p)).ok_or_else(|| {
            Error::memory(
                &arg,
                "the network's parameters have more values than an address space holds",
            )
        })?;
        fan_in = s.size;
    }
    Ok(total)
}
