//! Every kind of bad input gives an error that names the argument; nothing panics.

mod common;

use common::*;
use delgrad::delay::{DelayKind, DelayParam, Delays};
use delgrad::forward::forward;
use delgrad::gradient::{BackwardOptions, backward};
use delgrad::kernel::Neuron;
use delgrad::loss::Loss;
use delgrad::network::{Layer, Network};
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::solver::Method;
use delgrad::train::{LayerSpec, TrainConfig, Trainer, init_network};
use delgrad::{Error, Matrix};

fn net() -> Network {
    random_network(
        &mut RandomState::new(1),
        &[3, 4, 2],
        (2.0, 1.0),
        &[DelayKind::Synaptic, DelayKind::Axonal],
    )
}

fn err_text<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn bad_input_times_are_named() {
    let exec = Executor::default();
    let n = net();
    let wrong = Matrix::zeros("m", 2, 4).unwrap();
    let e = err_text(forward(&n, &wrong, Method::Auto, &exec));
    assert!(
        e.contains("input") && e.contains("[batch, 3]") && e.contains("[2, 4]"),
        "{e}"
    );
    for bad in [f64::NAN, f64::NEG_INFINITY] {
        let x = Matrix::from_vec("x", 1, 3, vec![0.1, bad, 0.2]).unwrap();
        let e = err_text(forward(&n, &x, Method::Auto, &exec));
        assert!(e.contains("input") && e.contains("[0, 1]"), "{e}");
    }
    // +inf is a silent input, not an error.
    let x = Matrix::from_vec("x", 1, 3, vec![f64::INFINITY; 3]).unwrap();
    let t = forward(&n, &x, Method::Auto, &exec).unwrap();
    assert!(t[1].as_slice().iter().all(|v| v.is_infinite()));
}

#[test]
fn bad_parameters_are_named() {
    let exec = Executor::default();
    let x = Matrix::zeros("m", 1, 3).unwrap();
    let mut n = net();
    n.layers[1].w.as_mut_slice()[3] = f64::NAN;
    assert!(err_text(forward(&n, &x, Method::Auto, &exec)).contains("layers[1].w"));
    let mut n = net();
    n.layers[0].delays.syn.as_mut().unwrap().as_mut_slice()[0] = -0.1;
    assert!(err_text(forward(&n, &x, Method::Auto, &exec)).contains("layers[0].d_syn"));
    let mut n = net();
    n.layers[0].theta[2] = 0.0;
    assert!(err_text(forward(&n, &x, Method::Auto, &exec)).contains("layers[0].theta"));
    let mut n = net();
    n.layers[0].theta.pop();
    assert!(matches!(forward(&n, &x, Method::Auto, &exec), Err(Error::Shape { .. })));
    let mut n = net();
    n.layers[1].w = Matrix::zeros("m", 2, 5).unwrap();
    n.layers[1].delays = Delays::default();
    let e = err_text(forward(&n, &x, Method::Auto, &exec));
    assert!(e.contains("layers[1].w"), "{e}");
    assert!(Network::new(vec![]).is_err());
    let empty = Layer::new(Neuron::new(1.0, 1.0).unwrap(), 1.0, Matrix::zeros("m", 0, 3).unwrap());
    assert!(err_text(Network::new(vec![empty])).contains("layers[0].w"));
    assert!(err_text(Neuron::new(0.0, 1.0)).contains("tau_m"));
    assert!(err_text(Neuron::new(1.0, f64::NAN)).contains("tau_s"));
}

