//! `Network` (a network and its executor), `init_network`, `loss_and_grad` and the thread count
//! of `threads=None`.

use std::sync::{Arc, RwLock};

use delgrad::delay::{DelayKind, DelayParam, Delays};
use delgrad::forward::forward;
use delgrad::gradient::{BackwardOptions, backward};
use delgrad::kernel::Neuron;
use delgrad::loss::{Loss, SILENT_LOSS, TieRule, evaluate};
use delgrad::network::{Layer, Network};
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::solver::Method;
use delgrad::train::LayerSpec;
use numpy::PyArray2;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::calls::work;
use crate::convert::{
    arg, as_dict, as_list, check_keys, get_f64, get_usize, indices, int64_array, matrices_to_py, matrix, matrix_to_py,
    opt, required, scalar, scalar_or_vector, times_list, usize_arg, vec_to_py, vector,
};
use crate::errors::{CoreError, compute, compute_sized, option_err, value_err, within};

/// The solver method called `method`.
pub fn parse_method(method: &str) -> PyResult<Method> {
    match method {
        "auto" => Ok(Method::Auto),
        "bracket" => Ok(Method::Bracket),
        _ => Err(option_err(
            "method",
            format!("unknown method {method:?}; expected \"auto\" or \"bracket\""),
        )),
    }
}

/// The process's executor for `threads` (shared by every object asking for that many threads;
/// None: one per core).
pub fn make_executor(py: Python<'_>, threads: Option<usize>) -> PyResult<Arc<Executor>> {
    let n = threads.unwrap_or(0);
    compute(py, move || Executor::shared(n))
}

const LAYER_KEYS: [&str; 8] = ["w", "theta", "tau_m", "tau_s", "d_syn", "d_axo", "d_den", "delay_group"];

/// One layer from its dict (the keys of [`LAYER_KEYS`]; absent keys take the reference neuron).
fn layer_from_dict(obj: &Bound<'_, PyAny>, l: usize) -> PyResult<Layer> {
    let prefix = format!("layers[{l}]");
    let d = as_dict(obj, &prefix)?;
    check_keys(d, &LAYER_KEYS, &prefix)?;
    let w = matrix(&required(d, "w", &prefix)?, &format!("{prefix}.w"))?;
    let tau_m = get_f64(d, "tau_m", &prefix)?.unwrap_or(Layer::TAU_M);
    let tau_s = get_f64(d, "tau_s", &prefix)?.unwrap_or(Layer::TAU_S);
    let neuron = within(Neuron::new(tau_m, tau_s), &prefix)?;
    let theta = match opt(d.get_item("theta")?.as_ref()) {
        Some(t) => scalar_or_vector(t, &format!("{prefix}.theta"), w.rows())?,
        None => vec![Layer::THETA; w.rows()],
    };
    let group = get_usize(d, "delay_group", &prefix)?.unwrap_or(Delays::default().group);
    let arg = |key: &str| format!("{prefix}.{key}");
    let syn = opt(d.get_item("d_syn")?.as_ref())
        .map(|v| matrix(v, &arg("d_syn")))
        .transpose()?;
    let axo = opt(d.get_item("d_axo")?.as_ref())
        .map(|v| vector(v, &arg("d_axo")))
        .transpose()?;
    let den = opt(d.get_item("d_den")?.as_ref())
        .map(|v| vector(v, &arg("d_den")))
        .transpose()?;
    Ok(Layer {
        neuron,
        theta,
        w,
        delays: Delays { group, syn, axo, den },
    })
}

/// A network from one dict per layer.
pub fn network_from_list(obj: &Bound<'_, PyAny>) -> PyResult<Network> {
    let layers = as_list(obj, "layers")?
        .iter()
        .enumerate()
        .map(|(l, o)| layer_from_dict(o, l))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Network::new(layers).map_err(CoreError)?)
}

