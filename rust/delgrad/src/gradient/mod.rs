//! Exact gradients from spike times alone (the backward pass), given the times of every layer:
//! computed by `forward` or measured on a chip.
//!
//! Implicit differentiation of u_k(t_k) = theta_k with slope rho_k = sum_i w_ki kappa'(t_k - a_ki) > 0:
//!
//! dt_k/dw_ki = -kappa(t_k - a_ki) / rho_k,   dt_k/da_ki = w_ki kappa'(t_k - a_ki) / rho_k,
//! dt_k/dtheta_k = 1 / rho_k.  Since `a_ki = t_i + d_syn[k,i] + d_axo[i] + d_den[k]`, every delay
//! gradient is a sum of dt_k/da_ki, and delta_i = dL/dt_i = sum_k delta_k dt_k/da_ki. Times are in
//! the units of the time constants, kappa in potential per unit weight (C_m = 1); see
//! `docs/model.md`, "Gradients".

use std::ops::Range;

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::network::{Layer, Network};
use crate::parallel::Executor;
use crate::solver::Method;

mod accumulate;
mod layer;

pub(crate) use accumulate::{Accumulator, BackwardPlan, KEEP_SPENT, Scratch};

/// Gradients of one layer's parameters (sums over the batch). Delay gradients are given for
/// every kind, present or not, in the shared (grouped) shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerGrad {
    /// dL/dw `[n_out, n_in]`.
    pub w: Matrix,
    /// dL/dtheta `[n_out]`.
    pub theta: Vec<f64>,
    /// dL/dd_syn `[n_out, n_in / group]`.
    pub d_syn: Matrix,
    /// dL/dd_axo `[n_in / group]`.
    pub d_axo: Vec<f64>,
    /// dL/dd_den `[n_out]`.
    pub d_den: Vec<f64>,
}

impl LayerGrad {
    /// Zero gradients of `layer` (their sizes are those of the layer's parameters, already held).
    pub(super) fn zeros(layer: &Layer) -> Result<Self> {
        let (n_out, n_in) = (layer.n_out(), layer.n_in());
        let ng = layer.delays.groups(n_in);
        Ok(LayerGrad {
            w: Matrix::zeros("w", n_out, n_in)?,
            theta: vec![0.0; n_out],
            d_syn: Matrix::zeros("d_syn", n_out, ng)?,
            d_axo: vec![0.0; ng],
            d_den: vec![0.0; n_out],
        })
    }

    /// Whether this has the shapes of the gradients of `layer`.
    pub(super) fn fits(&self, layer: &Layer) -> bool {
        let (n_out, n_in) = (layer.n_out(), layer.n_in());
        let ng = layer.delays.groups(n_in);
        (self.w.rows(), self.w.cols()) == (n_out, n_in)
            && (self.d_syn.rows(), self.d_syn.cols()) == (n_out, ng)
            && self.theta.len() == n_out
            && self.d_axo.len() == ng
            && self.d_den.len() == n_out
    }

    pub(super) fn clear(&mut self) {
        self.w.as_mut_slice().fill(0.0);
        self.theta.fill(0.0);
        self.d_syn.as_mut_slice().fill(0.0);
        self.d_axo.fill(0.0);
        self.d_den.fill(0.0);
    }

    pub(super) fn add(&mut self, other: &LayerGrad) {
        let pairs = [
            (self.w.as_mut_slice(), other.w.as_slice()),
            (&mut self.theta[..], &other.theta[..]),
            (self.d_syn.as_mut_slice(), other.d_syn.as_slice()),
            (&mut self.d_axo[..], &other.d_axo[..]),
            (&mut self.d_den[..], &other.d_den[..]),
        ];
        for (a, b) in pairs {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
    }
}

/// Result of the backward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// Per-layer parameter gradients, summed over the batch.
    pub layers: Vec<LayerGrad>,
    /// dL/dt of the network inputs `[batch, n_in]` (0 for silent inputs).
    pub input: Matrix,
    /// Per layer: (sample, neuron) pairs with a finite given time that the ideal model cannot
    /// produce (slope <= 0 there, or, with `check_given_times`, no crossing at all): zero gradient.
    pub invalid: Vec<usize>,
    /// Per layer: (sample, neuron) pairs whose weight gradient `max_dw_norm` zeroed.
    pub clipped: Vec<usize>,
}

/// Which slope of the potential the spike-time gradients divide by.
///
/// With the synaptic current I_k(t) = sum_i w_ki e^{-(t - a_ki)/tau_s} the slope of the potential
/// is rho_k = du_k/dt = I_k(t_k) - u_k(t_k)/tau_m (the membrane equation, every regime; potential
/// per model time unit). At a spike of the ideal model u_k(t_k) = theta_k; at a measured time it
/// need not be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GradientSlope {
    /// rho_k = I_k(t_k) - u_k(t_k)/tau_m: the slope of the ideal potential at the given time.
    #[default]
    Measured,
    /// rho_k = I_k(t_k) - theta_k/tau_m = rho_k(measured) + (u_k(t_k) - theta_k)/tau_m: the slope
    /// formula with the nominal threshold in place of the potential, as a closed-form backward
    /// pass that assumes u_k(t_k) = theta_k computes it (the reference code's on hardware).
    Nominal,
}

