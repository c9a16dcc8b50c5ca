//! `delgrad_rs._core`: thin PyO3 bindings of the delgrad core. Every entry point extracts its
//! arguments (numpy -> `Matrix`), releases the GIL around the core call and returns owned numpy
//! arrays; core errors map to the exception classes of [`errors`].
#![forbid(unsafe_code)]

mod convert;
mod errors;

use std::sync::Arc;
use std::time::Instant;

use delgrad::Matrix;
use delgrad::dataset::{Split, encode_times as core_encode, yin_yang as core_yin_yang};
use delgrad::delay::{DelayKind, DelayParam, Delays};
use delgrad::forward::forward as core_forward;
use delgrad::gradient::{BackwardOptions, backward as core_backward};
use delgrad::hardware::{ChipPattern, LayerPattern, NoiseParams, PatternParams, noisy_forward};
use delgrad::kernel::Neuron;
use delgrad::loss::{Loss, evaluate as core_evaluate};
use delgrad::network::{Layer, Network};
use delgrad::optim::{Adam, AdamConfig, StepLr};
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::solver::Method;
use delgrad::train::{
    Emulation, EpochReport, Grid, LayerSpec, StepReport, Tensor, TensorKind, TrainConfig, Trainer, changed_entries,
};
use numpy::ndarray::Array1;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use convert::{indices, matrix, matrix_to_py, opt, scalar, scalar_or_vector, vec_to_py, vector};
use errors::{CoreError, compute, option_err, value_err};

// ---------------------------------------------------------------------------------------------
// option parsing

fn parse_method(method: &str) -> PyResult<Method> {
    match method {
        "auto" => Ok(Method::Auto),
        "bracket" => Ok(Method::Bracket),
        _ => Err(option_err(
            "method",
            format!("unknown method {method:?}; expected \"auto\" or \"bracket\""),
        )),
    }
}

fn parse_loss(kind: &str, delta: f64, xi: f64, alpha: f64, beta: f64) -> PyResult<Loss> {
    let loss = match kind {
        "mse" => Loss::Mse { delta },
        "ce" | "cross_entropy" => Loss::CrossEntropy { xi, alpha, beta },
        _ => {
            return Err(option_err(
                "loss",
                format!("unknown loss {kind:?}; expected \"mse\" or \"ce\""),
            ));
        }
    };
    loss.validate().map_err(CoreError)?;
    Ok(loss)
}

fn parse_delay_param(kind: &str, shift: f64, scale: f64) -> PyResult<DelayParam> {
    let p = match kind {
        "sigmoid" => DelayParam::Sigmoid { shift, scale },
        "clip" => DelayParam::Clip,
        _ => {
            return Err(option_err(
                "delay_param",
                format!("unknown delay parametrisation {kind:?}; expected \"sigmoid\" or \"clip\""),
            ));
        }
    };
    p.validate().map_err(CoreError)?;
    Ok(p)
}

fn threads_arg(threads: Option<i64>) -> PyResult<usize> {
    match threads {
        None => Ok(0),
        Some(t) if t >= 0 => Ok(t as usize),
        Some(t) => Err(value_err(
            "threads",
            format!("expected an integer >= 0 or None, got {t}"),
        )),
    }
}

/// The process's executor for `threads` (shared by every object asking for that many threads).
fn make_executor(py: Python<'_>, threads: Option<i64>) -> PyResult<Arc<Executor>> {
    let n = threads_arg(threads)?;
    compute(py, move || Executor::shared(n))
}

fn kind_name(kind: TensorKind) -> &'static str {
    match kind {
        TensorKind::Weights => "w",
        TensorKind::Delay(DelayKind::Synaptic) => "d_syn",
        TensorKind::Delay(DelayKind::Axonal) => "d_axo",
        TensorKind::Delay(DelayKind::Dendritic) => "d_den",
    }
}

fn kind_from_name(name: &str, arg: &str) -> PyResult<TensorKind> {
    Ok(match name {
        "w" => TensorKind::Weights,
        "d_syn" => TensorKind::Delay(DelayKind::Synaptic),
        "d_axo" => TensorKind::Delay(DelayKind::Axonal),
        "d_den" => TensorKind::Delay(DelayKind::Dendritic),
        _ => {
            return Err(option_err(
                arg,
                format!("unknown tensor kind {name:?}; expected w, d_syn, d_axo or d_den"),
            ));
        }
    })
}

