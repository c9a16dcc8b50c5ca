//! `GradientSlope`: the spike-time gradients at a given time divide by the measured slope
//! rho = I(t) - u(t)/tau_m or by the nominal one, I(t) - theta/tau_m; checked by hand on one
//! neuron with one input, in each regime, and through `Trainer::step_from_times`.

use delgrad::Matrix;
use delgrad::gradient::{BackwardOptions, GradientSlope, backward};
use delgrad::kernel::Neuron;
use delgrad::network::{Layer, Network};
use delgrad::parallel::Executor;
use delgrad::train::{TrainConfig, Trainer};

/// One neuron (tau_m, tau_s), one input at t = 0 with weight `w`, threshold `theta`.
fn neuron(tau_m: f64, tau_s: f64, w: f64, theta: f64) -> Network {
    let w = Matrix::from_vec("w", 1, 1, vec![w]).unwrap();
    Network::new(vec![Layer::new(Neuron::new(tau_m, tau_s).unwrap(), theta, w)]).unwrap()
}

/// kappa(s) of docs/model.md written out: s e^{-s/tau} (equal), else
/// (e^{-s/tau_m} - e^{-s/tau_s}) / (1/tau_s - 1/tau_m).
fn kappa(tau_m: f64, tau_s: f64, s: f64) -> f64 {
    if tau_m == tau_s {
        s * (-s / tau_m).exp()
    } else {
        ((-s / tau_m).exp() - (-s / tau_s).exp()) / (1.0 / tau_s - 1.0 / tau_m)
    }
}

#[test]
fn the_nominal_slope_puts_theta_in_place_of_the_potential() {
    let exec = Executor::new(1).unwrap();
    let (w, theta) = (3.0, 0.5);
    // A "measured" time t = 0.3 at which u(t) != theta (the ideal crossing is elsewhere).
    let t = 0.3;
    for (tau_m, tau_s) in [(1.0, 1.0), (2.0, 1.0), (1.5, 1.0)] {
        let net = neuron(tau_m, tau_s, w, theta);
        let x = Matrix::from_vec("x", 1, 1, vec![0.0]).unwrap();
        let times = [Matrix::from_vec("t", 1, 1, vec![t]).unwrap()];
        let dl = Matrix::from_vec("dl", 1, 1, vec![1.0]).unwrap();
        // By hand: the synaptic current I = w e^{-t/tau_s}, the potential u = w kappa(t).
        let (k, current) = (kappa(tau_m, tau_s, t), w * (-t / tau_s).exp());
        let u = w * k;
        assert!((u - theta).abs() > 0.1, "u(t) = {u}: the two slopes must differ");
        for (slope, rho) in [
            (GradientSlope::Measured, current - u / tau_m),
            (GradientSlope::Nominal, current - theta / tau_m),
        ] {
            let opts = BackwardOptions {
                slope,
                ..BackwardOptions::default()
            };
            let g = backward(&net, &x, &times, &dl, &opts, &exec).unwrap();
            let g = &g.layers[0];
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-13 * b.abs().max(1.0);
            // dt/dw = -kappa/rho, dt/dtheta = 1/rho, dt/dd_den = w kappa'/rho with w kappa' the
            // measured slope (1 with the measured slope: translation invariance).
            let dd = (current - u / tau_m) / rho;
            assert!(
                close(g.w.as_slice()[0], -k / rho),
                "{tau_m}/{tau_s} {slope:?}: dw {}",
                g.w.as_slice()[0]
            );
            assert!(
                close(g.theta[0], 1.0 / rho),
                "{tau_m}/{tau_s} {slope:?}: dtheta {}",
                g.theta[0]
            );
            assert!(
                close(g.d_den[0], dd),
                "{tau_m}/{tau_s} {slope:?}: dd_den {}",
                g.d_den[0]
            );
        }
    }
}

#[test]
fn at_the_ideal_time_both_slopes_agree_and_names_round_trip() {
    // At the ideal crossing u(t) = theta: the nominal slope is the measured one (to rounding).
    let exec = Executor::new(1).unwrap();
    let net = neuron(1.0, 1.0, 3.0, 0.5);
    let x = Matrix::from_vec("x", 1, 1, vec![0.0]).unwrap();
    let times = delgrad::forward::forward(&net, &x, delgrad::solver::Method::Auto, &exec).unwrap();
    let dl = Matrix::from_vec("dl", 1, 1, vec![1.0]).unwrap();
    let grad = |slope| {
        let opts = BackwardOptions {
            slope,
            ..BackwardOptions::default()
        };
        backward(&net, &x, &times, &dl, &opts, &exec).unwrap().layers[0].theta[0]
    };
    let (m, n) = (grad(GradientSlope::Measured), grad(GradientSlope::Nominal));
    assert!((m - n).abs() <= 1e-12 * m.abs(), "{m} vs {n}");
    for (name, s) in GradientSlope::NAMES
        .iter()
        .zip([GradientSlope::Measured, GradientSlope::Nominal])
    {
        assert_eq!(GradientSlope::from_name(name).unwrap(), s);
        assert_eq!(s.name(), *name);
    }
    let e = GradientSlope::from_name("ideal").unwrap_err().to_string();
    assert!(e.starts_with("option gradient_slope: unknown gradient slope"), "{e}");
}

#[test]
fn the_trainer_takes_its_configured_slope_at_given_times() {
    // A given time past the peak of u = w t e^{-t} (at t = 1), where u(t) is still above theta:
    // the measured slope w e^{-t} (1 - t) is negative (the gradient is invalid, zeroed), the
    // nominal one w e^{-t} - theta positive.
    let exec = Executor::new(1).unwrap();
    let (w, theta, t): (f64, f64, f64) = (3.0, 0.2, 1.6);
    let e = (-t).exp();
    assert!(w * e * (1.0 - t) < 0.0 && w * e - theta > 0.0 && w * t * e > theta);
    let net = neuron(1.0, 1.0, w, theta);
    let x = Matrix::from_vec("x", 1, 1, vec![0.0]).unwrap();
    let times = [Matrix::from_vec("t", 1, 1, vec![t]).unwrap()];
    for (gradient_slope, invalid) in [(GradientSlope::Measured, 1), (GradientSlope::Nominal, 0)] {
        let config = TrainConfig {
            gradient_slope,
            bump: 0.0,
            bump_limits: vec![1.0],
            ..TrainConfig::default()
        };
        let mut tr = Trainer::new(net.clone(), config).unwrap();
        let r = tr.step_from_times(&x, &times, &[0], 0, &exec).unwrap();
        assert_eq!(r.invalid, vec![invalid], "{gradient_slope:?}");
    }
}
