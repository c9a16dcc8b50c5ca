//! The noisy hardware forward pass: ideal limit, noise statistics, reproducibility, thread-count
//! independence and bad input.

use delgrad::dataset::{Split, T_EARLY, T_LATE, encode_times, yin_yang};
use delgrad::delay::{DelayParam, Delays};
use delgrad::forward::forward;
use delgrad::hardware::{BSS2_TIME_STEP, ChipPattern, LayerPattern, NoiseParams, PatternParams, noisy_forward};
use delgrad::kernel::Neuron;
use delgrad::network::{Layer, Network};
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::solver::Method;
use delgrad::train::{LayerSpec, init_network};
use delgrad::{Error, Matrix};

#[path = "support/hw_net.rs"]
mod hw_net;
use hw_net::hw_net;

fn yy_inputs(n: usize) -> Matrix {
    let d = yin_yang(Split::Test);
    let x = encode_times(&d.x, T_EARLY, T_LATE).unwrap();
    Matrix::from_vec("x", n, 4, x.as_slice()[..4 * n].to_vec()).unwrap()
}

fn repeat_cols(x: &Matrix, r: usize) -> Matrix {
    let mut v = Vec::new();
    for b in 0..x.rows() {
        for &t in x.row(b) {
            v.extend(std::iter::repeat_n(t, r));
        }
    }
    Matrix::from_vec("x", x.rows(), x.cols() * r, v).unwrap()
}

fn all_on() -> NoiseParams {
    NoiseParams {
        theta_sample_std: 0.01,
        output_jitter_std: 0.005,
        event_loss: 0.01,
        stall_prob: 0.0,
        ..NoiseParams::bss2()
    }
}

fn pattern_for(net: &Network, params: &PatternParams, seed: u64) -> Vec<LayerPattern> {
    ChipPattern::draw(512, 512, params, seed).unwrap().place(net).unwrap()
}

/// `net` with the `r` copies of each input of its first layer merged into one input that has the
/// copies' summed weights (summed in input order).
fn merged_copies(net: &Network, r: usize) -> Network {
    let mut net = net.clone();
    let l0 = &mut net.layers[0];
    let (n_out, n_in) = (l0.n_out(), l0.n_in());
    let w: Vec<f64> = (0..n_out)
        .flat_map(|k| {
            l0.w.row(k)
                .chunks(r)
                .map(|c| c.iter().fold(0.0, |a, &x| a + x))
                .collect::<Vec<_>>()
        })
        .collect();
    l0.w = Matrix::from_vec("w", n_out, n_in / r, w).unwrap();
    if l0.delays.any() {
        l0.delays.group /= r;
    }
    net
}

#[test]
fn zero_noise_equals_the_ideal_forward_pass() {
    let net = hw_net(3);
    let x = yy_inputs(100);
    let exec = Executor::new(2).unwrap();
    // The copies of an input arrive together: the chip sums their currents, exactly the ideal
    // pass of the network whose copies are one input with the summed weights ...
    let ideal = forward(&merged_copies(&net, 5), &x, Method::Auto, &exec).unwrap();
    // ... which is the network's own ideal pass up to the rounding of those sums.
    let copies = forward(&net, &repeat_cols(&x, 5), Method::Auto, &exec).unwrap();
    for (a, b) in ideal.iter().zip(&copies) {
        for (s, t) in a.as_slice().iter().zip(b.as_slice()) {
            assert!(s == t || (s - t).abs() <= 1e-12 * t.abs(), "{s} vs {t}");
        }
    }
    let run = noisy_forward(&net, &x, 5, None, &NoiseParams::ideal(), 1, 0, &exec).unwrap();
    assert_eq!(run.times, ideal);
    assert_eq!(run.dropped_events, 0);
    assert_eq!(run.stalled_from, None);
    // an explicit perfect pattern changes nothing either
    let perfect: Vec<LayerPattern> = net.layers.iter().map(LayerPattern::ideal).collect();
    let run = noisy_forward(&net, &x, 5, Some(&perfect), &NoiseParams::ideal(), 1, 0, &exec).unwrap();
    assert_eq!(run.times, ideal);
    // and so does a seed
    let run = noisy_forward(&net, &x, 5, None, &NoiseParams::ideal(), 99, 7, &exec).unwrap();
    assert_eq!(run.times, ideal);
}