/// Checks that `d` only has keys from `allowed`.
fn check_keys(d: &Bound<'_, PyDict>, allowed: &[&str], prefix: &str) -> PyResult<()> {
    for key in d.keys() {
        let k: String = key
            .extract()
            .map_err(|_| PyTypeError::new_err(format!("{prefix}: keys must be strings, got {key}")))?;
        if !allowed.contains(&k.as_str()) {
            return Err(option_err(
                &format!("{prefix}.{k}"),
                format!("unknown key; expected one of {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn as_dict<'a, 'py>(obj: &'a Bound<'py, PyAny>, arg: &str) -> PyResult<&'a Bound<'py, PyDict>> {
    obj.cast::<PyDict>()
        .map_err(|_| PyTypeError::new_err(format!("{arg}: expected a dict, got {}", type_name(obj))))
}

fn as_list<'py>(obj: &Bound<'py, PyAny>, arg: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(l) = obj.cast::<PyList>() {
        return Ok(l.iter().collect());
    }
    if let Ok(t) = obj.cast::<pyo3::types::PyTuple>() {
        return Ok(t.iter().collect());
    }
    Err(PyTypeError::new_err(format!(
        "{arg}: expected a list, got {}",
        type_name(obj)
    )))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn get_f64(d: &Bound<'_, PyDict>, key: &str, prefix: &str, default: f64) -> PyResult<f64> {
    match opt(d.get_item(key)?.as_ref()) {
        Some(v) => scalar(v, &format!("{prefix}.{key}")),
        None => Ok(default),
    }
}

fn get_usize(d: &Bound<'_, PyDict>, key: &str, prefix: &str, default: usize) -> PyResult<usize> {
    let arg = format!("{prefix}.{key}");
    match opt(d.get_item(key)?.as_ref()) {
        Some(v) => {
            let i: i64 = v
                .extract()
                .map_err(|_| PyTypeError::new_err(format!("{arg}: expected an integer, got {}", type_name(v))))?;
            usize::try_from(i).map_err(|_| value_err(&arg, format!("expected an integer >= 0, got {i}")))
        }
        None => Ok(default),
    }
}

const LAYER_KEYS: [&str; 8] = ["w", "theta", "tau_m", "tau_s", "d_syn", "d_axo", "d_den", "delay_group"];

fn layer_from_dict(obj: &Bound<'_, PyAny>, l: usize) -> PyResult<Layer> {
    let prefix = format!("layers[{l}]");
    let d = as_dict(obj, &prefix)?;
    check_keys(d, &LAYER_KEYS, &prefix)?;
    let w_obj = d
        .get_item("w")?
        .ok_or_else(|| option_err(&format!("{prefix}.w"), "missing (required)"))?;
    let w = matrix(&w_obj, &format!("{prefix}.w"))?;
    let theta = match opt(d.get_item("theta")?.as_ref()) {
        Some(t) => scalar_or_vector(t, &format!("{prefix}.theta"), w.rows())?,
        None => vec![1.0; w.rows()],
    };
    let tau_m = get_f64(d, "tau_m", &prefix, 2.0)?;
    let tau_s = get_f64(d, "tau_s", &prefix, 1.0)?;
    let neuron = Neuron::new(tau_m, tau_s).map_err(|e| {
        CoreError(match e {
            delgrad::Error::Value { arg, message } => delgrad::Error::value(format!("{prefix}.{arg}"), message),
            e => e,
        })
    })?;
    let group = get_usize(d, "delay_group", &prefix, 1)?;
    let syn = match opt(d.get_item("d_syn")?.as_ref()) {
        Some(v) => Some(matrix(v, &format!("{prefix}.d_syn"))?),
        None => None,
    };
    let axo = match opt(d.get_item("d_axo")?.as_ref()) {
        Some(v) => Some(vector(v, &format!("{prefix}.d_axo"))?),
        None => None,
    };
    let den = match opt(d.get_item("d_den")?.as_ref()) {
        Some(v) => Some(vector(v, &format!("{prefix}.d_den"))?),
        None => None,
    };
    Ok(Layer {
        neuron,
        theta,
        w,
        delays: Delays { group, syn, axo, den },
    })
}

fn network_from_list(obj: &Bound<'_, PyAny>) -> PyResult<Network> {
    let items = as_list(obj, "layers")?;
    let layers = items
        .iter()
        .enumerate()
        .map(|(l, o)| layer_from_dict(o, l))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Network::new(layers).map_err(CoreError)?)
}

fn times_list(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<Vec<Matrix>> {
    as_list(obj, arg)?
        .iter()
        .enumerate()
        .map(|(l, t)| matrix(t, &format!("{arg}[{l}]")))
        .collect()
}

fn layer_params<'py>(py: Python<'py>, layer: &Layer) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("w", matrix_to_py(py, layer.w.clone())?)?;
    d.set_item("theta", vec_to_py(py, layer.theta.clone()))?;
    d.set_item("tau_m", layer.neuron.tau_m())?;
    d.set_item("tau_s", layer.neuron.tau_s())?;
    d.set_item("delay_group", layer.delays.group)?;
    match &layer.delays.syn {
        Some(m) => d.set_item("d_syn", matrix_to_py(py, m.clone())?)?,
        None => d.set_item("d_syn", py.None())?,
    }
    match &layer.delays.axo {
        Some(v) => d.set_item("d_axo", vec_to_py(py, v.clone()))?,
        None => d.set_item("d_axo", py.None())?,
    }
    match &layer.delays.den {
        Some(v) => d.set_item("d_den", vec_to_py(py, v.clone()))?,
        None => d.set_item("d_den", py.None())?,
    }
    Ok(d)
}

fn int64_array<'py>(py: Python<'py>, v: impl IntoIterator<Item = i64>) -> Bound<'py, PyArray1<i64>> {
    Array1::from_iter(v).into_pyarray(py)
}

// ---------------------------------------------------------------------------------------------
// Network

/// A feed-forward network of first-spike-time LIF layers (see the stub for documentation).
#[pyclass(module = "delgrad_rs._core", name = "Network")]
pub struct PyNetwork {
    net: Network,
    exec: Arc<Executor>,
}

impl PyNetwork {
    /// The executor of one call: the network's, or the process's for `threads` when given.
    fn executor(&self, py: Python<'_>, threads: Option<i64>) -> PyResult<Arc<Executor>> {
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
    fn new(py: Python<'_>, layers: &Bound<'_, PyAny>, threads: Option<i64>) -> PyResult<Self> {
        let net = network_from_list(layers)?;
        Ok(PyNetwork {
            net,
            exec: make_executor(py, threads)?,
        })
    }

    #[getter]
    fn sizes(&self) -> Vec<usize> {
        self.net.sizes()
    }

    #[getter]
    fn threads(&self) -> usize {
        self.exec.threads()
    }

    fn __len__(&self) -> usize {
        self.net.layers.len()
    }

    fn __repr__(&self) -> String {
        format!("Network(sizes={:?}, threads={})", self.net.sizes(), self.exec.threads())
    }

    #[pyo3(signature = (x, threads=None, method="auto"))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        threads: Option<i64>,
        method: &str,
    ) -> PyResult<Vec<Bound<'py, PyArray2<f64>>>> {
        let method = parse_method(method)?;
        let x = matrix(x, "x")?;
        let exec = self.executor(py, threads)?;
        let (net, exec) = (&self.net, &*exec);
        let times = compute(py, || {
            net.validate_times("x", &x, net.n_in())?;
            core_forward(net, &x, method, exec)
        })?;
        times.into_iter().map(|m| matrix_to_py(py, m)).collect()
    }

    #[pyo3(signature = (x, times, dl_dout, max_dw_norm=None, check_given_times=false, method="auto"))]
    #[allow(clippy::too_many_arguments)]
    fn backward<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        times: &Bound<'py, PyAny>,
        dl_dout: &Bound<'py, PyAny>,
        max_dw_norm: Option<f64>,
        check_given_times: bool,
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
        };
        let (net, exec) = (&self.net, &*self.exec);
        let g = compute(py, || {
            net.validate_times("x", &x, net.n_in())?;
            core_backward(net, &x, &times, &dl, &opts, exec)
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
        self.net.layers.iter().map(|l| layer_params(py, l)).collect()
    }

    fn set_params(&mut self, layers: &Bound<'_, PyAny>) -> PyResult<()> {
        self.net = network_from_list(layers)?;
        Ok(())
    }

    fn copy(&self) -> Self {
        PyNetwork {
            net: self.net.clone(),
            exec: Arc::clone(&self.exec),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Trainer

/// The step report as a dict; `core_seconds` is the time spent in the core (without the
/// argument conversions), for measuring the bindings' overhead.
fn step_dict<'py>(py: Python<'py>, r: &StepReport, core_seconds: f64) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("core_seconds", core_seconds)?;
    d.set_item("loss", r.loss)?;
    d.set_item("correct", r.correct)?;
    d.set_item("batch", r.batch)?;
    d.set_item("accuracy", r.correct as f64 / r.batch.max(1) as f64)?;
    d.set_item("silent_samples", r.silent_samples)?;
    d.set_item("silent_fraction", r.silent_fraction.clone())?;
    d.set_item("bumped", r.bumped)?;
    d.set_item("invalid", r.invalid.clone())?;
    d.set_item("clipped", r.clipped.clone())?;
    Ok(d)
}

fn epoch_dict<'py>(py: Python<'py>, r: &EpochReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("loss", r.loss)?;
    d.set_item("accuracy", r.accuracy)?;
    d.set_item("samples", r.samples)?;
    d.set_item("bumps", r.bumps)?;
    d.set_item("silent_fraction", r.silent_fraction.clone())?;
    Ok(d)
}

