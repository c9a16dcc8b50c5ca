//! Values at the ends of the accepted range (docs/model.md, "Range of values"): the default
//! method and the bracketing reference agree on every accepted input, from subnormal to huge
//! weights, times up to the largest doubles and time constants apart by up to the accepted
//! ratio; values outside the range are errors naming the argument; a backward pass whose
//! gradients would not be finite is an error naming the sample and layer.

use delgrad::Matrix;
use delgrad::delay::Delays;
use delgrad::error::Error;
use delgrad::forward::forward;
use delgrad::gradient::{BackwardOptions, backward};
use delgrad::kernel::Neuron;
use delgrad::network::{Layer, Network};
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::range;
use delgrad::solver::Method;
use proptest::prelude::*;

fn layer(tau: (f64, f64), theta: f64, n_out: usize, w: &[f64]) -> delgrad::Result<Layer> {
    let neuron = Neuron::new(tau.0, tau.1)?;
    Ok(Layer::new(
        neuron,
        theta,
        Matrix::from_vec("w", n_out, w.len() / n_out, w.to_vec())?,
    ))
}

fn one_neuron(tau: (f64, f64), theta: f64, w: &[f64]) -> delgrad::Result<Network> {
    Network::new(vec![layer(tau, theta, 1, w)?])
}

/// Spike times of every layer for one sample by `method`.
fn times(net: &Network, x: &[f64], method: Method) -> Vec<f64> {
    let x = Matrix::from_vec("x", 1, x.len(), x.to_vec()).unwrap();
    let t = forward(net, &x, method, &Executor::new(1).unwrap()).unwrap();
    t.iter().flat_map(|m| m.as_slice().to_vec()).collect()
}

/// The default method's spike time `a` and the reference's `b` agree: both silent, or both
/// finite within 1e-9 of the scale the times are resolved on (the inputs' and the spikes'
/// magnitudes, and tau_m in the closed-form regimes, whose scans work on e^{-t/tau_m}).
fn agree(a: f64, b: f64, scale: f64) -> bool {
    (a.is_infinite() && a == b) || (a.is_finite() && b.is_finite() && (a - b).abs() <= 1e-9 * scale)
}

fn time_scale(tau: (f64, f64), inputs: &[f64], a: f64, b: f64) -> f64 {
    let closed = tau.0 == tau.1 || tau.0 == 2.0 * tau.1;
    let finite = inputs.iter().chain([&a, &b]).filter(|t| t.is_finite());
    finite.fold(0.0f64, |m, t| m.max(t.abs())) + if closed { tau.0.max(tau.1) } else { 0.0 }
}

fn value_error_arg(e: &Error) -> &str {
    match e {
        Error::Value { arg, .. } => arg,
        other => panic!("expected a value error, got {other}"),
    }
}

#[test]
fn the_reported_cases_give_the_right_answer_or_a_clear_error() {
    // A subnormal weight cannot lift u to theta = 1: silent in both methods (the closed form
    // saw its squared sums underflow to 0 and reported a crossing at 5.545).
    let net = one_neuron((8.0, 4.0), 1.0, &[5e-324]).unwrap();
    for method in [Method::Auto, Method::Bracket] {
        assert_eq!(times(&net, &[0.0], method), [f64::INFINITY], "{method:?}");
    }
    // A weight of 1e198 is outside the range: an error naming the weights.
    let e = one_neuron((2.0, 1.0), 1.0, &[1e198]).unwrap_err();
    assert_eq!(value_error_arg(&e), "layers[0].w", "{e}");
    assert!(e.to_string().contains("1e100"), "{e}");
    // The largest accepted weight: u = w kappa(s) ~ w s reaches theta at s ~ theta / w (the
    // reference's bisection used to stop 200 halvings short, at 4.3e-61).
    let net = one_neuron((2.0, 1.0), 1.0, &[1e100]).unwrap();
    for method in [Method::Auto, Method::Bracket] {
        let t = times(&net, &[0.0], method)[0];
        assert!((t - 1e-100).abs() <= 1e-12 * 1e-100, "{method:?}: {t:e}");
    }
}

