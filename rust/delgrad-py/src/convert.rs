//! Python <-> core conversions. Arrays: anything `numpy.asarray` accepts with a float or integer
//! dtype, any memory layout (converted to contiguous float64); other dtypes are a `TypeError`,
//! a wrong number of dimensions a `ShapeError`, both naming the argument. Outputs: owned arrays
//! built from the core's buffers without a copy. Dicts and lists of options: unknown keys are an
//! `OptionError`, wrong types a `TypeError`, both naming `prefix.key`.

use delgrad::Matrix;
use numpy::ndarray::{Array1, Array2, ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyTuple};

use crate::errors::{CoreError, option_err, shape_err, value_err};

/// A contiguous float64 copy of `obj` and its shape.
pub fn f64_array(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<(Vec<usize>, Vec<f64>)> {
    // Fast paths (same result as the general one, without its numpy calls): a C-contiguous native
    // float64 array is copied directly, a Python float (or numpy.float64) is a 0-d array.
    if let Ok(arr) = obj.cast::<PyArrayDyn<f64>>() {
        // (as_slice also accepts Fortran order: its memory order is not the row-major one needed)
        let ro = arr.try_readonly().ok().filter(|ro| ro.is_c_contiguous());
        if let Some(out) = ro.and_then(|ro| ro.as_slice().ok().map(|d| (ro.shape().to_vec(), d.to_vec()))) {
            return Ok(out);
        }
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok((Vec::new(), vec![f.value()]));
    }
    let py = obj.py();
    let np = py.import("numpy")?;
    let arr = np
        .call_method1("asarray", (obj,))
        .map_err(|e| PyTypeError::new_err(format!("{arg}: expected an array of numbers, could not convert: {e}")))?;
    let dtype = arr.getattr("dtype")?;
    let kind: String = dtype.getattr("kind")?.extract()?;
    if !matches!(kind.as_str(), "f" | "i" | "u") {
        return Err(PyTypeError::new_err(format!(
            "{arg}: expected a float or integer array, got dtype {}",
            dtype.str()?
        )));
    }
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("dtype", np.getattr("float64")?)?;
    kwargs.set_item("order", "C")?;
    let arr = np.call_method("asarray", (arr,), Some(&kwargs))?;
    let arr = arr.cast_into::<PyArrayDyn<f64>>()?;
    let ro = arr.readonly();
    let shape = ro.shape().to_vec();
    let data = ro.as_slice()?.to_vec();
    Ok((shape, data))
}

/// An n-d array of shape `shape` (row-major) built from `data` without a copy.
pub fn array_to_py<'py>(py: Python<'py>, shape: &[usize], data: Vec<f64>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
    let a = ArrayD::from_shape_vec(IxDyn(shape), data)
        .map_err(|e| value_err("array", format!("internal shape error: {e}")))?;
    Ok(a.into_pyarray(py))
}

fn shape_str(shape: &[usize]) -> String {
    format!("{shape:?}")
}