/// A chip's weight and delay grid (see the stub and `delgrad::train::Grid`).
#[pyclass(module = "delgrad_rs._core", name = "Grid", frozen)]
pub struct PyGrid {
    grid: Grid,
}

#[pymethods]
impl PyGrid {
    #[new]
    #[pyo3(signature = (*, weight_scale, weight_max, delay_offset, delay_step, delay_min, delay_max, time_unit))]
    fn new(
        weight_scale: f64,
        weight_max: f64,
        delay_offset: f64,
        delay_step: f64,
        delay_min: f64,
        delay_max: f64,
        time_unit: f64,
    ) -> PyResult<Self> {
        let grid = Grid::new(
            weight_scale,
            weight_max,
            delay_offset,
            delay_step,
            delay_min,
            delay_max,
            time_unit,
        )
        .map_err(CoreError)?;
        Ok(PyGrid { grid })
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.grid)
    }
}

/// Adam training of a network with the reference stabilisers (see the stub).
#[pyclass(module = "delgrad_rs._core", name = "Trainer")]
pub struct PyTrainer {
    trainer: Trainer,
    exec: Arc<Executor>,
}

#[pymethods]
impl PyTrainer {
    #[new]
    #[pyo3(signature = (
        network, *, loss="mse", delta=0.2, xi=0.2, alpha=0.005, beta=1.0, silent_loss=100.0,
        lr_weights=0.01, lr_delays=0.003, step_size=20, gamma=0.95, adam_beta1=0.9, adam_beta2=0.999,
        adam_eps=1e-8, max_dw_norm=Some(0.2), bump=5e-4, bump_limits=None, delay_param="sigmoid",
        delay_shift=0.0, delay_scale=1.0, method="auto", threads=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        network: PyRef<'_, PyNetwork>,
        loss: &str,
        delta: f64,
        xi: f64,
        alpha: f64,
        beta: f64,
        silent_loss: f64,
        lr_weights: f64,
        lr_delays: f64,
        step_size: usize,
        gamma: f64,
        adam_beta1: f64,
        adam_beta2: f64,
        adam_eps: f64,
        max_dw_norm: Option<f64>,
        bump: f64,
        bump_limits: Option<Vec<f64>>,
        delay_param: &str,
        delay_shift: f64,
        delay_scale: f64,
        method: &str,
        threads: Option<i64>,
    ) -> PyResult<Self> {
        let n_layers = network.net.layers.len();
        let bump_limits = bump_limits.unwrap_or_else(|| {
            let mut v = vec![0.3; n_layers.saturating_sub(1)];
            v.push(0.0);
            v
        });
        if !(silent_loss.is_finite()) {
            return Err(value_err(
                "silent_loss",
                format!("expected a finite number, got {silent_loss}"),
            ));
        }
        if !(gamma.is_finite() && gamma > 0.0) {
            return Err(value_err("gamma", format!("expected a finite number > 0, got {gamma}")));
        }
        if step_size == 0 {
            return Err(value_err("step_size", "expected an integer >= 1"));
        }
        for (name, v) in [("adam_beta1", adam_beta1), ("adam_beta2", adam_beta2)] {
            if !(v.is_finite() && (0.0..1.0).contains(&v)) {
                return Err(value_err(name, format!("expected a number in [0, 1), got {v}")));
            }
        }
        if !(adam_eps.is_finite() && adam_eps > 0.0) {
            return Err(value_err(
                "adam_eps",
                format!("expected a finite number > 0, got {adam_eps}"),
            ));
        }
        if let Some(i) = bump_limits.iter().position(|v| !v.is_finite()) {
            return Err(value_err("bump_limits", format!("entry {i} is not finite")));
        }
        let config = TrainConfig {
            loss: parse_loss(loss, delta, xi, alpha, beta)?,
            silent_loss,
            lr_weights,
            lr_delays,
            schedule: StepLr { step_size, gamma },
            adam: AdamConfig {
                beta1: adam_beta1,
                beta2: adam_beta2,
                eps: adam_eps,
            },
            max_dw_norm,
            bump,
            bump_limits,
            delay_param: parse_delay_param(delay_param, delay_shift, delay_scale)?,
            method: parse_method(method)?,
        };
        let exec = match threads {
            Some(_) => make_executor(py, threads)?,
            None => Arc::clone(&network.exec),
        };
        let net = network.net.clone();
        let trainer = compute(py, || Trainer::new(net, config))?;
        Ok(PyTrainer { trainer, exec })
    }

    #[getter]
    fn threads(&self) -> usize {
        self.exec.threads()
    }

    fn network(&self) -> PyNetwork {
        PyNetwork {
            net: self.trainer.network().clone(),
            exec: Arc::clone(&self.exec),
        }
    }

    fn learning_rates(&self, epoch: usize) -> (f64, f64) {
        self.trainer.learning_rates(epoch)
    }

    fn step<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        epoch: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = matrix(x, "x")?;
        let y = indices(y, "y")?;
        let (tr, exec) = (&mut self.trainer, &*self.exec);
        let (r, secs) = compute(py, || {
            let start = Instant::now();
            tr.network().validate_times("x", &x, tr.network().n_in())?;
            let r = tr.step(&x, &y, epoch, exec)?;
            Ok((r, start.elapsed().as_secs_f64()))
        })?;
        step_dict(py, &r, secs)
    }

    #[pyo3(signature = (x, times, y, epoch, at=None))]
    fn step_from_times<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        times: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        epoch: usize,
        at: Option<PyRef<'py, PyNetwork>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = matrix(x, "x")?;
        let times = times_list(times, "times")?;
        let y = indices(y, "y")?;
        let at = at.map(|n| n.net.clone());
        let (tr, exec) = (&mut self.trainer, &*self.exec);
        let (r, secs) = compute(py, || {
            let start = Instant::now();
            // The core checks the given times (count, shapes, values) before using them.
            let net = tr.network();
            net.validate_times("x", &x, net.n_in())?;
            let r = match &at {
                Some(at) => tr.step_from_times_at(at, &x, &times, &y, epoch, exec)?,
                None => tr.step_from_times(&x, &times, &y, epoch, exec)?,
            };
            Ok((r, start.elapsed().as_secs_f64()))
        })?;
        step_dict(py, &r, secs)
    }

    fn quantised_network(
        &self,
        py: Python<'_>,
        like: PyRef<'_, PyNetwork>,
        grid: PyRef<'_, PyGrid>,
    ) -> PyResult<(PyNetwork, usize)> {
        let (tr, old, grid) = (&self.trainer, &like.net, &grid.grid);
        let (net, changed) = compute(py, || {
            let q = grid.quantise(tr.network());
            let changed = changed_entries(old, &q)?;
            Ok((q, changed))
        })?;
        let exec = Arc::clone(&like.exec);
        Ok((PyNetwork { net, exec }, changed))
    }

    #[pyo3(signature = (chip, groups, x, y, epoch, *, at=None, repeat=1, pattern=None, noise=None, seed=0, counter=0))]
    #[allow(clippy::too_many_arguments)]
    fn emulated_step<'py>(
        &mut self,
        py: Python<'py>,
        chip: PyRef<'py, PyNetwork>,
        groups: &Bound<'py, PyAny>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        epoch: usize,
        at: Option<PyRef<'py, PyNetwork>>,
        repeat: i64,
        pattern: Option<&Bound<'py, PyAny>>,
        noise: Option<&Bound<'py, PyAny>>,
        seed: i128,
        counter: i128,
    ) -> PyResult<Bound<'py, PyDict>> {
        let run = run_args(&chip.net, repeat, pattern, noise, seed, counter)?;
        let (groups, x, y) = (matrix(groups, "groups")?, matrix(x, "x")?, indices(y, "y")?);
        let (tr, exec) = (&mut self.trainer, &*self.exec);
        let (chip_net, chip_exec) = (&chip.net, &*chip.exec);
        let at = at.as_ref().map_or(chip_net, |a| &a.net);
        let emulation = emulation(&run);
        let ((run, step), secs) = compute(py, || {
            let start = Instant::now();
            let r = tr.emulated_step(chip_net, &emulation, &groups, at, &x, &y, epoch, chip_exec, exec)?;
            Ok((r, start.elapsed().as_secs_f64()))
        })?;
        let d = PyDict::new(py);
        d.set_item("dropped_events", run.dropped_events)?;
        d.set_item("stalled_from", run.stalled_from)?;
        match step {
            Some(r) => d.set_item("step", step_dict(py, &r, secs)?)?,
            None => d.set_item("step", py.None())?,
        }
        Ok(d)
    }

    #[pyo3(signature = (
        chip, groups, x, y, batch, epoch, grid, *, repeat=1, pattern=None, noise=None, seed=0, counter=0, max_retries=5
    ))]
    #[allow(clippy::too_many_arguments)]
    fn emulated_epoch<'py>(
        &mut self,
        py: Python<'py>,
        chip: PyRef<'py, PyNetwork>,
        groups: &Bound<'py, PyAny>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        batch: usize,
        epoch: usize,
        grid: PyRef<'py, PyGrid>,
        repeat: i64,
        pattern: Option<&Bound<'py, PyAny>>,
        noise: Option<&Bound<'py, PyAny>>,
        seed: i128,
        counter: i128,
        max_retries: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let run = run_args(&chip.net, repeat, pattern, noise, seed, counter)?;
        let (groups, x, y) = (matrix(groups, "groups")?, matrix(x, "x")?, indices(y, "y")?);
        let (tr, exec) = (&mut self.trainer, &*self.exec);
        let (chip_net, chip_exec, grid) = (&chip.net, &*chip.exec, &grid.grid);
        let emulation = emulation(&run);
        let r = compute(py, || {
            tr.emulated_epoch(
                chip_net,
                grid,
                &emulation,
                &groups,
                &x,
                &y,
                batch,
                epoch,
                max_retries,
                chip_exec,
                exec,
            )
        })?;
        let d = PyDict::new(py);
        let steps = r
            .steps
            .iter()
            .map(|step| step_dict(py, step, 0.0))
            .collect::<PyResult<Vec<_>>>()?;
        d.set_item("steps", steps)?;
        d.set_item("writes", r.writes())?;
        d.set_item("runs", r.runs())?;
        d.set_item("retries", r.retries)?;
        d.set_item("dropped_events", r.dropped_events)?;
        d.set_item("written", r.written)?;
        d.set_item("stalled", r.stalled)?;
        let exec = Arc::clone(&chip.exec);
        d.set_item("chip", PyNetwork { net: r.chip, exec })?;
        Ok(d)
    }

    fn train_epoch<'py>(
        &mut self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        order: &Bound<'py, PyAny>,
        batch: usize,
        epoch: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = matrix(x, "x")?;
        let y = indices(y, "y")?;
        let order = indices(order, "order")?;
        let (tr, exec) = (&mut self.trainer, &*self.exec);
        let r = compute(py, || {
            tr.network().validate_times("x", &x, tr.network().n_in())?;
            tr.train_epoch(&x, &y, &order, batch, epoch, exec)
        })?;
        epoch_dict(py, &r)
    }

    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = matrix(x, "x")?;
        let y = indices(y, "y")?;
        let (tr, exec) = (&self.trainer, &*self.exec);
        let r = compute(py, || {
            tr.network().validate_times("x", &x, tr.network().n_in())?;
            tr.evaluate(&x, &y, exec)
        })?;
        let d = PyDict::new(py);
        d.set_item("loss", r.loss)?;
        d.set_item("accuracy", r.accuracy)?;
        d.set_item("correct", r.correct)?;
        d.set_item("samples", r.samples)?;
        d.set_item("silent_samples", r.silent_samples)?;
        d.set_item("silent_fraction", r.silent_fraction)?;
        d.set_item("output_times", matrix_to_py(py, r.output_times)?)?;
        Ok(d)
    }

    fn state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let tensors = PyList::empty(py);
        for t in &self.trainer.tensors {
            let td = PyDict::new(py);
            td.set_item("layer", t.layer)?;
            td.set_item("kind", kind_name(t.kind))?;
            td.set_item("values", vec_to_py(py, t.values.clone()))?;
            td.set_item("m", vec_to_py(py, t.adam.m.clone()))?;
            td.set_item("v", vec_to_py(py, t.adam.v.clone()))?;
            td.set_item("t", t.adam.t)?;
            tensors.append(td)?;
        }
        d.set_item("tensors", tensors)?;
        d.set_item("bump", self.trainer.bump)?;
        d.set_item("last_bumped", self.trainer.last_bumped)?;
        Ok(d)
    }

    fn set_state(&mut self, py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = as_dict(state, "state")?;
        check_keys(d, &["tensors", "bump", "last_bumped"], "state")?;
        let get = |k: &str| -> PyResult<Bound<'_, PyAny>> {
            d.get_item(k)?
                .ok_or_else(|| option_err(&format!("state.{k}"), "missing (required)"))
        };
        let mut tensors = Vec::new();
        for (i, t) in as_list(&get("tensors")?, "state.tensors")?.iter().enumerate() {
            let prefix = format!("state.tensors[{i}]");
            let td = as_dict(t, &prefix)?;
            check_keys(td, &["layer", "kind", "values", "m", "v", "t"], &prefix)?;
            let item = |k: &str| -> PyResult<Bound<'_, PyAny>> {
                td.get_item(k)?
                    .ok_or_else(|| option_err(&format!("{prefix}.{k}"), "missing (required)"))
            };
            let kind_s: String = item("kind")?
                .extract()
                .map_err(|_| PyTypeError::new_err(format!("{prefix}.kind: expected a string")))?;
            let step: u64 = item("t")?
                .extract()
                .map_err(|_| PyTypeError::new_err(format!("{prefix}.t: expected an integer >= 0")))?;
            tensors.push(Tensor {
                layer: get_usize(td, "layer", &prefix, 0)?,
                kind: kind_from_name(&kind_s, &format!("{prefix}.kind"))?,
                values: vector(&item("values")?, &format!("{prefix}.values"))?,
                adam: Adam {
                    m: vector(&item("m")?, &format!("{prefix}.m"))?,
                    v: vector(&item("v")?, &format!("{prefix}.v"))?,
                    t: step,
                },
            });
        }
        let bump = scalar(&get("bump")?, "state.bump")?;
        let lb = get("last_bumped")?;
        let last_bumped: Option<usize> = if lb.is_none() {
            None
        } else {
            Some(
                lb.extract()
                    .map_err(|_| PyTypeError::new_err("state.last_bumped: expected an integer >= 0 or None"))?,
            )
        };
        let tr = &mut self.trainer;
        compute(py, || tr.set_tensors(tensors, bump, last_bumped))
    }
}

