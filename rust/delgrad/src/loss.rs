//! Losses on output spike times, their gradients dL/dt, and classification by earliest spike.

use crate::error::{Error, Result};
use crate::matrix::Matrix;

/// A per-sample loss on output first-spike times t with label c.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Loss {
    /// Shift-invariant MSE: L = 1/2 sum_{k != c} (t_k - t_c - delta)^2.
    Mse {
        /// Target lead of the label neuron (model time units; 0.2 in software, 0.3 on hardware).
        delta: f64,
    },
    /// TTFS cross-entropy: L = logsumexp(-t/xi) + t_c/xi + alpha (e^{t_c/beta} - 1).
    CrossEntropy {
        /// Softmax temperature (0.2).
        xi: f64,
        /// Weight of the regulariser that favours early label spikes (0.005).
        alpha: f64,
        /// Time scale of the regulariser (1.0).
        beta: f64,
    },
}

/// The loss of a silent sample in the reference recipe (constant, zero gradient).
pub const SILENT_LOSS: f64 = 100.0;

impl Loss {
    /// The reference MSE lead delta (model time units).
    pub const MSE_DELTA: f64 = 0.2;
    /// The reference cross-entropy temperature xi.
    pub const CE_XI: f64 = 0.2;
    /// The reference weight alpha of the cross-entropy regulariser.
    pub const CE_ALPHA: f64 = 0.005;
    /// The reference time scale beta of the cross-entropy regulariser.
    pub const CE_BETA: f64 = 1.0;

    /// The reference MSE, delta = 0.2.
    pub fn mse() -> Self {
        Loss::Mse { delta: Self::MSE_DELTA }
    }

    /// The reference cross-entropy, xi = 0.2, alpha = 0.005, beta = 1.
    pub fn cross_entropy() -> Self {
        Loss::CrossEntropy {
            xi: Self::CE_XI,
            alpha: Self::CE_ALPHA,
            beta: Self::CE_BETA,
        }
    }

    /// The loss called `name` (`"mse"`, or `"ce"` / `"cross_entropy"`) with its parameters
    /// (those of the other loss are ignored); an unknown name is an error naming `loss`. The
    /// parameters are checked by [`Loss::validate`].
    pub fn from_name(name: &str, delta: f64, xi: f64, alpha: f64, beta: f64) -> Result<Self> {
        match name {
            "mse" => Ok(Loss::Mse { delta }),
            "ce" | "cross_entropy" => Ok(Loss::CrossEntropy { xi, alpha, beta }),
            _ => Err(Error::option(
                "loss",
                format!("unknown loss {name:?}; expected \"mse\" or \"ce\""),
            )),
        }
    }

    /// Checks the loss parameters.
    pub fn validate(&self) -> Result<()> {
        let bad = |arg: &str, v: f64, what: &str| Err(Error::value(arg, format!("expected {what}, got {v}")));
        match *self {
            Loss::Mse { delta } if !delta.is_finite() => bad("delta", delta, "a finite number"),
            Loss::CrossEntropy { xi, .. } if !(xi.is_finite() && xi > 0.0) => bad("xi", xi, "a finite number > 0"),
            Loss::CrossEntropy { alpha, .. } if !alpha.is_finite() => bad("alpha", alpha, "a finite number"),
            Loss::CrossEntropy { beta, .. } if !(beta.is_finite() && beta > 0.0) => {
                bad("beta", beta, "a finite number > 0")
            }
            _ => Ok(()),
        }
    }

    /// Whether a sample is "silent": its loss has no gradient. MSE needs every output neuron
    /// to spike; cross-entropy needs the label neuron (a silent non-label neuron simply has
    /// zero softmax weight). With `strict`, any silent output makes the sample silent for both.
    pub fn is_silent(&self, t: &[f64], label: usize, strict: bool) -> bool {
        match self {
            Loss::CrossEntropy { .. } if !strict => !t[label].is_finite(),
            _ => t.iter().any(|x| !x.is_finite()),
        }
    }

    /// Loss of one non-silent sample; writes dL/dt into `grad`.
    pub fn value_and_grad(&self, t: &[f64], label: usize, grad: &mut [f64]) -> f64 {
        let tc = t[label];
        match *self {
            Loss::Mse { delta } => {
                let mut loss = 0.0;
                let mut g_label = 0.0;
                for (k, (&tk, g)) in t.iter().zip(grad.iter_mut()).enumerate() {
                    if k == label {
                        continue;
                    }
                    let e = tk - tc - delta;
                    loss += 0.5 * e * e;
                    *g = e;
                    g_label -= e;
                }
                grad[label] = g_label;
                loss
            }
            Loss::CrossEntropy { xi, alpha, beta } => {
                // Stable logsumexp of -t/xi around its maximum (the earliest finite spike).
                let m = t.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(-x / xi));
                let z: f64 = t.iter().map(|&x| (-x / xi - m).exp()).sum();
                let lse = m + z.ln();
                for (&tk, g) in t.iter().zip(grad.iter_mut()) {
                    *g = -((-tk / xi - m).exp() / z) / xi;
                }
                let reg = (tc / beta).exp();
                grad[label] += 1.0 / xi + alpha * reg / beta;
                lse + tc / xi + alpha * (reg - 1.0)
            }
        }
    }
}

