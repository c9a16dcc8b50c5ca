//! Python <-> core conversions. Arrays: anything `numpy.asarray` accepts with a float or integer
//! dtype, any memory layout (converted to contiguous float64); other dtypes are a `TypeError`,
//! a wrong number of dimensions a `ShapeError`, both naming the argument. Outputs: owned arrays
//! built from the core's buffers without a copy. Dicts and lists of options: unknown keys are an
//! `OptionError`, wrong types a `TypeError`, both naming `prefix.key`.

use delgrad::Matrix;
use numpy::ndarray::{Array1, Array2, ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyTuple};

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

/// A non-negative integer.
pub fn usize_arg(v: &Bound<'_, PyAny>, arg: &str) -> PyResult<usize> {
    let i: i64 = v
        .extract()
        .map_err(|_| PyTypeError::new_err(format!("{arg}: expected an integer, got {}", type_name(v))))?;
    usize::try_from(i).map_err(|_| value_err(arg, format!("expected an integer >= 0, got {i}")))
}

/// The non-negative integer under `key` of `d`, if present (and not None).
pub fn get_usize(d: &Bound<'_, PyDict>, key: &str, prefix: &str) -> PyResult<Option<usize>> {
    opt(d.get_item(key)?.as_ref())
        .map(|v| usize_arg(v, &format!("{prefix}.{key}")))
        .transpose()
}

/// A seed or run counter: an integer in [0, 2**64).
pub fn u64_arg(v: i128, arg: &str) -> PyResult<u64> {
    u64::try_from(v).map_err(|_| value_err(arg, format!("expected an integer in [0, 2**64), got {v}")))
}

/// A thread count: None or an integer >= 0 (0: one per core).
pub fn threads_arg(threads: Option<i64>) -> PyResult<usize> {
    match threads {
        None => Ok(0),
        Some(t) => {
            usize::try_from(t).map_err(|_| value_err("threads", format!("expected an integer >= 0 or None, got {t}")))
        }
    }
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
