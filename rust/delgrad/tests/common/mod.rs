//! Shared helpers of the integration tests: loading the conformance vectors.
#![allow(dead_code)]

use delgrad::Matrix;
use delgrad::delay::Delays;
use delgrad::kernel::Neuron;
use delgrad::loss::Loss;
use delgrad::network::{Layer, Network};
use serde_json::Value;

/// Path of the shared conformance vectors (`../shared` beside the repository, or `DELGRAD_SHARED`).
pub fn vectors_path() -> std::path::PathBuf {
    let shared = std::env::var("DELGRAD_SHARED")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    shared.join("conformance/vectors.json")
}

pub fn load_cases() -> Vec<Value> {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "conformance vectors not found at {} ({e}); set DELGRAD_SHARED",
            path.display()
        )
    });
    let v: Value = serde_json::from_str(&text).expect("vectors.json parses");
    v["cases"].as_array().expect("cases").clone()
}

/// JSON number or null (+inf).
pub fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::INFINITY)
}

pub fn vec_of(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(num).collect()
}

pub fn matrix_of(v: &Value) -> Matrix {
    let rows: Vec<Vec<f64>> = v.as_array().expect("rows").iter().map(vec_of).collect();
    Matrix::from_rows("m", &rows).unwrap()
}

pub fn network_of(case: &Value) -> Network {
    let neuron = Neuron::new(
        case["neuron"]["tau_m"].as_f64().unwrap(),
        case["neuron"]["tau_s"].as_f64().unwrap(),
    )
    .unwrap();
    let layers = case["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let w = matrix_of(&l["w"]);
            let theta = match &l["theta"] {
                Value::Array(_) => vec_of(&l["theta"]),
                t => vec![t.as_f64().unwrap(); w.rows()],
            };
            let delays = Delays {
                group: 1,
                syn: Some(matrix_of(&l["d_syn"])),
                axo: Some(vec_of(&l["d_axo"])),
                den: Some(vec_of(&l["d_den"])),
            };
            Layer {
                neuron,
                theta,
                w,
                delays,
            }
        })
        .collect();
    Network::new(layers).unwrap()
}

pub fn loss_of(case: &Value) -> Loss {
    let l = &case["loss"];
    match l["kind"].as_str().unwrap() {
        "mse" => Loss::Mse {
            delta: l["delta"].as_f64().unwrap(),
        },
        "ce" => Loss::CrossEntropy {
            xi: l["xi"].as_f64().unwrap(),
            alpha: l["alpha"].as_f64().unwrap(),
            beta: l["beta"].as_f64().unwrap(),
        },
        k => panic!("unknown loss {k}"),
    }
}

/// |got - want| <= tol * max(1, |want|)... relative with an absolute floor for values near 0.
pub fn close(got: f64, want: f64, rel: f64, abs: f64) -> bool {
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= abs + rel * want.abs()
}
