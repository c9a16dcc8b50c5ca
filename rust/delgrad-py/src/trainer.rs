//! `Trainer`: the core's trainer with its executor; steps, epochs (in software and on an emulated
//! chip), evaluation and the state of a checkpoint.

use std::sync::{Arc, Mutex};

use delgrad::delay::DelayParam;
use delgrad::gradient::GradientSlope;
use delgrad::hardware::{GradientWeights, HostRecipe, changed_entries};
use delgrad::loss::{Loss, SILENT_LOSS, TieRule};
use delgrad::network::Network;
use delgrad::optim::{Adam, AdamConfig, StepLr};
use delgrad::parallel::Executor;
use delgrad::train::{EpochReport, StepReport, Tensor, TensorKind, TrainConfig, Trainer};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::calls::{LONG, lock, synapses};
use crate::convert::{
    arg, as_dict, as_list, check_keys, indices, matrix, matrix_to_py, required, scalar, times_list, usize_arg,
    vec_to_py, vector,
};
use crate::errors::{CoreError, compute, compute_sized, within};
use crate::hardware::{PyGrid, RunArgs};
use crate::network::{PyNetwork, parse_method};

/// The step report as a dict.
fn step_dict<'py>(py: Python<'py>, r: &StepReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("loss", r.loss)?;
    d.set_item("correct", r.correct)?;
    d.set_item("batch", r.batch)?;
    d.set_item("accuracy", r.accuracy())?;
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

const STATE_KEYS: [&str; 3] = ["tensors", "bump", "last_bumped"];
const TENSOR_KEYS: [&str; 6] = ["layer", "kind", "values", "m", "v", "t"];

/// One trained tensor of a `state()` snapshot.
fn tensor_from_dict(obj: &Bound<'_, PyAny>, i: usize) -> PyResult<Tensor> {
    let prefix = format!("state.tensors[{i}]");
    let td = as_dict(obj, &prefix)?;
    check_keys(td, &TENSOR_KEYS, &prefix)?;
    let item = |k: &str| required(td, k, &prefix);
    let arg = |k: &str| format!("{prefix}.{k}");
    let kind: String = item("kind")?
        .extract()
        .map_err(|_| PyTypeError::new_err(format!("{}: expected a string", arg("kind"))))?;
    let step: u64 = item("t")?
        .extract()
        .map_err(|_| PyTypeError::new_err(format!("{}: expected an integer >= 0", arg("t"))))?;
    Ok(Tensor {
        layer: usize_arg(&item("layer")?, &arg("layer"))?,
        kind: within(TensorKind::from_name(&kind), &prefix)?,
        values: vector(&item("values")?, &arg("values"))?,
        adam: Adam {
            m: vector(&item("m")?, &arg("m"))?,
            v: vector(&item("v")?, &arg("v"))?,
            t: step,
        },
    })
}

/// Adam training of a network with the reference stabilisers (see the stub).
///
/// Python threads sharing a trainer take turns: each call holds the trainer's lock while it runs
/// (waited for with the GIL released, see [`lock`]).
#[pyclass(module = "delgrad_rs._core", name = "Trainer", frozen)]
pub struct PyTrainer {
    trainer: Mutex<Trainer>,
    exec: Arc<Executor>,
    /// The network's synapses (the work of a call is samples x synapses).
    synapses: usize,
}

impl PyTrainer {
    /// `f` on the trainer, holding its lock, with the GIL released: a core call on `samples`
    /// samples, or one that waits for another thread's (both can be interrupted, see `calls`).
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        samples: usize,
        f: impl FnOnce(&mut Trainer) -> delgrad::Result<T> + Send,
    ) -> PyResult<T> {
        let tr = &self.trainer;
        let busy = tr.try_lock().is_err();
        let work = if busy {
            LONG
        } else {
            samples.saturating_mul(self.synapses)
        };
        compute_sized(py, work, || f(&mut *lock(tr)?))
    }
}

