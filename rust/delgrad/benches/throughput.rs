//! End-to-end throughput of forward + loss + backward, one JSON object per line:
//! `{"name", "batch", "threads", "samples_per_s", "us_per_sample", ...}` (median of repeats), and of
//! the noisy hardware forward pass (`hw_noisy_*`: the emulated BSS-2 chip with every effect on).
//! The `latency_*` cases are synthetic latency-coded inputs at MNIST-like sizes and the fan-in
//! sweep `latency_{n}x64x10_*` (n = 16 ... 4096); they print the share of silent neurons per layer
//! to stderr.
//!
//! `cargo bench --bench throughput` (all cases) or `... -- NAME_FILTER`; `DELGRAD_BENCH_BATCH`
//! (any size) restricts the software cases to one batch size and `DELGRAD_BENCH_THREADS` (1 or 2)
//! every case to one thread count.

use std::time::Instant;

use delgrad::Matrix;
use delgrad::dataset::{Split, T_EARLY, T_LATE, encode_times, yin_yang};
use delgrad::delay::{DelayKind, DelayParam};
use delgrad::forward::forward;
use delgrad::gradient::BackwardOptions;
use delgrad::hardware::{ChipPattern, Emulation, LayerPattern, NoiseParams, PatternParams, noisy_forward};
use delgrad::loss::{Loss, TieRule};
use delgrad::network::Network;
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::solver::Method;
use delgrad::step::forward_backward;
use delgrad::train::{LayerSpec, TrainConfig, Trainer, init_network};

struct Case {
    name: String,
    net: Network,
    x: Matrix,
    labels: Vec<usize>,
    /// Batch sizes and thread counts measured.
    batches: &'static [usize],
    threads: &'static [usize],
}

impl Case {
    /// The Yin-Yang cases: batch 1 and 150, 1 and 2 threads.
    fn yin_yang(name: &str, net: Network, x: Matrix, labels: Vec<usize>) -> Self {
        Case {
            name: name.to_string(),
            net,
            x,
            labels,
            batches: &[1, 150],
            threads: &[1, 2],
        }
    }
}

fn yin_yang_inputs(repeat: usize) -> (Matrix, Vec<usize>) {
    let d = yin_yang(Split::Train);
    let x = encode_times(&d.x, T_EARLY, T_LATE).unwrap();
    let mut rows = Vec::new();
    for b in 0..x.rows() {
        for &v in x.row(b) {
            rows.extend(std::iter::repeat_n(v, repeat));
        }
    }
    (Matrix::from_vec("x", x.rows(), 4 * repeat, rows).unwrap(), d.y)
}

fn cases() -> Vec<Case> {
    let mut rng = RandomState::new(0);
    let spec =
        |size: usize, tau: (f64, f64), theta: f64, kinds: &[DelayKind], group: usize, mean: f64, std: f64| LayerSpec {
            tau_m: tau.0,
            tau_s: tau.1,
            theta,
            delay_kinds: kinds.to_vec(),
            delay_group: group,
            ..LayerSpec::new(size, mean, std)
        };
    let sig = DelayParam::Sigmoid { shift: 0.0, scale: 1.0 };
    let hw = DelayParam::Sigmoid { shift: 2.0, scale: 1.5 };
    let syn = [DelayKind::Synaptic];
    let axo = [DelayKind::Axonal];
    let (x4, y4) = yin_yang_inputs(1);
    let (x20, y20) = yin_yang_inputs(5);
    let mut out = Vec::new();
    let net = init_network(
        4,
        &[
            spec(30, (2.0, 1.0), 1.0, &syn, 1, 1.0, 1.0),
            spec(3, (2.0, 1.0), 1.0, &syn, 1, 1.0, 1.0),
        ],
        sig,
        &mut rng,
    )
    .unwrap();
    out.push(Case::yin_yang("yinyang_h30_syn_tau2to1", net, x4.clone(), y4.clone()));
    let net = init_network(
        20,
        &[
            spec(30, (1.0, 1.0), 2.6, &axo, 5, 1.0, 0.12),
            spec(3, (1.0, 1.0), 2.6, &axo, 1, 0.075, 0.15),
        ],
        hw,
        &mut rng,
    )
    .unwrap();
    out.push(Case::yin_yang("yinyang_20x30x3_axo_tau1to1", net, x20, y20));
    let net = init_network(
        4,
        &[
            spec(120, (2.0, 1.0), 1.0, &syn, 1, 1.0, 1.0),
            spec(3, (2.0, 1.0), 1.0, &syn, 1, 0.3, 0.5),
        ],
        sig,
        &mut rng,
    )
    .unwrap();
    out.push(Case::yin_yang("yinyang_h120_syn_tau2to1", net, x4, y4));
    out.extend(scale_cases());
    out
}