/// A layer's parameters as a dict (absent delay kinds are None).
fn layer_params<'py>(py: Python<'py>, layer: &Layer) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("w", matrix_to_py(py, layer.w.clone())?)?;
    d.set_item("theta", vec_to_py(py, layer.theta.clone()))?;
    d.set_item("tau_m", layer.neuron.tau_m())?;
    d.set_item("tau_s", layer.neuron.tau_s())?;
    d.set_item("delay_group", layer.delays.group)?;
    let delays = &layer.delays;
    d.set_item("d_syn", delays.syn.clone().map(|m| matrix_to_py(py, m)).transpose()?)?;
    d.set_item("d_axo", delays.axo.clone().map(|v| vec_to_py(py, v)))?;
    d.set_item("d_den", delays.den.clone().map(|v| vec_to_py(py, v)))?;
    Ok(d)
}

/// A feed-forward network of first-spike-time LIF layers (see the stub for documentation).
///
/// Safe to share between Python threads: a call takes the parameters as they are when it starts
/// (`set_params` replaces them for the calls after it, without waiting for those running).
#[pyclass(module = "delgrad_rs._core", name = "Network", frozen)]
pub struct PyNetwork {
    net: RwLock<Arc<Network>>,
    pub(crate) exec: Arc<Executor>,
}

impl PyNetwork {
    /// `net` computing on `exec`.
    pub(crate) fn with_executor(net: Network, exec: Arc<Executor>) -> Self {
        PyNetwork {
            net: RwLock::new(Arc::new(net)),
            exec,
        }
    }

    /// The parameters now.
    pub(crate) fn net(&self) -> Arc<Network> {
        Arc::clone(&self.net.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The executor of one call: the network's, or the process's for `threads` when given.
    pub(crate) fn executor(&self, py: Python<'_>, threads: Option<usize>) -> PyResult<Arc<Executor>> {
        match threads {
            None => Ok(Arc::clone(&self.exec)),
            Some(_) => make_executor(py, threads),
        }
    }
}

#[pymethods]
impl PyNetwork {
    #[new]
    #[pyo3(signature = (layers, *, threads=None))]
    fn new(
        py: Python<'_>,
        layers: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = arg::threads)] threads: Option<usize>,
    ) -> PyResult<Self> {
        let net = network_from_list(layers)?;
        Ok(PyNetwork::with_executor(net, make_executor(py, threads)?))
    }

    #[getter]
    fn sizes(&self) -> Vec<usize> {
        self.net().sizes()
    }

    #[getter]
    fn threads(&self) -> usize {
        self.exec.threads()
    }