#[test]
fn reproducible_by_seed_and_counter_and_independent_of_threads() {
    let net = hw_net(4);
    let x = yy_inputs(150);
    let pat = pattern_for(
        &net,
        &PatternParams {
            tau_m_mismatch: 0.03,
            tau_s_mismatch: 0.03,
            gain_mismatch: 0.05,
            ..PatternParams::bss2()
        },
        5,
    );
    let noise = NoiseParams {
        stall_prob: 0.3,
        ..all_on()
    };
    let runs: Vec<_> = [1, 2, 3]
        .iter()
        .map(|&t| noisy_forward(&net, &x, 5, Some(&pat), &noise, 42, 9, &Executor::new(t).unwrap()).unwrap())
        .collect();
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[0], runs[2]);
    let exec = Executor::new(2).unwrap();
    let other_counter = noisy_forward(&net, &x, 5, Some(&pat), &noise, 42, 10, &exec).unwrap();
    let other_seed = noisy_forward(&net, &x, 5, Some(&pat), &noise, 43, 9, &exec).unwrap();
    assert_ne!(runs[0].times, other_counter.times);
    assert_ne!(runs[0].times, other_seed.times);
    // a sample's noise does not depend on the batch it is in: the first 40 samples alone agree
    let head = Matrix::from_vec("x", 40, 4, x.as_slice()[..160].to_vec()).unwrap();
    let quiet = NoiseParams {
        stall_prob: 0.0,
        ..noise
    };
    let full = noisy_forward(&net, &x, 5, Some(&pat), &quiet, 42, 9, &exec).unwrap();
    let part = noisy_forward(&net, &head, 5, Some(&pat), &quiet, 42, 9, &exec).unwrap();
    for (f, p) in full.times.iter().zip(&part.times) {
        assert_eq!(&f.as_slice()[..40 * f.cols()], p.as_slice());
    }
}

/// One neuron, one input at time 0 with weight w, tau_m = tau_s = 1: u(t) = w t e^{-t}, so the
/// threshold a spike at t saw is theta = w t e^{-t} (t below the peak at 1).
fn single(theta: f64, w: f64, delay: Option<f64>) -> Network {
    let mut layer = Layer::new(
        Neuron::new(1.0, 1.0).unwrap(),
        theta,
        Matrix::filled("m", 1, 1, w).unwrap(),
    );
    if let Some(d) = delay {
        layer.delays = Delays {
            axo: Some(vec![d]),
            ..Default::default()
        };
    }
    Network::new(vec![layer]).unwrap()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
    (m, s)
}

#[test]
fn fixed_pattern_offsets_have_the_configured_distribution() {
    let p = PatternParams::bss2();
    let chip = ChipPattern::draw(20_000, 10, &p, 1).unwrap();
    let (m, s) = mean_std(&chip.theta_offset);
    assert!((m - 0.13).abs() < 0.003, "mean {m}");
    assert!((s - 0.08).abs() < 0.003, "std {s}");
    let p = PatternParams {
        tau_m_mismatch: 0.03,
        gain_mismatch: 0.1,
        ..p
    };
    let chip = ChipPattern::draw(20_000, 20_000, &p, 2).unwrap();
    let (m, s) = mean_std(&chip.tau_m_factor);
    assert!((m - 1.0).abs() < 0.002 && (s - 0.03).abs() < 0.002, "{m} {s}");
    let (m, s) = mean_std(&chip.row_gain);
    assert!((m - 1.0).abs() < 0.005 && (s - 0.1).abs() < 0.005, "{m} {s}");
    assert!(chip.tau_s_factor.iter().all(|&f| f == 1.0));
}

