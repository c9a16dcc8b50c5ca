//! `Trainer::emulated_step` (one call: noisy run + given-times step) equals `noisy_forward`
//! followed by `Trainer::step_from_times_at`; a stalled run takes no step; bad input is an error.
//! `Trainer::emulated_epoch` equals its writes and steps one by one.

use delgrad::dataset::{Split, T_EARLY, T_LATE, encode_times, yin_yang};
use delgrad::delay::DelayParam;
use delgrad::hardware::{ChipPattern, Emulation, HostRecipe, LayerPattern, NoiseParams, PatternParams, noisy_forward};
use delgrad::parallel::Executor;
use delgrad::train::{TrainConfig, Trainer};
use delgrad::{Error, Matrix};

#[path = "support/hw_net.rs"]
mod hw_net;
use hw_net::hw_net;

fn inputs(n: usize) -> (Matrix, Matrix, Vec<usize>) {
    let d = yin_yang(Split::Train);
    let x = encode_times(&d.x, T_EARLY, T_LATE).unwrap();
    let groups = Matrix::from_vec("x", n, 4, x.as_slice()[..4 * n].to_vec()).unwrap();
    let mut v = Vec::new();
    for b in 0..n {
        for &t in groups.row(b) {
            v.extend(std::iter::repeat_n(t, 5));
        }
    }
    (groups, Matrix::from_vec("x", n, 20, v).unwrap(), d.y[..n].to_vec())
}

fn config() -> TrainConfig {
    TrainConfig {
        delay_param: DelayParam::Sigmoid { shift: 2.0, scale: 1.5 },
        bump_limits: vec![0.05, 0.05],
        ..TrainConfig::default()
    }
}

/// The quantised network a chip holds (weights on the 1/30 grid; delays left as they are).
fn quantised(net: &delgrad::network::Network) -> delgrad::network::Network {
    let mut q = net.clone();
    for l in &mut q.layers {
        l.w.as_mut_slice()
            .iter_mut()
            .for_each(|w| *w = (30.0 * *w).round().clamp(-63.0, 63.0) / 30.0);
    }
    q
}

#[test]
fn emulated_step_equals_a_run_then_a_step_at_the_recorded_times() {
    let mut net = hw_net(3);
    // outputs that fire, so that steps update instead of bumping
    net.layers[1]
        .w
        .as_mut_slice()
        .iter_mut()
        .for_each(|w| *w = 0.6 + 2.0 * *w);
    let chip = quantised(&net);
    let (groups, x, labels) = inputs(40);
    let exec = Executor::default();
    let pattern: Vec<LayerPattern> = {
        let p = ChipPattern::draw(256, 256, &PatternParams::bss2(), 7).unwrap();
        chip.layers
            .iter()
            .map(|l| {
                let mut lp = LayerPattern::ideal(l);
                lp.theta_offset = p.theta_offset[..l.n_out()].to_vec();
                lp
            })
            .collect()
    };
    let noise = NoiseParams::bss2();
    let execs = [Executor::new(1).unwrap(), Executor::new(2).unwrap()];
    let mut a = Trainer::new(net.clone(), config()).unwrap();
    let mut b = Trainer::new(net.clone(), config()).unwrap();
    for counter in 0..5 {
        let e = Emulation {
            repeat: 5,
            pattern: Some(&pattern),
            noise: &noise,
            seed: 11,
            counter,
        };
        // the fused step on 1 and 2 threads against the two calls on one
        let fused = &execs[counter as usize % 2];
        let (run, step) = a
            .emulated_step(&chip, &e, &groups, &chip, &x, &labels, 0, fused, fused)
            .unwrap();
        let want = noisy_forward(&chip, &groups, 5, Some(&pattern), &noise, 11, counter, &exec).unwrap();
        let want_step = b.step_from_times_at(&chip, &x, &want.times, &labels, 0, &exec).unwrap();
        assert_eq!(step, Some(want_step));
        assert_eq!(
            (run.dropped_events, run.stalled_from),
            (want.dropped_events, want.stalled_from)
        );
        assert!(run.times.is_empty(), "the recorded times went into the step");
        assert!(a.tensors == b.tensors);
    }
}

