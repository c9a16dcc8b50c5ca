//! The weight and delay grid of a chip ([`Grid`]) and the entries a configuration rewrites
//! ([`changed_entries`], [`changed_in`]): the chip-side arithmetic that `delgrad_hw.bss2` calls.

use crate::error::{Error, Result};
use crate::matrix::Matrix;
use crate::network::Network;

/// The weight and delay grid of a chip: weights `clip(round_half_even(scale w), -max, max) / scale`;
/// delays `(n step + offset) / unit` with the setting `n = clip(round_half_even((d unit - offset) /
/// step), n_min, n_max)` (BrainScaleS-2: scale 30, max 63, offset 2 us, step 0.125 us, n 50..250,
/// unit 6 us). `delgrad_hw.bss2` quantises through it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    weight_scale: f64,
    weight_max: f64,
    delay_offset: f64,
    delay_step: f64,
    delay_min: f64,
    delay_max: f64,
    time_unit: f64,
}

impl Grid {
    /// A grid; every value must be finite, scales, step and unit > 0, `weight_max` >= 0 and
    /// `delay_min` <= `delay_max`.
    pub fn new(
        weight_scale: f64,
        weight_max: f64,
        delay_offset: f64,
        delay_step: f64,
        delay_min: f64,
        delay_max: f64,
        time_unit: f64,
    ) -> Result<Self> {
        // (name, value, lower bound, whether the bound itself is excluded); the offset may be
        // any finite number.
        for (name, v, low, strict) in [
            ("weight_scale", weight_scale, 0.0, true),
            ("weight_max", weight_max, 0.0, false),
            ("delay_offset", delay_offset, f64::NEG_INFINITY, true),
            ("delay_step", delay_step, 0.0, true),
            ("delay_min", delay_min, 0.0, false),
            ("delay_max", delay_max, 0.0, false),
            ("time_unit", time_unit, 0.0, true),
        ] {
            let ok = v.is_finite() && if strict { v > low } else { v >= low };
            if !ok {
                let want = match (low.is_finite(), strict) {
                    (false, _) => "a finite number".to_string(),
                    (true, true) => format!("a finite number > {low}"),
                    (true, false) => format!("a finite number >= {low}"),
                };
                return Err(Error::value(
                    format!("grid.{name}"),
                    format!("expected {want}, got {v}"),
                ));
            }
        }
        if delay_min > delay_max {
            return Err(Error::value(
                "grid.delay_min",
                format!("must be <= delay_max ({delay_max}), got {delay_min}"),
            ));
        }
        Ok(Grid {
            weight_scale,
            weight_max,
            delay_offset,
            delay_step,
            delay_min,
            delay_max,
            time_unit,
        })
    }

    /// The largest weight magnitude on the grid, `weight_max / weight_scale` (BrainScaleS-2:
    /// 63/30 = 2.1): beyond it a float weight quantises to the same chip weight.
    pub fn weight_limit(&self) -> f64 {
        self.weight_max / self.weight_scale
    }

    /// The weight on the grid.
    pub fn weight(&self, w: f64) -> f64 {
        (w * self.weight_scale)
            .round_ties_even()
            .max(-self.weight_max)
            .min(self.weight_max)
            / self.weight_scale
    }

    /// The delay setting nearest to the delay `d` (model units): `clip(round_half_even((d unit -
    /// offset) / step), n_min, n_max)`, an integral value.
    pub fn delay_setting(&self, d: f64) -> f64 {
        ((d * self.time_unit - self.delay_offset) / self.delay_step)
            .round_ties_even()
            .max(self.delay_min)
            .min(self.delay_max)
    }

    /// The delay on the grid (model units).
    pub fn delay(&self, d: f64) -> f64 {
        self.setting_delay(self.delay_setting(d))
    }

    /// The smallest and the largest delay on the grid (model units).
    pub fn delay_range(&self) -> (f64, f64) {
        (self.setting_delay(self.delay_min), self.setting_delay(self.delay_max))
    }

    /// The delay of setting `n` (model units): `(n step + offset) / unit`.
    fn setting_delay(&self, n: f64) -> f64 {
        (n * self.delay_step + self.delay_offset) / self.time_unit
    }