#[test]
fn threshold_noise_is_per_batch_with_the_configured_std() {
    // theta is recovered from the spike time; the offset is applied through the pattern.
    let w = 3.0;
    let net = single(0.5, w, None);
    let pat = vec![LayerPattern {
        theta_offset: vec![0.1],
        ..LayerPattern::ideal(&net.layers[0])
    }];
    let noise = NoiseParams {
        theta_batch_std: 0.04,
        ..NoiseParams::ideal()
    };
    let x = Matrix::zeros("m", 8, 1).unwrap();
    let exec = Executor::default();
    let mut per_run = Vec::new();
    for counter in 0..4000 {
        let r = noisy_forward(&net, &x, 1, Some(&pat), &noise, 5, counter, &exec).unwrap();
        let t = r.times[0].as_slice();
        assert!(t.iter().all(|&v| v == t[0]), "one threshold per run");
        per_run.push(w * t[0] * (-t[0]).exp());
    }
    let (m, s) = mean_std(&per_run);
    assert!((m - 0.6).abs() < 0.003, "mean {m}");
    assert!((s - 0.04).abs() < 0.002, "std {s}");
    // per-sample noise varies within a run
    let noise = NoiseParams {
        theta_sample_std: 0.02,
        ..NoiseParams::ideal()
    };
    let r = noisy_forward(
        &net,
        &Matrix::zeros("m", 4000, 1).unwrap(),
        1,
        None,
        &noise,
        5,
        0,
        &exec,
    )
    .unwrap();
    let th: Vec<f64> = r.times[0].as_slice().iter().map(|t| w * t * (-t).exp()).collect();
    let (m, s) = mean_std(&th);
    assert!((m - 0.5).abs() < 0.002 && (s - 0.02).abs() < 0.001, "{m} {s}");
}

#[test]
fn delayed_arrivals_are_jittered_with_the_configured_std() {
    // time-translation invariance: a jittered single arrival shifts the spike by the jitter.
    let net = single(0.5, 3.0, Some(2.0));
    let ideal = forward(
        &net,
        &Matrix::zeros("m", 1, 1).unwrap(),
        Method::Auto,
        &Executor::default(),
    )
    .unwrap()[0]
        .get(0, 0);
    let noise = NoiseParams {
        jitter_std: 0.01,
        ..NoiseParams::ideal()
    };
    let r = noisy_forward(
        &net,
        &Matrix::zeros("m", 20_000, 1).unwrap(),
        1,
        None,
        &noise,
        3,
        0,
        &Executor::new(2).unwrap(),
    )
    .unwrap();
    let dev: Vec<f64> = r.times[0].as_slice().iter().map(|t| t - ideal).collect();
    let (m, s) = mean_std(&dev);
    assert!(m.abs() < 3e-4, "mean {m}");
    assert!((s - 0.01).abs() < 3e-4, "std {s}");
    // undelayed arrivals are not jittered
    let plain = single(0.5, 3.0, None);
    let r = noisy_forward(
        &plain,
        &Matrix::zeros("m", 10, 1).unwrap(),
        1,
        None,
        &noise,
        3,
        0,
        &Executor::default(),
    )
    .unwrap();
    let t0 = forward(
        &plain,
        &Matrix::zeros("m", 1, 1).unwrap(),
        Method::Auto,
        &Executor::default(),
    )
    .unwrap()[0]
        .get(0, 0);
    assert!(r.times[0].as_slice().iter().all(|&t| t == t0));
}

#[test]
fn copies_of_an_input_share_the_delay_units_jitter() {
    // 2 inputs x 3 copies, axonal delays per input: each output sees 2 distinct jitters, and the
    // jitter of input j is common to its copies (checked through the single-copy equivalent).
    let n = Neuron::new(1.0, 1.0).unwrap();
    let mut layer = Layer::new(
        n,
        0.5,
        Matrix::from_rows("w", &[vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0]]).unwrap(),
    );
    layer.delays = Delays {
        group: 3,
        axo: Some(vec![2.0, 2.0]),
        ..Default::default()
    };
    let net = Network::new(vec![layer]).unwrap();
    let noise = NoiseParams {
        jitter_std: 0.01,
        ..NoiseParams::ideal()
    };
    let r = noisy_forward(
        &net,
        &Matrix::zeros("m", 2000, 2).unwrap(),
        3,
        None,
        &noise,
        8,
        0,
        &Executor::default(),
    )
    .unwrap();
    // if the three copies arrive together, the neuron behaves like one input of weight 3
    let one = single(0.5, 3.0, Some(2.0));
    let ideal = forward(
        &one,
        &Matrix::zeros("m", 1, 1).unwrap(),
        Method::Auto,
        &Executor::default(),
    )
    .unwrap()[0]
        .get(0, 0);
    let dev: Vec<f64> = r.times[0].as_slice().iter().map(|t| t - ideal).collect();
    let (_, s) = mean_std(&dev);
    assert!((s - 0.01).abs() < 1e-3, "std {s}");
}