/// Number of synthetic samples the scale cases cycle through.
const SYNTHETIC_SAMPLES: usize = 600;

/// Synthetic latency-coded cases at MNIST-like sizes (256-128-10 and 784-350-10, batch 50 and
/// 150, 1 and 2 threads) and the fan-in sweep (n_in-64-10 for n_in = 16 ... 4096, batch 150,
/// 1 thread), each weights only (`_w`) and with synaptic delays (`_syn`).
fn scale_cases() -> Vec<Case> {
    let mut rng = RandomState::new(1);
    let mut out = Vec::new();
    let mut push =
        |n_in: usize, sizes: &[usize], batches: &'static [usize], threads: &'static [usize], rng: &mut RandomState| {
            let (x, labels) = latency_inputs(SYNTHETIC_SAMPLES, n_in, n_in as u32);
            for delays in [false, true] {
                let dims: Vec<String> = std::iter::once(n_in)
                    .chain(sizes.iter().copied())
                    .map(|n| n.to_string())
                    .collect();
                let kind = if delays { "syn" } else { "w" };
                out.push(Case {
                    name: format!("latency_{}_{kind}_tau2to1", dims.join("x")),
                    net: scale_network(n_in, sizes, delays, rng),
                    x: x.clone(),
                    labels: labels.clone(),
                    batches,
                    threads,
                });
            }
        };
    push(256, &[128, 10], &[50, 150], &[1, 2], &mut rng);
    push(784, &[350, 10], &[50, 150], &[1, 2], &mut rng);
    for n_in in [16, 64, 256, 1024, 4096] {
        push(n_in, &[64, 10], &[150], &[1], &mut rng);
    }
    out
}

/// Prints (to stderr) the share of silent neurons per layer on the case's first batch of 150:
/// the initialisation must make hidden and output neurons spike.
fn print_silent(c: &Case, exec: &Executor) {
    let (x, _) = batch_of(c, 0, 150);
    let times = forward(&c.net, &x, Method::Auto, exec).unwrap();
    let shares: Vec<String> = times
        .iter()
        .map(|t| {
            let silent = t.as_slice().iter().filter(|v| v.is_infinite()).count();
            format!("{:.3}", silent as f64 / t.as_slice().len() as f64)
        })
        .collect();
    eprintln!("{}: silent share per layer [{}]", c.name, shares.join(", "));
}

#[path = "support/latency.rs"]
mod latency;
use latency::{latency_inputs, scale_network};

#[path = "../tests/support/hw_net.rs"]
mod hw_net;
use hw_net::hw_net;

fn batch_of(c: &Case, start: usize, batch: usize) -> (Matrix, Vec<usize>) {
    let n = c.x.rows();
    let mut rows = Vec::with_capacity(batch * c.x.cols());
    let mut labels = Vec::with_capacity(batch);
    for j in 0..batch {
        let i = (start + j) % n;
        rows.extend_from_slice(c.x.row(i));
        labels.push(c.labels[i]);
    }
    (Matrix::from_vec("x", batch, c.x.cols(), rows).unwrap(), labels)
}

/// Samples per second of forward + loss + backward, median over `repeats` runs of ~`secs` each.
fn measure(c: &Case, batch: usize, exec: &Executor, secs: f64, repeats: usize) -> f64 {
    let loss = Loss::mse();
    let opts = BackwardOptions {
        max_dw_norm: Some(0.2),
        ..Default::default()
    };
    let batches: Vec<_> = (0..32).map(|k| batch_of(c, k * batch, batch)).collect();
    // What a training step computes (the fused pass `Trainer::step` uses).
    median_rate(batch, secs, repeats, |k| {
        let (x, y) = &batches[k % batches.len()];
        let pass = forward_backward(&c.net, x, y, &loss, 100.0, TieRule::Wrong, &opts, exec).unwrap();
        std::hint::black_box(pass);
    })
}

