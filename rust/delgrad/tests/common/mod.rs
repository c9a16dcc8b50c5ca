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

use delgrad::delay::DelayKind;
use delgrad::random::RandomState;

/// The three regimes the crate distinguishes (equal, double, general ratio).
pub const REGIMES: [(f64, f64); 3] = [(1.0, 1.0), (2.0, 1.0), (1.7, 0.6)];

/// A random network `sizes[0] -> ... -> sizes[L]` with every delay kind present, positive-leaning
/// weights (so that most neurons spike) and random thresholds.
pub fn random_network(rng: &mut RandomState, sizes: &[usize], tau: (f64, f64), kinds: &[DelayKind]) -> Network {
    let neuron = Neuron::new(tau.0, tau.1).unwrap();
    let layers = sizes
        .windows(2)
        .map(|p| {
            let (n_in, n_out) = (p[0], p[1]);
            let w: Vec<f64> = (0..n_in * n_out).map(|_| rng.normal(1.6, 1.0)).collect();
            let mut delay = |n: usize| -> Vec<f64> { (0..n).map(|_| 0.5 * rng.random_sample()).collect() };
            let delays = Delays {
                group: 1,
                syn: kinds
                    .contains(&DelayKind::Synaptic)
                    .then(|| Matrix::from_vec("s", n_out, n_in, delay(n_in * n_out)).unwrap()),
                axo: kinds.contains(&DelayKind::Axonal).then(|| delay(n_in)),
                den: kinds.contains(&DelayKind::Dendritic).then(|| delay(n_out)),
            };
            let theta = (0..n_out).map(|_| 0.8 + 0.4 * rng.random_sample()).collect();
            Layer {
                neuron,
                theta,
                w: Matrix::from_vec("w", n_out, n_in, w).unwrap(),
                delays,
            }
        })
        .collect();
    Network::new(layers).unwrap()
}

/// Random input times in [0, 1.5) for `batch` samples.
pub fn random_input(rng: &mut RandomState, batch: usize, n: usize) -> Matrix {
    Matrix::from_vec(
        "x",
        batch,
        n,
        (0..batch * n).map(|_| 1.5 * rng.random_sample()).collect(),
    )
    .unwrap()
}