#[test]
fn timestamps_lie_on_the_clock_grid_and_slots_cut_late_spikes() {
    let net = hw_net(5);
    let x = yy_inputs(64);
    let noise = NoiseParams::bss2();
    let r = noisy_forward(&net, &x, 5, None, &noise, 1, 0, &Executor::default()).unwrap();
    let mut finite = 0;
    for m in &r.times {
        for &t in m.as_slice().iter().filter(|t| t.is_finite()) {
            let n = t / BSS2_TIME_STEP;
            assert!((n - n.round()).abs() < 1e-6, "{t} is not on the 8 ns grid");
            assert!(t < noise.slot);
            finite += 1;
        }
    }
    assert!(finite > 64 * 20);
    // a weak neuron that fires late: cut by a short slot, kept by a long one
    let late = single(0.5, 0.5, None); // u = 0.5 t e^{-t} < 0.5: never fires
    let r = noisy_forward(
        &late,
        &Matrix::zeros("m", 1, 1).unwrap(),
        1,
        None,
        &NoiseParams::ideal(),
        0,
        0,
        &Executor::default(),
    );
    assert!(r.unwrap().times[0].get(0, 0).is_infinite());
    let net = single(0.3, 1.0, Some(5.0)); // fires at about 5.49
    let long = NoiseParams::ideal();
    let short = NoiseParams {
        slot: 5.0,
        ..NoiseParams::ideal()
    };
    let e = Executor::default();
    assert!(
        noisy_forward(&net, &Matrix::zeros("m", 1, 1).unwrap(), 1, None, &long, 0, 0, &e)
            .unwrap()
            .times[0]
            .get(0, 0)
            > 5.0
    );
    assert!(
        noisy_forward(&net, &Matrix::zeros("m", 1, 1).unwrap(), 1, None, &short, 0, 0, &e)
            .unwrap()
            .times[0]
            .get(0, 0)
            .is_infinite()
    );
}

#[test]
fn event_loss_rate_and_stalls() {
    let net = hw_net(6);
    let x = yy_inputs(400);
    let noise = NoiseParams {
        event_loss: 0.05,
        ..NoiseParams::ideal()
    };
    let exec = Executor::new(2).unwrap();
    let r = noisy_forward(&net, &x, 5, None, &noise, 1, 0, &exec).unwrap();
    let ideal = noisy_forward(&net, &x, 5, None, &NoiseParams::ideal(), 1, 0, &exec).unwrap();
    let recorded: usize = ideal
        .times
        .iter()
        .map(|m| m.as_slice().iter().filter(|t| t.is_finite()).count())
        .sum();
    // events: 400 * 20 inputs + the recorded spikes (fewer with lost inputs)
    let events = (400 * 20 + recorded) as f64;
    let rate = r.dropped_events as f64 / events;
    assert!((rate - 0.05).abs() < 0.01, "loss rate {rate}");
    let mut stalls = 0;
    for c in 0..200 {
        let noise = NoiseParams {
            stall_prob: 0.25,
            ..NoiseParams::ideal()
        };
        let r = noisy_forward(&net, &x, 5, None, &noise, 2, c, &exec).unwrap();
        if let Some(s) = r.stalled_from {
            stalls += 1;
            for (m, i) in r.times.iter().zip(&ideal.times) {
                assert!(m.as_slice()[s * m.cols()..].iter().all(|t| t.is_infinite()));
                assert_eq!(&m.as_slice()[..s * m.cols()], &i.as_slice()[..s * m.cols()]);
            }
        } else {
            assert_eq!(r.times, ideal.times);
        }
    }
    assert!((30..=70).contains(&stalls), "{stalls} stalls in 200 runs at p = 0.25");
}