/// Samples per second of `run(k)` (the k-th batch of `batch` samples, k counting on over the
/// repeats): the median of `repeats` runs of ~`secs` each (or of `DELGRAD_BENCH_STEPS` batches)
/// after a warm-up run.
fn median_rate(batch: usize, secs: f64, repeats: usize, mut run: impl FnMut(usize)) -> f64 {
    let mut rates = Vec::new();
    let mut done = 0;
    for _ in 0..=repeats {
        let start = Instant::now();
        let mut k = 0;
        while fixed_steps().map_or(start.elapsed().as_secs_f64() < secs, |n| k < n) {
            run(done + k);
            k += 1;
        }
        done += k;
        rates.push((k * batch) as f64 / start.elapsed().as_secs_f64());
    }
    rates.remove(0); // warm-up
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// The hardware-aware 20(=4x5)-30-3 network with axonal delays, its Yin-Yang inputs `[n, 4]`
/// and a placed fixed pattern with every mismatch on.
fn hw_case() -> (Network, Matrix, Vec<LayerPattern>) {
    let net = hw_net(7);
    let params = PatternParams {
        tau_m_mismatch: 0.03,
        tau_s_mismatch: 0.03,
        gain_mismatch: 0.05,
        ..PatternParams::bss2()
    };
    let pattern = ChipPattern::draw(512, 512, &params, 1).unwrap().place(&net).unwrap();
    let d = yin_yang(Split::Train);
    (net, encode_times(&d.x, T_EARLY, T_LATE).unwrap(), pattern)
}

#[allow(clippy::too_many_arguments)]
/// Samples per second of the noisy forward pass (median of `repeats` runs of ~`secs`).
fn measure_hw(
    net: &Network,
    x: &Matrix,
    pattern: Option<&[LayerPattern]>,
    noise: &NoiseParams,
    batch: usize,
    exec: &Executor,
    secs: f64,
    repeats: usize,
) -> f64 {
    let n = x.rows();
    let batches: Vec<Matrix> = (0..n / batch)
        .map(|k| Matrix::from_vec("x", batch, 4, x.as_slice()[k * batch * 4..(k + 1) * batch * 4].to_vec()).unwrap())
        .collect();
    median_rate(batch, secs, repeats, |k| {
        let r = noisy_forward(net, &batches[k % batches.len()], 5, pattern, noise, 1, k as u64, exec).unwrap();
        std::hint::black_box(r);
    })
}

/// Samples per second of `Trainer::emulated_step`, the core call of a chip-in-the-loop step on
/// the emulated chip: the noisy run, the loss, the exact backward pass at the recorded times
/// with the check against the ideal model, and the Adam update (the network of the bench stays
/// the chip's: its weights are not re-quantised between steps).
#[allow(clippy::too_many_arguments)]
fn measure_chip_step(
    net: &Network,
    x: &Matrix,
    labels: &[usize],
    pattern: &[LayerPattern],
    batch: usize,
    exec: &Executor,
    secs: f64,
    repeats: usize,
) -> f64 {
    let n = x.rows();
    let groups: Vec<(Matrix, Matrix, &[usize])> = (0..n / batch)
        .map(|k| {
            let rows = &x.as_slice()[k * batch * 4..(k + 1) * batch * 4];
            let repeated: Vec<f64> = rows.iter().flat_map(|&t| std::iter::repeat_n(t, 5)).collect();
            (
                Matrix::from_vec("groups", batch, 4, rows.to_vec()).unwrap(),
                Matrix::from_vec("x", batch, 20, repeated).unwrap(),
                &labels[k * batch..(k + 1) * batch],
            )
        })
        .collect();
    // No weight bumping: every step takes its backward pass and update, as in most of a training.
    let config = TrainConfig {
        delay_param: DelayParam::Sigmoid { shift: 2.0, scale: 1.5 },
        bump: 0.0,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(net.clone(), config).unwrap();
    let noise = NoiseParams::bss2();
    median_rate(batch, secs, repeats, |k| {
        let (g, xb, y) = &groups[k % groups.len()];
        let e = Emulation {
            repeat: 5,
            pattern: Some(pattern),
            noise: &noise,
            seed: 1,
            counter: k as u64,
        };
        let r = trainer.emulated_step(net, &e, g, net, xb, y, 0, exec, exec).unwrap();
        std::hint::black_box(r);
    })
}

/// Whether `value` passes the optional filter in environment variable `var` (for profiling one
/// configuration).
fn wanted(var: &str, value: usize) -> bool {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .is_none_or(|v| v == value)
}

/// `DELGRAD_BENCH_STEPS`: a fixed number of batches per repeat instead of a fixed time (for
/// counting cycles and instructions with `perf stat`, which other load on the machine barely
/// disturbs).
fn fixed_steps() -> Option<usize> {
    std::env::var("DELGRAD_BENCH_STEPS").ok().and_then(|v| v.parse().ok())
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let secs: f64 = std::env::var("DELGRAD_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.5);
    let execs = [Executor::new(1).unwrap(), Executor::new(2).unwrap()];
    for c in cases() {
        if filter.as_deref().is_some_and(|f| !c.name.contains(f)) {
            continue;
        }
        if c.name.starts_with("latency_") {
            print_silent(&c, &execs[0]);
        }
        // DELGRAD_BENCH_BATCH: that batch size only (any size).
        let only: Option<usize> = std::env::var("DELGRAD_BENCH_BATCH").ok().and_then(|v| v.parse().ok());
        for batch in only.map_or(c.batches.to_vec(), |b| vec![b]) {
            for exec in &execs {
                if !c.threads.contains(&exec.threads()) || !wanted("DELGRAD_BENCH_THREADS", exec.threads()) {
                    continue;
                }
                let rate = measure(&c, batch, exec, secs, 5);
                print_rate(&c.name, batch, exec.threads(), rate);
            }
        }
    }
    let (net, x, pattern) = hw_case();
    let all_on = NoiseParams {
        theta_sample_std: 0.01,
        output_jitter_std: 0.005,
        event_loss: 0.01,
        stall_prob: 0.01,
        ..NoiseParams::bss2()
    };
    let no_tau_mismatch: Vec<LayerPattern> = pattern
        .iter()
        .zip(&net.layers)
        .map(|(p, l)| LayerPattern {
            tau_m: vec![l.neuron.tau_m(); l.n_out()],
            tau_s: vec![l.neuron.tau_s(); l.n_out()],
            ..p.clone()
        })
        .collect();
    // the pattern's threshold offsets only (the cases with tau mismatch off)
    let offsets: Vec<LayerPattern> = pattern
        .iter()
        .zip(&net.layers)
        .map(|(p, l)| LayerPattern {
            theta_offset: p.theta_offset.clone(),
            ..LayerPattern::ideal(l)
        })
        .collect();
    let hw_cases: [(&str, &[LayerPattern], NoiseParams); 3] = [
        ("hw_noisy_20x30x3_all_noise", &pattern, all_on),
        ("hw_noisy_20x30x3_all_noise_but_tau_mismatch", &no_tau_mismatch, all_on),
        ("hw_noisy_20x30x3_bss2_defaults", &offsets, NoiseParams::bss2()),
    ];
    for (name, pat, noise) in hw_cases {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        for batch in [40, 1000] {
            for exec in execs.iter().filter(|e| wanted("DELGRAD_BENCH_THREADS", e.threads())) {
                let rate = measure_hw(&net, &x, Some(pat), &noise, batch, exec, secs, 5);
                print_rate(name, batch, exec.threads(), rate);
            }
        }
    }
    let name = "hw_chip_step_20x30x3_bss2_defaults";
    if filter.as_deref().is_none_or(|f| name.contains(f)) {
        let labels = yin_yang(Split::Train).y;
        for exec in execs.iter().filter(|e| wanted("DELGRAD_BENCH_THREADS", e.threads())) {
            let rate = measure_chip_step(&net, &x, &labels, &offsets, 40, exec, secs, 5);
            print_rate(name, 40, exec.threads(), rate);
        }
    }
}

/// Prints one benchmark result as a JSON line.
fn print_rate(name: &str, batch: usize, threads: usize, rate: f64) {
    println!(
        "{{\"name\": \"{name}\", \"batch\": {batch}, \"threads\": {threads}, \"samples_per_s\": {rate:.0}, \"us_per_sample\": {:.3}}}",
        1e6 / rate
    );
}