    /// The weights `w` (any shape, flattened) on the grid; an error naming `w` when one is not
    /// finite.
    pub fn weights(&self, w: &[f64]) -> Result<Vec<f64>> {
        finite(w, "w")?;
        Ok(w.iter().map(|&x| self.weight(x)).collect())
    }

    /// The delays `d` (model units; any shape, flattened) on the grid; an error naming `d` when
    /// one is not finite.
    pub fn delays(&self, d: &[f64]) -> Result<Vec<f64>> {
        finite(d, "d")?;
        Ok(d.iter().map(|&x| self.delay(x)).collect())
    }

    /// The delay settings of the delays `d` (model units; any shape, flattened); an error naming
    /// `d` when one is not finite.
    pub fn delay_settings(&self, d: &[f64]) -> Result<Vec<f64>> {
        finite(d, "d")?;
        Ok(d.iter().map(|&x| self.delay_setting(x)).collect())
    }

    /// `net` with every weight and delay on the grid (neurons unchanged).
    pub fn quantise(&self, net: &Network) -> Network {
        let mut q = net.clone();
        for layer in &mut q.layers {
            layer.w.as_mut_slice().iter_mut().for_each(|w| *w = self.weight(*w));
            let d = &mut layer.delays;
            let delays = [
                d.syn.as_mut().map(Matrix::as_mut_slice),
                d.axo.as_deref_mut(),
                d.den.as_deref_mut(),
            ];
            for v in delays.into_iter().flatten() {
                v.iter_mut().for_each(|x| *x = self.delay(*x));
            }
        }
        q
    }
}

/// The number of weights and delays in which two networks of the same layout and neuron
/// parameters differ (the entries a chip holding `old` rewrites for `new`); an error when the
/// layouts (sizes, delay kinds and groups) or the neuron parameters differ.
pub fn changed_entries(old: &Network, new: &Network) -> Result<usize> {
    let layout = |n: &Network| -> Vec<(usize, usize, usize, bool, bool, bool)> {
        n.layers
            .iter()
            .map(|l| {
                let d = &l.delays;
                (
                    l.n_out(),
                    l.n_in(),
                    d.group,
                    d.syn.is_some(),
                    d.axo.is_some(),
                    d.den.is_some(),
                )
            })
            .collect()
    };
    if layout(old) != layout(new) {
        return Err(Error::value(
            "network",
            "has another layout (sizes, delay kinds or groups) than the one on the chip",
        ));
    }
    if old
        .layers
        .iter()
        .zip(&new.layers)
        .any(|(a, b)| a.theta != b.theta || a.neuron != b.neuron)
    {
        return Err(Error::value(
            "network",
            "has other neuron parameters (thresholds, time constants) than the one on the chip",
        ));
    }
    let opt = |a: Option<&[f64]>, b: Option<&[f64]>| a.zip(b).map_or(0, |(a, b)| diff(a, b));
    Ok(old
        .layers
        .iter()
        .zip(&new.layers)
        .map(|(a, b)| {
            let (da, db) = (&a.delays, &b.delays);
            diff(a.w.as_slice(), b.w.as_slice())
                + opt(
                    da.syn.as_ref().map(Matrix::as_slice),
                    db.syn.as_ref().map(Matrix::as_slice),
                )
                + opt(da.axo.as_deref(), db.axo.as_deref())
                + opt(da.den.as_deref(), db.den.as_deref())
        })
        .sum())
}

/// An error naming `arg` when a value of `v` is not finite (the grid clips infinities and would
/// turn NaN into the lower bound).
fn finite(v: &[f64], arg: &str) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::value(
            arg,
            format!("expected finite values, got {} at flat index {i}", v[i]),
        )),
    }
}

/// The number of entries in which two arrays differ (the entries a chip holding `old` rewrites
/// for `new`); an error naming `new` when the shapes (row-major) differ.
pub fn changed_in(old_shape: &[usize], old: &[f64], new_shape: &[usize], new: &[f64]) -> Result<usize> {
    if old_shape != new_shape || old.len() != new.len() {
        return Err(Error::shape(
            "new",
            format!("{old_shape:?} (the shape of old)"),
            format!("{new_shape:?}"),
        ));
    }
    Ok(diff(old, new))
}

/// The number of positions at which `a` and `b` differ (NaN differs from everything).
fn diff(a: &[f64], b: &[f64]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}
