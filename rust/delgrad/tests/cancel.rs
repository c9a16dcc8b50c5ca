//! Cancelling calls (`delgrad::cancel`): a raised token stops a training epoch between its
//! chunks of samples, and the trainer is left as it was before the call, usable and giving the
//! same results as one that was never interrupted.

mod common;

use std::time::Duration;

use common::*;
use delgrad::cancel::Cancel;
use delgrad::delay::DelayKind;
use delgrad::forward::forward;
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::solver::Method;
use delgrad::train::{TrainConfig, Trainer};
use delgrad::{Error, Matrix};

fn trainer(rng: &mut RandomState) -> Trainer {
    let net = random_network(rng, &[5, 40, 3], REGIMES[0], &[DelayKind::Synaptic]);
    Trainer::new(net, TrainConfig::default()).unwrap()
}

#[test]
fn a_cancelled_epoch_leaves_the_trainer_as_before_and_usable() {
    let mut rng = RandomState::new(3);
    let mut tr = trainer(&mut rng);
    let untouched = tr.clone();
    // An epoch far longer than the wait before cancelling it (seconds on an idle core, longer
    // under load).
    let n = 200_000;
    let x = random_input(&mut rng, n, 5);
    let labels: Vec<usize> = (0..n).map(|b| b % 3).collect();
    let order: Vec<usize> = (0..n).collect();
    for threads in [1, 2] {
        let exec = Executor::new(threads).unwrap();
        let token = Cancel::new();
        let r = std::thread::scope(|s| {
            let canceller = token.clone();
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                canceller.cancel();
            });
            token.scope(|| tr.train_epoch(&x, &labels, &order, 10, 0, &exec))
        });
        assert_eq!(r.unwrap_err(), Error::Cancelled, "{threads} threads");
        assert_eq!(tr.tensors, untouched.tensors, "{threads} threads");
        assert_eq!((tr.bump, tr.last_bumped), (untouched.bump, untouched.last_bumped));
        assert_eq!(tr.network(), untouched.network());
    }
    // Afterwards it trains exactly as a trainer that was never interrupted.
    let mut fresh = untouched.clone();
    let exec = Executor::new(2).unwrap();
    let (xs, ys) = (
        Matrix::from_vec("x", 600, 5, x.as_slice()[..600 * 5].to_vec()).unwrap(),
        &labels[..600],
    );
    let a = tr.train_epoch(&xs, ys, &order[..600], 10, 0, &exec).unwrap();
    let b = fresh.train_epoch(&xs, ys, &order[..600], 10, 0, &exec).unwrap();
    assert_eq!(a, b);
    assert_eq!(tr.tensors, fresh.tensors);
    assert_ne!(tr.tensors, untouched.tensors, "the epoch trained");
}

#[test]
fn a_token_raised_before_the_call_stops_it_at_the_first_check() {
    let mut rng = RandomState::new(4);
    let mut tr = trainer(&mut rng);
    let x = random_input(&mut rng, 64, 5);
    let labels: Vec<usize> = (0..64).map(|b| b % 3).collect();
    let exec = Executor::new(2).unwrap();
    let token = Cancel::new();
    token.cancel();
    // A step at given times resets the bump before its backward pass: cancelled there, it
    // changes nothing either.
    tr.bump = 0.5;
    tr.last_bumped = Some(0);
    let before = tr.clone();
    let times = forward(tr.network(), &x, Method::Auto, &exec).unwrap();
    let r = token.scope(|| tr.step_from_times(&x, &times, &labels, 0, &exec));
    assert_eq!(r.unwrap_err(), Error::Cancelled);
    let r = token.scope(|| tr.step(&x, &labels, 0, &exec));
    assert_eq!(r.unwrap_err(), Error::Cancelled);
    let order: Vec<usize> = (0..64).collect();
    let r = token.scope(|| tr.train_epoch(&x, &labels, &order, 16, 0, &exec));
    assert_eq!(r.unwrap_err(), Error::Cancelled);
    let r = token.scope(|| forward(tr.network(), &x, Method::Auto, &exec));
    assert_eq!(r.unwrap_err(), Error::Cancelled);
    assert_eq!(tr.tensors, before.tensors);
    assert_eq!((tr.bump, tr.last_bumped), (0.5, Some(0)));
    // A token that is not raised changes nothing: the same step as outside any scope.
    let mut other = before.clone();
    let a = Cancel::new().scope(|| tr.step(&x, &labels, 0, &exec)).unwrap();
    let b = other.step(&x, &labels, 0, &exec).unwrap();
    assert_eq!(a, b);
    assert_eq!(tr.tensors, other.tensors);
}
