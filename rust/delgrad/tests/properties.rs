//! Properties of the model that every correct solver and gradient must have (proptest), and
//! edge cases: silent inputs, zero and negative weights, equal arrival times, near-tangential
//! crossings, huge and tiny delays.

mod common;

use common::*;
use delgrad::Matrix;
use delgrad::delay::{DelayKind, Delays};
use delgrad::forward::forward;
use delgrad::gradient::{BackwardOptions, backward};
use delgrad::kernel::Neuron;
use delgrad::network::{Layer, Network};
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::solver::{Method, first_spike};
use proptest::prelude::*;

fn times(net: &Network, x: &Matrix, method: Method) -> Vec<Matrix> {
    forward(net, x, method, &Executor::default()).unwrap()
}

fn same_times(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (x.is_infinite() && x == y) || (x - y).abs() <= tol * (1.0 + x.abs()))
}

fn arb_net() -> impl Strategy<Value = (Network, Matrix)> {
    (0u32..10_000, 0usize..3, 1usize..7, 1usize..6, 1usize..5).prop_map(|(seed, regime, n_in, n_hid, batch)| {
        let mut rng = RandomState::new(seed);
        let kinds = [DelayKind::Synaptic, DelayKind::Axonal, DelayKind::Dendritic];
        let net = random_network(&mut rng, &[n_in, n_hid, 3], REGIMES[regime], &kinds);
        let x = random_input(&mut rng, batch, n_in);
        (net, x)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arrival_gradients_sum_to_one((net, x) in arb_net()) {
        let t = times(&net, &x, Method::Auto);
        let out = t.last().unwrap();
        for k in 0..out.cols() {
            let mut dl = Matrix::zeros("m", x.rows(), out.cols()).unwrap();
            (0..x.rows()).for_each(|b| dl.row_mut(b)[k] = 1.0);
            let g = backward(&net, &x, &t, &dl, &BackwardOptions::default(), &Executor::default()).unwrap();
            let spiking = (0..x.rows()).filter(|&b| out.get(b, k).is_finite()).count() as f64;
            // dL/dd_den[k] = sum_b sum_i dt_k/da_ki = number of samples where k spikes.
            let last = g.layers.last().unwrap();
            prop_assert!((last.d_den[k] - spiking).abs() < 1e-9 * (1.0 + spiking), "{} vs {}", last.d_den[k], spiking);
        }
    }

    #[test]
    fn shifting_inputs_shifts_outputs((net, x) in arb_net(), shift in -1.0f64..50.0) {
        let base = times(&net, &x, Method::Auto);
        let mut xs = x.clone();
        xs.as_mut_slice().iter_mut().for_each(|t| *t += shift);
        let moved = times(&net, &xs, Method::Auto);
        for (a, b) in base.iter().zip(&moved) {
            let shifted: Vec<f64> = a.as_slice().iter().map(|t| t + shift).collect();
            prop_assert!(same_times(&shifted, b.as_slice(), 1e-9), "{:?} vs {:?}", shifted, b.as_slice());
        }
    }

    #[test]
    fn raising_a_weight_never_delays_a_spike((net, x) in arb_net(), k in 0usize..3, i in 0usize..6, dw in 0.0f64..2.0) {
        // Single layer: kappa >= 0, so a larger weight raises u pointwise.
        let layer = net.layers.last().unwrap().clone();
        let n_in = layer.n_in();
        let xin = times(&net, &x, Method::Auto)[0].clone();
        let single = Network::new(vec![layer.clone()]).unwrap();
        let mut raised = single.clone();
        raised.layers[0].w.as_mut_slice()[k * n_in + i % n_in] += dw;
        let before = times(&single, &xin, Method::Auto);
        let after = times(&raised, &xin, Method::Auto);
        for b in 0..xin.rows() {
            let (t0, t1) = (before[0].get(b, k), after[0].get(b, k));
            prop_assert!(t1 <= t0 + 1e-9 * (1.0 + t0.abs().min(1e9)), "{t1} > {t0}");
        }
    }

    #[test]
    fn silent_inputs_change_nothing((net, x) in arb_net(), w in -5.0f64..5.0, d in 0.0f64..3.0) {
        // Append an input that never spikes, with any weight and delay.
        let mut wide = net.clone();
        let l0 = &mut wide.layers[0];
        let (n_out, n_in) = (l0.n_out(), l0.n_in());
        let mut w2 = Vec::new();
        let mut s2 = Vec::new();
        for k in 0..n_out {
            w2.extend_from_slice(l0.w.row(k));
            w2.push(w);
            s2.extend_from_slice(l0.delays.syn.as_ref().unwrap().row(k));
            s2.push(d);
        }
        l0.w = Matrix::from_vec("w", n_out, n_in + 1, w2).unwrap();
        l0.delays.syn = Some(Matrix::from_vec("s", n_out, n_in + 1, s2).unwrap());
        l0.delays.axo.as_mut().unwrap().push(d);
        let mut xw = Vec::new();
        for b in 0..x.rows() {
            xw.extend_from_slice(x.row(b));
            xw.push(f64::INFINITY);
        }
        let xw = Matrix::from_vec("x", x.rows(), n_in + 1, xw).unwrap();
        let a = times(&net, &x, Method::Auto);
        let b = times(&wide, &xw, Method::Auto);
        for (p, q) in a.iter().zip(&b) {
            prop_assert_eq!(p.as_slice(), q.as_slice());
        }
    }

    #[test]
    fn bracketing_agrees_with_closed_forms((net, x) in arb_net()) {
        let a = times(&net, &x, Method::Auto);
        let b = times(&net, &x, Method::Bracket);
        for (p, q) in a.iter().zip(&b) {
            prop_assert!(same_times(p.as_slice(), q.as_slice(), 1e-9), "{:?} vs {:?}", p.as_slice(), q.as_slice());
        }
    }

    #[test]
    fn permuting_inputs_permutes_nothing((net, x) in arb_net(), seed in 0u32..1000) {
        let n_in = net.n_in();
        let perm = RandomState::new(seed).permutation(n_in);
        let mut pnet = net.clone();
        let l0 = &mut pnet.layers[0];
        let src = net.layers[0].clone();
        for k in 0..l0.n_out() {
            for (j, &i) in perm.iter().enumerate() {
                l0.w.row_mut(k)[j] = src.w.get(k, i);
                l0.delays.syn.as_mut().unwrap().row_mut(k)[j] = src.delays.syn.as_ref().unwrap().get(k, i);
            }
        }
        for (j, &i) in perm.iter().enumerate() {
            l0.delays.axo.as_mut().unwrap()[j] = src.delays.axo.as_ref().unwrap()[i];
        }
        let mut px = x.clone();
        for b in 0..x.rows() {
            for (j, &i) in perm.iter().enumerate() {
                px.row_mut(b)[j] = x.get(b, i);
            }
        }
        let a = times(&net, &x, Method::Auto);
        let p = times(&pnet, &px, Method::Auto);
        for (u, v) in a.iter().zip(&p) {
            prop_assert!(same_times(u.as_slice(), v.as_slice(), 1e-12), "{:?} vs {:?}", u.as_slice(), v.as_slice());
        }
    }

    #[test]
    fn garbage_never_panics(
        rows in 0usize..4, cols in 0usize..5, vals in prop::collection::vec(prop_oneof![
            Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(0.0), Just(-1.0), -1e300f64..1e300
        ], 0..40),
        seed in 0u32..100,
    ) {
        let mut rng = RandomState::new(seed);
        let net = random_network(&mut rng, &[3, 4, 2], REGIMES[(seed % 3) as usize], &[DelayKind::Axonal]);
        let data: Vec<f64> = (0..rows * cols).map(|i| vals.get(i).copied().unwrap_or(0.5)).collect();
        let x = Matrix::from_vec("x", rows, cols, data).unwrap();
        let exec = Executor::default();
        if let Ok(t) = forward(&net, &x, Method::Auto, &exec) {
            let dl = Matrix::zeros("m", rows, 2).unwrap();
            let _ = backward(&net, &x, &t, &dl, &BackwardOptions::default(), &exec);
        }
        // Garbage parameters as well.
        let mut bad = net.clone();
        bad.layers[0].w.as_mut_slice()[0] = vals.first().copied().unwrap_or(f64::NAN);
        bad.layers[0].delays.axo.as_mut().unwrap()[0] = vals.get(1).copied().unwrap_or(-1.0);
        let x = random_input(&mut rng, 2, 3);
        let _ = forward(&bad, &x, Method::Auto, &exec);
        let t = forward(&net, &x, Method::Auto, &exec).unwrap();
        let _ = backward(&bad, &x, &t, &Matrix::zeros("m", 2, 2).unwrap(), &BackwardOptions::default(), &exec);
    }
}

fn one_neuron(tau: (f64, f64), theta: f64, w: &[f64]) -> Network {
    let neuron = Neuron::new(tau.0, tau.1).unwrap();
    let w = Matrix::from_vec("w", 1, w.len(), w.to_vec()).unwrap();
    Network::new(vec![Layer::new(neuron, theta, w)]).unwrap()
}

#[test]
fn near_tangential_crossings_are_found_and_misses_are_silent() {
    // One input: u(s) = w kappa(s); its peak kappa_max at s*, so w = theta/kappa_max is tangential.
    for &tau in &REGIMES {
        let n = Neuron::new(tau.0, tau.1).unwrap();
        let s_star = if tau.0 == tau.1 {
            tau.0
        } else {
            (tau.0 / tau.1).ln() / (1.0 / tau.1 - 1.0 / tau.0)
        };
        let kmax = n.kappa(s_star);
        for eps in [1e-3, 1e-8, 1e-12] {
            let above = one_neuron(tau, 1.0, &[(1.0 + eps) / kmax]);
            let below = one_neuron(tau, 1.0, &[(1.0 - eps) / kmax]);
            let x = Matrix::from_vec("x", 1, 1, vec![0.3]).unwrap();
            for method in [Method::Auto, Method::Bracket] {
                let t = times(&above, &x, method)[0].get(0, 0);
                assert!(
                    t.is_finite() && t <= 0.3 + s_star + 1e-9,
                    "{tau:?} eps {eps} {method:?}: {t}"
                );
                let u = (1.0 + eps) / kmax * n.kappa(t - 0.3);
                assert!((u - 1.0).abs() < 1e-9, "{tau:?} eps {eps}: u(t) = {u}");
                assert!(times(&below, &x, method)[0].get(0, 0).is_infinite());
            }
        }
    }
}

#[test]
fn zero_negative_weights_and_equal_arrivals() {
    for &tau in &REGIMES {
        let n = Neuron::new(tau.0, tau.1).unwrap();
        // Zero weights are ignored; inhibition alone never spikes.
        let x = Matrix::from_vec("x", 1, 3, vec![0.1, 0.1, 0.1]).unwrap();
        assert!(
            times(&one_neuron(tau, 1.0, &[0.0, 0.0, 0.0]), &x, Method::Auto)[0]
                .get(0, 0)
                .is_infinite()
        );
        assert!(
            times(&one_neuron(tau, 1.0, &[-2.0, -1.0, 0.0]), &x, Method::Auto)[0]
                .get(0, 0)
                .is_infinite()
        );
        // Three equal arrivals act like one input of the summed weight.
        let split = times(&one_neuron(tau, 1.0, &[1.5, 1.5, 1.5]), &x, Method::Auto)[0].get(0, 0);
        let merged = first_spike(&n, 1.0, &[(0.1, 4.5)], Method::Auto);
        assert!((split - merged).abs() < 1e-12, "{split} vs {merged}");
        // Late inhibition after the spike does not matter; early inhibition delays it.
        let x2 = Matrix::from_vec("x", 1, 2, vec![0.0, 50.0]).unwrap();
        let t_exc = times(&one_neuron(tau, 1.0, &[4.0, 0.0]), &x2, Method::Auto)[0].get(0, 0);
        let t_late = times(&one_neuron(tau, 1.0, &[4.0, -9.0]), &x2, Method::Auto)[0].get(0, 0);
        assert_eq!(t_exc, t_late);
        let x3 = Matrix::from_vec("x", 1, 2, vec![0.0, 0.05]).unwrap();
        let t_inh = times(&one_neuron(tau, 1.0, &[4.0, -1.0]), &x3, Method::Auto)[0].get(0, 0);
        assert!(t_inh > t_exc || t_inh.is_infinite());
    }
}

#[test]
fn huge_and_tiny_delays() {
    let mut rng = RandomState::new(3);
    for &tau in &REGIMES {
        let net = random_network(&mut rng, &[4, 6, 3], tau, &[DelayKind::Dendritic]);
        let x = random_input(&mut rng, 3, 4);
        let base = times(&net, &x, Method::Auto);
        for shift in [1e-12, 1e3, 1e6] {
            // A dendritic delay on every hidden neuron delays the whole network by exactly that much.
            let mut d = net.clone();
            d.layers[0]
                .delays
                .den
                .as_mut()
                .unwrap()
                .iter_mut()
                .for_each(|v| *v += shift);
            let t = times(&d, &x, Method::Auto);
            for (a, b) in base.iter().zip(&t) {
                let want: Vec<f64> = a.as_slice().iter().map(|v| v + shift).collect();
                assert!(same_times(&want, b.as_slice(), 1e-9), "{tau:?} shift {shift}");
            }
            let dl = Matrix::filled("m", 3, 3, 1.0).unwrap();
            let g = backward(&d, &x, &t, &dl, &BackwardOptions::default(), &Executor::default()).unwrap();
            assert!(g.layers.iter().all(|l| l.w.as_slice().iter().all(|v| v.is_finite())));
        }
        // A huge delay on a single input makes it arrive after everything else has happened.
        let mut one = net.clone();
        let delays = Delays {
            axo: Some(vec![0.0, 0.0, 0.0, 1e9]),
            ..Delays::default()
        };
        one.layers[0].delays = delays;
        let t = times(&one, &x, Method::Auto);
        assert!(t[1].as_slice().iter().all(|v| !v.is_nan()));
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let mut rng = RandomState::new(11);
    let net = random_network(&mut rng, &[4, 12, 3], (2.0, 1.0), &[DelayKind::Synaptic]);
    let x = random_input(&mut rng, 150, 4);
    let run = |threads: usize| {
        let exec = Executor::new(threads).unwrap();
        let t = forward(&net, &x, Method::Auto, &exec).unwrap();
        let dl = Matrix::filled("m", 150, 3, 0.01).unwrap();
        let g = backward(&net, &x, &t, &dl, &BackwardOptions::default(), &exec).unwrap();
        (t, g)
    };
    let (t1, g1) = run(1);
    for threads in [2, 3] {
        let (t, g) = run(threads);
        assert_eq!(t, t1);
        assert_eq!(g, g1, "gradients differ with {threads} threads");
    }
}

/// Measured times the ideal model cannot produce (a neuron it leaves silent is given a spike)
/// are counted as invalid and get no gradient with `check_given_times`; valid times keep theirs.
#[test]
fn given_times_the_model_cannot_produce_are_invalid() {
    let mut rng = RandomState::new(21);
    for tau in REGIMES {
        let mut net = random_network(&mut rng, &[4, 6, 3], tau, &[]);
        // Hidden neuron 0 is far too weak to reach its threshold: the ideal model leaves it silent.
        net.layers[0].w.row_mut(0).fill(0.01);
        let x = random_input(&mut rng, 5, 4);
        let exec = Executor::default();
        let mut t = forward(&net, &x, Method::Auto, &exec).unwrap();
        assert!(t[0].as_slice().iter().step_by(6).all(|v| v.is_infinite()));
        // A "chip" reports it spiking shortly after its first input in every sample: the kernels
        // are rising there (rho > 0), so only the check can tell that the time is impossible.
        for b in 0..5 {
            let first = x.row(b).iter().copied().fold(f64::INFINITY, f64::min);
            t[0].row_mut(b)[0] = first + 0.05;
        }
        let dl = Matrix::filled("m", 5, 3, 0.1).unwrap();
        let check = BackwardOptions {
            check_given_times: true,
            ..Default::default()
        };
        let with = backward(&net, &x, &t, &dl, &check, &exec).unwrap();
        let without = backward(&net, &x, &t, &dl, &BackwardOptions::default(), &exec).unwrap();
        assert_eq!(with.invalid[0], without.invalid[0] + 5, "{tau:?}");
        assert!(with.layers[0].w.row(0).iter().all(|g| *g == 0.0), "{tau:?}");
        assert!(without.layers[0].w.row(0).iter().any(|g| *g != 0.0), "{tau:?}");
        // The other neurons' gradients are unchanged by the check.
        for k in 1..6 {
            assert_eq!(
                with.layers[0].w.row(k),
                without.layers[0].w.row(k),
                "{tau:?} neuron {k}"
            );
        }
        assert_eq!(with.layers[1], without.layers[1], "{tau:?}");
    }
}
