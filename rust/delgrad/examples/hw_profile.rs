//! Runs the noisy forward pass of the hardware-aware 20-30-3 network with every effect on (tau
//! mismatch included) on one thread, for profiling (`perf stat`, `perf record`, callgrind):
//! `cargo run --release --example hw_profile -- [RUNS] [tau|notau|defaults]` (`notau`: every effect
//! but the tau mismatch; `defaults`: `NoiseParams::bss2()` and only the threshold offsets, the
//! cases of `benches/throughput.rs`).

use delgrad::Matrix;
use delgrad::dataset::{Split, T_EARLY, T_LATE, encode_times, yin_yang};
use delgrad::hardware::{ChipPattern, LayerPattern, NoiseParams, PatternParams, noisy_forward};
use delgrad::parallel::Executor;

#[path = "../tests/support/hw_net.rs"]
mod hw_net;

fn main() -> delgrad::Result<()> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let mode = args.next().unwrap_or_else(|| "tau".into());
    let tau = mode == "tau";
    let net = hw_net::hw_net(7);
    let mismatch = if tau { 0.03 } else { 0.0 };
    let params = PatternParams {
        tau_m_mismatch: mismatch,
        tau_s_mismatch: mismatch,
        gain_mismatch: 0.05,
        ..PatternParams::bss2()
    };
    let pattern = ChipPattern::draw(512, 512, &params, 1)?.place(&net)?;
    let d = yin_yang(Split::Train);
    let x = encode_times(&d.x, T_EARLY, T_LATE)?;
    let batch = 1000.min(x.rows());
    let x = Matrix::from_vec("x", batch, 4, x.as_slice()[..4 * batch].to_vec())?;
    let noise = if mode == "defaults" {
        NoiseParams::bss2()
    } else {
        NoiseParams {
            theta_sample_std: 0.01,
            output_jitter_std: 0.005,
            event_loss: 0.01,
            stall_prob: 0.01,
            ..NoiseParams::bss2()
        }
    };
    let pattern: Vec<LayerPattern> = if mode == "defaults" {
        pattern
            .into_iter()
            .zip(&net.layers)
            .map(|(p, l)| LayerPattern {
                theta_offset: p.theta_offset,
                ..LayerPattern::ideal(l)
            })
            .collect()
    } else {
        pattern
    };
    let exec = Executor::new(1)?;
    let mut spikes = 0usize;
    for counter in 0..runs as u64 {
        let r = noisy_forward(&net, &x, 5, Some(&pattern), &noise, 1, counter, &exec)?;
        spikes += r
            .times
            .iter()
            .map(|m| m.as_slice().iter().filter(|t| t.is_finite()).count())
            .sum::<usize>();
    }
    println!("{runs} runs of {batch} samples, {spikes} recorded spikes");
    Ok(())
}