// ---------------------------------------------------------------------------------------------
// functions

#[pyfunction]
#[pyo3(signature = (n_in, layers, *, delay_param="sigmoid", delay_shift=0.0, delay_scale=1.0, seed=0, threads=None))]
#[allow(clippy::too_many_arguments)]
fn init_network(
    py: Python<'_>,
    n_in: usize,
    layers: &Bound<'_, PyAny>,
    delay_param: &str,
    delay_shift: f64,
    delay_scale: f64,
    seed: i64,
    threads: Option<i64>,
) -> PyResult<PyNetwork> {
    let param = parse_delay_param(delay_param, delay_shift, delay_scale)?;
    let seed = u32::try_from(seed).map_err(|_| value_err("seed", format!("expected 0 <= seed < 2**32, got {seed}")))?;
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
    let mut specs = Vec::new();
    for (l, o) in as_list(layers, "layers")?.iter().enumerate() {
        let prefix = format!("layers[{l}]");
        let d = as_dict(o, &prefix)?;
        check_keys(d, &SPEC_KEYS, &prefix)?;
        let size = get_usize(d, "size", &prefix, 0)?;
        if size == 0 {
            return Err(value_err(
                &format!("{prefix}.size"),
                "expected an integer >= 1 (required)",
            ));
        }
        let mut s = LayerSpec::new(size, 1.0, 1.0);
        s.tau_m = get_f64(d, "tau_m", &prefix, s.tau_m)?;
        s.tau_s = get_f64(d, "tau_s", &prefix, s.tau_s)?;
        s.theta = get_f64(d, "theta", &prefix, s.theta)?;
        s.weight_mean = get_f64(d, "weight_mean", &prefix, s.weight_mean)?;
        s.weight_std = get_f64(d, "weight_std", &prefix, s.weight_std)?;
        s.delay_group = get_usize(d, "delay_group", &prefix, 1)?;
        s.delay_init_mean = get_f64(d, "delay_init_mean", &prefix, s.delay_init_mean)?;
        s.delay_init_std = get_f64(d, "delay_init_std", &prefix, s.delay_init_std)?;
        if let Some(k) = opt(d.get_item("delay_kinds")?.as_ref()) {
            let arg = format!("{prefix}.delay_kinds");
            for item in as_list(k, &arg)? {
                let name: String = item
                    .extract()
                    .map_err(|_| PyTypeError::new_err(format!("{arg}: expected a list of strings")))?;
                let kind = DelayKind::from_name(&name).map_err(|e| {
                    CoreError(match e {
                        delgrad::Error::Option { message, .. } => delgrad::Error::option(&arg, message),
                        e => e,
                    })
                })?;
                if !s.delay_kinds.contains(&kind) {
                    s.delay_kinds.push(kind);
                }
            }
        }
        specs.push(s);
    }
    if n_in == 0 {
        return Err(value_err("n_in", "expected an integer >= 1"));
    }
    let exec = make_executor(py, threads)?;
    let net = compute(py, move || {
        let mut rng = RandomState::new(seed);
        delgrad::train::init_network(n_in, &specs, param, &mut rng)
    })?;
    Ok(PyNetwork { net, exec })
}

