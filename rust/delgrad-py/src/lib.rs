//! `delgrad_rs._core`: thin PyO3 bindings of the delgrad core. Every entry point converts its
//! arguments (numpy -> `Matrix`), calls the core with the GIL released and returns owned numpy
//! arrays; the core checks every value and holds every default; core errors map to the exception
//! classes of [`errors`].
#![forbid(unsafe_code)]

mod calls;
mod convert;
mod dataset;
mod errors;
mod hardware;
mod network;
mod trainer;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let t = errors::types(py)?;
    m.add("DelgradError", t.base.bind(py))?;
    m.add("ShapeError", t.shape.bind(py))?;
    m.add("InvalidValueError", t.value.bind(py))?;
    m.add("OptionError", t.option.bind(py))?;
    m.add("DivergedError", t.diverged.bind(py))?;
    m.add("AllocationError", t.allocation.bind(py))?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("T_EARLY", delgrad::dataset::T_EARLY)?;
    m.add("T_LATE", delgrad::dataset::T_LATE)?;
    m.add_class::<network::PyNetwork>()?;
    m.add_class::<trainer::PyTrainer>()?;
    m.add_class::<hardware::PyGrid>()?;
    m.add_function(wrap_pyfunction!(network::init_network, m)?)?;
    m.add_function(wrap_pyfunction!(network::loss_and_grad, m)?)?;
    m.add_function(wrap_pyfunction!(network::default_threads, m)?)?;
    m.add_function(wrap_pyfunction!(dataset::yin_yang, m)?)?;
    m.add_function(wrap_pyfunction!(dataset::encode_times, m)?)?;
    m.add_function(wrap_pyfunction!(trainer::default_bump_limits, m)?)?;
    m.add_function(wrap_pyfunction!(trainer::epoch_totals, m)?)?;
    m.add_function(wrap_pyfunction!(hardware::changed_entries, m)?)?;
    m.add_function(wrap_pyfunction!(hardware::hardware_forward, m)?)?;
    m.add_function(wrap_pyfunction!(hardware::chip_pattern, m)?)?;
    m.add_function(wrap_pyfunction!(hardware::hardware_noise_defaults, m)?)?;
    Ok(())
}
