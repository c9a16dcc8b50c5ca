//! Criterion benchmarks of the forward and backward passes (H30 with synaptic delays, tau_m = 2 tau_s),
//! of the noisy BrainScaleS-2 forward pass (20(=4x5)-30-3, axonal delays, reference noise) and of
//! Lambert W0 by region (ns per call over 1,000 arguments).

use criterion::{Criterion, criterion_group, criterion_main};
use delgrad::Matrix;
use delgrad::dataset::{Split, T_EARLY, T_LATE, encode_times, yin_yang};
use delgrad::delay::{DelayKind, DelayParam};
use delgrad::forward::forward;
use delgrad::gradient::{BackwardOptions, backward};
use delgrad::hardware::{NoiseParams, noisy_forward};
use delgrad::loss::{Loss, TieRule, evaluate};
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::solver::Method;
use delgrad::step::forward_backward;
use delgrad::train::{LayerSpec, init_network};

fn bench(c: &mut Criterion) {
    let d = yin_yang(Split::Test);
    let x = encode_times(&d.x, T_EARLY, T_LATE).unwrap();
    let x = Matrix::from_vec("x", 150, 4, x.as_slice()[..600].to_vec()).unwrap();
    let y = &d.y[..150];
    let layer = |n| LayerSpec {
        delay_kinds: vec![DelayKind::Synaptic],
        ..LayerSpec::new(n, 1.0, 1.0)
    };
    let net = init_network(
        4,
        &[layer(30), layer(3)],
        DelayParam::default(),
        &mut RandomState::new(0),
    )
    .unwrap();
    for threads in [1, 2] {
        let exec = Executor::new(threads).unwrap();
        let times = forward(&net, &x, Method::Auto, &exec).unwrap();
        let r = evaluate(&Loss::mse(), times.last().unwrap(), y, 100.0, false, TieRule::Wrong).unwrap();
        let opts = BackwardOptions::default();
        c.bench_function(&format!("h30_syn_forward_b150_t{threads}"), |b| {
            b.iter(|| forward(&net, &x, Method::Auto, &exec).unwrap())
        });
        c.bench_function(&format!("h30_syn_backward_b150_t{threads}"), |b| {
            b.iter(|| backward(&net, &x, &times, &r.dl_dt, &opts, &exec).unwrap())
        });
        c.bench_function(&format!("h30_syn_step_b150_t{threads}"), |b| {
            b.iter(|| forward_backward(&net, &x, y, &Loss::mse(), 100.0, TieRule::Wrong, &opts, &exec).unwrap())
        });
    }
}

#[path = "../tests/support/hw_net.rs"]
mod hw_net;
use hw_net::hw_net;

fn bench_hardware(c: &mut Criterion) {
    let d = yin_yang(Split::Test);
    let x = encode_times(&d.x, T_EARLY, T_LATE).unwrap();
    let x = Matrix::from_vec("x", 40, 4, x.as_slice()[..160].to_vec()).unwrap();
    let net = hw_net(0);
    let noise = NoiseParams::bss2();
    for threads in [1, 2] {
        let exec = Executor::new(threads).unwrap();
        let mut counter = 0;
        c.bench_function(&format!("hw_noisy_forward_20x30x3_b40_t{threads}"), |b| {
            b.iter(|| {
                counter += 1;
                noisy_forward(&net, &x, 5, None, &noise, 1, counter, &exec).unwrap()
            })
        });
    }
}

/// W0 over 1,000 evenly spread arguments of a region: the branch region (z < -0.26, one Halley
/// step in u = 1 + w), the rest of the spike-time arguments (-0.26 <= z < 0, one Halley step from
/// a Padé guess) and moderate positive z.
fn bench_lambert_w0(c: &mut Criterion) {
    let regions = [
        ("branch", -0.367_879, -0.26),
        ("negative", -0.26, -0.001),
        ("positive", 0.001, 10.0),
    ];
    for (name, lo, hi) in regions {
        let zs: Vec<f64> = (0..1000).map(|i| lo + (hi - lo) * f64::from(i) / 1000.0).collect();
        c.bench_function(&format!("lambert_w0_{name}_x1000"), |b| {
            b.iter(|| {
                zs.iter()
                    .map(|&z| delgrad::lambertw::lambert_w0(std::hint::black_box(z)))
                    .sum::<f64>()
            })
        });
    }
}

criterion_group!(benches, bench, bench_hardware, bench_lambert_w0);
criterion_main!(benches);