/// Inputs and labels of a data set.
type XyPair<'py> = (Bound<'py, PyArray2<f64>>, Bound<'py, PyArray1<i64>>);

#[pyfunction]
fn yin_yang<'py>(py: Python<'py>, split: &str) -> PyResult<XyPair<'py>> {
    let split = Split::from_name(split).map_err(CoreError)?;
    let ds = compute(py, move || Ok(core_yin_yang(split)))?;
    let y = int64_array(py, ds.y.iter().map(|&c| c as i64));
    Ok((matrix_to_py(py, ds.x)?, y))
}

#[pyfunction]
#[pyo3(signature = (x, t_early=0.15, t_late=2.0))]
fn encode_times<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    t_early: f64,
    t_late: f64,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let x = matrix(x, "x")?;
    let t = compute(py, || core_encode(&x, t_early, t_late))?;
    matrix_to_py(py, t)
}

#[pyfunction]
#[pyo3(signature = (out_times, labels, loss="mse", *, delta=0.2, xi=0.2, alpha=0.005, beta=1.0, silent_loss=100.0, strict=false))]
#[allow(clippy::too_many_arguments)]
fn loss_and_grad<'py>(
    py: Python<'py>,
    out_times: &Bound<'py, PyAny>,
    labels: &Bound<'py, PyAny>,
    loss: &str,
    delta: f64,
    xi: f64,
    alpha: f64,
    beta: f64,
    silent_loss: f64,
    strict: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let loss = parse_loss(loss, delta, xi, alpha, beta)?;
    let out = matrix(out_times, "out_times")?;
    let labels = indices(labels, "labels")?;
    if let Some(i) = out.as_slice().iter().position(|t| *t == f64::NEG_INFINITY) {
        return Err(value_err("out_times", format!("entry {i} is -inf")));
    }
    if !silent_loss.is_finite() {
        return Err(value_err(
            "silent_loss",
            format!("expected a finite number, got {silent_loss}"),
        ));
    }
    let r = compute(py, || core_evaluate(&loss, &out, &labels, silent_loss, strict))?;
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
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Releases the GIL and spins for `seconds` in Rust (for tests of GIL release).
#[pyfunction]
fn _busy_wait(py: Python<'_>, seconds: f64) -> PyResult<f64> {
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err(value_err(
            "seconds",
            format!("expected a finite number >= 0, got {seconds}"),
        ));
    }
    compute(py, move || {
        let start = std::time::Instant::now();
        let mut x = 0.0f64;
        while start.elapsed().as_secs_f64() < seconds {
            x = std::hint::black_box(x + 1.0);
        }
        Ok(x)
    })
}

