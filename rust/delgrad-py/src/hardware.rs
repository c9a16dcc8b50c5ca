//! The emulated BrainScaleS-2 chip: `Grid`, `changed_entries`, `hardware_forward`, `chip_pattern`,
//! `hardware_noise_defaults`, and the arguments of a run shared with the trainer's emulated steps.

use delgrad::hardware::{
    ChipPattern, Emulation, Grid, LayerPattern, NoiseParams, PatternParams, changed_in, noisy_forward,
};
use delgrad::network::Network;
use numpy::PyArrayDyn;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::calls::work;
use crate::convert::{
    arg, array_to_py, as_dict, as_list, check_keys, f64_array, get_f64, matrices_to_py, matrix, opt, vec_to_py, vector,
};
use crate::errors::{CoreError, compute, compute_sized, within};
use crate::network::PyNetwork;

/// A chip's weight and delay grid (see the stub and `delgrad::hardware::Grid`).
#[pyclass(module = "delgrad_rs._core", name = "Grid", frozen)]
pub struct PyGrid {
    pub(crate) grid: Grid,
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

    fn weights<'py>(&self, py: Python<'py>, w: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let (shape, w) = f64_array(w, "w")?;
        let q = {
            let g = self.grid;
            compute(py, move || g.weights(&w))
        }?;
        array_to_py(py, &shape, q)
    }

    fn delays<'py>(&self, py: Python<'py>, d: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let (shape, d) = f64_array(d, "d")?;
        let q = {
            let g = self.grid;
            compute(py, move || g.delays(&d))
        }?;
        array_to_py(py, &shape, q)
    }

    fn delay_settings<'py>(&self, py: Python<'py>, d: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let (shape, d) = f64_array(d, "d")?;
        let n = {
            let g = self.grid;
            compute(py, move || g.delay_settings(&d))
        }?;
        array_to_py(py, &shape, n)
    }

    #[getter]
    fn delay_range(&self) -> (f64, f64) {
        self.grid.delay_range()
    }

    #[getter]
    fn weight_limit(&self) -> f64 {
        self.grid.weight_limit()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.grid)
    }
}

/// The number of entries in which the arrays `old` and `new` differ (see the stub).
#[pyfunction]
pub fn changed_entries(py: Python<'_>, old: &Bound<'_, PyAny>, new: &Bound<'_, PyAny>) -> PyResult<usize> {
    let (old_shape, old) = f64_array(old, "old")?;
    let (new_shape, new) = f64_array(new, "new")?;
    compute(py, || changed_in(&old_shape, &old, &new_shape, &new))
}

/// The noise parameters: the BrainScaleS-2 values with the entries of the dict `d` (None: none).
fn noise_from_dict(d: Option<&Bound<'_, PyAny>>) -> PyResult<NoiseParams> {
    let mut n = NoiseParams::bss2();
    let Some(obj) = opt(d) else {
        return Ok(n);
    };
    let d = as_dict(obj, "noise")?;
    check_keys(d, &NoiseParams::names(), "noise")?;
    for (key, field) in n.fields_mut() {
        if let Some(v) = get_f64(d, key, "noise")? {
            *field = v;
        }
    }
    within(n.validate(), "noise")?;
    Ok(n)
}

const PATTERN_KEYS: [&str; 5] = ["theta_offset", "tau_m", "tau_s", "gain_exc", "gain_inh"];