    fn __len__(&self) -> usize {
        self.net().layers.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Network(sizes={:?}, threads={})",
            self.net().sizes(),
            self.exec.threads()
        )
    }

    #[pyo3(signature = (x, threads=None, method="auto"))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        #[pyo3(from_py_with = arg::threads)] threads: Option<usize>,
        method: &str,
    ) -> PyResult<Vec<Bound<'py, PyArray2<f64>>>> {
        let method = parse_method(method)?;
        let x = matrix(x, "x")?;
        let exec = self.executor(py, threads)?;
        let net = self.net();
        let (net, exec) = (&*net, &*exec);
        let times = compute_sized(py, work(x.rows(), net), || {
            // The core names its input `input`; the Python argument is `x`.
            net.validate_times("x", &x, net.n_in())?;
            forward(net, &x, method, exec)
        })?;
        matrices_to_py(py, times)
    }

    #[pyo3(signature = (x, times, dl_dout, max_dw_norm=None, check_given_times=false, method="auto"))]
    #[allow(clippy::too_many_arguments)]
    fn backward<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        times: &Bound<'py, PyAny>,
        dl_dout: &Bound<'py, PyAny>,
        #[pyo3(from_py_with = arg::max_dw_norm)] max_dw_norm: Option<f64>,
        #[pyo3(from_py_with = arg::check_given_times)] check_given_times: bool,
        method: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let method = parse_method(method)?;
        if let Some(m) = max_dw_norm.filter(|m| !(m.is_finite() && *m > 0.0)) {
            return Err(value_err(
                "max_dw_norm",
                format!("expected a finite number > 0 or None, got {m}"),
            ));
        }
        let x = matrix(x, "x")?;
        let times = times_list(times, "times")?;
        let dl = matrix(dl_dout, "dl_dout")?;
        let opts = BackwardOptions {
            max_dw_norm,
            check_given_times,
            method,
            ..BackwardOptions::default()
        };
        let net = self.net();
        let (net, exec) = (&*net, &*self.exec);
        let g = compute_sized(py, work(x.rows(), net), || {
            net.validate_times("x", &x, net.n_in())?;
            backward(net, &x, &times, &dl, &opts, exec)
        })?;
        let out = PyDict::new(py);
        let layers = PyList::empty(py);
        for lg in g.layers {
            let d = PyDict::new(py);
            d.set_item("w", matrix_to_py(py, lg.w)?)?;
            d.set_item("theta", vec_to_py(py, lg.theta))?;
            d.set_item("d_syn", matrix_to_py(py, lg.d_syn)?)?;
            d.set_item("d_axo", vec_to_py(py, lg.d_axo))?;
            d.set_item("d_den", vec_to_py(py, lg.d_den))?;
            layers.append(d)?;
        }
        out.set_item("layers", layers)?;
        out.set_item("input", matrix_to_py(py, g.input)?)?;
        out.set_item("invalid", g.invalid)?;
        out.set_item("clipped", g.clipped)?;
        Ok(out)
    }

    fn params<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.net().layers.iter().map(|l| layer_params(py, l)).collect()
    }

    fn set_params(&self, layers: &Bound<'_, PyAny>) -> PyResult<()> {
        let net = Arc::new(network_from_list(layers)?);
        *self.net.write().unwrap_or_else(|e| e.into_inner()) = net;
        Ok(())
    }

    fn copy(&self) -> Self {
        PyNetwork {
            net: RwLock::new(self.net()),
            exec: Arc::clone(&self.exec),
        }
    }
}

const SPEC_KEYS: [&str; 10] = [
    "size",
    "tau_m",
    "tau_s",
    "theta",
    "weight_mean",
    "weight_std",
    "delay_kinds",
    "delay_group",
    "delay_init_mean",
    "delay_init_std",
];

/// One layer spec from its dict (the keys of [`SPEC_KEYS`]; `size`, `weight_mean` and
/// `weight_std` are required, absent others take the core's values).
fn spec_from_dict(obj: &Bound<'_, PyAny>, l: usize) -> PyResult<LayerSpec> {
    let prefix = format!("layers[{l}]");
    let d = as_dict(obj, &prefix)?;
    check_keys(d, &SPEC_KEYS, &prefix)?;
    let arg = |key: &str| format!("{prefix}.{key}");
    let mut s = LayerSpec::new(
        usize_arg(&required(d, "size", &prefix)?, &arg("size"))?,
        scalar(&required(d, "weight_mean", &prefix)?, &arg("weight_mean"))?,
        scalar(&required(d, "weight_std", &prefix)?, &arg("weight_std"))?,
    );
    for (key, field) in [
        ("tau_m", &mut s.tau_m),
        ("tau_s", &mut s.tau_s),
        ("theta", &mut s.theta),
        ("delay_init_mean", &mut s.delay_init_mean),
        ("delay_init_std", &mut s.delay_init_std),
    ] {
        *field = get_f64(d, key, &prefix)?.unwrap_or(*field);
    }
    s.delay_group = get_usize(d, "delay_group", &prefix)?.unwrap_or(s.delay_group);
    if let Some(k) = opt(d.get_item("delay_kinds")?.as_ref()) {
        let arg = format!("{prefix}.delay_kinds");
        for item in as_list(k, &arg)? {
            let name: String = item
                .extract()
                .map_err(|_| PyTypeError::new_err(format!("{arg}: expected a list of strings")))?;
            let kind = within(DelayKind::from_name(&name), &prefix)?;
            if !s.delay_kinds.contains(&kind) {
                s.delay_kinds.push(kind);
            }
        }
    }
    Ok(s)
}

