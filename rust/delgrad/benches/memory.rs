//! Peak heap memory of a training step's pass (`step::forward_backward`) and of the forward pass,
//! against batch size and hidden width: one JSON object per line,
//! `{"name", "what", "batch", "hidden", "threads", "peak_bytes", "output_bytes",
//! "bytes_per_sample_neuron", "params"}`.
//!
//! `peak_bytes` is the most heap the call held at once beyond what was allocated before it (its
//! result and the per-thread state the executor keeps for the next call included: each is the
//! first call on a new executor), counted by a global allocator that wraps the system's. `output_bytes` is
//! the part the result must hold anyway: the spike times of every layer, `[batch, n_l]` f64s,
//! (and for the training pass, dL/dt, the losses and predictions and one gradient per
//! parameter). The pass keeps no `[batch, n_out, n_in]` tensor (what the reference's
//! all-candidates solve builds), so the peak grows as batch x neurons, plus a per-thread share of
//! the parameter count (each thread's gradient sums). The last lines fit
//! `peak = a * batch * neurons + b` per width and print the growth of the peak from the
//! smallest to the largest batch next to the growth of `batch * neurons`.
//!
//! `cargo bench --bench memory` (no timing: the counts are exact and repeat run to run).

use delgrad::Matrix;
use delgrad::forward::forward;
use delgrad::gradient::BackwardOptions;
use delgrad::loss::Loss;
use delgrad::parallel::Executor;
use delgrad::solver::Method;
use delgrad::step::forward_backward;

#[path = "../tests/support/memory.rs"]
mod memory;
use memory::{inputs, network, peak_of};

struct Row {
    what: &'static str,
    batch: usize,
    hidden: usize,
    threads: usize,
    peak: usize,
    output: usize,
    params: usize,
}

impl Row {
    fn print(&self) {
        let neurons = self.hidden + 3;
        println!(
            "{{\"name\": \"yinyang_h{}_syn_tau2to1\", \"what\": \"{}\", \"batch\": {}, \"hidden\": {}, \"threads\": {}, \
             \"peak_bytes\": {}, \"output_bytes\": {}, \"bytes_per_sample_neuron\": {:.1}, \"params\": {}}}",
            self.hidden,
            self.what,
            self.batch,
            self.hidden,
            self.threads,
            self.peak,
            self.output,
            self.peak as f64 / (self.batch * neurons) as f64,
            self.params
        );
    }
}

fn bytes_of(m: &[Matrix]) -> usize {
    m.iter().map(|m| m.as_slice().len() * 8).sum()
}

fn main() {
    let batches = [150, 600, 2400, 9600];
    let widths = [30, 120, 480];
    let loss = Loss::mse();
    let opts = BackwardOptions::default();
    let mut rows = Vec::new();
    for threads in [1, 2] {
        for &hidden in &widths {
            let net = network(hidden);
            let params: usize = net.layers.iter().map(|l| l.w.as_slice().len() * 2).sum();
            for &batch in &batches {
                let (x, y) = inputs(batch);
                let mut record = |what, peak, output| {
                    rows.push(Row {
                        what,
                        batch,
                        hidden,
                        threads,
                        peak,
                        output,
                        params,
                    })
                };
                // The first call on a new executor: the peak includes the per-thread state the
                // executor keeps for the next call.
                let exec = Executor::new(threads).expect("threads");
                let (peak, pass) = peak_of(|| forward_backward(&net, &x, &y, &loss, 100.0, &opts, &exec));
                let pass = pass.expect("a valid pass");
                // Times, dL/dt, the input times' gradients, losses, predictions (16 bytes each),
                // one gradient per parameter.
                record(
                    "forward_backward",
                    peak,
                    bytes_of(&pass.times) + batch * (3 + 4 + 1 + 2) * 8 + params * 8,
                );
                let exec = Executor::new(threads).expect("threads");
                let (peak, times) = peak_of(|| forward(&net, &x, Method::Auto, &exec));
                record("forward", peak, bytes_of(&times.expect("a valid forward pass")));
            }
        }
    }
    for r in &rows {
        r.print();
    }
    // How the peak grows with the batch: a line through the smallest and largest batch.
    for what in ["forward_backward", "forward"] {
        for threads in [1, 2] {
            for &hidden in &widths {
                let of = |batch: usize| {
                    rows.iter()
                        .find(|r| r.what == what && r.threads == threads && r.hidden == hidden && r.batch == batch)
                        .map_or(0, |r| r.peak)
                };
                let (b0, b1) = (batches[0], batches[batches.len() - 1]);
                let (p0, p1) = (of(b0) as f64, of(b1) as f64);
                let per_sample = (p1 - p0) / (b1 - b0) as f64;
                println!(
                    "{{\"name\": \"yinyang_h{hidden}_syn_tau2to1\", \"what\": \"{what}_growth\", \"threads\": {threads}, \
                     \"batches\": [{b0}, {b1}], \"peak_ratio\": {:.2}, \"batch_ratio\": {:.1}, \
                     \"bytes_per_sample_neuron\": {:.1}, \"fixed_bytes\": {:.0}}}",
                    p1 / p0,
                    b1 as f64 / b0 as f64,
                    per_sample / (hidden + 3) as f64,
                    p0 - per_sample * b0 as f64
                );
            }
        }
    }
}