/// The placed fixed pattern of `net` from one dict per layer (absent keys: a perfect chip's).
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
    items
        .iter()
        .zip(&net.layers)
        .enumerate()
        .map(|(l, (o, layer))| {
            let prefix = format!("pattern[{l}]");
            let d = as_dict(o, &prefix)?;
            check_keys(d, &PATTERN_KEYS, &prefix)?;
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

/// The arguments of one emulated run besides the network and the inputs, as the core takes them.
pub struct RunArgs {
    repeat: usize,
    pattern: Option<Vec<LayerPattern>>,
    noise: NoiseParams,
    seed: u64,
    counter: u64,
}

impl RunArgs {
    /// Converts the Python arguments of a run of `net` (`pattern` or `noise` None: none given).
    pub fn new(
        net: &Network,
        repeat: usize,
        pattern: Option<&Bound<'_, PyAny>>,
        noise: Option<&Bound<'_, PyAny>>,
        seed: u64,
        counter: u64,
    ) -> PyResult<Self> {
        let pattern = opt(pattern).map(|p| pattern_from_list(p, net)).transpose()?;
        Ok(RunArgs {
            repeat,
            pattern,
            noise: noise_from_dict(noise)?,
            seed,
            counter,
        })
    }

    /// The run as the core's trainer takes it.
    pub fn emulation(&self) -> Emulation<'_> {
        Emulation {
            repeat: self.repeat,
            pattern: self.pattern.as_deref(),
            noise: &self.noise,
            seed: self.seed,
            counter: self.counter,
        }
    }
}

#[pyfunction]
#[pyo3(signature = (network, x, *, repeat=1, pattern=None, noise=None, seed=0, counter=0))]
#[allow(clippy::too_many_arguments)]
pub fn hardware_forward<'py>(
    py: Python<'py>,
    network: PyRef<'py, PyNetwork>,
    x: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = arg::repeat)] repeat: usize,
    pattern: Option<&Bound<'py, PyAny>>,
    noise: Option<&Bound<'py, PyAny>>,
    #[pyo3(from_py_with = arg::seed)] seed: u64,
    #[pyo3(from_py_with = arg::counter)] counter: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let net = network.net();
    let net = &*net;
    let a = RunArgs::new(net, repeat, pattern, noise, seed, counter)?;
    let x = matrix(x, "x")?;
    let exec = &*network.exec;
    let run = compute_sized(py, work(x.rows(), net).saturating_mul(a.repeat), || {
        noisy_forward(
            net,
            &x,
            a.repeat,
            a.pattern.as_deref(),
            &a.noise,
            a.seed,
            a.counter,
            exec,
        )
    })?;
    let d = PyDict::new(py);
    d.set_item("times", matrices_to_py(py, run.times)?)?;
    d.set_item("dropped_events", run.dropped_events)?;
    d.set_item("stalled_from", run.stalled_from)?;
    Ok(d)
}

#[pyfunction]
#[pyo3(signature = (
    circuits, rows, *, seed, theta_offset_mean=PatternParams::bss2().theta_offset_mean,
    theta_offset_std=PatternParams::bss2().theta_offset_std, tau_m_mismatch=PatternParams::bss2().tau_m_mismatch,
    tau_s_mismatch=PatternParams::bss2().tau_s_mismatch, gain_mismatch=PatternParams::bss2().gain_mismatch
))]
#[allow(clippy::too_many_arguments)]
pub fn chip_pattern<'py>(
    py: Python<'py>,
    #[pyo3(from_py_with = arg::circuits)] circuits: usize,
    #[pyo3(from_py_with = arg::rows)] rows: usize,
    #[pyo3(from_py_with = arg::seed)] seed: u64,
    #[pyo3(from_py_with = arg::theta_offset_mean)] theta_offset_mean: f64,
    #[pyo3(from_py_with = arg::theta_offset_std)] theta_offset_std: f64,
    #[pyo3(from_py_with = arg::tau_m_mismatch)] tau_m_mismatch: f64,
    #[pyo3(from_py_with = arg::tau_s_mismatch)] tau_s_mismatch: f64,
    #[pyo3(from_py_with = arg::gain_mismatch)] gain_mismatch: f64,
) -> PyResult<Bound<'py, PyDict>> {
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

/// The BrainScaleS-2 temporal-noise parameters (model units) by name.
#[pyfunction]
pub fn hardware_noise_defaults<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, v) in NoiseParams::bss2().values() {
        d.set_item(name, v)?;
    }
    Ok(d)
}