#[test]
fn a_stalled_run_takes_no_step_and_bad_input_is_an_error() {
    let net = hw_net(4);
    let chip = quantised(&net);
    let (groups, x, labels) = inputs(20);
    let exec = Executor::default();
    let noise = NoiseParams {
        stall_prob: 1.0,
        ..NoiseParams::bss2()
    };
    let e = Emulation {
        repeat: 5,
        pattern: None,
        noise: &noise,
        seed: 1,
        counter: 0,
    };
    let mut t = Trainer::new(net.clone(), config()).unwrap();
    let before = t.tensors.clone();
    let (run, step) = t
        .emulated_step(&chip, &e, &groups, &chip, &x, &labels, 0, &exec, &exec)
        .unwrap();
    assert!(run.stalled_from.is_some() && step.is_none());
    assert!(t.tensors == before && t.last_bumped.is_none());
    let short = Matrix::from_vec("x", 10, 20, x.as_slice()[..200].to_vec()).unwrap();
    let err = t
        .emulated_step(&chip, &e, &groups, &chip, &short, &labels, 0, &exec, &exec)
        .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    // bad labels and NaN times are errors even though the run would stall
    let err = t
        .emulated_step(&chip, &e, &groups, &chip, &x, &[9; 20], 0, &exec, &exec)
        .unwrap_err();
    assert!(err.to_string().contains("labels"), "{err}");
    let mut nan = x.clone();
    nan.as_mut_slice()[3] = f64::NAN;
    let err = t
        .emulated_step(&chip, &e, &groups, &chip, &nan, &labels, 0, &exec, &exec)
        .unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
    let e3 = Emulation { repeat: 3, ..e };
    let err = t
        .emulated_step(&chip, &e3, &groups, &chip, &x, &labels, 0, &exec, &exec)
        .unwrap_err();
    assert!(err.to_string().contains("repeat"), "{err}");
}

#[test]
fn the_grid_is_the_bss2_rule_and_counts_changed_entries() {
    use delgrad::hardware::{Grid, changed_entries};
    let g = Grid::new(30.0, 63.0, 2.0, 0.125, 50.0, 250.0, 6.0).unwrap();
    // weights: round half to even on the 1/30 grid, clipped to +-63/30
    for (w, want) in [
        (0.5 / 30.0, 0.0),
        (1.5 / 30.0, 2.0 / 30.0),
        (-2.5 / 30.0, -2.0 / 30.0),
        (5.0, 2.1),
        (-9.0, -2.1),
    ] {
        assert_eq!(g.weight(w), want, "{w}");
    }
    // delays: (n 0.125 us + 2 us) / 6 us with n in 50..250
    assert_eq!(g.delay(0.0), (50.0 * 0.125 + 2.0) / 6.0);
    assert_eq!(g.delay(100.0), (250.0 * 0.125 + 2.0) / 6.0);
    assert_eq!(g.delay(3.0), (128.0 * 0.125 + 2.0) / 6.0);
    let net = hw_net(5);
    let q = g.quantise(&net);
    assert_eq!(changed_entries(&q, &q).unwrap(), 0);
    let mut moved = net.clone();
    moved.layers[0].w.as_mut_slice()[0] += 0.1; // crosses a grid line (3 steps)
    moved.layers[1].delays.axo.as_mut().unwrap()[2] += 0.1; // ~5 settings
    assert_eq!(changed_entries(&q, &g.quantise(&moved)).unwrap(), 2);
    let mut other = q.clone();
    other.layers[1].delays.axo = None;
    assert!(changed_entries(&q, &other).unwrap_err().to_string().contains("layout"));
    let mut hot = q.clone();
    hot.layers[0].theta[3] += 0.1;
    assert!(
        changed_entries(&q, &hot)
            .unwrap_err()
            .to_string()
            .contains("neuron parameters")
    );
    for bad in [
        Grid::new(0.0, 63.0, 2.0, 0.125, 50.0, 250.0, 6.0),
        Grid::new(30.0, -1.0, 2.0, 0.125, 50.0, 250.0, 6.0),
        Grid::new(30.0, 63.0, 2.0, 0.125, 250.0, 50.0, 6.0),
        Grid::new(30.0, 63.0, f64::NAN, 0.125, 50.0, 250.0, 6.0),
    ] {
        assert!(matches!(bad, Err(Error::Value { .. })));
    }
}