/// A 2-d array as a core matrix.
pub fn matrix(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<Matrix> {
    let (shape, data) = f64_array(obj, arg)?;
    if shape.len() != 2 {
        return Err(shape_err(arg, "[rows, cols] (2-d)", shape_str(&shape)));
    }
    Ok(Matrix::from_vec(arg, shape[0], shape[1], data).map_err(CoreError)?)
}

/// A 1-d array as a vector.
pub fn vector(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<Vec<f64>> {
    let (shape, data) = f64_array(obj, arg)?;
    if shape.len() != 1 {
        return Err(shape_err(arg, "[n] (1-d)", shape_str(&shape)));
    }
    Ok(data)
}

/// A float scalar or a 1-d array of length `n` (a scalar is broadcast).
pub fn scalar_or_vector(obj: &Bound<'_, PyAny>, arg: &str, n: usize) -> PyResult<Vec<f64>> {
    let (shape, data) = f64_array(obj, arg)?;
    match shape.len() {
        0 => Ok(vec![data[0]; n]),
        1 => Ok(data),
        _ => Err(shape_err(
            arg,
            format!("[] or [{n}] (a number or one per neuron)"),
            shape_str(&shape),
        )),
    }
}

/// A float scalar.
pub fn scalar(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<f64> {
    let (shape, data) = f64_array(obj, arg)?;
    if !shape.is_empty() {
        return Err(shape_err(arg, "[] (a number)", shape_str(&shape)));
    }
    Ok(data[0])
}

/// A 1-d array of non-negative integers (labels, sample indices).
pub fn indices(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<Vec<usize>> {
    let py = obj.py();
    let np = py.import("numpy")?;
    let arr = np
        .call_method1("asarray", (obj,))
        .map_err(|e| PyTypeError::new_err(format!("{arg}: expected an array of integers, could not convert: {e}")))?;
    let dtype = arr.getattr("dtype")?;
    let kind: String = dtype.getattr("kind")?.extract()?;
    if !matches!(kind.as_str(), "i" | "u") {
        return Err(PyTypeError::new_err(format!(
            "{arg}: expected an integer array, got dtype {}",
            dtype.str()?
        )));
    }
    let ndim: usize = arr.getattr("ndim")?.extract()?;
    if ndim != 1 {
        let shape: Vec<usize> = arr.getattr("shape")?.extract()?;
        return Err(shape_err(arg, "[n] (1-d)", shape_str(&shape)));
    }
    // Unsigned arrays are read as uint64 (as int64, values >= 2**63 would turn negative).
    if kind == "u" {
        let arr = np.call_method1("ascontiguousarray", (arr, np.getattr("uint64")?))?;
        let arr = arr.cast_into::<numpy::PyArray1<u64>>()?;
        let ro = arr.readonly();
        return ro
            .as_slice()?
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                usize::try_from(x)
                    .map_err(|_| value_err(arg, format!("entry {i} is {x}, beyond this machine's indices")))
            })
            .collect();
    }
    let arr = np.call_method1("ascontiguousarray", (arr, np.getattr("int64")?))?;
    let arr = arr.cast_into::<numpy::PyArray1<i64>>()?;
    let ro = arr.readonly();
    let v = ro.as_slice()?;
    if let Some(i) = v.iter().position(|&x| x < 0) {
        return Err(value_err(arg, format!("must be >= 0; entry {i} is {}", v[i])));
    }
    Ok(v.iter().map(|&x| x as usize).collect())
}

/// A matrix as an owned `[rows, cols]` float64 array (no copy).
pub fn matrix_to_py<'py>(py: Python<'py>, m: Matrix) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (r, c) = (m.rows(), m.cols());
    let a = Array2::from_shape_vec((r, c), m.into_vec())
        .map_err(|e| value_err("matrix", format!("internal shape error: {e}")))?;
    Ok(a.into_pyarray(py))
}

/// A vector as an owned 1-d float64 array (no copy).
pub fn vec_to_py<'py>(py: Python<'py>, v: Vec<f64>) -> Bound<'py, PyArray1<f64>> {
    Array1::from_vec(v).into_pyarray(py)
}

/// Optional argument: `None` means absent.
pub fn opt<'a, 'py>(obj: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
    obj.filter(|o| !o.is_none())
}

/// The type name of `obj`, for messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// `obj` as a dict.
pub fn as_dict<'a, 'py>(obj: &'a Bound<'py, PyAny>, arg: &str) -> PyResult<&'a Bound<'py, PyDict>> {
    obj.cast::<PyDict>()
        .map_err(|_| PyTypeError::new_err(format!("{arg}: expected a dict, got {}", type_name(obj))))
}

/// The items of a list or tuple.
pub fn as_list<'py>(obj: &Bound<'py, PyAny>, arg: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(l) = obj.cast::<PyList>() {
        return Ok(l.iter().collect());
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return Ok(t.iter().collect());
    }
    Err(PyTypeError::new_err(format!(
        "{arg}: expected a list, got {}",
        type_name(obj)
    )))
}

