//! The exact backward pass against central finite differences of the loss in float64, on random
//! three-layer networks in all three regimes with every delay kind, for both losses.

mod common;

use common::*;
use delgrad::Matrix;
use delgrad::delay::DelayKind;
use delgrad::forward::forward;
use delgrad::gradient::{BackwardOptions, backward};
use delgrad::loss::{Loss, TieRule, evaluate};
use delgrad::network::Network;
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::solver::Method;

fn loss_of(net: &Network, x: &Matrix, labels: &[usize], loss: &Loss) -> Option<f64> {
    let times = forward(net, x, Method::Auto, &Executor::default()).unwrap();
    let r = evaluate(loss, times.last().unwrap(), labels, 100.0, true, TieRule::Wrong).unwrap();
    (r.silent == 0).then_some(r.mean * labels.len() as f64)
}

/// Central difference with two step sizes; `None` when they disagree (a spike appears or
/// disappears within the step: the loss is not differentiable there).
fn fd(mut f: impl FnMut(f64) -> Option<f64>, h: f64) -> Option<f64> {
    let d1 = (f(h)? - f(-h)?) / (2.0 * h);
    let d2 = (f(h / 2.0)? - f(-h / 2.0)?) / h;
    ((d1 - d2).abs() <= 1e-6 * (1.0 + d1.abs())).then_some(d2)
}

#[test]
fn backward_matches_finite_differences() {
    let kinds = [DelayKind::Synaptic, DelayKind::Axonal, DelayKind::Dendritic];
    let mut rng = RandomState::new(7);
    let (mut checked, mut skipped) = (0, 0);
    for &tau in &REGIMES {
        for loss in [Loss::mse(), Loss::cross_entropy()] {
            for _ in 0..4 {
                let net = random_network(&mut rng, &[3, 5, 4, 3], tau, &kinds);
                let x = random_input(&mut rng, 2, 3);
                let labels = [rng.randint(3) as usize, rng.randint(3) as usize];
                let Some(_) = loss_of(&net, &x, &labels, &loss) else {
                    continue;
                };
                let times = forward(&net, &x, Method::Auto, &Executor::default()).unwrap();
                let r = evaluate(&loss, times.last().unwrap(), &labels, 100.0, true, TieRule::Wrong).unwrap();
                let g = backward(
                    &net,
                    &x,
                    &times,
                    &r.dl_dt,
                    &BackwardOptions::default(),
                    &Executor::default(),
                )
                .unwrap();
                let mut check = |name: String, analytic: f64, perturb: &dyn Fn(&mut Network, &mut Matrix, f64)| {
                    let numeric = fd(
                        |h| {
                            let (mut n2, mut x2) = (net.clone(), x.clone());
                            perturb(&mut n2, &mut x2, h);
                            loss_of(&n2, &x2, &labels, &loss)
                        },
                        1e-5,
                    );
                    match numeric {
                        Some(num) => {
                            assert!(
                                (num - analytic).abs() <= 1e-5 * (1.0 + num.abs()),
                                "{tau:?} {loss:?} {name}: analytic {analytic} vs numeric {num}"
                            );
                            checked += 1;
                        }
                        None => skipped += 1,
                    }
                };
                for (l, layer) in net.layers.iter().enumerate() {
                    let (n_out, n_in) = (layer.n_out(), layer.n_in());
                    for k in 0..n_out {
                        check(format!("theta[{l}][{k}]"), g.layers[l].theta[k], &|n, _, h| {
                            n.layers[l].theta[k] += h
                        });
                        check(format!("d_den[{l}][{k}]"), g.layers[l].d_den[k], &|n, _, h| {
                            n.layers[l].delays.den.as_mut().unwrap()[k] += h
                        });
                        for i in 0..n_in {
                            let idx = k * n_in + i;
                            check(format!("w[{l}][{k},{i}]"), g.layers[l].w.as_slice()[idx], &|n, _, h| {
                                n.layers[l].w.as_mut_slice()[idx] += h
                            });
                            check(
                                format!("d_syn[{l}][{k},{i}]"),
                                g.layers[l].d_syn.as_slice()[idx],
                                &|n, _, h| n.layers[l].delays.syn.as_mut().unwrap().as_mut_slice()[idx] += h,
                            );
                        }
                    }
                    for i in 0..n_in {
                        check(format!("d_axo[{l}][{i}]"), g.layers[l].d_axo[i], &|n, _, h| {
                            n.layers[l].delays.axo.as_mut().unwrap()[i] += h
                        });
                    }
                }
                for b in 0..x.rows() {
                    for i in 0..x.cols() {
                        check(format!("input[{b},{i}]"), g.input.get(b, i), &|_, x, h| {
                            x.row_mut(b)[i] += h
                        });
                    }
                }
            }
        }
    }
    assert!(checked > 2000, "only {checked} gradients checked ({skipped} skipped)");
    assert!(
        skipped * 20 < checked,
        "too many non-differentiable points: {skipped} of {checked}"
    );
}
