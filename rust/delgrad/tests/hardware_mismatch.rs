//! The noisy forward pass with per-neuron tau_m/tau_s mismatch (every neuron in the general
//! regime) against a direct per-neuron reference: arrivals t_i + d_ki with the pattern's gains and
//! offsets, each neuron solved by the bracketed scan (`Method::Bracket`).

use delgrad::Matrix;
use delgrad::dataset::{Split, T_EARLY, T_LATE, encode_times, yin_yang};
use delgrad::delay::{DelayKind, DelayParam};
use delgrad::hardware::{ChipPattern, LayerPattern, NoiseParams, PatternParams, noisy_forward};
use delgrad::kernel::{Neuron, Regime};
use delgrad::network::Network;
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::solver::{Method, first_spike};
use delgrad::train::{LayerSpec, init_network};

#[path = "support/hw_net.rs"]
mod hw_net;

fn pattern(net: &Network, seed: u64) -> Vec<LayerPattern> {
    let params = PatternParams {
        tau_m_mismatch: 0.03,
        tau_s_mismatch: 0.03,
        gain_mismatch: 0.05,
        ..PatternParams::bss2()
    };
    ChipPattern::draw(512, 512, &params, seed).unwrap().place(net).unwrap()
}

/// Spike times of every layer for one sample (inputs already repeated), neuron by neuron.
fn reference(net: &Network, pat: &[LayerPattern], input: &[f64]) -> Vec<Vec<f64>> {
    let mut t_in = input.to_vec();
    let mut out = Vec::new();
    for (layer, p) in net.layers.iter().zip(pat) {
        let d = layer.delays.effective(layer.n_in(), layer.n_out());
        let t_out: Vec<f64> = (0..layer.n_out())
            .map(|k| {
                let mut arrivals: Vec<(f64, f64)> = (0..layer.n_in())
                    .filter(|&i| t_in[i].is_finite() && layer.w.get(k, i) != 0.0)
                    .map(|i| {
                        let w = layer.w.get(k, i);
                        let g = if w > 0.0 { p.gain_exc[i] } else { p.gain_inh[i] };
                        (t_in[i] + d.get(k, i), w * g)
                    })
                    .collect();
                arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
                let n = Neuron::new(p.tau_m[k], p.tau_s[k]).unwrap();
                assert_eq!(n.regime(), Regime::General);
                let theta = (layer.theta[k] + p.theta_offset[k]).max(1e-9);
                first_spike(&n, theta, &arrivals, Method::Bracket)
            })
            .collect();
        out.push(t_out.clone());
        t_in = t_out;
    }
    out
}

fn check(net: &Network, x: &Matrix, repeat: usize, seed: u64) {
    let pat = pattern(net, seed);
    let exec = Executor::new(2).unwrap();
    let run = noisy_forward(net, x, repeat, Some(&pat), &NoiseParams::ideal(), 1, 0, &exec).unwrap();
    let mut spikes = 0;
    for b in 0..x.rows() {
        let input: Vec<f64> = x.row(b).iter().flat_map(|&t| std::iter::repeat_n(t, repeat)).collect();
        for (l, want) in reference(net, &pat, &input).iter().enumerate() {
            for (k, &w) in want.iter().enumerate() {
                let got = run.times[l].get(b, k);
                assert!(
                    got == w || (got - w).abs() <= 1e-12 * (1.0 + w.abs()),
                    "sample {b} layer {l} neuron {k}: {got} vs {w}"
                );
                spikes += usize::from(w.is_finite());
            }
        }
    }
    assert!(spikes > x.rows(), "the cases should spike: {spikes}");
}

#[test]
fn tau_mismatch_matches_the_bracketed_reference() {
    // shared-order layers (axonal delays, 5 copies of each input arriving together)
    let d = yin_yang(Split::Test);
    let x = encode_times(&d.x, T_EARLY, T_LATE).unwrap();
    let x = Matrix::from_vec("x", 200, 4, x.as_slice()[..800].to_vec()).unwrap();
    check(&hw_net::hw_net(3), &x, 5, 2);
    // per-neuron orders (synaptic and dendritic delays), inhibition and silent inputs
    let spec = |size, mean, std| LayerSpec {
        tau_m: 2.0,
        tau_s: 1.0,
        theta: 1.0,
        delay_kinds: vec![DelayKind::Synaptic, DelayKind::Dendritic],
        ..LayerSpec::new(size, mean, std)
    };
    let net = init_network(
        4,
        &[spec(12, 0.6, 0.8), spec(3, 0.5, 0.8)],
        DelayParam::Sigmoid { shift: 0.0, scale: 1.0 },
        &mut RandomState::new(5),
    )
    .unwrap();
    let mut x = x.clone();
    (0..x.rows())
        .step_by(7)
        .for_each(|b| x.row_mut(b)[b % 4] = f64::INFINITY);
    check(&net, &x, 1, 3);
}

#[test]
fn per_neuron_path_matches_the_planned_path() {
    // A per-sample threshold noise too small to change any threshold sends every neuron through the
    // per-neuron scans (shared order, summed copies, the silence bound); without it the layer takes
    // the ideal forward pass's planned scans. The delay jitter is drawn the same way in both.
    let net = hw_net::hw_net(6);
    let d = yin_yang(Split::Test);
    let x = encode_times(&d.x, T_EARLY, T_LATE).unwrap();
    let x = Matrix::from_vec("x", 300, 4, x.as_slice()[..1200].to_vec()).unwrap();
    let pat: Vec<LayerPattern> = pattern(&net, 4)
        .into_iter()
        .zip(&net.layers)
        .map(|(p, l)| LayerPattern {
            tau_m: vec![l.neuron.tau_m(); l.n_out()],
            tau_s: vec![l.neuron.tau_s(); l.n_out()],
            ..p
        })
        .collect();
    let planned = NoiseParams {
        time_step: 0.0,
        slot: f64::INFINITY,
        ..NoiseParams::bss2()
    };
    let per_neuron = NoiseParams {
        theta_sample_std: 1e-300,
        ..planned
    };
    let exec = Executor::new(2).unwrap();
    let a = noisy_forward(&net, &x, 5, Some(&pat), &planned, 3, 1, &exec).unwrap();
    let b = noisy_forward(&net, &x, 5, Some(&pat), &per_neuron, 3, 1, &exec).unwrap();
    let mut spikes = 0;
    for (ma, mb) in a.times.iter().zip(&b.times) {
        for (&ta, &tb) in ma.as_slice().iter().zip(mb.as_slice()) {
            assert!(ta == tb || (ta - tb).abs() <= 1e-12 * (1.0 + ta.abs()), "{ta} vs {tb}");
            spikes += usize::from(ta.is_finite());
        }
    }
    assert!(spikes > x.rows(), "{spikes}");
}