/// Checks that `d` only has keys from `allowed`; the error names `prefix.key`.
pub fn check_keys(d: &Bound<'_, PyDict>, allowed: &[&str], prefix: &str) -> PyResult<()> {
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

/// The value of `key` in `d`, or an error naming `prefix.key` when it is missing.
pub fn required<'py>(d: &Bound<'py, PyDict>, key: &str, prefix: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?
        .ok_or_else(|| option_err(&format!("{prefix}.{key}"), "missing (required)"))
}

/// The number under `key` of `d`, if present (and not None).
pub fn get_f64(d: &Bound<'_, PyDict>, key: &str, prefix: &str) -> PyResult<Option<f64>> {
    opt(d.get_item(key)?.as_ref())
        .map(|v| scalar(v, &format!("{prefix}.{key}")))
        .transpose()
}

/// `obj` as an integer (a Python or numpy integer; not a bool or float), or a `TypeError` naming
/// `arg` and the expected `form`; integers beyond i128 are an `InvalidValueError`.
fn integer(v: &Bound<'_, PyAny>, arg: &str, form: &str) -> PyResult<i128> {
    let err = || PyTypeError::new_err(format!("{arg}: expected {form}, got {}", describe(v)));
    if v.is_instance_of::<PyBool>() || v.is_instance_of::<PyFloat>() {
        return Err(err());
    }
    match v.extract::<i128>() {
        Ok(i) => Ok(i),
        Err(e) if e.is_instance_of::<PyOverflowError>(v.py()) => {
            Err(value_err(arg, format!("expected {form}, got {}", describe(v))))
        }
        Err(_) => Err(err()),
    }
}

/// The type and value of `v` for messages (`float 1.5`, `str '1'`, `None`).
fn describe(v: &Bound<'_, PyAny>) -> String {
    if v.is_none() {
        return "None".into();
    }
    let repr = v.repr().map(|r| r.to_string()).unwrap_or_default();
    let repr = if repr.chars().count() > 40 {
        format!("{}...", repr.chars().take(40).collect::<String>())
    } else {
        repr
    };
    format!("{} {repr}", type_name(v))
}

/// A non-negative integer `arg`.
pub fn usize_arg(v: &Bound<'_, PyAny>, arg: &str) -> PyResult<usize> {
    to_usize(integer(v, arg, "an integer >= 0")?, arg)
}

/// `i` as a size or count, or an `InvalidValueError` naming `arg` (negative or beyond 64 bits).
fn to_usize(i: i128, arg: &str) -> PyResult<usize> {
    usize::try_from(i).map_err(|_| {
        let form = if i < 0 {
            "an integer >= 0".to_string()
        } else {
            format!("an integer <= {}", usize::MAX)
        };
        value_err(arg, format!("expected {form}, got {i}"))
    })
}

/// The non-negative integer under `key` of `d`, if present (and not None).
pub fn get_usize(d: &Bound<'_, PyDict>, key: &str, prefix: &str) -> PyResult<Option<usize>> {
    opt(d.get_item(key)?.as_ref())
        .map(|v| usize_arg(v, &format!("{prefix}.{key}")))
        .transpose()
}

/// A seed or run counter `arg`: an integer in [0, 2**64).
pub fn u64_arg(v: &Bound<'_, PyAny>, arg: &str) -> PyResult<u64> {
    const FORM: &str = "an integer in [0, 2**64)";
    let i = integer(v, arg, FORM)?;
    u64::try_from(i).map_err(|_| value_err(arg, format!("expected {FORM}, got {i}")))
}

/// A thread count `arg`: None (the default) or an integer >= 0 (0: one per core).
pub fn threads_arg(v: &Bound<'_, PyAny>, arg: &str) -> PyResult<Option<usize>> {
    const FORM: &str = "None or an integer >= 0";
    if v.is_none() {
        return Ok(None);
    }
    to_usize(integer(v, arg, FORM)?, arg).map(Some)
}

