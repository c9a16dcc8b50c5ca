//! What the forward and backward passes prepare once per layer for a batch: effective delays,
//! the shared input order of layers without synaptic delays, and the factored decays
//! e^{d_ki/tau_m} of the closed-form regimes (see `docs/model.md`, "Delays").

use super::RiseFactor;
use crate::kernel::Regime;
use crate::matrix::Matrix;
use crate::network::Layer;
use crate::solver::{Method, weight_bound};

/// Delays beyond this many time constants get no factored decays e^{d/tau_m}.
const DECAY_RANGE: f64 = 300.0;

/// What the forward and backward passes prepare once per layer for a batch (the parameters are
/// fixed during it).
pub(crate) struct LayerPlan<'a> {
    pub(crate) layer: &'a Layer,
    /// Effective delays d_ki `[n_out, n_in]`.
    pub(crate) delays: Matrix,
    /// No synaptic delays: every neuron sees its inputs in the same order, a_i = t_i + d_axo_i,
    /// and its dendritic delay only shifts its spike.
    pub(super) shared: Option<SharedOrder>,
    /// e^{d_ki/tau_m} `[n_out, n_in]` in the closed-form regimes with delays within
    /// `DECAY_RANGE` time constants: then e^{-(t_k - t_i - d_ki)/tau_m} is a product of per-neuron,
    /// per-input and per-synapse factors. The backward pass always uses them; the forward scans of
    /// synaptic layers with `Method::Auto` (where `solver::weight_bound` bounds the products).
    pub(crate) decays: Option<Matrix>,
    /// Whether the forward pass uses the factored scans (closed-form regime and `Method::Auto`).
    pub(super) factored: bool,
    /// Largest e^{d_ki/tau_m} (1 without `decays`).
    pub(super) max_decay: f64,
    /// sum_i |w_ki| per neuron (bounds the factored sums), +inf where the neuron's parameters or
    /// tiny weights rule the factored scan out (`solver::weight_bound`).
    pub(super) w_bound: Vec<f64>,
}

impl<'a> LayerPlan<'a> {
    pub(crate) fn new(layer: &'a Layer, method: Method) -> Self {
        let (n_in, n_out) = (layer.n_in(), layer.n_out());
        let delays = layer.delays.effective(n_in, n_out);
        let tm = layer.neuron.tau_m();
        let closed = layer.neuron.regime() != Regime::General;
        let factored = method == Method::Auto && closed;
        let g = layer.delays.group.max(1);
        let shared = layer.delays.syn.is_none().then(|| SharedOrder {
            axo: (0..n_in)
                .map(|i| layer.delays.axo.as_ref().map_or(0.0, |v| v[i / g]))
                .collect(),
            den: layer.delays.den.clone().unwrap_or_else(|| vec![0.0; n_out]),
        });
        let in_range = delays.as_slice().iter().all(|d| d / tm <= DECAY_RANGE);
        let decays = (closed && in_range).then(|| decay_factors(&delays, tm));
        let max_decay = decays
            .as_ref()
            .map_or(1.0, |m| m.as_slice().iter().copied().fold(1.0, f64::max));
        let w_bound = (0..n_out)
            .map(|k| weight_bound(&layer.neuron, layer.theta[k], layer.w.row(k).iter().copied()))
            .collect();
        LayerPlan {
            layer,
            delays,
            shared,
            decays,
            factored,
            max_decay,
            w_bound,
        }
    }
}

/// The factors e^{d_ki/tau_m} of the delays `[n_out, n_in]` (model units). Without synaptic
/// delays the rows repeat (axonal delays are per input) and shared delays repeat within a row
/// (a group of inputs): each distinct value costs one exp, the same bits as one exp each.
fn decay_factors(delays: &Matrix, tm: f64) -> Matrix {
    let (n_out, n_in) = (delays.rows(), delays.cols());
    let mut data: Vec<f64> = Vec::with_capacity(n_out * n_in);
    for k in 0..n_out {
        let d = delays.row(k);
        if k > 0 && d == delays.row(k - 1) {
            data.extend_from_within((k - 1) * n_in..k * n_in);
            continue;
        }
        // e^{(d - 0)/tau_m} has the bits of e^{d/tau_m} (d - 0 is d, delays are finite).
        let mut factor = RiseFactor::new(0.0, tm);
        data.extend(d.iter().map(|&di| factor.at(di)));
    }
    Matrix::from_vec("decays", n_out, n_in, data).expect("same shape as the delays")
}

/// Per-input axonal and per-neuron dendritic delays of a layer without synaptic delays.
pub(super) struct SharedOrder {
    pub(super) axo: Vec<f64>,
    pub(super) den: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_factors_are_one_exp_per_synapse_bit_for_bit() {
        let tm = 1.7;
        // Repeated rows (axonal delays), repeats within rows (shared groups), distinct values,
        // signed zeros.
        let rows: [&[f64]; 5] = [
            &[0.5, 0.5, 0.5, 2.25, 2.25, -0.0],
            &[0.5, 0.5, 0.5, 2.25, 2.25, -0.0],
            &[0.0, 1e-300, 3.0, 3.0, 0.1, 0.1],
            &[0.5, 0.5, 0.5, 2.25, 2.25, 0.0],
            &[7.0, 6.0, 5.0, 4.0, 3.0, 2.0],
        ];
        let d = Matrix::from_vec("d", 5, 6, rows.concat()).unwrap();
        let got = decay_factors(&d, tm);
        for (g, x) in got.as_slice().iter().zip(d.as_slice()) {
            assert_eq!(g.to_bits(), (x / tm).exp().to_bits(), "d = {x}");
        }
    }
}