#[test]
fn the_grid_maps_arrays_and_counts_their_differing_entries() {
    use delgrad::hardware::{Grid, changed_in};
    let g = Grid::new(30.0, 63.0, 2.0, 0.125, 50.0, 250.0, 6.0).unwrap();
    assert_eq!(g.weights(&[0.25, 0.75, 3.0]).unwrap(), [8.0 / 30.0, 22.0 / 30.0, 2.1]);
    // 6 d = 135/16, 141/16: settings 51.5 -> 52, 54.5 -> 54 (half to even)
    let d = [45.0 / 32.0, 47.0 / 32.0, 0.0];
    assert_eq!(g.delay_settings(&d).unwrap(), [52.0, 54.0, 50.0]);
    assert_eq!(g.delays(&d).unwrap(), [8.5 / 6.0, 8.75 / 6.0, 8.25 / 6.0]);
    assert_eq!(g.delay_range(), (8.25 / 6.0, 33.25 / 6.0));
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let e = g.weights(&[0.0, bad]).unwrap_err().to_string();
        assert!(e.starts_with("w: ") && e.contains("index 1"), "{e}");
        assert!(g.delays(&[bad]).unwrap_err().to_string().starts_with("d: "));
        assert!(g.delay_settings(&[bad]).unwrap_err().to_string().starts_with("d: "));
    }
    let (old, new) = ([0.0, 1.0, 2.0, f64::NAN], [-0.0, 1.5, 2.0, f64::NAN]);
    assert_eq!(changed_in(&[2, 2], &old, &[2, 2], &new).unwrap(), 2);
    let e = changed_in(&[2, 2], &old, &[4], &new).unwrap_err();
    assert!(
        matches!(e, Error::Shape { .. }) && e.to_string().starts_with("new: "),
        "{e}"
    );
}