#[pymethods]
impl PyTrainer {
    // The defaults are the core's (`TrainConfig::default()`, the reference losses and the sigmoid
    // delay parametrisation); the core checks every value.
    #[new]
    #[pyo3(signature = (
        network, *, loss="mse", delta=Loss::MSE_DELTA, xi=Loss::CE_XI, alpha=Loss::CE_ALPHA, beta=Loss::CE_BETA,
        silent_loss=SILENT_LOSS, tie_rule="wrong", lr_weights=TrainConfig::default().lr_weights,
        lr_delays=TrainConfig::default().lr_delays, step_size=StepLr::default().step_size,
        gamma=StepLr::default().gamma, adam_beta1=AdamConfig::default().beta1,
        adam_beta2=AdamConfig::default().beta2, adam_eps=AdamConfig::default().eps,
        max_dw_norm=TrainConfig::default().max_dw_norm, bump=TrainConfig::default().bump, bump_limits=None,
        delay_param="sigmoid", delay_shift=DelayParam::SIGMOID_SHIFT, delay_scale=DelayParam::SIGMOID_SCALE,
        method="auto", gradient_slope="measured", threads=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        network: PyRef<'_, PyNetwork>,
        loss: &str,
        #[pyo3(from_py_with = arg::delta)] delta: f64,
        #[pyo3(from_py_with = arg::xi)] xi: f64,
        #[pyo3(from_py_with = arg::alpha)] alpha: f64,
        #[pyo3(from_py_with = arg::beta)] beta: f64,
        #[pyo3(from_py_with = arg::silent_loss)] silent_loss: f64,
        tie_rule: &str,
        #[pyo3(from_py_with = arg::lr_weights)] lr_weights: f64,
        #[pyo3(from_py_with = arg::lr_delays)] lr_delays: f64,
        #[pyo3(from_py_with = arg::step_size)] step_size: usize,
        #[pyo3(from_py_with = arg::gamma)] gamma: f64,
        #[pyo3(from_py_with = arg::adam_beta1)] adam_beta1: f64,
        #[pyo3(from_py_with = arg::adam_beta2)] adam_beta2: f64,
        #[pyo3(from_py_with = arg::adam_eps)] adam_eps: f64,
        #[pyo3(from_py_with = arg::max_dw_norm)] max_dw_norm: Option<f64>,
        #[pyo3(from_py_with = arg::bump)] bump: f64,
        #[pyo3(from_py_with = arg::bump_limits)] bump_limits: Option<Vec<f64>>,
        delay_param: &str,
        #[pyo3(from_py_with = arg::delay_shift)] delay_shift: f64,
        #[pyo3(from_py_with = arg::delay_scale)] delay_scale: f64,
        method: &str,
        gradient_slope: &str,
        #[pyo3(from_py_with = arg::threads)] threads: Option<usize>,
    ) -> PyResult<Self> {
        let net = network.net();
        let n_layers = net.layers.len();
        let config = TrainConfig {
            loss: Loss::from_name(loss, delta, xi, alpha, beta).map_err(CoreError)?,
            silent_loss,
            tie_rule: TieRule::from_name(tie_rule).map_err(CoreError)?,
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
            bump_limits: bump_limits.unwrap_or_else(|| TrainConfig::default_bump_limits(n_layers)),
            delay_param: DelayParam::from_name(delay_param, delay_shift, delay_scale).map_err(CoreError)?,
            method: parse_method(method)?,
            gradient_slope: GradientSlope::from_name(gradient_slope).map_err(CoreError)?,
        };
        let exec = network.executor(py, threads)?;
        let (net, synapses) = (Network::clone(&net), synapses(&net));
        let trainer = Mutex::new(compute(py, || Trainer::new(net, config))?);
        Ok(PyTrainer {
            trainer,
            exec,
            synapses,
        })
    }

    #[getter]
    fn threads(&self) -> usize {
        self.exec.threads()
    }

    fn network(&self, py: Python<'_>) -> PyResult<PyNetwork> {
        let net = self.with(py, 0, |tr| Ok(tr.network().clone()))?;
        Ok(PyNetwork::with_executor(net, Arc::clone(&self.exec)))
    }

    fn learning_rates(&self, py: Python<'_>, #[pyo3(from_py_with = arg::epoch)] epoch: usize) -> PyResult<(f64, f64)> {
        self.with(py, 0, |tr| Ok(tr.learning_rates(epoch)))
    }

    fn step<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        #[pyo3(from_py_with = arg::epoch)] epoch: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = matrix(x, "x")?;
        let y = indices(y, "y")?;
        let exec = &*self.exec;
        let r = self.with(py, x.rows(), |tr| tr.step(&x, &y, epoch, exec))?;
        step_dict(py, &r)
    }

    #[pyo3(signature = (x, times, y, epoch, at=None))]
    fn step_from_times<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        times: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        #[pyo3(from_py_with = arg::epoch)] epoch: usize,
        at: Option<PyRef<'py, PyNetwork>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = matrix(x, "x")?;
        let times = times_list(times, "times")?;
        let y = indices(y, "y")?;
        let at = at.map(|n| n.net());
        let at = at.as_deref();
        let exec = &*self.exec;
        let r = self.with(py, x.rows(), |tr| match at {
            Some(at) => tr.step_from_times_at(at, &x, &times, &y, epoch, exec),
            None => tr.step_from_times(&x, &times, &y, epoch, exec),
        })?;
        step_dict(py, &r)
    }

    fn quantised_network(
        &self,
        py: Python<'_>,
        like: PyRef<'_, PyNetwork>,
        grid: PyRef<'_, PyGrid>,
    ) -> PyResult<(PyNetwork, usize)> {
        let old = like.net();
        let (old, grid) = (&*old, &grid.grid);
        let (net, changed) = self.with(py, 0, |tr| {
            let q = grid.quantise(tr.network());
            let changed = changed_entries(old, &q)?;
            Ok((q, changed))
        })?;
        let exec = Arc::clone(&like.exec);
        Ok((PyNetwork::with_executor(net, exec), changed))
    }

    #[pyo3(signature = (chip, groups, x, y, epoch, *, at=None, repeat=1, pattern=None, noise=None, seed=0, counter=0))]
    #[allow(clippy::too_many_arguments)]
    fn emulated_step<'py>(
        &self,
        py: Python<'py>,
        chip: PyRef<'py, PyNetwork>,
        groups: &Bound<'py, PyAny>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        #[pyo3(from_py_with = arg::epoch)] epoch: usize,
        at: Option<PyRef<'py, PyNetwork>>,
        #[pyo3(from_py_with = arg::repeat)] repeat: usize,
        pattern: Option<&Bound<'py, PyAny>>,
        noise: Option<&Bound<'py, PyAny>>,
        #[pyo3(from_py_with = arg::seed)] seed: u64,
        #[pyo3(from_py_with = arg::counter)] counter: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let chip_net = chip.net();
        let run = RunArgs::new(&chip_net, repeat, pattern, noise, seed, counter)?;
        let (groups, x, y) = (matrix(groups, "groups")?, matrix(x, "x")?, indices(y, "y")?);
        let exec = &*self.exec;
        let (chip_net, chip_exec) = (&*chip_net, &*chip.exec);
        let at = at.map(|a| a.net());
        let at = at.as_deref().unwrap_or(chip_net);
        let emulation = run.emulation();
        let (run, step) = self.with(py, x.rows(), |tr| {
            tr.emulated_step(chip_net, &emulation, &groups, at, &x, &y, epoch, chip_exec, exec)
        })?;
        let d = PyDict::new(py);
        d.set_item("dropped_events", run.dropped_events)?;
        d.set_item("stalled_from", run.stalled_from)?;
        d.set_item("step", step.map(|r| step_dict(py, &r)).transpose()?)?;
        Ok(d)
    }

    #[pyo3(signature = (
        chip, groups, x, y, batch, epoch, grid, *, repeat=1, pattern=None, noise=None, seed=0, counter=0, max_retries=5,
        gradient_weights="quantised", clamp_float_weights=false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn emulated_epoch<'py>(
        &self,
        py: Python<'py>,
        chip: PyRef<'py, PyNetwork>,
        groups: &Bound<'py, PyAny>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        #[pyo3(from_py_with = arg::batch)] batch: usize,
        #[pyo3(from_py_with = arg::epoch)] epoch: usize,
        grid: PyRef<'py, PyGrid>,
        #[pyo3(from_py_with = arg::repeat)] repeat: usize,
        pattern: Option<&Bound<'py, PyAny>>,
        noise: Option<&Bound<'py, PyAny>>,
        #[pyo3(from_py_with = arg::seed)] seed: u64,
        #[pyo3(from_py_with = arg::counter)] counter: u64,
        #[pyo3(from_py_with = arg::max_retries)] max_retries: usize,
        gradient_weights: &str,
        #[pyo3(from_py_with = arg::clamp_float_weights)] clamp_float_weights: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let chip_net = chip.net();
        let run = RunArgs::new(&chip_net, repeat, pattern, noise, seed, counter)?;
        let recipe = HostRecipe {
            gradient_weights: GradientWeights::from_name(gradient_weights).map_err(CoreError)?,
            clamp_float_weights,
        };
        let (groups, x, y) = (matrix(groups, "groups")?, matrix(x, "x")?, indices(y, "y")?);
        let exec = &*self.exec;
        let (chip_net, chip_exec, grid) = (&*chip_net, &*chip.exec, &grid.grid);
        let emulation = run.emulation();
        let r = self.with(py, x.rows(), |tr| {
            tr.emulated_epoch(
                chip_net,
                grid,
                &emulation,
                &recipe,
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
            .map(|step| step_dict(py, step))
            .collect::<PyResult<Vec<_>>>()?;
        d.set_item("steps", steps)?;
        d.set_item("writes", r.writes())?;
        d.set_item("runs", r.runs())?;
        d.set_item("retries", r.retries)?;
        d.set_item("dropped_events", r.dropped_events)?;
        d.set_item("written", r.written)?;
        d.set_item("stalled", r.stalled)?;
        let exec = Arc::clone(&chip.exec);
        d.set_item("chip", PyNetwork::with_executor(r.chip, exec))?;
        Ok(d)
    }

    fn clamp_weights(&self, py: Python<'_>, grid: PyRef<'_, PyGrid>) -> PyResult<()> {
        let limit = grid.grid.weight_limit();
        self.with(py, 0, |tr| tr.clamp_weights(limit))
    }

    fn train_epoch<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        y: &Bound<'py, PyAny>,
        order: &Bound<'py, PyAny>,
        #[pyo3(from_py_with = arg::batch)] batch: usize,
        #[pyo3(from_py_with = arg::epoch)] epoch: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = matrix(x, "x")?;
        let y = indices(y, "y")?;
        let order = indices(order, "order")?;
        let exec = &*self.exec;
        let r = self.with(py, x.rows(), |tr| tr.train_epoch(&x, &y, &order, batch, epoch, exec))?;
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
        let exec = &*self.exec;
        let r = self.with(py, x.rows(), |tr| tr.evaluate(&x, &y, exec))?;
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
        let (all, bump, last_bumped) = self.with(py, 0, |tr| Ok((tr.tensors.clone(), tr.bump, tr.last_bumped)))?;
        let d = PyDict::new(py);
        let tensors = PyList::empty(py);
        for t in all {
            let td = PyDict::new(py);
            td.set_item("layer", t.layer)?;
            td.set_item("kind", t.kind.name())?;
            td.set_item("values", vec_to_py(py, t.values))?;
            td.set_item("m", vec_to_py(py, t.adam.m))?;
            td.set_item("v", vec_to_py(py, t.adam.v))?;
            td.set_item("t", t.adam.t)?;
            tensors.append(td)?;
        }
        d.set_item("tensors", tensors)?;
        d.set_item("bump", bump)?;
        d.set_item("last_bumped", last_bumped)?;
        Ok(d)
    }

    fn set_state(&self, py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = as_dict(state, "state")?;
        check_keys(d, &STATE_KEYS, "state")?;
        let tensors = as_list(&required(d, "tensors", "state")?, "state.tensors")?
            .iter()
            .enumerate()
            .map(|(i, t)| tensor_from_dict(t, i))
            .collect::<PyResult<Vec<_>>>()?;
        let bump = scalar(&required(d, "bump", "state")?, "state.bump")?;
        let last_bumped: Option<usize> = required(d, "last_bumped", "state")?
            .extract()
            .map_err(|_| PyTypeError::new_err("state.last_bumped: expected an integer >= 0 or None"))?;
        self.with(py, 0, |tr| tr.set_tensors(tensors, bump, last_bumped))
    }
}