/// How a tie between the earliest output spikes is classified (silent outputs, all +inf, are
/// wrong under both rules).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TieRule {
    /// A tie counts as wrong (no class is predicted).
    #[default]
    Wrong,
    /// The lowest class index among the tied earliest outputs (an argmin's choice, as the
    /// reference code takes it).
    First,
}

impl TieRule {
    /// The names [`TieRule::from_name`] accepts, in the order of the variants.
    pub const NAMES: [&'static str; 2] = ["wrong", "first"];

    /// The rule's name: `"wrong"` or `"first"`.
    pub fn name(self) -> &'static str {
        match self {
            TieRule::Wrong => "wrong",
            TieRule::First => "first",
        }
    }

    /// The rule called `name`; another name is an error naming `tie_rule`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "wrong" => Ok(TieRule::Wrong),
            "first" => Ok(TieRule::First),
            _ => Err(Error::option(
                "tie_rule",
                format!("unknown tie rule {name:?}; expected \"wrong\" or \"first\""),
            )),
        }
    }
}

/// The class a sample's output times predict: the earliest spiking neuron. `None` when every
/// output is silent; when the earliest time is shared, `None` under [`TieRule::Wrong`] and the
/// lowest tied index under [`TieRule::First`].
pub fn predict(t: &[f64], tie: TieRule) -> Option<usize> {
    // `min_by` keeps the first of equal elements: the lowest index among the tied earliest.
    let (best, &tmin) = t.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1))?;
    if !tmin.is_finite() {
        return None;
    }
    let unique = || t.iter().filter(|&&x| x == tmin).count() == 1;
    (tie == TieRule::First || unique()).then_some(best)
}

/// Loss of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct LossReport {
    /// Per-sample loss; silent samples get the constant `silent_loss`.
    pub per_sample: Vec<f64>,
    /// Mean over the batch.
    pub mean: f64,
    /// Per-sample dL/dt of the output layer `[batch, n_out]` (not divided by the batch size).
    pub dl_dt: Matrix,
    /// Predicted class per sample (`None`: silent, or a tied winner under [`TieRule::Wrong`]).
    pub predicted: Vec<Option<usize>>,
    /// Number of samples whose prediction equals the label.
    pub correct: usize,
    /// Number of silent samples (constant loss, zero gradient).
    pub silent: usize,
}

/// Checks the loss parameters and that `labels` has one class < `n_out` per sample.
pub(crate) fn validate_labels(loss: &Loss, labels: &[usize], batch: usize, n_out: usize) -> Result<()> {
    loss.validate()?;
    if labels.len() != batch {
        return Err(Error::shape(
            "labels",
            format!("[{batch}]"),
            format!("[{}]", labels.len()),
        ));
    }
    if let Some(b) = labels.iter().position(|&c| c >= n_out) {
        return Err(Error::value(
            "labels",
            format!("labels must be < {n_out} (outputs); entry {b} is {}", labels[b]),
        ));
    }
    Ok(())
}

/// One sample of [`evaluate`] (sample `b` of the batch, for messages): returns its loss,
/// predicted class and whether it is silent, and writes dL/dt into `grad` (zeros when the sample
/// is silent, then the loss is `silent_loss`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate_sample(
    loss: &Loss,
    t: &[f64],
    label: usize,
    silent_loss: f64,
    strict: bool,
    tie: TieRule,
    b: usize,
    grad: &mut [f64],
) -> Result<(f64, Option<usize>, bool)> {
    let predicted = predict(t, tie);
    grad.fill(0.0);
    if loss.is_silent(t, label, strict) {
        return Ok((silent_loss, predicted, true));
    }
    let value = loss.value_and_grad(t, label, grad);
    // Finite but astronomically late spikes can push the loss past f64: say so, never inf/NaN.
    if !value.is_finite() || grad.iter().any(|g| !g.is_finite()) {
        return Err(Error::value(
            "output times",
            format!("sample {b}: the loss of times {t:?} overflows float64; spike times this large are not meaningful"),
        ));
    }
    Ok((value, predicted, false))
}