// ---------------------------------------------------------------------------------------------
// hardware emulation

const NOISE_KEYS: [&str; 8] = [
    "theta_batch_std",
    "theta_sample_std",
    "jitter_std",
    "output_jitter_std",
    "time_step",
    "slot",
    "event_loss",
    "stall_prob",
];

fn noise_from_dict(d: Option<&Bound<'_, PyAny>>) -> PyResult<NoiseParams> {
    let mut n = NoiseParams::bss2();
    let Some(obj) = d.filter(|o| !o.is_none()) else {
        return Ok(n);
    };
    let d = as_dict(obj, "noise")?;
    check_keys(d, &NOISE_KEYS, "noise")?;
    let fields: [(&str, &mut f64); 8] = [
        ("theta_batch_std", &mut n.theta_batch_std),
        ("theta_sample_std", &mut n.theta_sample_std),
        ("jitter_std", &mut n.jitter_std),
        ("output_jitter_std", &mut n.output_jitter_std),
        ("time_step", &mut n.time_step),
        ("slot", &mut n.slot),
        ("event_loss", &mut n.event_loss),
        ("stall_prob", &mut n.stall_prob),
    ];
    for (key, field) in fields {
        *field = get_f64(d, key, "noise", *field)?;
    }
    n.validate().map_err(|e| {
        CoreError(match e {
            delgrad::Error::Value { arg, message } => delgrad::Error::value(format!("noise.{arg}"), message),
            e => e,
        })
    })?;
    Ok(n)
}

