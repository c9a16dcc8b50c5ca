//! The Yin-Yang data set and the spike-time encoding of inputs.

use delgrad::dataset::{Split, T_EARLY, T_LATE, encode_times as encode, yin_yang as load};
use numpy::{PyArray1, PyArray2};
use pyo3::prelude::*;

use crate::convert::{arg, int64_array, matrix, matrix_to_py};
use crate::errors::{CoreError, compute};

/// Inputs and labels of a data set.
type XyPair<'py> = (Bound<'py, PyArray2<f64>>, Bound<'py, PyArray1<i64>>);

#[pyfunction]
pub fn yin_yang<'py>(py: Python<'py>, #[pyo3(from_py_with = arg::split)] split: String) -> PyResult<XyPair<'py>> {
    let split = Split::from_name(&split).map_err(CoreError)?;
    let ds = compute(py, move || Ok(load(split)))?;
    let y = int64_array(py, ds.y.iter().map(|&c| c as i64));
    Ok((matrix_to_py(py, ds.x)?, y))
}

#[pyfunction]
#[pyo3(signature = (x, t_early=T_EARLY, t_late=T_LATE))]
pub fn encode_times<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = arg::t_early)] t_early: f64,
    #[pyo3(from_py_with = arg::t_late)] t_late: f64,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let x = matrix(x, "x")?;
    let t = compute(py, || encode(&x, t_early, t_late))?;
    matrix_to_py(py, t)
}