/// Assembles a report from per-sample losses, predictions and gradients (in batch order) and the
/// number of silent samples.
pub(crate) fn report(
    per_sample: Vec<f64>,
    predicted: Vec<Option<usize>>,
    labels: &[usize],
    dl_dt: Matrix,
    silent: usize,
) -> Result<LossReport> {
    let mean = if per_sample.is_empty() {
        0.0
    } else {
        per_sample.iter().sum::<f64>() / per_sample.len() as f64
    };
    if !mean.is_finite() {
        return Err(Error::value(
            "output times",
            "the batch-mean loss overflows float64; spike times are too large",
        ));
    }
    let correct = predicted.iter().zip(labels).filter(|(p, c)| **p == Some(**c)).count();
    Ok(LossReport {
        per_sample,
        mean,
        dl_dt,
        predicted,
        correct,
        silent,
    })
}

/// Evaluates `loss` on output times `[batch, n_out]` and labels; silent samples get the
/// constant `silent_loss` and zero gradient (never NaN); ties between the earliest outputs are
/// classified by `tie`.
pub fn evaluate(
    loss: &Loss,
    out: &Matrix,
    labels: &[usize],
    silent_loss: f64,
    strict: bool,
    tie: TieRule,
) -> Result<LossReport> {
    if out.cols() == 0 {
        return Err(Error::shape(
            "out_times",
            "[batch, n_out >= 1] (one column per class)",
            format!("[{}, 0]", out.rows()),
        ));
    }
    validate_labels(loss, labels, out.rows(), out.cols())?;
    if !silent_loss.is_finite() {
        return Err(Error::value(
            "silent_loss",
            format!("expected a finite number, got {silent_loss}"),
        ));
    }
    // +inf is a silent neuron; NaN and -inf are no spike times.
    let out_slice = out.as_slice();
    if let Some(i) = out_slice.iter().position(|t| t.is_nan() || *t == f64::NEG_INFINITY) {
        return Err(Error::value("out_times", format!("entry {i} is {}", out_slice[i])));
    }
    let mut dl_dt = Matrix::zeros("out_times", out.rows(), out.cols())?;
    let mut per_sample = Vec::with_capacity(out.rows());
    let mut predicted = Vec::with_capacity(out.rows());
    let mut silent = 0;
    for (b, &c) in labels.iter().enumerate() {
        let (value, p, is_silent) =
            evaluate_sample(loss, out.row(b), c, silent_loss, strict, tie, b, dl_dt.row_mut(b))?;
        per_sample.push(value);
        predicted.push(p);
        silent += usize::from(is_silent);
    }
    report(per_sample, predicted, labels, dl_dt, silent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_by_name() {
        assert_eq!(
            Loss::from_name("mse", 0.3, 0.0, 0.0, 0.0).unwrap(),
            Loss::Mse { delta: 0.3 }
        );
        let ce = Loss::from_name("ce", 0.0, Loss::CE_XI, Loss::CE_ALPHA, Loss::CE_BETA).unwrap();
        assert_eq!(ce, Loss::cross_entropy());
        assert_eq!(Loss::from_name("cross_entropy", 0.0, 0.2, 0.005, 1.0).unwrap(), ce);
        let e = Loss::from_name("l1", 0.2, 0.2, 0.005, 1.0).unwrap_err().to_string();
        assert!(e.starts_with("option loss: unknown loss"), "{e}");
    }

    #[test]
    fn prediction_rejects_ties_and_silence() {
        let w = TieRule::Wrong;
        assert_eq!(predict(&[1.0, 0.5, 2.0], w), Some(1));
        assert_eq!(predict(&[0.5, 0.5, 2.0], w), None);
        assert_eq!(predict(&[f64::INFINITY; 3], w), None);
        assert_eq!(predict(&[f64::INFINITY, 3.0], w), Some(1));
    }

    #[test]
    fn the_first_rule_takes_the_lowest_tied_class() {
        let f = TieRule::First;
        assert_eq!(predict(&[1.0, 0.5, 2.0], f), Some(1));
        assert_eq!(predict(&[0.5, 0.5, 2.0], f), Some(0));
        assert_eq!(predict(&[2.0, 0.5, 0.5], f), Some(1));
        assert_eq!(predict(&[f64::INFINITY, 0.5, 0.5], f), Some(1));
        // A later tie does not matter; silence stays wrong.
        assert_eq!(predict(&[0.4, 0.5, 0.5], f), Some(0));
        assert_eq!(predict(&[f64::INFINITY; 3], f), None);
        // Exact ties on the 8 ns grid of the emulated chip's timestamps (1/750 of tau = 6 us).
        let t = [1000.0 / 750.0, 1000.0 / 750.0, 1001.0 / 750.0];
        assert_eq!(predict(&t, f), Some(0));
        assert_eq!(predict(&t, TieRule::Wrong), None);
        let out = Matrix::from_vec("out", 3, 3, [t, [0.5, 0.5, 0.5], [0.9, 0.3, 0.3]].concat()).unwrap();
        for (tie, correct) in [(TieRule::Wrong, 0), (TieRule::First, 3)] {
            let r = evaluate(&Loss::mse(), &out, &[0, 0, 1], 100.0, false, tie).unwrap();
            assert_eq!(r.correct, correct, "{tie:?}");
        }
    }

    #[test]
    fn tie_rules_by_name() {
        for (name, rule) in TieRule::NAMES.iter().zip([TieRule::Wrong, TieRule::First]) {
            assert_eq!(TieRule::from_name(name).unwrap(), rule);
            assert_eq!(rule.name(), *name);
        }
        assert_eq!(TieRule::default(), TieRule::Wrong);
        let e = TieRule::from_name("random").unwrap_err().to_string();
        assert!(e.starts_with("option tie_rule: unknown tie rule"), "{e}");
    }

    #[test]
    fn gradients_match_finite_differences() {
        let t = [1.3, 0.9, 1.7];
        for loss in [Loss::mse(), Loss::cross_entropy()] {
            let mut g = [0.0; 3];
            loss.value_and_grad(&t, 1, &mut g);
            for k in 0..3 {
                let h = 1e-6;
                let (mut tp, mut tm) = (t, t);
                tp[k] += h;
                tm[k] -= h;
                let mut tmp = [0.0; 3];
                let fd = (loss.value_and_grad(&tp, 1, &mut tmp) - loss.value_and_grad(&tm, 1, &mut tmp)) / (2.0 * h);
                assert!((fd - g[k]).abs() < 1e-7, "{loss:?} {k}");
            }
        }
    }

    #[test]
    fn silent_samples_get_the_constant_and_no_gradient() {
        let out = Matrix::from_rows("t", &[vec![1.0, f64::INFINITY], vec![1.0, 2.0]]).unwrap();
        let r = evaluate(&Loss::mse(), &out, &[0, 0], 100.0, false, TieRule::Wrong).unwrap();
        assert_eq!(r.silent, 1);
        assert_eq!(r.per_sample[0], 100.0);
        assert_eq!(r.dl_dt.row(0), &[0.0, 0.0]);
        // Cross-entropy only needs the label neuron.
        let r = evaluate(&Loss::cross_entropy(), &out, &[0, 1], 100.0, false, TieRule::Wrong).unwrap();
        assert_eq!(r.silent, 0);
        assert!(r.per_sample.iter().all(|v| v.is_finite()));
        assert_eq!(
            evaluate(&Loss::cross_entropy(), &out, &[0, 1], 100.0, true, TieRule::Wrong)
                .unwrap()
                .silent,
            1
        );
    }

    #[test]
    fn overflowing_losses_are_errors_not_infinities() {
        let out = Matrix::from_rows("t", &[vec![1e200, 0.0, 0.0]]).unwrap();
        for loss in [Loss::mse(), Loss::cross_entropy()] {
            let e = evaluate(&loss, &out, &[0], 100.0, false, TieRule::Wrong)
                .unwrap_err()
                .to_string();
            assert!(e.contains("output times") && e.contains("overflows"), "{e}");
        }
        // Each sample representable, their sum not.
        let out = Matrix::from_rows("t", &[vec![1.2e154, 0.0, 0.0], vec![1.2e154, 0.0, 0.0]]).unwrap();
        let e = evaluate(&Loss::mse(), &out, &[0, 0], 100.0, false, TieRule::Wrong)
            .unwrap_err()
            .to_string();
        assert!(e.contains("output times") && e.contains("overflows"), "{e}");
    }

    #[test]
    fn bad_labels_and_parameters_are_errors() {
        let out = Matrix::zeros("t", 2, 3).unwrap();
        assert!(evaluate(&Loss::mse(), &out, &[0], 100.0, false, TieRule::Wrong).is_err());
        assert!(evaluate(&Loss::mse(), &out, &[0, 3], 100.0, false, TieRule::Wrong).is_err());
        let none = Matrix::zeros("t", 2, 0).unwrap();
        let e = evaluate(&Loss::mse(), &none, &[0, 0], 100.0, false, TieRule::Wrong)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("out_times: expected shape [batch, n_out >= 1]"), "{e}");
        let bad = Loss::CrossEntropy {
            xi: 0.0,
            alpha: 0.0,
            beta: 1.0,
        };
        assert!(
            evaluate(&bad, &out, &[0, 1], 100.0, false, TieRule::Wrong)
                .unwrap_err()
                .to_string()
                .contains("xi")
        );
    }
}