#[test]
fn bad_given_times_and_gradients_are_named() {
    let exec = Executor::default();
    let n = net();
    let x = Matrix::zeros("m", 2, 3).unwrap();
    let t = forward(&n, &x, Method::Auto, &exec).unwrap();
    let opts = BackwardOptions::default();
    let dl = Matrix::zeros("m", 2, 2).unwrap();
    assert!(err_text(backward(&n, &x, &t[..1], &dl, &opts, &exec)).contains("times"));
    let mut bad = t.clone();
    bad[0] = Matrix::zeros("m", 3, 4).unwrap();
    assert!(err_text(backward(&n, &x, &bad, &dl, &opts, &exec)).contains("times[0]"));
    let mut bad = t.clone();
    bad[1].as_mut_slice()[0] = f64::NAN;
    assert!(err_text(backward(&n, &x, &bad, &dl, &opts, &exec)).contains("times[1]"));
    assert!(err_text(backward(&n, &x, &t, &Matrix::zeros("m", 2, 3).unwrap(), &opts, &exec)).contains("dl_dout"));
    let nan = Matrix::filled("m", 2, 2, f64::NAN).unwrap();
    assert!(err_text(backward(&n, &x, &t, &nan, &opts, &exec)).contains("dl_dout"));
}

#[test]
fn bad_training_options_are_named() {
    let n = net();
    let cfg = |f: fn(&mut TrainConfig)| {
        let mut c = TrainConfig {
            bump_limits: vec![0.3, 0.0],
            ..TrainConfig::default()
        };
        f(&mut c);
        c
    };
    assert!(err_text(Trainer::new(n.clone(), cfg(|c| c.lr_weights = -1.0))).contains("lr_weights"));
    assert!(err_text(Trainer::new(n.clone(), cfg(|c| c.bump_limits = vec![0.1]))).contains("bump_limits"));
    assert!(err_text(Trainer::new(n.clone(), cfg(|c| c.max_dw_norm = Some(0.0)))).contains("max_dw_norm"));
    assert!(err_text(Trainer::new(n.clone(), cfg(|c| c.loss = Loss::Mse { delta: f64::NAN }))).contains("delta"));
    let bad_param = DelayParam::Sigmoid {
        shift: -1.0,
        scale: 1.0,
    };
    assert!(
        err_text(Trainer::new(
            n.clone(),
            cfg(|c| c.delay_param = DelayParam::Sigmoid { shift: 0.0, scale: 0.0 })
        ))
        .contains("delay_scale")
    );
    let spec = [LayerSpec::new(3, 1.0, 1.0)];
    assert!(err_text(init_network(2, &spec, bad_param, &mut RandomState::new(0))).contains("delay_shift"));
    let spec = [LayerSpec {
        weight_std: -1.0,
        ..LayerSpec::new(3, 1.0, 1.0)
    }];
    assert!(err_text(init_network(2, &spec, DelayParam::Clip, &mut RandomState::new(0))).contains("weight_std"));
    let spec = [LayerSpec {
        delay_group: 3,
        delay_kinds: vec![DelayKind::Axonal],
        ..LayerSpec::new(3, 1.0, 1.0)
    }];
    assert!(err_text(init_network(4, &spec, DelayParam::Clip, &mut RandomState::new(0))).contains("delay_group"));
    assert!(err_text(DelayKind::from_name("somatic")).contains("delay_kinds"));
    let mut t = Trainer::new(n, cfg(|_| {})).unwrap();
    let exec = Executor::default();
    let x = Matrix::zeros("m", 2, 3).unwrap();
    assert!(err_text(t.step(&x, &[0], 0, &exec)).contains("labels"));
    assert!(err_text(t.step(&x, &[0, 2], 0, &exec)).contains("labels"));
    assert!(err_text(t.step(&Matrix::zeros("m", 0, 3).unwrap(), &[], 0, &exec)).contains("x"));
    assert!(err_text(t.train_epoch(&x, &[0, 1], &[0, 5], 1, 0, &exec)).contains("order"));
    assert!(err_text(t.train_epoch(&x, &[0, 1], &[0, 1], 0, 0, &exec)).contains("batch_size"));
    let d = Delays {
        group: 0,
        ..Delays::default()
    };
    assert!(d.validate("l", 3, 2).is_err());
}
