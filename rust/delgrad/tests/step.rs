//! The fused training pass equals forward, then the loss, then backward of the batch mean, for
//! every regime, delay kind, loss and thread count (silent samples included): times and loss bit
//! for bit; gradients to rounding (the fused backward takes the exponential factors from the
//! forward scans instead of computing them again from the times).

mod common;

use common::*;
use delgrad::Matrix;
use delgrad::delay::DelayKind;
use delgrad::forward::forward;
use delgrad::gradient::{BackwardOptions, Gradients, backward};
use delgrad::loss::{Loss, TieRule, evaluate};
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::solver::Method;
use delgrad::step::forward_backward;

#[test]
fn fused_pass_equals_the_separate_passes() {
    let mut rng = RandomState::new(5);
    let kinds = [
        vec![],
        vec![DelayKind::Synaptic],
        vec![DelayKind::Axonal, DelayKind::Dendritic],
        vec![DelayKind::Synaptic, DelayKind::Axonal, DelayKind::Dendritic],
    ];
    for tau in REGIMES {
        for kinds in &kinds {
            let net = random_network(&mut rng, &[5, 9, 4], tau, kinds);
            let mut x = random_input(&mut rng, 37, 5);
            // Some silent inputs, one fully silent sample (its outputs are silent: silent loss).
            x.row_mut(3)[1] = f64::INFINITY;
            x.row_mut(7).fill(f64::INFINITY);
            let labels: Vec<usize> = (0..37).map(|b| b % 4).collect();
            for loss in [Loss::mse(), Loss::cross_entropy()] {
                for method in [Method::Auto, Method::Bracket] {
                    let opts = BackwardOptions {
                        max_dw_norm: Some(0.5),
                        method,
                        ..Default::default()
                    };
                    for threads in [1, 2] {
                        let exec = Executor::new(threads).unwrap();
                        let pass =
                            forward_backward(&net, &x, &labels, &loss, 7.0, TieRule::Wrong, &opts, &exec).unwrap();
                        let times = forward(&net, &x, method, &exec).unwrap();
                        let report =
                            evaluate(&loss, times.last().unwrap(), &labels, 7.0, false, TieRule::Wrong).unwrap();
                        let mut dl = report.dl_dt.clone();
                        dl.as_mut_slice().iter_mut().for_each(|g| *g /= 37.0);
                        let grads = backward(&net, &x, &times, &dl, &opts, &exec).unwrap();
                        assert_eq!(pass.times, times, "{tau:?} {kinds:?} {method:?}");
                        assert_eq!(pass.loss, report, "{tau:?} {kinds:?} {loss:?}");
                        let what = format!("{tau:?} {kinds:?} {loss:?} {method:?} {threads}");
                        assert_close(&pass.grads, &grads, &what);
                        assert!(pass.loss.silent >= 1);
                    }
                }
            }
        }
    }
}

/// Equal counts; every gradient entry within 1e-11 of the larger of its magnitude and its tensor's
/// largest entry (rounding of the factors, a few ulps, amplified by the sums).
fn assert_close(a: &Gradients, b: &Gradients, what: &str) {
    assert_eq!((&a.invalid, &a.clipped), (&b.invalid, &b.clipped), "{what}");
    let close = |x: &[f64], y: &[f64], name: &str| {
        assert_eq!(x.len(), y.len(), "{what} {name}");
        let scale = y.iter().fold(f64::MIN_POSITIVE, |m, v| m.max(v.abs()));
        for (i, (u, v)) in x.iter().zip(y).enumerate() {
            assert!((u - v).abs() <= 1e-11 * scale, "{what} {name}[{i}]: {u} vs {v}");
        }
    };
    close(a.input.as_slice(), b.input.as_slice(), "input");
    for (l, (ga, gb)) in a.layers.iter().zip(&b.layers).enumerate() {
        close(ga.w.as_slice(), gb.w.as_slice(), &format!("w{l}"));
        close(&ga.theta, &gb.theta, &format!("theta{l}"));
        close(ga.d_syn.as_slice(), gb.d_syn.as_slice(), &format!("d_syn{l}"));
        close(&ga.d_axo, &gb.d_axo, &format!("d_axo{l}"));
        close(&ga.d_den, &gb.d_den, &format!("d_den{l}"));
    }
}

#[test]
fn fused_pass_rejects_bad_labels_and_inputs() {
    let mut rng = RandomState::new(6);
    let net = random_network(&mut rng, &[3, 4, 2], (2.0, 1.0), &[DelayKind::Synaptic]);
    let x = random_input(&mut rng, 4, 3);
    let exec = Executor::default();
    let opts = BackwardOptions::default();
    let err = forward_backward(&net, &x, &[0, 1, 2, 0], &Loss::mse(), 1.0, TieRule::Wrong, &opts, &exec).unwrap_err();
    assert!(err.to_string().contains("labels"), "{err}");
    let err = forward_backward(&net, &x, &[0, 1], &Loss::mse(), 1.0, TieRule::Wrong, &opts, &exec).unwrap_err();
    assert!(err.to_string().contains("labels"), "{err}");
    let mut bad = x.clone();
    bad.row_mut(2)[0] = f64::NAN;
    let err = forward_backward(
        &net,
        &bad,
        &[0, 1, 1, 0],
        &Loss::mse(),
        1.0,
        TieRule::Wrong,
        &opts,
        &exec,
    )
    .unwrap_err();
    assert!(err.to_string().contains("input"), "{err}");
    let wide = Matrix::zeros("m", 4, 5).unwrap();
    let err = forward_backward(
        &net,
        &wide,
        &[0, 1, 1, 0],
        &Loss::mse(),
        1.0,
        TieRule::Wrong,
        &opts,
        &exec,
    )
    .unwrap_err();
    assert!(err.to_string().contains("input"), "{err}");
}

#[test]
fn an_empty_batch_gives_empty_results() {
    let mut rng = RandomState::new(11);
    let net = random_network(&mut rng, &[5, 9, 4], REGIMES[0], &[DelayKind::Synaptic]);
    for threads in [1, 2] {
        let exec = Executor::new(threads).unwrap();
        let x = Matrix::zeros("m", 0, 5).unwrap();
        let pass = forward_backward(
            &net,
            &x,
            &[],
            &Loss::mse(),
            7.0,
            TieRule::Wrong,
            &BackwardOptions::default(),
            &exec,
        )
        .unwrap();
        assert_eq!(pass.times, forward(&net, &x, Method::Auto, &exec).unwrap());
        assert_eq!(
            pass.times.iter().map(|m| (m.rows(), m.cols())).collect::<Vec<_>>(),
            [(0, 9), (0, 4)]
        );
        assert!(pass.grads.layers[0].w.as_slice().iter().all(|&g| g == 0.0));
        assert_eq!(pass.loss.correct, 0);
    }
}
