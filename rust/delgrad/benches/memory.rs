//! Peak heap memory of a training step's pass (`step::forward_backward`) and of the forward pass,
//! against batch size and hidden width: one JSON object per line,
//! `{"name", "what", "batch", "hidden", "threads", "peak_bytes", "output_bytes",
//! "bytes_per_sample", "bytes_per_sample_neuron", "params"}`.
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
//! smallest to the largest batch next to the growth of `batch * neurons`. The `latency_*` rows
//! are the 256-128-10 and 784-350-10 networks with synaptic delays on synthetic latency-coded
//! inputs (those of the throughput bench).
//!
//! `cargo bench --bench memory` (no timing: the counts are exact and repeat run to run).

use delgrad::Matrix;
use delgrad::forward::forward;
use delgrad::gradient::BackwardOptions;
use delgrad::loss::{Loss, TieRule};
use delgrad::network::Network;
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::solver::Method;
use delgrad::step::forward_backward;

#[path = "../tests/support/memory.rs"]
mod memory;
use memory::{inputs, network, peak_of};

#[path = "support/latency.rs"]
mod latency;
use latency::{latency_inputs, scale_network};

struct Row {
    name: String,
    what: &'static str,
    batch: usize,
    hidden: usize,
    /// Neurons of every layer (hidden and output).
    neurons: usize,
    threads: usize,
    peak: usize,
    output: usize,
    params: usize,
}

impl Row {
    fn print(&self) {
        println!(
            "{{\"name\": \"{}\", \"what\": \"{}\", \"batch\": {}, \"hidden\": {}, \"threads\": {}, \
             \"peak_bytes\": {}, \"output_bytes\": {}, \"bytes_per_sample\": {:.0}, \"bytes_per_sample_neuron\": {:.1}, \
             \"params\": {}}}",
            self.name,
            self.what,
            self.batch,
            self.hidden,
            self.threads,
            self.peak,
            self.output,
            self.peak as f64 / self.batch as f64,
            self.peak as f64 / (self.batch * self.neurons) as f64,
            self.params
        );
    }
}

fn bytes_of(m: &[Matrix]) -> usize {
    m.iter().map(|m| m.as_slice().len() * 8).sum()
}

/// A network measured at several batch sizes: its name, the network, and its inputs and labels
/// for a batch size.
struct Subject {
    name: String,
    net: Network,
    batches: &'static [usize],
    inputs: fn(&Network, usize) -> (Matrix, Vec<usize>),
}

fn main() {
    let loss = Loss::mse();
    let opts = BackwardOptions::default();
    let mut subjects: Vec<Subject> = [30, 120, 480]
        .into_iter()
        .map(|hidden| Subject {
            name: format!("yinyang_h{hidden}_syn_tau2to1"),
            net: network(hidden),
            batches: &[150, 600, 2400, 9600],
            inputs: |_, batch| inputs(batch),
        })
        .collect();
    // Synthetic latency-coded inputs at MNIST-like sizes with synaptic delays (as in the
    // throughput bench).
    let mut rng = RandomState::new(1);
    for (n_in, hidden) in [(256, 128), (784, 350)] {
        subjects.push(Subject {
            name: format!("latency_{n_in}x{hidden}x10_syn_tau2to1"),
            net: scale_network(n_in, &[hidden, 10], true, &mut rng),
            batches: &[150, 1200],
            inputs: |net, batch| latency_inputs(batch, net.layers[0].w.cols(), 7),
        });
    }
    let mut rows = Vec::new();
    for threads in [1, 2] {
        for s in &subjects {
            let net = &s.net;
            let params: usize = net.layers.iter().map(|l| l.w.as_slice().len() * 2).sum();
            let hidden = net.layers[0].w.rows();
            let neurons: usize = net.layers.iter().map(|l| l.w.rows()).sum();
            let (n_in, n_out) = (net.layers[0].w.cols(), net.layers[net.layers.len() - 1].w.rows());
            for &batch in s.batches {
                let (x, y) = (s.inputs)(net, batch);
                let mut record = |what, peak, output| {
                    rows.push(Row {
                        name: s.name.clone(),
                        what,
                        batch,
                        hidden,
                        neurons,
                        threads,
                        peak,
                        output,
                        params,
                    })
                };
                // The first call on a new executor: the peak includes the per-thread state the
                // executor keeps for the next call.
                let exec = Executor::new(threads).expect("threads");
                let (peak, pass) =
                    peak_of(|| forward_backward(net, &x, &y, &loss, 100.0, TieRule::Wrong, &opts, &exec));
                let pass = pass.expect("a valid pass");
                // Times, dL/dt, the input times' gradients, losses, predictions (16 bytes each),
                // one gradient per parameter.
                record(
                    "forward_backward",
                    peak,
                    bytes_of(&pass.times) + batch * (n_out + n_in + 1 + 2) * 8 + params * 8,
                );
                let exec = Executor::new(threads).expect("threads");
                let (peak, times) = peak_of(|| forward(net, &x, Method::Auto, &exec));
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
            for s in &subjects {
                let of = |batch: usize| {
                    rows.iter()
                        .find(|r| r.what == what && r.threads == threads && r.name == s.name && r.batch == batch)
                        .map_or(0, |r| r.peak)
                };
                let neurons: usize = s.net.layers.iter().map(|l| l.w.rows()).sum();
                let (b0, b1) = (s.batches[0], s.batches[s.batches.len() - 1]);
                let (p0, p1) = (of(b0) as f64, of(b1) as f64);
                let per_sample = (p1 - p0) / (b1 - b0) as f64;
                println!(
                    "{{\"name\": \"{}\", \"what\": \"{what}_growth\", \"threads\": {threads}, \
                     \"batches\": [{b0}, {b1}], \"peak_ratio\": {:.2}, \"batch_ratio\": {:.1}, \
                     \"bytes_per_sample\": {:.0}, \"bytes_per_sample_neuron\": {:.1}, \"fixed_bytes\": {:.0}}}",
                    s.name,
                    p1 / p0,
                    b1 as f64 / b0 as f64,
                    per_sample,
                    per_sample / neurons as f64,
                    p0 - per_sample * b0 as f64
                );
            }
        }
    }
}
