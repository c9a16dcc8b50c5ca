//! Memory is O(batch x neurons): the forward pass and a training step's pass hold the batch's
//! spike times once, plus per-thread sums of the gradients, and no `[batch, n_out, n_in]`
//! tensor. Heap bytes are counted exactly (one test in this binary: the count is global). The
//! bound holds whatever the scheduling: the test runs on idle cores and again beside threads that
//! keep every core busy (a thread of the pass that loses its core must not let results pile up).

#[path = "support/memory.rs"]
mod memory;
use memory::{inputs, network, peak_of};

use delgrad::forward::forward;
use delgrad::gradient::BackwardOptions;
use delgrad::loss::{Loss, TieRule};
use delgrad::parallel::Executor;
use delgrad::solver::Method;
use delgrad::step::forward_backward;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn peak_heap_is_the_spike_times_plus_per_thread_gradient_sums() {
    check_peaks();
    // Busy threads, one more than the cores, started before the counting (they allocate nothing).
    let stop = Arc::new(AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let busy: Vec<_> = (0..=cores)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    for _ in 0..3 {
        check_peaks();
    }
    stop.store(true, Ordering::Relaxed);
    busy.into_iter().for_each(|t| t.join().unwrap());
}

fn check_peaks() {
    let (x, y) = inputs(2400);
    for threads in [1, 2] {
        for hidden in [30, 480] {
            // First calls on new executors: the peaks include the state they keep for the next.
            let exec = Executor::new(threads).unwrap();
            let net = network(hidden);
            let params: usize = net.layers.iter().map(|l| l.w.as_slice().len() * 2).sum();
            // Spike times of both layers, f64.
            let times = 2400 * (hidden + 3) * 8;
            let (peak, out) = peak_of(|| forward(&net, &x, Method::Auto, &exec));
            out.unwrap();
            // The per-layer plans (a few numbers per synapse), per-thread scratch rows of one
            // chunk (<= 16 samples) and sorted arrivals.
            let slack = 64 * 1024 + 4 * params * 8 + threads * 16 * (hidden + 3) * 8;
            assert!(
                peak <= times + slack,
                "forward, {threads} threads, hidden {hidden}: {peak} > {times} + {slack}"
            );
            let exec = Executor::new(threads).unwrap();
            let (peak, out) = peak_of(|| {
                forward_backward(
                    &net,
                    &x,
                    &y,
                    &Loss::mse(),
                    100.0,
                    TieRule::Wrong,
                    &BackwardOptions::default(),
                    &exec,
                )
            });
            out.unwrap();
            // Besides the times, per sample: dL/dt (3), the input times' gradients (4), loss and
            // prediction (3) and the report's copies of some (at most 6 more); and a few copies of
            // the gradient sums per thread and in the result.
            let step = times + 2400 * 16 * 8;
            let slack = 64 * 1024 + (2 * threads + 2) * 16 * (hidden + 3) * 8 + 12 * threads * params * 8;
            assert!(
                peak <= step + slack,
                "forward_backward, {threads} threads, hidden {hidden}: {peak} > {step} + {slack}"
            );
        }
    }
}