#[test]
fn time_constant_mismatch_uses_the_general_solver() {
    let net = single(0.5, 3.0, None);
    let pat = vec![LayerPattern {
        tau_m: vec![1.03],
        tau_s: vec![0.98],
        ..LayerPattern::ideal(&net.layers[0])
    }];
    let r = noisy_forward(
        &net,
        &Matrix::zeros("m", 1, 1).unwrap(),
        1,
        Some(&pat),
        &NoiseParams::ideal(),
        0,
        0,
        &Executor::default(),
    )
    .unwrap();
    let t = r.times[0].get(0, 0);
    // u(t) = w (e^{-t/tm} - e^{-t/ts}) / (1/ts - 1/tm) must equal theta at t
    let (tm, ts) = (1.03f64, 0.98f64);
    let u = 3.0 * ((-t / tm).exp() - (-t / ts).exp()) / (1.0 / ts - 1.0 / tm);
    assert!((u - 0.5).abs() < 1e-12, "u(t) = {u}");
    let ideal = forward(
        &net,
        &Matrix::zeros("m", 1, 1).unwrap(),
        Method::Auto,
        &Executor::default(),
    )
    .unwrap()[0]
        .get(0, 0);
    assert!((t - ideal).abs() > 1e-4);
}

#[test]
fn bad_input_is_an_error_naming_the_argument() {
    let net = hw_net(1);
    let x = yy_inputs(4);
    let e = Executor::default();
    let n = NoiseParams::bss2();
    let text = |r: Result<_, Error>| r.map(|_: delgrad::hardware::HwRun| ()).unwrap_err().to_string();
    assert!(text(noisy_forward(&net, &x, 3, None, &n, 0, 0, &e)).contains("repeat"));
    assert!(text(noisy_forward(&net, &x, 0, None, &n, 0, 0, &e)).contains("repeat"));
    assert!(text(noisy_forward(&net, &repeat_cols(&x, 5), 5, None, &n, 0, 0, &e)).contains("input"));
    let mut bad = x.clone();
    bad.as_mut_slice()[3] = f64::NAN;
    assert!(text(noisy_forward(&net, &bad, 5, None, &n, 0, 0, &e)).contains("input"));
    let mut pat: Vec<LayerPattern> = net.layers.iter().map(LayerPattern::ideal).collect();
    assert!(text(noisy_forward(&net, &x, 5, Some(&pat[..1]), &n, 0, 0, &e)).contains("pattern"));
    pat[1].tau_s[2] = 0.0;
    assert!(text(noisy_forward(&net, &x, 5, Some(&pat), &n, 0, 0, &e)).contains("pattern[1].tau_s"));
    pat[1].tau_s[2] = 1.0;
    pat[0].gain_inh.pop();
    assert!(text(noisy_forward(&net, &x, 5, Some(&pat), &n, 0, 0, &e)).contains("pattern[0].gain_inh"));
    let bad_noise = NoiseParams { stall_prob: -0.1, ..n };
    assert!(text(noisy_forward(&net, &x, 5, None, &bad_noise, 0, 0, &e)).contains("stall_prob"));
    // an empty batch is fine
    let r = noisy_forward(&net, &Matrix::zeros("m", 0, 4).unwrap(), 5, None, &all_on(), 0, 0, &e).unwrap();
    assert_eq!(r.times[0].rows(), 0);
}

