//! Synthetic latency-coded inputs and the networks of MNIST-like sizes the throughput and memory
//! benches measure (`#[path]`-included by both).

use delgrad::Matrix;
use delgrad::dataset::{T_EARLY, T_LATE};
use delgrad::delay::{DelayKind, DelayParam};
use delgrad::network::Network;
use delgrad::random::RandomState;
use delgrad::train::{LayerSpec, init_network};

/// `n` seeded samples of `n_in` uniform pixel intensities v in [0, 1), latency coded (bright
/// pixels early): t = t_early + (1 - v) (t_late - t_early), with random labels of 10 classes.
pub fn latency_inputs(n: usize, n_in: usize, seed: u32) -> (Matrix, Vec<usize>) {
    let mut rng = RandomState::new(seed);
    let x: Vec<f64> = (0..n * n_in)
        .map(|_| T_EARLY + (1.0 - rng.random_sample()) * (T_LATE - T_EARLY))
        .collect();
    let labels = (0..n).map(|_| rng.randint(10) as usize).collect();
    (Matrix::from_vec("x", n, n_in, x).unwrap(), labels)
}

/// The `n_in`-`sizes`... network at tau_m = 2 tau_s (as the Yin-Yang H30 case), weights only or
/// with synaptic delays. Weights are N(DRIVE / n_in, 1 / sqrt(n_in)) per layer: the mean input
/// current stays the same at every fan-in, so hidden and output neurons spike after a similar
/// share of their inputs whatever the width.
pub fn scale_network(n_in: usize, sizes: &[usize], delays: bool, rng: &mut RandomState) -> Network {
    const DRIVE: f64 = 4.0;
    let kinds: &[DelayKind] = if delays { &[DelayKind::Synaptic] } else { &[] };
    let mut fan_in = n_in;
    let specs: Vec<LayerSpec> = sizes
        .iter()
        .map(|&size| {
            let spec = LayerSpec {
                tau_m: 2.0,
                tau_s: 1.0,
                theta: 1.0,
                delay_kinds: kinds.to_vec(),
                ..LayerSpec::new(size, DRIVE / fan_in as f64, 1.0 / (fan_in as f64).sqrt())
            };
            fan_in = size;
            spec
        })
        .collect();
    init_network(n_in, &specs, DelayParam::Sigmoid { shift: 0.0, scale: 1.0 }, rng).unwrap()
}
