//! End-to-end throughput of forward + loss + backward, one JSON object per line:
//! `{"name", "batch", "threads", "samples_per_s", "us_per_sample", ...}` (median of repeats).
//!
//! `cargo bench --bench throughput` (all cases) or `... -- NAME_FILTER`.

use std::time::Instant;

use delgrad::Matrix;
use delgrad::dataset::{Split, T_EARLY, T_LATE, encode_times, yin_yang};
use delgrad::delay::{DelayKind, DelayParam};
use delgrad::gradient::BackwardOptions;
use delgrad::loss::Loss;
use delgrad::network::Network;
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::step::forward_backward;
use delgrad::train::{LayerSpec, init_network};

struct Case {
    name: &'static str,
    net: Network,
    x: Matrix,
    labels: Vec<usize>,
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
    out.push(Case {
        name: "yinyang_h30_syn_tau2to1",
        net,
        x: x4.clone(),
        labels: y4.clone(),
    });
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
    out.push(Case {
        name: "yinyang_20x30x3_axo_tau1to1",
        net,
        x: x20,
        labels: y20,
    });
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
    out.push(Case {
        name: "yinyang_h120_syn_tau2to1",
        net,
        x: x4,
        labels: y4,
    });
    out
}

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
    let run = |k: usize| {
        let (x, y) = &batches[k % batches.len()];
        let pass = forward_backward(&c.net, x, y, &loss, 100.0, &opts, exec).unwrap();
        std::hint::black_box(pass);
    };
    let mut rates = Vec::new();
    for _ in 0..=repeats {
        let start = Instant::now();
        let mut k = 0;
        while start.elapsed().as_secs_f64() < secs {
            run(k);
            k += 1;
        }
        rates.push((k * batch) as f64 / start.elapsed().as_secs_f64());
    }
    rates.remove(0); // warm-up
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
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
        for batch in [1, 150] {
            for exec in &execs {
                let rate = measure(&c, batch, exec, secs, 5);
                println!(
                    "{{\"name\": \"{}\", \"batch\": {batch}, \"threads\": {}, \"samples_per_s\": {rate:.0}, \"us_per_sample\": {:.3}}}",
                    c.name,
                    exec.threads(),
                    1e6 / rate
                );
            }
        }
    }
}