#[test]
fn step_at_quantised_parameters_updates_the_shadow_parameters() {
    use delgrad::train::{TrainConfig, Trainer};
    let mut net = hw_net(9);
    // outputs that fire (the hardware initialisation leaves them silent until bumped)
    net.layers[1]
        .w
        .as_mut_slice()
        .iter_mut()
        .for_each(|w| *w = 0.6 + 2.0 * *w);
    let x4 = yy_inputs(40);
    let x = repeat_cols(&x4, 5);
    let labels: Vec<usize> = yin_yang(Split::Test).y[..40].to_vec();
    let exec = Executor::default();
    let config = TrainConfig {
        delay_param: DelayParam::Sigmoid { shift: 2.0, scale: 1.5 },
        bump: 0.0,
        ..TrainConfig::default()
    };
    let mut quant = net.clone();
    for l in &mut quant.layers {
        l.w.as_mut_slice()
            .iter_mut()
            .for_each(|w| *w = (30.0 * *w).round().clamp(-63.0, 63.0) / 30.0);
    }
    let run = noisy_forward(&quant, &x4, 5, None, &NoiseParams::bss2(), 1, 0, &exec).unwrap();
    // at = the trainer's own network: identical to step_from_times
    let mut a = Trainer::new(net.clone(), config.clone()).unwrap();
    let mut b = Trainer::new(net.clone(), config.clone()).unwrap();
    let ra = a.step_from_times(&x, &run.times, &labels, 0, &exec).unwrap();
    let rb = b.step_from_times_at(&net, &x, &run.times, &labels, 0, &exec).unwrap();
    assert_eq!(ra, rb);
    assert!(a.tensors == b.tensors);
    // at = quantised: a different update, applied to the float shadow weights (still unquantised)
    let mut c = Trainer::new(net.clone(), config.clone()).unwrap();
    c.step_from_times_at(&quant, &x, &run.times, &labels, 0, &exec).unwrap();
    assert!(a.tensors[0].adam.m.iter().any(|&m| m != 0.0), "the step must update");
    assert!(c.tensors != a.tensors);
    let w = &c.tensors[0].values;
    assert!(w.iter().any(|v| ((30.0 * v).round() - 30.0 * v).abs() > 1e-6));
    // a network of other sizes or delay kinds is an error naming `at`
    let other = init_network(
        20,
        &[LayerSpec::new(5, 1.0, 1.0), LayerSpec::new(3, 1.0, 1.0)],
        DelayParam::default(),
        &mut RandomState::new(0),
    )
    .unwrap();
    let e = c
        .step_from_times_at(&other, &x, &run.times, &labels, 0, &exec)
        .unwrap_err()
        .to_string();
    assert!(e.contains("at"), "{e}");
    let mut no_delays = net.clone();
    no_delays.layers[1].delays.axo = None;
    let e = c
        .step_from_times_at(&no_delays, &x, &run.times, &labels, 0, &exec)
        .unwrap_err()
        .to_string();
    assert!(e.contains("at.layers[1]"), "{e}");
}

#[test]
fn planned_and_per_neuron_paths_agree() {
    // A perfect pattern runs the planned scans of the ideal forward pass; time constants off by
    // 1e-12 force the per-neuron general solver: with the same noise draws the times agree.
    let net = hw_net(12);
    let x = yy_inputs(64);
    let exec = Executor::new(2).unwrap();
    let ideal: Vec<LayerPattern> = net.layers.iter().map(LayerPattern::ideal).collect();
    let nudged: Vec<LayerPattern> = ideal
        .iter()
        .map(|p| LayerPattern {
            tau_s: p.tau_s.iter().map(|t| t * (1.0 + 1e-12)).collect(),
            ..p.clone()
        })
        .collect();
    let noise = NoiseParams {
        time_step: 0.0,
        ..NoiseParams::bss2()
    };
    let a = noisy_forward(&net, &x, 5, Some(&ideal), &noise, 3, 1, &exec).unwrap();
    let b = noisy_forward(&net, &x, 5, Some(&nudged), &noise, 3, 1, &exec).unwrap();
    let mut finite = 0;
    for (u, v) in a.times.iter().zip(&b.times) {
        for (s, t) in u.as_slice().iter().zip(v.as_slice()) {
            assert_eq!(s.is_finite(), t.is_finite());
            if s.is_finite() {
                assert!((s - t).abs() < 1e-9, "{s} vs {t}");
                finite += 1;
            }
        }
    }
    assert!(finite > 64 * 20);
}

#[test]
fn placement_takes_circuits_and_row_pairs_in_order_and_refuses_a_small_chip() {
    let net = hw_net(1);
    let params = PatternParams {
        tau_m_mismatch: 0.03,
        gain_mismatch: 0.05,
        ..PatternParams::bss2()
    };
    let chip = ChipPattern::draw(40, 200, &params, 4).unwrap();
    let placed = chip.place(&net).unwrap();
    // Layer 1 (20 inputs -> 30) takes circuits 0..30 and rows 0..40; layer 2 circuits 30..33 and
    // rows 40..100, even rows excitatory.
    assert_eq!(placed[1].theta_offset, chip.theta_offset[30..33].to_vec());
    assert_eq!(placed[1].gain_exc[0], chip.row_gain[40]);
    assert_eq!(placed[1].gain_inh[29], chip.row_gain[99]);
    assert_eq!(placed[0].tau_m[5], chip.tau_m_factor[5] * net.layers[0].neuron.tau_m());
    let small = ChipPattern::draw(32, 200, &params, 4).unwrap();
    let err = small.place(&net).unwrap_err().to_string();
    assert!(err.contains("net") && err.contains("33 circuits"), "{err}");
}
