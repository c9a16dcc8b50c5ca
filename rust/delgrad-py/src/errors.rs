//! The one mapping from core errors (and panics) to the Python exceptions of `delgrad_rs._core`.
//!
//! `DelgradError(RuntimeError)` is the base; `ShapeError`, `InvalidValueError` and `OptionError`
//! also derive from `ValueError`, `DivergedError` from `RuntimeError`, `AllocationError` from
//! `MemoryError`. The classes are created
//! once per interpreter (multiple inheritance is not expressible with `create_exception!`).

use std::any::Any;

use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::calls;

const MODULE: &str = "delgrad_rs._core";

/// The exception classes of the extension.
pub struct ExcTypes {
    pub base: Py<PyType>,
    pub shape: Py<PyType>,
    pub value: Py<PyType>,
    pub option: Py<PyType>,
    pub diverged: Py<PyType>,
    pub allocation: Py<PyType>,
}

static TYPES: PyOnceLock<ExcTypes> = PyOnceLock::new();

fn new_type<'py>(py: Python<'py>, name: &str, bases: Vec<Bound<'py, PyType>>, doc: &str) -> PyResult<Py<PyType>> {
    let ns = PyDict::new(py);
    ns.set_item("__module__", MODULE)?;
    ns.set_item("__doc__", doc)?;
    let bases = PyTuple::new(py, bases)?;
    let ty = py.get_type::<PyType>().call1((name, bases, ns))?;
    Ok(ty.cast_into::<PyType>()?.unbind())
}

/// The exception classes (created on first use).
pub fn types(py: Python<'_>) -> PyResult<&ExcTypes> {
    TYPES.get_or_try_init(py, || {
        let base = new_type(
            py,
            "DelgradError",
            vec![py.get_type::<PyRuntimeError>()],
            "Base class of every error raised by delgrad_rs.",
        )?;
        let b = || base.bind(py).clone();
        let shape = new_type(
            py,
            "ShapeError",
            vec![b(), py.get_type::<PyValueError>()],
            "An array has the wrong shape or number of dimensions; the message names the argument.",
        )?;
        let value = new_type(
            py,
            "InvalidValueError",
            vec![b(), py.get_type::<PyValueError>()],
            "A value is outside its domain (NaN, -inf, negative delay, ...); the message names the argument.",
        )?;
        let option = new_type(
            py,
            "OptionError",
            vec![b(), py.get_type::<PyValueError>()],
            "An option or key is unknown or inconsistent; the message names it.",
        )?;
        let diverged = new_type(
            py,
            "DivergedError",
            vec![b(), py.get_type::<PyRuntimeError>()],
            "Training produced non-finite parameters, gradients or losses.",
        )?;
        let allocation = new_type(
            py,
            "AllocationError",
            vec![b(), py.get_type::<PyMemoryError>()],
            "A size (of a layer, a batch, a chip) needs more memory than can be had; the message names \
             the argument and the memory needed.",
        )?;
        Ok::<_, PyErr>(ExcTypes {
            base,
            shape,
            value,
            option,
            diverged,
            allocation,
        })
    })
}

/// Newtype around the core error so that it converts into a Python exception.
#[derive(Debug)]
pub struct CoreError(pub delgrad::Error);

impl From<delgrad::Error> for CoreError {
    fn from(e: delgrad::Error) -> Self {
        CoreError(e)
    }
}

impl From<CoreError> for PyErr {
    fn from(e: CoreError) -> PyErr {
        Python::attach(|py| {
            let t = match types(py) {
                Ok(t) => t,
                Err(err) => return err,
            };
            let ty = match &e.0 {
                delgrad::Error::Shape { .. } => &t.shape,
                delgrad::Error::Value { .. } => &t.value,
                delgrad::Error::Option { .. } => &t.option,
                delgrad::Error::Diverged(_) => &t.diverged,
                delgrad::Error::Memory { .. } => &t.allocation,
                // Only calls interrupted by a signal are cancelled, and they raise the signal
                // handler's exception instead (`calls::run`).
                delgrad::Error::Cancelled => return PyKeyboardInterrupt::new_err(e.0.to_string()),
            };
            PyErr::from_type(ty.bind(py).clone(), e.0.to_string())
        })
    }
}

/// The result of a core call whose arguments are fields of `within` (e.g. `layers[0]`): errors
/// name `within.field` (the one place that prefixes errors with an argument name).
pub fn within<T>(r: delgrad::Result<T>, within: &str) -> PyResult<T> {
    r.map_err(|e| CoreError(e.within(within)).into())
}

/// Shorthand: a `ShapeError` for `arg`.
pub fn shape_err(arg: &str, expected: impl std::fmt::Display, actual: impl std::fmt::Display) -> PyErr {
    CoreError(delgrad::Error::shape(arg, expected, actual)).into()
}

/// Shorthand: an `InvalidValueError` for `arg`.
pub fn value_err(arg: &str, message: impl Into<String>) -> PyErr {
    CoreError(delgrad::Error::value(arg, message)).into()
}

/// Shorthand: an `OptionError` for `arg`.
pub fn option_err(arg: &str, message: impl Into<String>) -> PyErr {
    CoreError(delgrad::Error::option(arg, message)).into()
}

fn panic_err(payload: Box<dyn Any + Send>) -> PyErr {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Python::attach(|py| match types(py) {
        Ok(t) => PyErr::from_type(
            t.base.bind(py).clone(),
            format!("internal error in the delgrad core (please report): {msg}"),
        ),
        Err(e) => e,
    })
}

/// Runs core work with the GIL released; core errors and panics become Python exceptions.
pub fn compute<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> delgrad::Result<T> + Send,
{
    compute_sized(py, 0, f)
}

/// [`compute`] for `work` of work ([`calls::work`]): a long call on the main thread is cancelled
/// by Ctrl-C, which raises KeyboardInterrupt ([`calls::run`]).
pub fn compute_sized<T, F>(py: Python<'_>, work: usize, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> delgrad::Result<T> + Send,
{
    match calls::run(py, work, f)? {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CoreError(e).into()),
        Err(payload) => Err(panic_err(payload)),
    }
}
