//! Sizes whose buffers cannot be allocated are errors that name the argument and the memory
//! needed, never an abort ("memory allocation of N bytes failed") or "capacity overflow".
//! Every size here needs more than the 24 GiB of the project's machines (or more than an
//! address space), so the allocation is refused before any memory is touched.

use delgrad::dataset::{YinYangParams, yin_yang_custom};
use delgrad::delay::{DelayKind, DelayParam};
use delgrad::forward::forward;
use delgrad::gradient::BackwardOptions;
use delgrad::kernel::Neuron;
use delgrad::loss::{Loss, SILENT_LOSS, TieRule};
use delgrad::network::{Layer, Network};
use delgrad::parallel::Executor;
use delgrad::random::RandomState;
use delgrad::solver::Method;
use delgrad::step::forward_backward;
use delgrad::train::{LayerSpec, init_network};
use delgrad::{Error, Matrix};

/// The message of an [`Error::Memory`] (anything else fails the test), checked for the
/// messages of an unchecked size.
fn memory_error<T>(r: delgrad::Result<T>) -> String {
    let e = match r {
        Ok(_) => panic!("expected a memory error"),
        Err(e) => e,
    };
    assert!(matches!(e, Error::Memory { .. }), "not a memory error: {e}");
    let text = e.to_string();
    assert!(
        !text.contains("capacity overflow") && !text.contains(" 0 values"),
        "{text}"
    );
    text
}

fn specs(sizes: &[usize]) -> Vec<LayerSpec> {
    sizes.iter().map(|&n| LayerSpec::new(n, 0.1, 0.1)).collect()
}

fn sigmoid() -> DelayParam {
    DelayParam::from_name("sigmoid", DelayParam::SIGMOID_SHIFT, DelayParam::SIGMOID_SCALE).unwrap()
}

#[test]
fn a_hidden_layer_of_a_billion_neurons_names_its_size_and_the_memory() {
    let e = memory_error(init_network(
        4,
        &specs(&[1_000_000_000, 3]),
        sigmoid(),
        &mut RandomState::new(0),
    ));
    assert!(e.starts_with("layers: the network's parameters"), "{e}");
    assert!(e.contains("GiB") && e.contains("available"), "{e}");
}

#[test]
fn sizes_near_two_to_the_63_are_memory_errors() {
    for size in [1usize << 62, (1 << 63) - 1, usize::MAX] {
        let e = memory_error(init_network(4, &specs(&[size, 3]), sigmoid(), &mut RandomState::new(0)));
        assert!(e.starts_with("layers"), "{e}");
        let mut s = specs(&[size]);
        s[0].delay_kinds = vec![DelayKind::Synaptic, DelayKind::Dendritic];
        memory_error(init_network(usize::MAX, &s, sigmoid(), &mut RandomState::new(0)));
    }
}

#[test]
fn matrices_check_their_size() {
    let e = memory_error(Matrix::zeros("x", usize::MAX, 2));
    assert!(e.starts_with("x: "), "{e}");
    let e = memory_error(Matrix::filled("x", 1 << 30, 1 << 10, 1.0));
    assert!(e.contains("TiB"), "{e}");
    // a shape whose product overflows is a shape error that says so, not "0 values"
    let e = Matrix::from_vec("w", 1 << 33, 1 << 31, vec![1.0])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("(more than 2**64 values)") && !e.contains("(0 values)"),
        "{e}"
    );
}

#[test]
fn a_batch_whose_spike_times_cannot_be_held_is_named() {
    // [1e6, 1] inputs (8 MB) into 40000 neurons: 320 GB of spike times.
    let layer = Layer::new(
        Neuron::new(2.0, 1.0).unwrap(),
        1.0,
        Matrix::filled("w", 40_000, 1, 1.0).unwrap(),
    );
    let net = Network::new(vec![layer]).unwrap();
    let x = Matrix::zeros("x", 1_000_000, 1).unwrap();
    let exec = Executor::new(1).unwrap();
    let e = memory_error(forward(&net, &x, Method::Auto, &exec));
    assert!(e.starts_with("input: a [1000000, 40000] matrix"), "{e}");
    let loss = Loss::from_name("mse", Loss::MSE_DELTA, Loss::CE_XI, Loss::CE_ALPHA, Loss::CE_BETA).unwrap();
    let labels = vec![0; x.rows()];
    let opts = BackwardOptions::default();
    let e = memory_error(forward_backward(
        &net,
        &x,
        &labels,
        &loss,
        SILENT_LOSS,
        TieRule::Wrong,
        &opts,
        &exec,
    ));
    assert!(e.starts_with("input: "), "{e}");
}

#[test]
fn a_data_set_too_large_to_hold_names_its_size() {
    let e = memory_error(yin_yang_custom(0, 1 << 40, YinYangParams::default()));
    assert!(e.starts_with("size: "), "{e}");
    let e = memory_error(yin_yang_custom(0, usize::MAX, YinYangParams::default()));
    assert!(e.starts_with("size: "), "{e}");
}

#[cfg(feature = "hardware")]
#[test]
fn chip_patterns_have_a_documented_largest_size() {
    use delgrad::hardware::{ChipPattern, MAX_CIRCUITS, PatternParams};
    let p = PatternParams::bss2();
    let e = memory_error(ChipPattern::draw(1_000_000_000, 1_000_000_000, &p, 0));
    assert!(e.starts_with("circuits: expected at most 16777216"), "{e}");
    assert!(e.contains("22.4 GiB"), "{e}");
    let e = memory_error(ChipPattern::draw(256, usize::MAX, &p, 0));
    assert!(e.starts_with("rows: ") && e.contains("address space"), "{e}");
    let e = memory_error(ChipPattern::draw(MAX_CIRCUITS + 1, 256, &p, 0));
    assert!(e.contains("got 16777217"), "{e}");
    assert_eq!(ChipPattern::draw(512, 512, &p, 0).unwrap().row_gain.len(), 512);
}