/// A real number `arg` (a Python or numpy number; not a bool or string).
pub fn f64_arg(v: &Bound<'_, PyAny>, arg: &str) -> PyResult<f64> {
    let err = || PyTypeError::new_err(format!("{arg}: expected a number, got {}", describe(v)));
    if v.is_instance_of::<PyBool>() {
        return Err(err());
    }
    v.extract::<f64>().map_err(|_| err())
}

/// None or a real number `arg`.
pub fn opt_f64_arg(v: &Bound<'_, PyAny>, arg: &str) -> PyResult<Option<f64>> {
    opt(Some(v)).map(|v| f64_arg(v, arg)).transpose()
}

/// None or a 1-d array of numbers `arg`.
pub fn opt_vector_arg(v: &Bound<'_, PyAny>, arg: &str) -> PyResult<Option<Vec<f64>>> {
    opt(Some(v)).map(|v| vector(v, arg)).transpose()
}

/// A bool `arg` (True or False; numbers and strings are not flags).
pub fn bool_arg(v: &Bound<'_, PyAny>, arg: &str) -> PyResult<bool> {
    v.cast::<PyBool>()
        .map(|b| b.is_true())
        .map_err(|_| PyTypeError::new_err(format!("{arg}: expected True or False, got {}", describe(v))))
}

/// A string `arg`.
pub fn str_arg(v: &Bound<'_, PyAny>, arg: &str) -> PyResult<String> {
    v.extract::<String>()
        .map_err(|_| PyTypeError::new_err(format!("{arg}: expected a string, got {}", describe(v))))
}

/// Extractors for `#[pyo3(from_py_with = arg::NAME)]`: one per argument name, each converting
/// with the typed extractor of its kind, so that every error names the argument and the
/// expected form (PyO3's own conversion errors name neither).
pub mod arg {
    use pyo3::prelude::*;

    macro_rules! named {
        ($convert:ident -> $ty:ty: $($name:ident),+ $(,)?) => {
            $(
                pub fn $name(v: &Bound<'_, PyAny>) -> PyResult<$ty> {
                    super::$convert(v, stringify!($name))
                }
            )+
        };
    }

    named!(usize_arg -> usize: epoch, batch, step_size, max_retries, n_in, n_layers, circuits, rows, repeat);
    named!(u64_arg -> u64: seed, counter);
    named!(threads_arg -> Option<usize>: threads);
    named!(f64_arg -> f64:
        delta, xi, alpha, beta, silent_loss, lr_weights, lr_delays, gamma, adam_beta1, adam_beta2, adam_eps,
        bump, delay_shift, delay_scale, theta_offset_mean, theta_offset_std, tau_m_mismatch, tau_s_mismatch,
        gain_mismatch, t_early, t_late);
    named!(opt_f64_arg -> Option<f64>: max_dw_norm);
    named!(opt_vector_arg -> Option<Vec<f64>>: bump_limits);
    named!(bool_arg -> bool: strict, check_given_times, clamp_float_weights);
    named!(str_arg -> String: split);
}

/// One matrix per layer.
pub fn times_list(obj: &Bound<'_, PyAny>, arg: &str) -> PyResult<Vec<Matrix>> {
    as_list(obj, arg)?
        .iter()
        .enumerate()
        .map(|(l, t)| matrix(t, &format!("{arg}[{l}]")))
        .collect()
}

/// Matrices as a list of owned arrays.
pub fn matrices_to_py<'py>(py: Python<'py>, m: Vec<Matrix>) -> PyResult<Vec<Bound<'py, PyArray2<f64>>>> {
    m.into_iter().map(|m| matrix_to_py(py, m)).collect()
}

/// Integers as an owned int64 array.
pub fn int64_array<'py>(py: Python<'py>, v: impl IntoIterator<Item = i64>) -> Bound<'py, PyArray1<i64>> {
    Array1::from_iter(v).into_pyarray(py)
}