#[test]
fn values_outside_the_range_are_errors_naming_the_argument() {
    let tau = (2.0, 1.0);
    let bad: [(&str, delgrad::Result<Network>); 7] = [
        ("layers[0].w", one_neuron(tau, 1.0, &[0.5, 1.5e100])),
        ("layers[0].w", one_neuron(tau, 1.0, &[-1e101])),
        ("layers[0].theta", one_neuron(tau, 1e101, &[1.0])),
        ("layers[0].theta", one_neuron(tau, 1e-101, &[1.0])),
        ("tau_m", one_neuron((1e101, 1.0), 1.0, &[1.0])),
        ("tau_s", one_neuron((1.0, 1e-101), 1.0, &[1.0])),
        ("tau_s", one_neuron((1.0, 1.0001e8), 1.0, &[1.0])),
    ];
    for (arg, result) in bad {
        let e = result.unwrap_err();
        assert_eq!(value_error_arg(&e), arg, "{e}");
    }
    // The ends of the range are accepted, and subnormal weights too.
    for (tau, theta, w) in [
        ((range::MAX, range::MAX / range::MAX_TAU_RATIO), range::MIN, range::MAX),
        ((range::MIN, range::MIN), range::MAX, -range::MAX),
        ((2.0, 1.0), 1.0, f64::from_bits(1)),
    ] {
        one_neuron(tau, theta, &[w]).unwrap();
    }
}

/// A magnitude 10^e m (m in [1, 10)) with e spread over the whole double range: subnormal,
/// below the range, within it and beyond it.
fn magnitude(rng: &mut RandomState) -> f64 {
    let u = rng.random_sample();
    let e = if u < 0.1 {
        -324.0 + 24.0 * rng.random_sample()
    } else if u < 0.2 {
        100.0 + 208.0 * rng.random_sample()
    } else if u < 0.6 {
        -100.0 + 200.0 * rng.random_sample()
    } else {
        -1.0 + 2.0 * rng.random_sample()
    };
    ((1.0 + 9.0 * rng.random_sample()) * 10f64.powf(e)).min(f64::MAX)
}

/// An ordinary value near `normal` (30%) or any [`magnitude`].
fn value(rng: &mut RandomState, normal: f64) -> f64 {
    if rng.random_sample() < 0.3 {
        normal * (0.5 + rng.random_sample())
    } else {
        magnitude(rng)
    }
}

fn signed(rng: &mut RandomState, v: f64, negative: f64) -> f64 {
    if rng.random_sample() < negative { -v } else { v }
}

/// One random extreme case: time constants (every regime, huge and tiny, ratios up to beyond
/// the range), thresholds, weights and input times over the whole double range; a second layer
/// and delays in some.
struct Case {
    tau: (f64, f64),
    net: delgrad::Result<Network>,
    x: Vec<f64>,
}

fn extreme_case(rng: &mut RandomState, index: usize) -> Case {
    let n_in = 1 + index % 3;
    let ts = if rng.random_sample() < 0.5 {
        0.5 + 4.0 * rng.random_sample()
    } else {
        magnitude(rng)
    };
    let r = rng.random_sample();
    let tm = if r < 0.3 {
        ts
    } else if r < 0.6 {
        2.0 * ts
    } else if r < 0.8 {
        ts * 10f64.powf(-9.0 + 18.0 * rng.random_sample())
    } else {
        magnitude(rng)
    };
    let theta = value(rng, 1.0);
    let w: Vec<f64> = (0..n_in)
        .map(|_| {
            let v = value(rng, 2.0);
            signed(rng, v, 0.25)
        })
        .collect();
    let x: Vec<f64> = (0..n_in)
        .map(|_| match rng.random_sample() {
            r if r < 0.3 => 3.0 * rng.random_sample(),
            r if r < 0.4 => 0.0,
            _ => {
                let v = magnitude(rng);
                signed(rng, v, 0.3)
            }
        })
        .collect();
    let net = layer((tm, ts), theta, 1, &w).and_then(|mut first| {
        if index % 4 == 3 {
            // Axonal and dendritic delays, and a second layer fed by this one.
            first.delays = Delays {
                axo: Some((0..n_in).map(|_| 2.0 * rng.random_sample()).collect()),
                den: Some(vec![rng.random_sample()]),
                ..Delays::default()
            };
            let w2 = [value(rng, 2.0)];
            Network::new(vec![first, layer((tm, ts), theta, 1, &w2)?])
        } else if index % 4 == 2 {
            first.delays = Delays {
                syn: Some(Matrix::from_vec(
                    "d",
                    1,
                    n_in,
                    (0..n_in).map(|_| rng.random_sample()).collect(),
                )?),
                ..Delays::default()
            };
            Network::new(vec![first])
        } else {
            Network::new(vec![first])
        }
    });
    Case { tau: (tm, ts), net, x }
}