fn pattern_from_list(obj: &Bound<'_, PyAny>, net: &Network) -> PyResult<Vec<LayerPattern>> {
    let items = as_list(obj, "pattern")?;
    if items.len() != net.layers.len() {
        return Err(CoreError(delgrad::Error::shape(
            "pattern",
            format!("[{}] (one dict per layer)", net.layers.len()),
            format!("[{}]", items.len()),
        ))
        .into());
    }
    let keys = ["theta_offset", "tau_m", "tau_s", "gain_exc", "gain_inh"];
    items
        .iter()
        .zip(&net.layers)
        .enumerate()
        .map(|(l, (o, layer))| {
            let prefix = format!("pattern[{l}]");
            let d = as_dict(o, &prefix)?;
            check_keys(d, &keys, &prefix)?;
            let mut p = LayerPattern::ideal(layer);
            let fields: [(&str, &mut Vec<f64>); 5] = [
                ("theta_offset", &mut p.theta_offset),
                ("tau_m", &mut p.tau_m),
                ("tau_s", &mut p.tau_s),
                ("gain_exc", &mut p.gain_exc),
                ("gain_inh", &mut p.gain_inh),
            ];
            for (key, field) in fields {
                if let Some(v) = opt(d.get_item(key)?.as_ref()) {
                    *field = vector(v, &format!("{prefix}.{key}"))?;
                }
            }
            Ok(p)
        })
        .collect()
}

fn u64_arg(v: i128, arg: &str) -> PyResult<u64> {
    u64::try_from(v).map_err(|_| value_err(arg, format!("expected an integer in [0, 2**64), got {v}")))
}

/// A noisy run's arguments as the core takes them: input repetition, the fixed pattern of `net`
/// (None or Python `None`: none), noise parameters, noise seed and run counter.
type RunArgs = (usize, Option<Vec<LayerPattern>>, NoiseParams, u64, u64);

