//! A dense row-major `[rows, cols]` matrix of `f64`: the one array type of the core
//! (batches of spike times, weights, gradients). Kept minimal so that bindings can
//! hand its buffer to numpy without a copy.

use crate::alloc;
use crate::error::{Error, Result};

/// Dense row-major matrix `[rows, cols]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// Wraps `data` (row-major) as `[rows, cols]`; `arg` names it in the error.
    pub fn from_vec(arg: &str, rows: usize, cols: usize, data: Vec<f64>) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            let values = rows
                .checked_mul(cols)
                .map_or_else(|| "more than 2**64".into(), |n| n.to_string());
            return Err(Error::shape(
                arg,
                format!("[{rows}, {cols}] ({values} values)"),
                format!("{} values", data.len()),
            ));
        }
        Ok(Matrix { rows, cols, data })
    }

    /// Builds a matrix from rows of equal length.
    pub fn from_rows(arg: &str, rows: &[Vec<f64>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        if let Some((r, row)) = rows.iter().enumerate().find(|(_, row)| row.len() != cols) {
            return Err(Error::shape(
                format!("{arg}[{r}]"),
                format!("[{cols}]"),
                format!("[{}]", row.len()),
            ));
        }
        Ok(Matrix {
            rows: rows.len(),
            cols,
            data: rows.concat(),
        })
    }

    /// `[rows, cols]` filled with `value`; an [`Error::Memory`] naming `arg` (the argument
    /// that sets the size) when it cannot be allocated.
    pub fn filled(arg: &str, rows: usize, cols: usize, value: f64) -> Result<Self> {
        let n = alloc::count(arg, "a matrix", &[rows, cols])?;
        let data = alloc::filled(arg, &format!("a [{rows}, {cols}] matrix"), n, value)?;
        Ok(Matrix { rows, cols, data })
    }

    /// `[rows, cols]` of zeros (fallible as [`Matrix::filled`]).
    pub fn zeros(arg: &str, rows: usize, cols: usize) -> Result<Self> {
        Self::filled(arg, rows, cols, 0.0)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> &[f64] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// Row `r`, mutable.
    pub fn row_mut(&mut self, r: usize) -> &mut [f64] {
        &mut self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// Element `[r, c]`.
    pub fn get(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// All values, row-major, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        &mut self.data
    }

    /// The buffer, row-major.
    pub fn into_vec(self) -> Vec<f64> {
        self.data
    }

    /// Rows as vectors (for tests and serialisation).
    pub fn to_rows(&self) -> Vec<Vec<f64>> {
        (0..self.rows).map(|r| self.row(r).to_vec()).collect()
    }

    /// Requires the shape `[rows, cols]`; `arg` names the matrix.
    pub fn expect_shape(&self, arg: &str, rows: usize, cols: usize) -> Result<()> {
        if self.rows != rows || self.cols != cols {
            return Err(Error::shape(
                arg,
                format!("[{rows}, {cols}]"),
                format!("[{}, {}]", self.rows, self.cols),
            ));
        }
        Ok(())
    }
}
