//! Trains the H30_WS configuration (docs/results.md) on Yin-Yang natively:
//! 4 -> 30 -> 3, tau_m = 2, tau_s = 1, theta = 1, synaptic delays on both projections,
//! weights N(1, 1), Adam (weights 0.01, delays 0.003), StepLR(20, 0.95), batch 150, 300 epochs.
//!
//! `cargo run --release --example yinyang [-- --epochs N --seed S --threads T]`

use std::time::Instant;

use delgrad::dataset::{Split, T_EARLY, T_LATE, encode_times, yin_yang};
use delgrad::delay::{DelayKind, DelayParam};
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::train::{LayerSpec, TrainConfig, Trainer, init_network};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let epochs = arg("--epochs", 300);
    let seed = arg("--seed", 0) as u32;
    let exec = Executor::new(arg("--threads", 0))?;
    let load = |s: Split| -> Result<_, delgrad::Error> {
        let d = yin_yang(s);
        Ok((encode_times(&d.x, T_EARLY, T_LATE)?, d.y))
    };
    let (x_train, y_train) = load(Split::Train)?;
    let (x_val, y_val) = load(Split::Validation)?;
    let (x_test, y_test) = load(Split::Test)?;

    let mut rng = RandomState::new(seed);
    let layer = |size| LayerSpec {
        delay_kinds: vec![DelayKind::Synaptic],
        ..LayerSpec::new(size, 1.0, 1.0)
    };
    let delay_param = DelayParam::Sigmoid { shift: 0.0, scale: 1.0 };
    let net = init_network(4, &[layer(30), layer(3)], delay_param, &mut rng)?;
    let config = TrainConfig {
        lr_weights: 0.01,
        lr_delays: 0.003,
        delay_param,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(net, config)?;

    let start = Instant::now();
    for epoch in 0..epochs {
        let order = rng.permutation(x_train.rows());
        let r = trainer.train_epoch(&x_train, &y_train, &order, 150, epoch, &exec)?;
        let v = trainer.evaluate(&x_val, &y_val, &exec)?;
        println!(
            "epoch {:3}  train loss {:.4} acc {:.2}%  val loss {:.4} acc {:.2}%  bumps {}",
            epoch + 1,
            r.loss,
            100.0 * r.accuracy,
            v.loss,
            100.0 * v.accuracy,
            r.bumps
        );
    }
    let test = trainer.evaluate(&x_test, &y_test, &exec)?;
    println!(
        "H30_WS seed {seed}: test accuracy {:.2}% after {epochs} epochs in {:.2} s on {} threads",
        100.0 * test.accuracy,
        start.elapsed().as_secs_f64(),
        exec.threads()
    );
    Ok(())
}