impl GradientSlope {
    /// The names [`GradientSlope::from_name`] accepts, in the order of the variants.
    pub const NAMES: [&'static str; 2] = ["measured", "nominal"];

    /// The slope's name: `"measured"` or `"nominal"`.
    pub fn name(self) -> &'static str {
        match self {
            GradientSlope::Measured => "measured",
            GradientSlope::Nominal => "nominal",
        }
    }

    /// The slope called `name`; another name is an error naming `gradient_slope`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "measured" => Ok(GradientSlope::Measured),
            "nominal" => Ok(GradientSlope::Nominal),
            _ => Err(Error::option(
                "gradient_slope",
                format!("unknown gradient slope {name:?}; expected \"measured\" or \"nominal\""),
            )),
        }
    }
}

/// Options of the backward pass.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BackwardOptions {
    /// Zero a neuron's weight gradient for a sample when max_i |delta_k dt_k/dw_ki| exceeds this
    /// (near-tangential crossings make dt/dw explode); `None` keeps every gradient.
    pub max_dw_norm: Option<f64>,
    /// Re-solve each neuron from the given input times and treat a neuron the ideal model leaves
    /// silent as invalid (for measured times; unnecessary for times from `forward`).
    pub check_given_times: bool,
    /// Solver used by `check_given_times`.
    pub method: Method,
    /// The slope the gradients divide by (the measured one unless the times were measured on a
    /// chip and the nominal one is asked for).
    pub slope: GradientSlope,
}

/// Checks that the given per-layer times fit the network and the batch.
pub(crate) fn validate_given(net: &Network, input: &Matrix, times: &[Matrix]) -> Result<()> {
    net.validate()?;
    net.validate_times("input", input, net.n_in())?;
    if times.len() != net.layers.len() {
        return Err(Error::shape(
            "times",
            format!("{} layers", net.layers.len()),
            format!("{} layers", times.len()),
        ));
    }
    for (l, (t, layer)) in times.iter().zip(&net.layers).enumerate() {
        let arg = format!("times[{l}]");
        t.expect_shape(&arg, input.rows(), layer.n_out())?;
        net.validate_times(&arg, t, layer.n_out())?;
    }
    Ok(())
}

/// Checks that `dl_dout` is `[batch, n_out]` and finite.
fn validate_dl_dout(net: &Network, batch: usize, dl_dout: &Matrix) -> Result<()> {
    dl_dout.expect_shape("dl_dout", batch, net.n_out())?;
    if let Some(i) = dl_dout.as_slice().iter().position(|v| !v.is_finite()) {
        return Err(Error::value(
            "dl_dout",
            format!("loss gradients must be finite; entry {i} is {}", dl_dout.as_slice()[i]),
        ));
    }
    Ok(())
}

/// Exact backward pass at given spike times.
///
/// `times[l]` `[batch, n_l]` are the first-spike times of layer l (from [`forward`](crate::forward::forward)
/// or measured), `dl_dout` `[batch, n_L]` is dL/dt of the output layer. Returns parameter
/// gradients summed over the batch and dL/dt of the inputs per sample.
pub fn backward(
    net: &Network,
    input: &Matrix,
    times: &[Matrix],
    dl_dout: &Matrix,
    opts: &BackwardOptions,
    exec: &Executor,
) -> Result<Gradients> {
    validate_given(net, input, times)?;
    validate_dl_dout(net, input.rows(), dl_dout)?;
    let plan = BackwardPlan::new(net, opts);
    // Per-thread scratch and spent chunk accumulators (reused instead of allocated per chunk).
    let init = || (Scratch::new(net), Vec::new());
    let chunk = |(s, spent): &mut (Scratch, Vec<Accumulator>), range: Range<usize>| {
        let mut acc = match spent.pop() {
            Some(acc) => acc,
            None => Accumulator::new(net, range.len())?,
        };
        for b in range {
            acc.add_sample(
                s,
                net,
                &plan,
                input.row(b),
                |l| times[l].row(b),
                dl_dout.row(b),
                &[],
                opts,
            );
        }
        Ok(acc)
    };
    // The first error (in sample order) wins.
    type Spent = (Scratch, Vec<Accumulator>);
    let fold =
        |all: &mut Result<Accumulator>, acc: Result<Accumulator>, (_, spent): &mut Spent| match (all.as_mut(), acc) {
            (Ok(all), Ok(mut acc)) => {
                all.merge(&acc);
                if spent.len() < KEEP_SPENT {
                    acc.clear();
                    spent.push(acc);
                }
            }
            (Ok(_), Err(e)) => *all = Err(e),
            (Err(_), _) => {}
        };
    let all = Ok(Accumulator::new(net, input.rows())?);
    let fits = |(s, spent): &Spent| s.fits(net) && spent.iter().all(|a| a.fits(net));
    exec.fold_ranges_kept(input.rows(), fits, init, chunk, all, fold)??
        .into_gradients(net, input.rows())
}