#[test]
fn emulated_epoch_equals_its_writes_and_steps_one_by_one() {
    use delgrad::hardware::{Grid, changed_entries};
    let grid = Grid::new(30.0, 63.0, 2.0, 0.125, 50.0, 250.0, 6.0).unwrap();
    let mut net = hw_net(6);
    net.layers[1]
        .w
        .as_mut_slice()
        .iter_mut()
        .for_each(|w| *w = 0.6 + 2.0 * *w);
    let (groups, x, labels) = inputs(130); // 3 batches of 40 and one of 10
    let noise = NoiseParams {
        stall_prob: 0.3,
        event_loss: 0.01,
        ..NoiseParams::bss2()
    };
    let execs = [Executor::new(1).unwrap(), Executor::new(2).unwrap()];
    for (max_retries, exec) in [(5, &execs[0]), (5, &execs[1]), (0, &execs[1])] {
        let e = Emulation {
            repeat: 5,
            pattern: None,
            noise: &noise,
            seed: 2,
            counter: 7,
        };
        let mut a = Trainer::new(net.clone(), config()).unwrap();
        let mut b = Trainer::new(net.clone(), config()).unwrap();
        let start = grid.quantise(&net);
        let got = a
            .emulated_epoch(
                &start,
                &grid,
                &e,
                &HostRecipe::default(),
                &groups,
                &x,
                &labels,
                40,
                0,
                max_retries,
                exec,
                exec,
            )
            .unwrap();
        // the same, one call at a time
        let (mut chip, mut counter, mut steps, mut retries, mut dropped) = (start.clone(), 7, Vec::new(), 0, 0);
        let (mut written, mut writes, mut stalled) = (0, 0, false);
        'batches: for s in (0..130).step_by(40) {
            let n = 40.min(130 - s);
            let gb = Matrix::from_vec("g", n, 4, groups.as_slice()[s * 4..(s + n) * 4].to_vec()).unwrap();
            let xb = Matrix::from_vec("x", n, 20, x.as_slice()[s * 20..(s + n) * 20].to_vec()).unwrap();
            let q = grid.quantise(b.network());
            written = changed_entries(&chip, &q).unwrap();
            (chip, writes) = (q, writes + 1);
            for attempt in 0..=max_retries {
                let ek = Emulation { counter, ..e };
                counter += 1;
                let (run, step) = b
                    .emulated_step(&chip, &ek, &gb, &chip, &xb, &labels[s..s + n], 0, exec, exec)
                    .unwrap();
                dropped += run.dropped_events;
                if let Some(step) = step {
                    steps.push(step);
                    continue 'batches;
                }
                retries += u64::from(attempt < max_retries);
            }
            stalled = true;
            break;
        }
        assert_eq!(got.steps, steps);
        assert_eq!(
            (got.runs(), got.retries, got.dropped_events),
            (counter - 7, retries, dropped)
        );
        assert_eq!((got.written, got.writes(), got.stalled), (written, writes, stalled));
        assert!(got.chip == chip && a.tensors == b.tensors);
        assert!(got.retries > 0 || got.stalled, "the noise should stall some runs");
    }
    // bad input: a batch of 0, rows that do not match
    let mut t = Trainer::new(net.clone(), config()).unwrap();
    let start = grid.quantise(&net);
    let e = Emulation {
        repeat: 5,
        pattern: None,
        noise: &noise,
        seed: 2,
        counter: 0,
    };
    let exec = &execs[0];
    let err = t
        .emulated_epoch(
            &start,
            &grid,
            &e,
            &HostRecipe::default(),
            &groups,
            &x,
            &labels,
            0,
            0,
            5,
            exec,
            exec,
        )
        .unwrap_err();
    assert!(err.to_string().contains("batch_size"), "{err}");
    let err = t
        .emulated_epoch(
            &start,
            &grid,
            &e,
            &HostRecipe::default(),
            &groups,
            &x,
            &labels[..100],
            40,
            0,
            5,
            exec,
            exec,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    // labels are checked before any run, also where every run stalls (no step would see them)
    let stalls = NoiseParams {
        stall_prob: 1.0,
        ..NoiseParams::bss2()
    };
    let bad: Vec<usize> = labels.iter().map(|_| 7).collect();
    let err = t
        .emulated_epoch(
            &start,
            &grid,
            &Emulation { noise: &stalls, ..e },
            &HostRecipe::default(),
            &groups,
            &x,
            &bad,
            40,
            0,
            5,
            exec,
            exec,
        )
        .unwrap_err();
    assert!(err.to_string().contains("labels"), "{err}");
}

/// The chip's 8 ns timestamps make exact ties between the earliest outputs common: here output
/// neuron 1 differs from neuron 0 by one weight of 1e-6, so that their ideal times differ by far
/// less than a clock cycle. A step's correct count follows the trainer's tie rule: a tie is wrong,
/// or its lowest class is taken.
#[test]
fn ties_on_the_emulated_chip_follow_the_tie_rule() {
    use delgrad::forward::forward;
    use delgrad::loss::TieRule;
    use delgrad::solver::Method;
    let mut net = hw_net(3);
    net.layers[1]
        .w
        .as_mut_slice()
        .iter_mut()
        .for_each(|w| *w = 0.6 + 2.0 * *w);
    let mut chip = quantised(&net);
    let w = &mut chip.layers[1].w;
    let row0 = w.row(0).to_vec();
    w.row_mut(1).copy_from_slice(&row0);
    w.row_mut(1)[0] += 1e-6;
    let n = 200;
    let (groups, x, labels) = inputs(n);
    // The timestamps on the clock, the threshold noise and jitter off: the ties come from the clock.
    let noise = NoiseParams {
        theta_batch_std: 0.0,
        jitter_std: 0.0,
        ..NoiseParams::bss2()
    };
    let exec = Executor::new(1).unwrap();
    let run = noisy_forward(&chip, &groups, 5, None, &noise, 4, 0, &exec).unwrap();
    let out = run.times.last().unwrap();
    let ideal = forward(&chip, &x, Method::Auto, &exec).unwrap();
    // By hand: the earliest finite output and how many share it.
    let (mut ties, mut want_wrong, mut want_first) = (0, 0, 0);
    for (b, &label) in labels.iter().enumerate() {
        let t = out.row(b);
        let min = t.iter().copied().fold(f64::INFINITY, f64::min);
        if !min.is_finite() {
            continue;
        }
        let first = t.iter().position(|&v| v == min).unwrap();
        let tied = t.iter().filter(|&&v| v == min).count() > 1;
        ties += usize::from(tied);
        want_first += usize::from(first == label);
        want_wrong += usize::from(first == label && !tied);
        let it = ideal.last().unwrap().row(b);
        assert!(it[0] != it[1], "sample {b}: the ideal times are not tied");
    }
    assert!(ties >= n / 2, "only {ties} tied samples of {n}");
    assert!(want_first > want_wrong, "some ties fall on the label");
    for (tie_rule, want) in [(TieRule::Wrong, want_wrong), (TieRule::First, want_first)] {
        let mut t = Trainer::new(net.clone(), TrainConfig { tie_rule, ..config() }).unwrap();
        let e = Emulation {
            repeat: 5,
            pattern: None,
            noise: &noise,
            seed: 4,
            counter: 0,
        };
        let (_, step) = t
            .emulated_step(&chip, &e, &groups, &chip, &x, &labels, 0, &exec, &exec)
            .unwrap();
        assert_eq!(step.unwrap().correct, want, "{tie_rule:?}");
    }
}