#[pyfunction]
#[pyo3(signature = (
    n_in, layers, *, delay_param="sigmoid", delay_shift=DelayParam::SIGMOID_SHIFT,
    delay_scale=DelayParam::SIGMOID_SCALE, seed=0, threads=None
))]
#[allow(clippy::too_many_arguments)]
pub fn init_network(
    py: Python<'_>,
    #[pyo3(from_py_with = arg::n_in)] n_in: usize,
    layers: &Bound<'_, PyAny>,
    delay_param: &str,
    #[pyo3(from_py_with = arg::delay_shift)] delay_shift: f64,
    #[pyo3(from_py_with = arg::delay_scale)] delay_scale: f64,
    #[pyo3(from_py_with = arg::seed)] seed: u64,
    #[pyo3(from_py_with = arg::threads)] threads: Option<usize>,
) -> PyResult<PyNetwork> {
    let param = DelayParam::from_name(delay_param, delay_shift, delay_scale).map_err(CoreError)?;
    let seed = u32::try_from(seed).map_err(|_| value_err("seed", format!("expected 0 <= seed < 2**32, got {seed}")))?;
    let specs = as_list(layers, "layers")?
        .iter()
        .enumerate()
        .map(|(l, o)| spec_from_dict(o, l))
        .collect::<PyResult<Vec<_>>>()?;
    let exec = make_executor(py, threads)?;
    let net = compute(py, move || {
        let mut rng = RandomState::new(seed);
        delgrad::train::init_network(n_in, &specs, param, &mut rng)
    })?;
    Ok(PyNetwork::with_executor(net, exec))
}

#[pyfunction]
#[pyo3(signature = (
    out_times, labels, loss="mse", *, delta=Loss::MSE_DELTA, xi=Loss::CE_XI, alpha=Loss::CE_ALPHA,
    beta=Loss::CE_BETA, silent_loss=SILENT_LOSS, strict=false, tie_rule="wrong"
))]
#[allow(clippy::too_many_arguments)]
pub fn loss_and_grad<'py>(
    py: Python<'py>,
    out_times: &Bound<'py, PyAny>,
    labels: &Bound<'py, PyAny>,
    loss: &str,
    #[pyo3(from_py_with = arg::delta)] delta: f64,
    #[pyo3(from_py_with = arg::xi)] xi: f64,
    #[pyo3(from_py_with = arg::alpha)] alpha: f64,
    #[pyo3(from_py_with = arg::beta)] beta: f64,
    #[pyo3(from_py_with = arg::silent_loss)] silent_loss: f64,
    #[pyo3(from_py_with = arg::strict)] strict: bool,
    tie_rule: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let loss = Loss::from_name(loss, delta, xi, alpha, beta).map_err(CoreError)?;
    let tie = TieRule::from_name(tie_rule).map_err(CoreError)?;
    let out = matrix(out_times, "out_times")?;
    let labels = indices(labels, "labels")?;
    let r = compute(py, || evaluate(&loss, &out, &labels, silent_loss, strict, tie))?;
    let d = PyDict::new(py);
    d.set_item("loss", r.mean)?;
    d.set_item("per_sample", vec_to_py(py, r.per_sample))?;
    d.set_item("dl_dt", matrix_to_py(py, r.dl_dt)?)?;
    d.set_item(
        "predicted",
        int64_array(py, r.predicted.iter().map(|p| p.map_or(-1, |c| c as i64))),
    )?;
    d.set_item("correct", r.correct)?;
    d.set_item("silent", r.silent)?;
    Ok(d)
}

/// Number of worker threads `threads=None`/0 selects (the available cores).
#[pyfunction]
pub fn default_threads() -> usize {
    delgrad::parallel::default_threads()
}
