//! Conformance: the repository's own cases (`tests/conformance/cases.json`, from an independent
//! high-precision reference) and, where present, the external vectors (`DELGRAD_SHARED`); spike
//! times to 1e-9 absolute, loss and every gradient to 1e-6 relative, in both solver methods.

mod common;

use common::*;
use delgrad::Matrix;
use delgrad::forward::forward;
use delgrad::gradient::{BackwardOptions, backward};
use delgrad::loss::{TieRule, evaluate};
use delgrad::parallel::Executor;
use delgrad::solver::Method;

fn check_case(i: usize, case: &serde_json::Value, method: Method) -> Vec<String> {
    let idx = match case["name"].as_str() {
        Some(name) => format!("{i} ({name})"),
        None => i.to_string(),
    };
    let mut fails = Vec::new();
    let net = network_of(case);
    let input = Matrix::from_rows("input", &[vec_of(&case["input"])]).unwrap();
    let exec = Executor::default();
    let times = forward(&net, &input, method, &exec).unwrap();
    let exp = &case["expected"];
    for (l, want) in exp["spike_times"].as_array().unwrap().iter().enumerate() {
        for (k, w) in vec_of(want).iter().enumerate() {
            let got = times[l].get(0, k);
            if !close(got, *w, 0.0, 1e-9) {
                fails.push(format!(
                    "case {idx} {method:?}: layer {l} neuron {k}: t = {got}, expected {w}"
                ));
            }
        }
    }
    let label = case["label"].as_u64().unwrap() as usize;
    let report = evaluate(
        &loss_of(case),
        times.last().unwrap(),
        &[label],
        100.0,
        true,
        TieRule::Wrong,
    )
    .unwrap();
    let grads = backward(&net, &input, &times, &report.dl_dt, &BackwardOptions::default(), &exec).unwrap();
    let zero = exp["loss"].is_null();
    if zero {
        if report.silent != 1 {
            fails.push(format!("case {idx}: expected a silent (null) loss"));
        }
    } else if !close(report.mean, exp["loss"].as_f64().unwrap(), 1e-6, 1e-12) {
        fails.push(format!("case {idx}: loss {} expected {}", report.mean, exp["loss"]));
    }
    let mut cmp = |what: String, got: &[f64], want: Vec<f64>| {
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (j, (g, w)) in got.iter().zip(&want).enumerate() {
            if !close(*g, *w, 1e-6, 1e-9 * scale.max(1e-3)) {
                fails.push(format!("case {idx} {method:?}: {what}[{j}] = {g}, expected {w}"));
            }
        }
        if got.len() != want.len() {
            fails.push(format!(
                "case {idx}: {what} has {} values, expected {}",
                got.len(),
                want.len()
            ));
        }
    };
    for (l, g) in exp["grad"].as_array().unwrap().iter().enumerate() {
        let lg = &grads.layers[l];
        cmp(format!("grad[{l}].w"), lg.w.as_slice(), matrix_of(&g["w"]).into_vec());
        cmp(
            format!("grad[{l}].d_syn"),
            lg.d_syn.as_slice(),
            matrix_of(&g["d_syn"]).into_vec(),
        );
        cmp(format!("grad[{l}].d_axo"), &lg.d_axo, vec_of(&g["d_axo"]));
        cmp(format!("grad[{l}].d_den"), &lg.d_den, vec_of(&g["d_den"]));
    }
    cmp("grad_input".into(), grads.input.row(0), vec_of(&exp["grad_input"]));
    fails
}

fn check_all(cases: &[serde_json::Value]) {
    let mut fails = Vec::new();
    for method in [Method::Auto, Method::Bracket] {
        for (i, case) in cases.iter().enumerate() {
            fails.extend(check_case(i, case, method));
        }
    }
    assert!(
        fails.is_empty(),
        "{} mismatches:\n{}",
        fails.len(),
        fails[..fails.len().min(40)].join("\n")
    );
}

#[test]
fn own_cases_match() {
    let cases = own_cases();
    assert!(
        cases.len() >= 40,
        "expected the repository's cases, found {}",
        cases.len()
    );
    check_all(&cases);
}

#[test]
fn external_vectors_match() {
    if let Some(cases) = external_cases() {
        assert_eq!(cases.len(), 240, "expected the 240 external cases");
        check_all(&cases);
    }
}