#[test]
fn default_and_bracketing_agree_on_a_sweep_of_extreme_values() {
    let mut rng = RandomState::new(15);
    let (mut accepted, mut subnormal, mut huge, mut rejected) = (0, 0, 0, 0);
    for index in 0..12_000 {
        let Case { tau, net, x } = extreme_case(&mut rng, index);
        let Ok(net) = net else {
            rejected += 1;
            continue;
        };
        accepted += 1;
        let w = net.layers[0].w.as_slice();
        subnormal += usize::from(w.iter().any(|w| w.abs() < f64::MIN_POSITIVE && *w != 0.0));
        huge += usize::from(w.iter().any(|w| w.abs() > 1e90));
        let (a, b) = (times(&net, &x, Method::Auto), times(&net, &x, Method::Bracket));
        // The first layer's inputs are the sample's; a second layer's those spikes.
        let mut inputs = x.clone();
        for (l, (&ta, &tb)) in a.iter().zip(&b).enumerate() {
            let scale = time_scale(tau, &inputs, ta, tb);
            assert!(
                agree(ta, tb, scale),
                "case {index}, layer {l}: tau {tau:?} theta {:e} w {w:?} x {x:?}: default {ta:e}, bracketing {tb:e}",
                net.layers[0].theta[0]
            );
            // Only where both layers saw the same inputs does the next layer compare like with like.
            if ta != tb {
                break;
            }
            inputs = vec![ta];
        }
    }
    // The sweep reaches every part of the range.
    assert!(
        accepted > 5000 && rejected > 3000,
        "{accepted} accepted, {rejected} rejected"
    );
    assert!(
        subnormal > 200 && huge > 100,
        "{subnormal} with subnormal, {huge} with huge weights"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Subnormal, tiny, ordinary and huge weights (up to the largest accepted) with ordinary and
    /// extreme thresholds: the default method agrees with the bracketing reference in every
    /// regime.
    #[test]
    fn subnormal_and_huge_weights_agree_in_every_regime(
        regime in 0usize..4,
        tau_s in prop_oneof![0.3f64..3.0, Just(1e-90), Just(1e90)],
        theta_exp in -100.0f64..100.0,
        weights in prop::collection::vec(
            (prop_oneof![
                Just(f64::from_bits(1)),
                (1u64..(1u64 << 52)).prop_map(f64::from_bits),
                -300.0f64..-100.0,
                -100.0f64..100.0,
                0.0f64..1.0,
            ], any::<bool>()),
            1..4,
        ),
        arrivals in prop::collection::vec(prop_oneof![0.0f64..3.0, -1e300f64..1e300], 3),
    ) {
        let tau_m = [tau_s, 2.0 * tau_s, 1.7 * tau_s, 0.6 * tau_s][regime];
        // Exponents stand for magnitudes 10^e (subnormal bit patterns are used as they are).
        let w: Vec<f64> = weights
            .iter()
            .map(|&(v, negative)| {
                let m = if !(0.0..1.0).contains(&v) { 10f64.powf(v).min(range::MAX) } else { v };
                if negative { -m } else { m }
            })
            .collect();
        let theta = 10f64.powf(theta_exp).clamp(range::MIN, range::MAX);
        let net = one_neuron((tau_m, tau_s), theta, &w).unwrap();
        let x = &arrivals[..w.len()];
        let (a, b) = (times(&net, x, Method::Auto)[0], times(&net, x, Method::Bracket)[0]);
        let scale = time_scale((tau_m, tau_s), x, a, b);
        prop_assert!(agree(a, b, scale), "tau {:?} theta {theta:e} w {w:?} x {x:?}: {a:e} vs {b:e}", (tau_m, tau_s));
    }
}

/// Backward pass of `net` at the given times of every layer with output loss gradients `dl`.
fn backward_at(
    net: &Network,
    x: &[f64],
    given: &[&[f64]],
    dl: &[f64],
) -> delgrad::Result<delgrad::gradient::Gradients> {
    let batch = dl.len() / net.n_out();
    let x = Matrix::from_vec("x", batch, net.n_in(), x.to_vec()).unwrap();
    let times: Vec<Matrix> = given
        .iter()
        .zip(net.sizes().iter().skip(1))
        .map(|(t, &n)| Matrix::from_vec("t", batch, n, t.to_vec()).unwrap())
        .collect();
    let dl = Matrix::from_vec("dl", batch, net.n_out(), dl.to_vec()).unwrap();
    backward(
        net,
        &x,
        &times,
        &dl,
        &BackwardOptions::default(),
        &Executor::new(1).unwrap(),
    )
}

#[test]
fn non_finite_gradients_are_errors_naming_the_sample_and_layer() {
    // tau_m = tau_s = 1, one input at 0: the slope at t is e^{-t} (1 - t) > 0 before the peak.
    // Sample 1's time just before the peak with a huge loss gradient makes dL/dtheta = dl/rho
    // overflow; samples 0 and 2 are ordinary.
    let net = one_neuron((1.0, 1.0), 0.3, &[1.0]).unwrap();
    let e = backward_at(&net, &[0.0; 3], &[&[0.5, 0.999, 0.5]], &[1.0, 1e308, 1.0]).unwrap_err();
    assert_eq!(value_error_arg(&e), "sample 1", "{e}");
    assert!(e.to_string().contains("layers[0]"), "{e}");
    // The same in the output layer of two: named there, not in the layer below it.
    let two = Network::new(vec![
        layer((1.0, 1.0), 0.3, 1, &[1.0]).unwrap(),
        layer((1.0, 1.0), 0.3, 1, &[1.0]).unwrap(),
    ])
    .unwrap();
    let e = backward_at(&two, &[0.0, 0.0], &[&[0.5, 0.5], &[1.0, 1.499]], &[1.0, 1e308]).unwrap_err();
    assert_eq!(value_error_arg(&e), "sample 1", "{e}");
    assert!(e.to_string().contains("layers[1]"), "{e}");
    // Huge but finite input times: kappa(t - a) with t - a = 1e308 - (-1e308) = inf.
    let e = backward_at(&net, &[-1e308, 0.0], &[&[1e308, 0.5]], &[1.0, 1.0]);
    assert!(e.is_err() || e.as_ref().is_ok_and(all_finite), "{e:?}");
    // Each sample finite, their sum over the batch not: named by layer and tensor.
    let e = backward_at(&net, &[0.0; 2], &[&[0.5, 0.5]], &[5e307, 5e307]).unwrap_err();
    assert_eq!(value_error_arg(&e), "layers[0].theta", "{e}");
    // Ordinary gradients pass unchanged.
    let g = backward_at(&net, &[0.0; 3], &[&[0.5, 0.7, 0.9]], &[1.0, -2.0, 0.5]).unwrap();
    assert!(all_finite(&g));
}

fn all_finite(g: &delgrad::gradient::Gradients) -> bool {
    g.input.as_slice().iter().all(|v| v.is_finite())
        && g.layers.iter().all(|l| {
            [l.w.as_slice(), &l.theta, l.d_syn.as_slice(), &l.d_axo, &l.d_den]
                .iter()
                .all(|v| v.iter().all(|v| v.is_finite()))
        })
}

/// A weight of ordinary (half) or any accepted magnitude.
fn weight(rng: &mut RandomState) -> f64 {
    let e = if rng.random_sample() < 0.5 {
        -2.0 + 3.0 * rng.random_sample()
    } else {
        -100.0 + 199.0 * rng.random_sample()
    };
    let v = (1.0 + 9.0 * rng.random_sample()) * 10f64.powf(e);
    signed(rng, v, 0.3)
}

/// An ordinary time or one of any magnitude up to the largest double.
fn time(rng: &mut RandomState) -> f64 {
    if rng.random_sample() < 0.4 {
        return 2.0 * rng.random_sample();
    }
    let v = ((1.0 + 9.0 * rng.random_sample()) * 10f64.powf(-300.0 + 607.0 * rng.random_sample())).min(f64::MAX);
    signed(rng, v, 0.3)
}

/// Random extreme given times, weights and loss gradients: the backward pass either returns
/// finite gradients or an error naming a sample (or a layer's summed tensor); never NaN or inf.
#[test]
fn backward_never_returns_non_finite_gradients() {
    let mut rng = RandomState::new(9);
    let exec = Executor::new(1).unwrap();
    let (mut errors, mut fine) = (0, 0);
    for case in 0..4000 {
        let tau = [(2.0, 1.0), (1.0, 1.0), (1.7, 0.6)][case % 3];
        let n = 1 + case % 3;
        let w: Vec<f64> = (0..2 * n).map(|_| weight(&mut rng)).collect();
        let w2: Vec<f64> = (0..2).map(|_| weight(&mut rng).abs()).collect();
        let x: Vec<f64> = (0..n).map(|_| time(&mut rng)).collect();
        let net = Network::new(vec![layer(tau, 1.0, 2, &w).unwrap(), layer(tau, 1.0, 1, &w2).unwrap()]).unwrap();
        let xm = Matrix::from_vec("x", 1, n, x).unwrap();
        let mut t = forward(&net, &xm, Method::Auto, &exec).unwrap();
        if case % 2 == 0 {
            for v in t.iter_mut().flat_map(|m| m.as_mut_slice().iter_mut()) {
                if rng.random_sample() < 0.7 {
                    *v = time(&mut rng);
                }
            }
        }
        let dl = Matrix::from_vec("dl", 1, 1, vec![if case % 4 < 2 { 1.0 } else { 1e300 }]).unwrap();
        match backward(&net, &xm, &t, &dl, &BackwardOptions::default(), &exec) {
            Ok(g) => {
                assert!(all_finite(&g), "case {case}: {g:?}");
                fine += 1;
            }
            Err(e) => {
                let arg = value_error_arg(&e);
                assert!(arg == "sample 0" || arg.starts_with("layers["), "case {case}: {e}");
                errors += 1;
            }
        }
    }
    assert!(errors > 100 && fine > 1000, "{errors} errors, {fine} finite");
}