fn run_args(
    net: &Network,
    repeat: i64,
    pattern: Option<&Bound<'_, PyAny>>,
    noise: Option<&Bound<'_, PyAny>>,
    seed: i128,
    counter: i128,
) -> PyResult<RunArgs> {
    let repeat =
        usize::try_from(repeat).map_err(|_| value_err("repeat", format!("expected an integer >= 1, got {repeat}")))?;
    let pattern = match pattern.filter(|p| !p.is_none()) {
        Some(p) => Some(pattern_from_list(p, net)?),
        None => None,
    };
    let noise = noise_from_dict(noise)?;
    Ok((
        repeat,
        pattern,
        noise,
        u64_arg(seed, "seed")?,
        u64_arg(counter, "counter")?,
    ))
}

/// The run of [`run_args`] as the core takes it.
fn emulation(run: &RunArgs) -> Emulation<'_> {
    let (repeat, pattern, noise, seed, counter) = run;
    Emulation {
        repeat: *repeat,
        pattern: pattern.as_deref(),
        noise,
        seed: *seed,
        counter: *counter,
    }
}

#[pyfunction]
#[pyo3(signature = (network, x, *, repeat=1, pattern=None, noise=None, seed=0, counter=0))]
#[allow(clippy::too_many_arguments)]
fn hardware_forward<'py>(
    py: Python<'py>,
    network: PyRef<'py, PyNetwork>,
    x: &Bound<'py, PyAny>,
    repeat: i64,
    pattern: Option<&Bound<'py, PyAny>>,
    noise: Option<&Bound<'py, PyAny>>,
    seed: i128,
    counter: i128,
) -> PyResult<Bound<'py, PyDict>> {
    let net = &network.net;
    let (repeat, pattern, noise, seed, counter) = run_args(net, repeat, pattern, noise, seed, counter)?;
    let x = matrix(x, "x")?;
    let exec = &*network.exec;
    let run = compute(py, || {
        noisy_forward(net, &x, repeat, pattern.as_deref(), &noise, seed, counter, exec)
    })?;
    let d = PyDict::new(py);
    let times = run
        .times
        .into_iter()
        .map(|m| matrix_to_py(py, m))
        .collect::<PyResult<Vec<_>>>()?;
    d.set_item("times", times)?;
    d.set_item("dropped_events", run.dropped_events)?;
    d.set_item("stalled_from", run.stalled_from)?;
    Ok(d)
}

#[pyfunction]
#[pyo3(signature = (circuits, rows, *, seed, theta_offset_mean=0.13, theta_offset_std=0.08, tau_m_mismatch=0.0, tau_s_mismatch=0.0, gain_mismatch=0.0))]
#[allow(clippy::too_many_arguments)]
fn chip_pattern<'py>(
    py: Python<'py>,
    circuits: usize,
    rows: usize,
    seed: i128,
    theta_offset_mean: f64,
    theta_offset_std: f64,
    tau_m_mismatch: f64,
    tau_s_mismatch: f64,
    gain_mismatch: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let seed = u64_arg(seed, "seed")?;
    let params = PatternParams {
        theta_offset_mean,
        theta_offset_std,
        tau_m_mismatch,
        tau_s_mismatch,
        gain_mismatch,
    };
    let p = compute(py, move || ChipPattern::draw(circuits, rows, &params, seed))?;
    let d = PyDict::new(py);
    d.set_item("theta_offset", vec_to_py(py, p.theta_offset))?;
    d.set_item("tau_m_factor", vec_to_py(py, p.tau_m_factor))?;
    d.set_item("tau_s_factor", vec_to_py(py, p.tau_s_factor))?;
    d.set_item("row_gain", vec_to_py(py, p.row_gain))?;
    Ok(d)
}

/// The reference BSS-2 noise parameters (model units) as a dict.
#[pyfunction]
fn hardware_noise_defaults<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let n = NoiseParams::bss2();
    let d = PyDict::new(py);
    for (k, v) in [
        ("theta_batch_std", n.theta_batch_std),
        ("theta_sample_std", n.theta_sample_std),
        ("jitter_std", n.jitter_std),
        ("output_jitter_std", n.output_jitter_std),
        ("time_step", n.time_step),
        ("slot", n.slot),
        ("event_loss", n.event_loss),
        ("stall_prob", n.stall_prob),
    ] {
        d.set_item(k, v)?;
    }
    Ok(d)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let t = errors::types(py)?;
    m.add("DelgradError", t.base.bind(py))?;
    m.add("ShapeError", t.shape.bind(py))?;
    m.add("InvalidValueError", t.value.bind(py))?;
    m.add("OptionError", t.option.bind(py))?;
    m.add("DivergedError", t.diverged.bind(py))?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("T_EARLY", delgrad::dataset::T_EARLY)?;
    m.add("T_LATE", delgrad::dataset::T_LATE)?;
    m.add_class::<PyNetwork>()?;
    m.add_class::<PyTrainer>()?;
    m.add_class::<PyGrid>()?;
    m.add_function(wrap_pyfunction!(init_network, m)?)?;
    m.add_function(wrap_pyfunction!(yin_yang, m)?)?;
    m.add_function(wrap_pyfunction!(encode_times, m)?)?;
    m.add_function(wrap_pyfunction!(loss_and_grad, m)?)?;
    m.add_function(wrap_pyfunction!(default_threads, m)?)?;
    m.add_function(wrap_pyfunction!(hardware_forward, m)?)?;
    m.add_function(wrap_pyfunction!(chip_pattern, m)?)?;
    m.add_function(wrap_pyfunction!(hardware_noise_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(_busy_wait, m)?)?;
    Ok(())
}