/// One step report of a list given back by Python (`epoch_totals`).
fn step_from_dict(obj: &Bound<'_, PyAny>, i: usize) -> PyResult<StepReport> {
    let prefix = format!("steps[{i}]");
    let d = as_dict(obj, &prefix)?;
    let arg = |k: &str| format!("{prefix}.{k}");
    let bumped = required(d, "bumped", &prefix)?;
    Ok(StepReport {
        loss: scalar(&required(d, "loss", &prefix)?, &arg("loss"))?,
        correct: usize_arg(&required(d, "correct", &prefix)?, &arg("correct"))?,
        batch: usize_arg(&required(d, "batch", &prefix)?, &arg("batch"))?,
        silent_samples: 0,
        silent_fraction: vector(&required(d, "silent_fraction", &prefix)?, &arg("silent_fraction"))?,
        bumped: if bumped.is_none() {
            None
        } else {
            Some(usize_arg(&bumped, &arg("bumped"))?)
        },
        invalid: Vec::new(),
        clipped: Vec::new(),
    })
}

/// The totals of an epoch's step reports (`Trainer.step`, `Trainer.step_from_times`), as
/// `Trainer.train_epoch` reports them.
#[pyfunction]
pub fn epoch_totals<'py>(py: Python<'py>, steps: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    let steps = as_list(steps, "steps")?
        .iter()
        .enumerate()
        .map(|(i, s)| step_from_dict(s, i))
        .collect::<PyResult<Vec<_>>>()?;
    epoch_dict(py, &EpochReport::from_steps(&steps))
}

/// The reference bump limits of a network of `n_layers` layers (the trainer's `bump_limits=None`).
#[pyfunction]
pub fn default_bump_limits(#[pyo3(from_py_with = arg::n_layers)] n_layers: usize) -> Vec<f64> {
    TrainConfig::default_bump_limits(n_layers)
}