/// `GradientWeights::Float`: each step's gradient is taken at the trainer's float network, not
/// at the quantised one the chip ran: the epoch equals a run of the quantised network followed by
/// `step_from_times_at` the float network, batch by batch; and it differs from the default.
#[test]
fn the_float_recipe_takes_the_gradient_at_the_float_weights() {
    use delgrad::hardware::{GradientWeights, Grid};
    let grid = Grid::new(30.0, 63.0, 2.0, 0.125, 50.0, 250.0, 6.0).unwrap();
    let mut net = hw_net(6);
    net.layers[1]
        .w
        .as_mut_slice()
        .iter_mut()
        .for_each(|w| *w = 0.6 + 2.0 * *w);
    let (groups, x, labels) = inputs(80);
    let noise = NoiseParams::bss2();
    let exec = Executor::new(1).unwrap();
    let e = Emulation {
        repeat: 5,
        pattern: None,
        noise: &noise,
        seed: 2,
        counter: 0,
    };
    let float = HostRecipe {
        gradient_weights: GradientWeights::Float,
        ..HostRecipe::default()
    };
    let start = grid.quantise(&net);
    let mut a = Trainer::new(net.clone(), config()).unwrap();
    let got = a
        .emulated_epoch(&start, &grid, &e, &float, &groups, &x, &labels, 40, 0, 0, &exec, &exec)
        .unwrap();
    let mut b = Trainer::new(net.clone(), config()).unwrap();
    let mut steps = Vec::new();
    for (k, s) in [0usize, 40].into_iter().enumerate() {
        let gb = Matrix::from_vec("g", 40, 4, groups.as_slice()[s * 4..(s + 40) * 4].to_vec()).unwrap();
        let xb = Matrix::from_vec("x", 40, 20, x.as_slice()[s * 20..(s + 40) * 20].to_vec()).unwrap();
        let chip = grid.quantise(b.network());
        let run = noisy_forward(&chip, &gb, 5, None, &noise, 2, k as u64, &exec).unwrap();
        let at = b.network().clone();
        steps.push(
            b.step_from_times_at(&at, &xb, &run.times, &labels[s..s + 40], 0, &exec)
                .unwrap(),
        );
    }
    assert_eq!(got.steps, steps);
    assert!(a.tensors == b.tensors);
    let mut c = Trainer::new(net, config()).unwrap();
    c.emulated_epoch(
        &start,
        &grid,
        &e,
        &HostRecipe::default(),
        &groups,
        &x,
        &labels,
        40,
        0,
        0,
        &exec,
        &exec,
    )
    .unwrap();
    assert!(c.tensors != a.tensors, "the quantised and the float gradients differ");
}

/// `clamp_float_weights`: after every step the float weights are clamped to the grid's range,
/// +-63/30; with learning rates 0 and no bump the steps leave the weights as they are, so that
/// the epoch's result is the clamp of the initial weights, by hand. Delays are not clamped.
#[test]
fn the_clamp_recipe_keeps_the_float_weights_in_the_grids_range() {
    use delgrad::hardware::Grid;
    let grid = Grid::new(30.0, 63.0, 2.0, 0.125, 50.0, 250.0, 6.0).unwrap();
    assert_eq!(grid.weight_limit(), 63.0 / 30.0);
    let mut net = hw_net(6);
    let w = net.layers[0].w.as_mut_slice();
    (w[0], w[1], w[2], w[3]) = (3.0, -2.5, 2.1, -0.4);
    let (groups, x, labels) = inputs(40);
    let noise = NoiseParams::bss2();
    let exec = Executor::new(1).unwrap();
    let e = Emulation {
        repeat: 5,
        pattern: None,
        noise: &noise,
        seed: 2,
        counter: 0,
    };
    let still = TrainConfig {
        lr_weights: 0.0,
        lr_delays: 0.0,
        bump: 0.0,
        ..config()
    };
    let clamp = HostRecipe {
        clamp_float_weights: true,
        ..HostRecipe::default()
    };
    for (recipe, clamped) in [(HostRecipe::default(), false), (clamp, true)] {
        let mut t = Trainer::new(net.clone(), still.clone()).unwrap();
        t.emulated_epoch(
            &grid.quantise(&net),
            &grid,
            &e,
            &recipe,
            &groups,
            &x,
            &labels,
            40,
            0,
            0,
            &exec,
            &exec,
        )
        .unwrap();
        for (l, layer) in net.layers.iter().enumerate() {
            let want: Vec<f64> = layer
                .w
                .as_slice()
                .iter()
                .map(|&w| if clamped { w.clamp(-2.1, 2.1) } else { w })
                .collect();
            assert_eq!(
                t.network().layers[l].w.as_slice(),
                &want[..],
                "layer {l} clamped {clamped}"
            );
            assert_eq!(t.network().layers[l].delays, layer.delays, "delays unchanged");
        }
    }
    let mut t = Trainer::new(net, still).unwrap();
    assert!(t.clamp_weights(f64::NAN).unwrap_err().to_string().contains("limit"));
    assert!(t.clamp_weights(-1.0).is_err());
}

#[test]
fn a_cancelled_emulated_epoch_leaves_the_trainer_as_before() {
    use delgrad::cancel::Cancel;
    use delgrad::hardware::Grid;
    let grid = Grid::new(30.0, 63.0, 2.0, 0.125, 50.0, 250.0, 6.0).unwrap();
    let net = hw_net(7);
    // The training set four times: an epoch of ~1.3 s on two idle cores, far longer than the wait.
    let (groups, x, labels) = inputs(5000);
    let four = |m: &Matrix| Matrix::from_vec("x", 4 * m.rows(), m.cols(), m.as_slice().repeat(4)).unwrap();
    let (groups, x, labels) = (four(&groups), four(&x), labels.repeat(4));
    let noise = NoiseParams::bss2();
    let e = Emulation {
        repeat: 5,
        pattern: None,
        noise: &noise,
        seed: 3,
        counter: 0,
    };
    let exec = Executor::new(2).unwrap();
    let start = grid.quantise(&net);
    let mut tr = Trainer::new(net.clone(), config()).unwrap();
    let before = tr.clone();
    let epoch = |tr: &mut Trainer| {
        tr.emulated_epoch(
            &start,
            &grid,
            &e,
            &HostRecipe::default(),
            &groups,
            &x,
            &labels,
            10,
            0,
            5,
            &exec,
            &exec,
        )
    };
    // Raised while the epoch runs, and before it starts.
    let token = Cancel::new();
    let r = std::thread::scope(|s| {
        let canceller = token.clone();
        s.spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            canceller.cancel();
        });
        token.scope(|| epoch(&mut tr))
    });
    assert_eq!(r.unwrap_err(), Error::Cancelled);
    assert_eq!(token.scope(|| epoch(&mut tr)).unwrap_err(), Error::Cancelled);
    assert_eq!(tr.tensors, before.tensors);
    assert_eq!((tr.bump, tr.last_bumped), (before.bump, before.last_bumped));
    assert_eq!(tr.network(), before.network());
}
